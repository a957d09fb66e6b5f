"""``docker rmi`` and ``docker image prune`` (moby ``daemon/images/image_delete.go``, ``image_prune.go``).

``delete`` untags or deletes as dockerd's ImageDelete does, with its conflict rules and messages:
a name removes that reference (and the image when it was the last one), an ID removes the image
with all its references; dependent child images and running containers block even ``force``,
other references and stopped containers only without it. The parents left dangling go too unless
``prune`` is off. ``prune`` deletes the unused images a filter does not keep and reports the bytes
freed; ``prune_images`` is ``docker image prune`` with dockerd's filters (``dangling``, ``until``,
``label``, ``label!``) and its ``prune`` event.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from ..errors import ApiError, conflict
from ..query import bool_filter, match_kv, parse_timestamp
from .imagestore import Image
from .reference import Named, ReferenceError, parse_normalized_named, tag_name_only
from .service import ImageService

__all__ = ["PRUNE_FILTERS", "delete", "prune", "prune_images"]

#: the filters ``POST /images/prune`` accepts
PRUNE_FILTERS = {"dangling", "label", "label!", "until"}

Records = list[dict[str, str]]  # [{"Untagged": ...}, {"Deleted": ...}]


def delete(service: ImageService, ref_or_id: str, force: bool = False, prune: bool = True) -> Records:
    """ImageDelete: ``[{"Untagged": ...}, {"Deleted": ...}]`` or ApiError (404, 409...)."""
    with service.lock:
        image = service.resolve(ref_or_id)
        records: Records = []
        refs = service.references.references(image.id)
        removed_repo_ref = False
        if not _is_id_prefix(image.id, ref_or_id):
            if _untag(service, image, ref_or_id, refs, force, records):
                return records
            removed_repo_ref = True
        elif _single_reference(refs):
            found = _conflict(service, image, hard_only=force, skip_active_refs=True)
            if found is not None:
                raise _conflict_error(image, found)
            for r in refs:
                _remove_reference(service, image, r, records)
        _delete_helper(service, image, records, force, prune, removed_repo_ref)
        return records


def _untag(
    service: ImageService, image: Image, name: str, refs: list[Named], force: bool, records: Records
) -> bool:
    """Remove the reference ``name`` (and, for a tag, the repository's digests without a tag left);
    True when the image keeps other references and so stays."""
    if not force and _single_reference(refs):
        users = service.in_use_by(image.id) + service.mounted_in(image.id)  # moby's "using"
        if users:
            raise conflict(
                f'conflict: unable to remove repository reference "{name}" (must force) '
                f"- container {users[0][:12]} is using its referenced image {image.id[7:19]}"
            )
    try:
        parsed = tag_name_only(parse_normalized_named(name))
    except ReferenceError as exc:
        raise ApiError(500, str(exc)) from None
    service.references.delete(parsed)
    records.append({"Untagged": parsed.familiar_string()})
    service.image_event("untag", image.id, image.id)
    refs = service.references.references(image.id)
    same_repo_tag = any(not r.is_canonical and r.name == parsed.name for r in refs)
    if not parsed.is_canonical and not same_repo_tag:
        remaining = []
        for r in refs:
            if r.is_canonical and r.name == parsed.name:
                service.references.delete(r)
                records.append({"Untagged": r.familiar_string()})
            else:
                remaining.append(r)
        refs = remaining
    return bool(refs)


def _remove_reference(service: ImageService, image: Image, ref: Named, records: Records) -> None:
    service.references.delete(ref)
    service.image_event("untag", image.id, image.id)
    records.append({"Untagged": tag_name_only(ref).familiar_string()})


def _delete_helper(
    service: ImageService, image: Image, records: Records, force: bool, prune: bool, quiet: bool
) -> None:
    found = _conflict(service, image, hard_only=force, skip_active_refs=False)
    if found is not None:
        if quiet and (not _dangling(service, image) or found[2]):
            return
        raise _conflict_error(image, found)
    parent = service.images.get(image.parent) if image.parent else None
    for r in service.references.references(image.id):
        _remove_reference(service, image, r, records)
    removed = service.images.delete(image)
    service.image_event("delete", image.id, image.id)
    records.append({"Deleted": image.id})
    records.extend({"Deleted": layer.chain_id} for layer in removed)
    if prune and parent is not None:
        _delete_helper(service, parent, records, False, True, True)


def _conflict(
    service: ImageService, image: Image, hard_only: bool, skip_active_refs: bool
) -> tuple[str, bool, bool] | None:
    """(message, hard, used) of the first delete conflict, dockerd's checkImageDeleteConflict."""
    if service.images.children(image.id):
        return "image has dependent child images", True, False
    users = list(service.in_use_by(image.id))
    running = [c for c in users if service.container_running(c)]
    if running:
        return f"image is being used by running container {running[0][:12]}", True, True
    if hard_only:
        return None
    if not skip_active_refs and service.references.references(image.id):
        return "image is referenced in multiple repositories", False, False
    stopped = [c for c in users if not service.container_running(c)]
    if stopped:
        return f"image is being used by stopped container {stopped[0][:12]}", False, True
    return None


def _conflict_error(image: Image, conflict_info: tuple[str, bool, bool]) -> ApiError:
    message, hard, _ = conflict_info
    force = "cannot be forced" if hard else "must be forced"
    return conflict(f"conflict: unable to delete {image.id[7:19]} ({force}) - {message}")


def _single_reference(refs: list[Named]) -> bool:
    if len(refs) <= 1:
        return len(refs) == 1
    single: Named | None = None
    canonical: set[str] = set()
    for ref in refs:
        if ref.is_canonical:
            canonical.add(ref.name)
        elif single is None:
            single = ref
        else:
            return False
    if single is None:
        single = refs[0]
    return len(canonical) == 1 and single.name in canonical


def _dangling(service: ImageService, image: Image) -> bool:
    return not service.references.references(image.id) and not service.images.children(image.id)


def _is_id_prefix(image_id: str, candidate: str) -> bool:
    return image_id.startswith(candidate) or image_id[7:].startswith(candidate)


def prune(service: ImageService, dangling_only: bool, keep: Callable[[Image], bool]) -> tuple[Records, int]:
    """ImagesPrune: delete unused images (dangling ones only by default); (records, bytes reclaimed)."""
    with service.lock:
        sizes = {layer.chain_id: layer.size for layer in service.layers.all_layers()}
        images = service.images
        candidates = [i for i in images.all_images() if not dangling_only or not images.children(i.id)]
        deleted: Records = []
        for image in candidates:
            if image.id not in images:
                continue
            refs = service.references.references(image.id)
            if (not refs and images.children(image.id)) or keep(image):
                continue
            if refs and dangling_only and any(r.is_tagged and not r.is_canonical for r in refs):
                continue
            try:
                if refs:
                    for r in refs:
                        with contextlib.suppress(ApiError):
                            deleted += delete(service, r.string(), force=False, prune=True)
                else:
                    deleted += delete(service, image.id[7:], force=False, prune=True)
            except ApiError as exc:
                if exc.status != 409 and service.log is not None:
                    service.log.warning(f"failed to prune image {image.id}: {exc.message}")
        reclaimed = sum(sizes.get(d["Deleted"], 0) for d in deleted if "Deleted" in d)
    return deleted, reclaimed


def prune_images(service: ImageService, filters: dict[str, list[str]]) -> tuple[Records, int]:
    """ImagesPrune with its filters: dangling images only unless ``dangling=false``; ``until`` keeps the
    newer ones, ``label`` those without the labels, ``label!`` those with them."""
    dangling_only = bool_filter(filters, "dangling", True)
    until: float | None = None
    if filters.get("until"):  # an empty list: no filter (dockerd 28.5 panics and drops the connection)
        if len(filters["until"]) > 1:
            raise ApiError(500, "more than one until filter specified")
        until = parse_timestamp(filters["until"][0], time.time())

    def keep(image: Image) -> bool:
        created = image.created_seconds
        if until is not None and (created is None or created > until):
            return True
        if not image.runtime_config:
            return False
        if not match_kv(filters.get("label", []), image.labels):
            return True
        return "label!" in filters and match_kv(filters["label!"], image.labels)

    records, reclaimed = prune(service, dangling_only, keep)
    service.event("prune", "", {"reclaimed": str(reclaimed)})
    return records, reclaimed
