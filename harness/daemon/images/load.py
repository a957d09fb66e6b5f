"""``docker load`` (moby ``image/tarexport/load.go``): ``docker save`` archives and OCI image layouts.

The archive is unpacked safely into ``<data-root>/tmp/docker-import-*`` (removed afterwards, or at
the next start after a crash). A ``manifest.json`` archive loads each item: its layers bottom-up
(skipping those already stored), each checked against the config's diff IDs, then the config, then
its ``RepoTags``; items naming a ``Parent`` in the same archive get it. An OCI layout
(``index.json``) loads each manifest, nested indexes resolved to this platform, named by its
``io.containerd.image.name`` (or ``org.opencontainers.image.ref.name``) annotation. The layers of
the archive are pinned until their image exists. Output lines are dockerd's; a failure raises
``LoadError`` with dockerd's message.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import IO, Any

from ..errors import ApiError
from ..goformat import go_arch
from .imagestore import Image
from .layerstore import chain_ids
from .reference import Named, ReferenceError, parse_normalized_named, tag_name_only
from .service import ImageService
from .tarsafe import ArchiveError, extract, resolve_in_scope

__all__ = ["LoadError", "load"]

Emit = Callable[[str], None]
Progress = Callable[[str, int], None]  # (diff ID, bytes) as each layer starts loading
Pin = Callable[[str], None]


class LoadError(Exception):
    """``docker load`` failed; the message goes into the JSON stream as dockerd's ``error``."""


def load(service: ImageService, archive: IO[bytes], emit: Emit, progress: Progress | None = None) -> None:
    """Load a ``docker save`` archive or OCI layout; ``emit`` gets each stdout line."""
    tmp = tempfile.mkdtemp(prefix="docker-import-", dir=service.tmp_root)
    try:
        try:
            extract(archive, tmp, whiteouts="keep", allow_devices=False)
        except ArchiveError as exc:
            raise LoadError(str(exc)) from None
        loader = _Loader(service, tmp, emit, progress)
        if os.path.lexists(loader.path("manifest.json")):
            loader.load_manifest()
        elif os.path.lexists(loader.path("index.json")):
            loader.load_oci()
        else:
            raise LoadError(f"open {loader.path('repositories')}: no such file or directory")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class _Loader:
    """One unpacked archive (``tmp``) being loaded into ``service``."""

    def __init__(self, service: ImageService, tmp: str, emit: Emit, progress: Progress | None) -> None:
        self.service = service
        self.tmp = tmp
        self.emit = emit
        self.progress = progress

    # -- reading the archive -----------------------------------------------------------------------
    def path(self, rel: str) -> str:
        return resolve_in_scope(self.tmp, rel)

    def blob(self, digest: str) -> str:
        alg, _, hex_part = str(digest).partition(":")
        return self.path(f"blobs/{alg}/{hex_part}")

    def blob_rel(self, digest: str) -> str:
        return os.path.relpath(self.blob(digest), self.tmp)

    def read_json(self, rel: str) -> Any:
        path = self.path(rel)
        try:
            with open(path, "rb") as fh:
                return json.load(fh)
        except FileNotFoundError:
            raise LoadError(f"open {path}: no such file or directory") from None
        except IsADirectoryError:
            raise LoadError(f"read {path}: is a directory") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LoadError(f"invalid JSON in {rel}: {exc}") from None

    @staticmethod
    def config_checks(raw: bytes) -> list[str]:
        """The config's diff IDs, once it is known to be a linux image config."""
        try:
            config = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise LoadError(f"invalid image config: {exc.msg}") from None
        if not isinstance(config, dict) or not isinstance(config.get("rootfs"), dict):
            raise LoadError("invalid image JSON, no RootFS key")
        os_name = config.get("os") or "linux"
        if os_name != "linux":
            raise LoadError(f"cannot load {os_name} image on linux")
        return [str(d) for d in (config["rootfs"].get("diff_ids") or [])]

    # -- storing -----------------------------------------------------------------------------------
    def load_layers(self, layer_files: list[str], diff_ids: list[str], pin: Pin) -> None:
        """Register the layers bottom-up (those already stored are only pinned)."""
        layers = self.service.layers
        chain = ""
        for index, (rel, diff_id) in enumerate(zip(layer_files, diff_ids, strict=True)):
            want = chain_ids([chain, diff_id])[-1] if chain else diff_id
            with self.service.lock:
                exists = want in layers
                if exists:
                    pin(want)
            if not exists:
                path = self.path(rel)
                try:
                    with open(path, "rb") as fh:
                        if self.progress is not None:
                            self.progress(diff_id, os.fstat(fh.fileno()).st_size)
                        layer = layers.register(fh, chain, pin)
                except (FileNotFoundError, IsADirectoryError):
                    raise LoadError(f"open {path}: no such file or directory") from None
                except ArchiveError as exc:
                    raise LoadError(str(exc)) from None
                if layer.diff_id != diff_id:
                    raise LoadError(
                        f'invalid diffID for layer {index}: expected "{diff_id}", got "{layer.diff_id}"'
                    )
            chain = want

    def create(self, raw: bytes) -> Image:
        try:
            return self.service.images.create(raw)
        except ApiError as exc:
            raise LoadError(exc.message) from None

    def tag(self, ref: Named, image: Image) -> None:
        old = self.service.references.get(ref)
        if old and old != image.id:
            self.emit(
                f"The image {ref.familiar_string()} already exists, renaming the old one with ID {old} "
                "to empty string\n"
            )
        self.service.references.add(ref, image.id)
        self.emit(f"Loaded image: {ref.familiar_string()}\n")

    # -- docker save archives (manifest.json) ------------------------------------------------------
    def load_manifest(self) -> None:
        manifest = self.read_json("manifest.json")
        if manifest is None:
            raise LoadError("invalid manifest, manifest cannot be null (but can be [])")
        if not isinstance(manifest, list):
            raise LoadError("json: cannot unmarshal object into Go value of type []tarexport.manifestItem")
        ids_text = ""
        ref_count = 0  # the last item's, as dockerd counts: its image IDs are printed when it had no tags
        parent_links: list[tuple[Image, str]] = []
        with self.service.layers.pinned() as pin:
            for item in manifest:
                image, ref_count = self.load_item(item, pin)
                ids_text += f"Loaded image ID: {image.id}\n"
                parent_links.append((image, str(item.get("Parent") or "")))
        loaded = {img.id: img for img, _ in parent_links}
        for image, parent_id in parent_links:
            if parent_id and parent_id in loaded and parent_id != image.id:
                self.service.images.set_parent(image, loaded[parent_id])
        if ref_count == 0:
            self.emit(ids_text)

    def load_item(self, item: Any, pin: Pin) -> tuple[Image, int]:
        """One manifest item: (its image, how many tags it got)."""
        if not isinstance(item, dict):
            raise LoadError("json: cannot unmarshal value into Go value of type tarexport.manifestItem")
        raw_path = self.path(str(item.get("Config") or ""))
        try:
            with open(raw_path, "rb") as fh:
                raw = fh.read()
        except (FileNotFoundError, IsADirectoryError):
            raise LoadError(f"open {raw_path}: no such file or directory") from None
        diff_ids = self.config_checks(raw)
        layers = [str(p) for p in (item.get("Layers") or [])]
        if len(layers) != len(diff_ids):
            raise LoadError(
                f"invalid manifest, layers length mismatch: expected {len(layers)}, got {len(diff_ids)}"
            )
        self.load_layers(layers, diff_ids, pin)
        with self.service.lock:
            image = self.create(raw)
            ref_count = 0
            for repo_tag in item.get("RepoTags") or []:
                try:
                    named = parse_normalized_named(str(repo_tag))
                except ReferenceError as exc:
                    raise LoadError(str(exc)) from None
                if not named.is_tagged or named.is_canonical:
                    raise LoadError(f'invalid tag "{repo_tag}"')
                self.tag(named, image)
                ref_count += 1
        self.service.image_event("load", image.id, image.id)
        return image, ref_count

    # -- OCI image layouts (index.json) ------------------------------------------------------------
    def load_oci(self) -> None:
        index = self.read_json("index.json")
        if not isinstance(index, dict):
            raise LoadError("invalid OCI layout: index.json is not an object")
        ids_text = ""
        with self.service.layers.pinned() as pin:
            for desc, name in self.oci_manifests(index.get("manifests") or []):
                ids_text += self.load_oci_image(desc, name, pin)
        if ids_text:
            self.emit(ids_text)

    def oci_manifests(self, descriptors: list[Any], depth: int = 0) -> list[tuple[dict[str, Any], str]]:
        """(manifest descriptor, image name) pairs, nested indexes resolved to this platform."""
        out: list[tuple[dict[str, Any], str]] = []
        for desc in descriptors:
            if not isinstance(desc, dict):
                continue
            annotations = desc.get("annotations") or {}
            name = annotations.get("io.containerd.image.name") or ""
            ref_name = annotations.get("org.opencontainers.image.ref.name") or ""
            if not name and ref_name and ("/" in ref_name or ":" in ref_name):
                name = ref_name
            media = desc.get("mediaType") or ""
            if media.endswith("image.index.v1+json") or media.endswith("manifest.list.v2+json"):
                if depth > 4:
                    raise LoadError("OCI index nested too deeply")
                index = self.read_json(self.blob_rel(desc.get("digest", "")))
                wanted = [m for m in index.get("manifests") or [] if _this_platform(m)]
                for sub, sub_name in self.oci_manifests(wanted[:1], depth + 1):
                    out.append((sub, sub_name or name))
            else:
                out.append((desc, name))
        return out

    def load_oci_image(self, desc: dict[str, Any], name: str, pin: Pin) -> str:
        """One OCI manifest; returns its ``Loaded image ID`` line when it has no name."""
        manifest = self.read_json(self.blob_rel(desc.get("digest", "")))
        config_desc = manifest.get("config") or {}
        try:
            with open(self.blob(config_desc.get("digest", "")), "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            raise LoadError(f"content digest {config_desc.get('digest')}: not found") from None
        diff_ids = self.config_checks(raw)
        layer_descs = [d for d in manifest.get("layers") or [] if isinstance(d, dict)]
        if len(layer_descs) != len(diff_ids):
            raise LoadError(
                f"invalid manifest, layers length mismatch: expected {len(layer_descs)}, got {len(diff_ids)}"
            )
        self.load_layers([self.blob_rel(d.get("digest", "")) for d in layer_descs], diff_ids, pin)
        ids_text = ""
        with self.service.lock:
            image = self.create(raw)
            if name:
                try:
                    named = tag_name_only(parse_normalized_named(name))
                except ReferenceError as exc:
                    raise LoadError(str(exc)) from None
                if named.is_canonical:
                    named = Named(named.domain, named.path, named.tag or "latest")
                self.tag(named, image)
            else:
                ids_text = f"Loaded image ID: {image.id}\n"
        self.service.image_event("load", image.id, image.id)
        return ids_text


def _this_platform(descriptor: Any) -> bool:
    if not isinstance(descriptor, dict):
        return False
    platform = descriptor.get("platform") or {}
    return bool(
        platform.get("os", "linux") == "linux" and platform.get("architecture", go_arch()) == go_arch()
    )
