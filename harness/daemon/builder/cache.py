"""The classic builder's cache, as moby ``image/cache`` and ``builder/dockerfile/imageprobe.go`` do it.

A step hits the cache when an image *built locally* (by a build or a commit) is a child of the
current image and was committed from an equal container config (``compare``: Cmd, Env, Entrypoint,
Shell, ports, volumes, labels, OnBuild, user, workdir, stop signal, healthcheck... but not Hostname,
Domainname, Image or MacAddress), for the same platform; the newest such child wins. Steps record
their config as the image's ``container_config``: a RUN its command (with ``|n k=v`` build args in
front), other instructions ``#(nop) ...`` comments, so the same Dockerfile line on the same parent
finds the image again. After the first miss a stage no longer probes (``cacheBusted``).

With ``cachefrom`` the named images are the only sources (moby ``ImageCache``): a local hit counts
only when it is an ancestor of one of them, else a step matches the history entry at the parent's
depth (``created_by`` equal to the joined Cmd) of a named image whose earlier history and layers
equal the parent's; the images along the way are re-created from those entries as in dockerd. A
``cachefrom`` naming nothing that exists leaves no source: nothing is taken from the cache.
"""

from __future__ import annotations

from typing import Any

from ..goformat import go_arch
from ..images.imagestore import Image
from ..images.service import ImageService

__all__ = ["ImageProber", "compare_configs"]


def _len(value: Any) -> int:
    return len(value) if value else 0


def compare_configs(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """image/cache compare(): equal for the builder's purposes."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return False
    for key in ("Env", "Cmd", "Entrypoint", "Shell", "ExposedPorts", "Volumes", "Labels", "OnBuild"):
        if _len(a.get(key)) != _len(b.get(key)):
            return False
    for key in ("Env", "OnBuild", "Cmd", "Entrypoint", "Shell"):
        if list(a.get(key) or []) != list(b.get(key) or []):
            return False
    for key in ("ExposedPorts", "Volumes"):
        if any(k not in (b.get(key) or {}) for k in a.get(key) or {}):
            return False
    b_labels = b.get("Labels") or {}
    if any(v != b_labels.get(k) for k, v in (a.get("Labels") or {}).items()):
        return False
    for key in ("AttachStdin", "AttachStdout", "AttachStderr", "NetworkDisabled", "Tty", "OpenStdin"):
        if bool(a.get(key)) != bool(b.get(key)):
            return False
    for key in ("StdinOnce", "ArgsEscaped"):
        if bool(a.get(key)) != bool(b.get(key)):
            return False
    for key in ("User", "WorkingDir", "StopSignal"):
        if (a.get(key) or "") != (b.get(key) or ""):
            return False
    if a.get("StopTimeout") != b.get("StopTimeout"):
        return False
    ha, hb = a.get("Healthcheck"), b.get("Healthcheck")
    if (ha is None) != (hb is None):
        return False
    if isinstance(ha, dict) and isinstance(hb, dict):
        for key in ("Interval", "StartInterval", "StartPeriod", "Timeout", "Retries"):
            if (ha.get(key) or 0) != (hb.get(key) or 0):
                return False
        if list(ha.get("Test") or []) != list(hb.get("Test") or []):
            return False
    return True


def _platform_matches(image: Image, os_name: str, arch: str) -> bool:
    img_os = str(image.config.get("os") or "")
    img_arch = str(image.config.get("architecture") or "")
    if not img_os and not img_arch:
        return False  # old images with no platform are never cache hits
    return img_os == os_name and (img_arch or go_arch()) == arch


class ImageProber:
    """One build's cache: ``probe(parent_id, config)`` -> a cached image ID or ''."""

    def __init__(self, store: ImageService, no_cache: bool = False, cache_from: list[Image] | None = None):
        self.store = store
        self.no_cache = no_cache
        #: None: no ``cachefrom`` (the local cache); a list: the images it named that exist
        self.cache_from = None if cache_from is None else list(cache_from)
        self.busted = False

    def reset(self) -> None:
        self.busted = False

    def probe(self, parent_id: str, config: dict[str, Any], os_name: str, arch: str) -> str:
        if self.no_cache or self.busted:
            return ""
        found = self._local(parent_id, config, os_name, arch)
        if self.cache_from is not None:
            if found and not any(self._is_ancestor(found, source) for source in self.cache_from):
                found = ""
            if not found:
                found = self._from_sources(parent_id, config)
        if not found:
            self.busted = True
        return found

    def _children(self, parent_id: str) -> list[Image]:
        store = self.store
        with store.lock:
            if parent_id:
                return [i for i in store.images.all_images() if i.parent == parent_id]
            return [
                i for i in store.images.all_images() if not i.parent and store.images.is_built_locally(i.id)
            ]

    def _local(self, parent_id: str, config: dict[str, Any], os_name: str, arch: str) -> str:
        match: Image | None = None
        match_time: tuple[int, int] | None = None
        for image in self._children(parent_id):
            if not self.store.images.is_built_locally(image.id):
                continue
            if not _platform_matches(image, os_name, arch):
                continue
            if not compare_configs(image.config.get("container_config"), config):
                continue
            created = image.created_time
            if created is None:
                continue
            when = (created[0], created[1])
            if match is None or (match_time is not None and match_time < when):
                match, match_time = image, when
        return match.id if match is not None else ""

    # -- cache-from --------------------------------------------------------------------------------
    def _is_ancestor(self, image_id: str, source: Image) -> bool:
        """moby ImageCache.isParent: ``image_id`` along ``source``'s parent chain (not ``source`` itself)."""
        seen: set[str] = set()
        parent = source.parent
        while parent and parent not in seen:
            if parent == image_id:
                return True
            seen.add(parent)
            found = self.store.images.get(parent)
            parent = found.parent if found is not None else ""
        return False

    def _from_sources(self, parent_id: str, config: dict[str, Any]) -> str:
        assert self.cache_from is not None
        store = self.store
        parent = store.images.get(parent_id) if parent_id else None
        depth = len(parent.history) if parent is not None else 0
        created_by = " ".join(config.get("Cmd") or [])
        for target in self.cache_from:
            if not _valid_parent(target, parent) or len(target.history) <= depth:
                continue
            if (target.history[depth].get("created_by") or "") != created_by:
                continue
            if len(target.history) - 1 == depth:
                if parent is not None:
                    store.images.set_parent(target, parent)
                return target.id
            image = store.images.create(_restored(store, parent, target, depth, config))
            if parent is not None:
                store.images.set_parent(image, parent)
            self.cache_from = [target]
            return image.id
        return ""


def _restored(
    store: ImageService, parent: Image | None, target: Image, depth: int, config: dict[str, Any]
) -> bytes:
    """restoreCachedImage: the parent plus the target's history entry (and layer) at ``depth``."""
    from ..goformat import go_json, sorted_keys
    from ..images.changes import go_container_config
    from ..images.commit import go_health_config

    entry = target.history[depth]
    diff_ids = list(parent.diff_ids) if parent is not None else []
    layer = _layer_at(target, depth)
    if layer:
        diff_ids.append(layer)
    rootfs: dict[str, Any] = {"type": "layers"}
    if diff_ids:
        rootfs["diff_ids"] = diff_ids
    cfg = go_container_config(config)
    if "Healthcheck" in cfg:
        cfg["Healthcheck"] = go_health_config(cfg["Healthcheck"])
    doc: dict[str, Any] = {
        "architecture": target.config.get("architecture") or go_arch(),
        "config": cfg,
        "container_config": go_container_config(None),
        "created": entry.get("created"),
        "history": [*(parent.history if parent is not None else []), entry],
        "rootfs": rootfs,
    }
    if store.engine_version:
        doc["docker_version"] = store.engine_version
    for key in ("author", "os", "os.features", "os.version"):
        if target.config.get(key):
            doc[key] = target.config[key]
    return go_json(sorted_keys(doc))


def _valid_parent(image: Image, parent: Image | None) -> bool:
    if not image.history:
        return False
    if parent is None or (not parent.history and not parent.diff_ids):
        return True
    if len(parent.history) >= len(image.history) or len(parent.diff_ids) > len(image.diff_ids):
        return False
    return image.history[: len(parent.history)] == parent.history and (
        image.diff_ids[: len(parent.diff_ids)] == parent.diff_ids
    )


def _layer_at(image: Image, index: int) -> str:
    layer_index = 0
    for i, entry in enumerate(image.history):
        if i == index:
            if entry.get("empty_layer"):
                return ""
            break
        if not entry.get("empty_layer"):
            layer_index += 1
    diff_ids = image.diff_ids
    return diff_ids[layer_index] if layer_index < len(diff_ids) else ""
