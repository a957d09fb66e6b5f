"""Image summaries: ``docker images`` (``GET /images/json``) and the images of ``docker system df``.

``summaries`` is moby's ``daemon/images`` Images(): the filters (``dangling``, ``label``,
``before``/``since`` an image, ``until`` a time, ``reference`` a pattern), untagged intermediate
images only with ``all``, the shared size of layers when asked, newest first. ``for_api_version``
shapes them for older API versions as the router does (``<none>`` tags below 1.43,
``VirtualSize`` below 1.44, ``Containers`` -1 below 1.51). ``layers_size`` is ``system df``'s
``LayersSize``: the layers images use, each counted once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import ApiError
from ..query import bool_filter, match_kv, parse_timestamp
from .imagestore import Image
from .reference import ReferenceError, familiar_match
from .service import ImageService

__all__ = ["LIST_FILTERS", "ListOptions", "for_api_version", "layers_size", "summaries"]

#: the filters ``GET /images/json`` accepts
LIST_FILTERS = {"dangling", "label", "before", "since", "reference", "until"}


@dataclass
class ListOptions:
    filters: dict[str, list[str]] = field(default_factory=dict)
    all: bool = False  # untagged images with children too
    shared_size: bool = False


def summaries(service: ImageService, opts: ListOptions) -> list[dict[str, Any]]:
    """The image summaries the filters select, newest first, in the current API's shape."""
    filters = opts.filters
    dangling_only = bool_filter(filters, "dangling", False)
    before, since = _time_bounds(service, filters)
    images = service.images.all_images()
    if dangling_only:
        images = [i for i in images if not service.images.children(i.id)]
    out: list[tuple[float, dict[str, Any], Image]] = []
    for image in images:
        created = image.created_seconds
        if before is not None and (created is None or not created < before):
            continue
        if since is not None and (created is None or not created > since):
            continue
        if "label" in filters and not match_kv(filters["label"], image.labels):
            continue
        names = _names(service, image, filters, opts.all, dangling_only)
        if names is None:
            continue
        tags, digests = names
        summary: dict[str, Any] = {
            "Containers": len(service.in_use_by(image.id)),
            "Created": image.created_unix,
            "Id": image.id,
            "Labels": image.runtime_config.get("Labels"),
            "ParentId": image.parent,
            "RepoDigests": digests or None,
            "RepoTags": tags or None,
            "SharedSize": -1,
            "Size": service.images.size(image),
        }
        out.append((created or 0.0, summary, image))
    if opts.shared_size:
        _shared_sizes(service, out)
    out.sort(key=lambda item: item[0], reverse=True)
    return [s for _, s, _ in out]


def _time_bounds(service: ImageService, filters: dict[str, list[str]]) -> tuple[float | None, float | None]:
    """(before, since) from the ``before``/``until`` and ``since`` filters: the tightest of each."""
    before: float | None = None
    since: float | None = None
    for value in filters.get("before", []):
        created = service.resolve(value).created_seconds
        if created is not None and (before is None or before > created):
            before = created
    now = time.time()
    for value in filters.get("until", []):
        ts = parse_timestamp(value, now)
        if ts is not None and (before is None or before > ts):
            before = ts
    for value in filters.get("since", []):
        created = service.resolve(value).created_seconds
        if created is not None and (since is None or since < created):
            since = created
    return before, since


def _names(
    service: ImageService, image: Image, filters: dict[str, list[str]], show_all: bool, dangling_only: bool
) -> tuple[list[str], list[str]] | None:
    """(tags, digests) of a listed image; None when the filters leave it out."""
    tags: list[str] = []
    digests: list[str] = []
    for ref in service.references.references(image.id):
        if "reference" in filters:
            try:
                if not any(familiar_match(p, ref) for p in filters["reference"]):
                    continue
            except ReferenceError as exc:
                raise ApiError(500, str(exc)) from None
        if ref.is_canonical:
            digests.append(ref.familiar_string())
        if ref.is_tagged:
            tags.append(ref.familiar_string())
    if not tags and not digests:
        if not show_all and service.images.children(image.id):
            return None  # an intermediate image
        if ("dangling" in filters and not dangling_only) or "reference" in filters:
            return None
    elif dangling_only and tags:
        return None
    return tags, digests


def _shared_sizes(service: ImageService, listed: list[tuple[float, dict[str, Any], Image]]) -> None:
    """SharedSize: the size of an image's layers that another image also uses."""
    counts: dict[str, int] = {}
    for image in service.images.all_images():
        for chain in image.chain:
            counts[chain] = counts.get(chain, 0) + 1
    for _, summary, image in listed:
        summary["SharedSize"] = sum(service.layers.get(c).size for c in image.chain if counts.get(c, 0) > 1)


def for_api_version(summaries: list[dict[str, Any]], version: tuple[int, ...]) -> list[dict[str, Any]]:
    """The summaries as API ``version`` (``(1, 43)``) has them (changed in place, returned)."""
    for summary in summaries:
        if version < (1, 43):
            if not summary["RepoTags"] and not summary["RepoDigests"]:
                summary["RepoTags"], summary["RepoDigests"] = ["<none>:<none>"], ["<none>@<none>"]
        else:
            summary["RepoTags"] = summary["RepoTags"] or []
            summary["RepoDigests"] = summary["RepoDigests"] or []
        if version < (1, 44):
            summary["VirtualSize"] = summary["Size"]
        if version < (1, 51):
            summary["Containers"] = -1
    return summaries


def layers_size(service: ImageService) -> int:
    """The size of the layers images use, each layer once."""
    chains = {chain for image in service.images.all_images() for chain in image.chain}
    return service.layers.size(sorted(chains))
