"""The image documents of ``docker image inspect`` and ``docker history`` (moby ``image_inspect.go``,
``image_history.go``).

``inspect_document`` shapes the inspect response per API version (``Created`` always before 1.44,
``Container``/``ContainerConfig`` before 1.45, ``VirtualSize`` before 1.44, the legacy ``Config``
fields before 1.50); ``history_document`` lists the history newest first, each non-empty step
with its layer's size, and the image IDs and tags along the parent chain (known for images built
or committed here).
"""

from __future__ import annotations

import copy
from typing import Any

from ..errors import ApiError
from ..goformat import format_go_time, parse_go_time
from .changes import go_container_config
from .imagestore import Image
from .service import ImageService

__all__ = ["history_document", "inspect_document"]

_LEGACY_CONFIG_CURRENT = {
    "Cmd": None,
    "Entrypoint": None,
    "Env": None,
    "Labels": None,
    "OnBuild": None,
    "User": "",
    "Volumes": None,
    "WorkingDir": "",
}
_LEGACY_CONFIG_149 = {
    "AttachStderr": False,
    "AttachStdin": False,
    "AttachStdout": False,
    "Cmd": None,
    "Domainname": "",
    "Entrypoint": None,
    "Env": None,
    "Hostname": "",
    "Image": "",
    "Labels": None,
    "OnBuild": None,
    "OpenStdin": False,
    "StdinOnce": False,
    "Tty": False,
    "User": "",
    "Volumes": None,
    "WorkingDir": "",
}


def _oci_config(runtime: dict[str, Any]) -> dict[str, Any]:
    """containerConfigToDockerOCIImageConfig, as JSON (omitempty applied)."""
    out: dict[str, Any] = {}
    for key in (
        "User",
        "Env",
        "Entrypoint",
        "Cmd",
        "Volumes",
        "WorkingDir",
        "Labels",
        "StopSignal",
        "ArgsEscaped",
        "ExposedPorts",
        "Healthcheck",
        "OnBuild",
        "Shell",
    ):
        value = runtime.get(key)
        if value:
            out[key] = value
    return out


def inspect_document(service: ImageService, image: Image, version: tuple[int, ...]) -> dict[str, Any]:
    """``GET /images/{name}/json`` as API ``version`` (``(1, 50)``) answers it."""
    config = image.config
    history = image.history
    comment = config.get("comment") or (history[-1].get("comment") if history else "") or ""
    parsed = image.created_time
    created = format_go_time(*parsed) if parsed else ""
    last_parsed = parse_go_time(image.last_updated) if image.last_updated else None
    doc: dict[str, Any] = {
        "Id": image.id,
        "RepoTags": service.references.repo_tags(image.id),
        "RepoDigests": service.references.repo_digests(image.id),
        "Parent": image.parent,
        "Comment": comment,
    }
    if created:
        doc["Created"] = created
    elif version < (1, 44):
        doc["Created"] = "0001-01-01T00:00:00Z"
    if version < (1, 45):
        if config.get("container"):
            doc["Container"] = config["container"]
        doc["ContainerConfig"] = go_container_config(config.get("container_config"))
    doc["DockerVersion"] = config.get("docker_version") or ""
    doc["Author"] = config.get("author") or ""
    doc["Architecture"] = config.get("architecture") or ""
    if config.get("variant"):
        doc["Variant"] = config["variant"]
    doc["Os"] = image.os
    if config.get("os.version"):
        doc["OsVersion"] = config["os.version"]
    doc["Size"] = service.images.size(image)
    if version < (1, 44):
        doc["VirtualSize"] = doc["Size"]
    doc["GraphDriver"] = {"Data": service.image_metadata(image), "Name": service.driver_name}
    rootfs: dict[str, Any] = {"Type": (config.get("rootfs") or {}).get("type", "")}
    if image.diff_ids:
        rootfs["Layers"] = image.diff_ids
    if not rootfs["Type"]:
        del rootfs["Type"]
    doc["RootFS"] = rootfs
    doc["Metadata"] = {"LastTagTime": format_go_time(*last_parsed) if last_parsed else "0001-01-01T00:00:00Z"}
    legacy = _LEGACY_CONFIG_149 if version < (1, 50) else _LEGACY_CONFIG_CURRENT
    merged = copy.deepcopy(legacy)
    merged.update(_oci_config(image.runtime_config))
    doc["Config"] = {k: merged[k] for k in sorted(merged)}
    return doc


def history_document(service: ImageService, image: Image) -> list[dict[str, Any]]:
    """``GET /images/{name}/history``: newest first, with IDs and tags along the parent chain."""
    chains = image.chain
    items: list[dict[str, Any]] = []
    counter = 0
    for h in image.history:
        size = 0
        if not h.get("empty_layer"):
            if counter >= len(chains):
                raise ApiError(500, "too many non-empty layers in History section")
            size = service.layers.get(chains[counter]).size
            counter += 1
        parsed = _unix_seconds(h.get("created"))
        items.insert(
            0,
            {
                "Comment": h.get("comment") or "",
                "Created": parsed,
                "CreatedBy": h.get("created_by") or "",
                "Id": "<missing>",
                "Size": size,
                "Tags": None,
            },
        )
    # image IDs and tags along the parent chain (locally built images know their parents)
    current: Image | None = image
    for item in items:
        if current is None:
            break
        item["Id"] = current.id
        item["Tags"] = service.references.repo_tags(current.id) or None
        current = service.images.get(current.parent) if current.parent else None
    return items


def _unix_seconds(text: Any) -> int:
    parsed = parse_go_time(text) if isinstance(text, str) else None
    return parsed[0] if parsed else 0
