"""``docker save`` (moby ``image/tarexport/save.go``, the dockerd 25+ layout).

The archive is at once a ``docker load`` archive and an OCI image layout::

    blobs/sha256/<hex>     layer tars (re-created byte for byte), image configs, OCI manifests and the
                           legacy v1 layer configs dockerd still writes
    index.json             an OCI index: one manifest descriptor per saved tag (annotated with its name)
    manifest.json          [{"Config", "RepoTags", "Layers", "Parent", "LayerSources"}]
    oci-layout             {"imageLayoutVersion": "1.0.0"}
    repositories           the legacy {name: {tag: top layer diff hex}} map (when anything is tagged)

Names select images as dockerd's ExportImage does: an ID or ID prefix, a digest, a tag, or a bare
name for all its tags. The images' layers are pinned rather than the store locked while the
archive is written to ``<data-root>/tmp/docker-export-*.tar``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import tarfile
import tempfile
from typing import IO, Any

from ..errors import ApiError, not_found
from ..goformat import format_go_time, go_json, parse_go_time, sorted_keys
from .changes import go_container_config
from .imagestore import Image
from .layerstore import Layer, chain_ids
from .reference import DigestReference, Named, ReferenceError, parse_any_reference, tag_name_only
from .service import ImageService

__all__ = ["save"]

_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_V1_ORDER = (
    "id",
    "parent",
    "comment",
    "created",
    "container",
    "container_config",
    "docker_version",
    "author",
    "config",
    "architecture",
    "variant",
    "os",
    "Size",
)


def save(service: ImageService, names: list[str]) -> str:
    """Write a ``docker save`` archive of ``names`` to a temp file; returns its path."""
    with service.layers.pinned() as pin:
        with service.lock:
            targets = _targets(service, names)
            images = {image_id: service.images[image_id] for image_id in targets}
            layers: dict[str, Layer] = {}
            for image in images.values():
                for chain in image.chain:
                    pin(chain)
                    layers[chain] = service.layers.get(chain)
        fd, out_path = tempfile.mkstemp(prefix="docker-export-", suffix=".tar", dir=service.tmp_root)
        try:
            with os.fdopen(fd, "wb") as out:
                _Archive(service, targets).write(images, layers, out)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(out_path)
            raise
    for image_id in targets:
        service.image_event("save", image_id, image_id)
    return out_path


def _targets(service: ImageService, names: list[str]) -> dict[str, list[Named]]:
    """image ID -> the tags it is saved under, in the order the names give them."""
    targets: dict[str, list[Named]] = {}

    def add(image_id: str, ref: Named | None) -> None:
        if image_id not in service.images:
            path = service.images.content_path(image_id)
            raise ApiError(500, f"failed to get digest {image_id}: open {path}: no such file or directory")
        refs = targets.setdefault(image_id, [])
        if ref is not None and not ref.is_canonical:
            tagged = tag_name_only(ref)
            if all(t.string() != tagged.string() for t in refs):
                refs.append(tagged)

    def by_id(name: str) -> None:
        found = service.images.search(name)
        if found is None:
            raise not_found(f"No such image: {name}")
        add(found.id, None)

    for name in names:
        try:
            ref = parse_any_reference(name)
        except ReferenceError as exc:
            raise ApiError(500, str(exc)) from None
        if isinstance(ref, DigestReference):
            add(ref.digest, None)
        elif ref.familiar_name() == "sha256":
            by_id(name)
        elif ref.is_name_only:
            assocs = service.references.by_name(ref)
            for assoc_ref, image_id in assocs:
                add(image_id, assoc_ref)
            if not assocs:
                by_id(name)
        else:
            tagged_id = service.references.get(ref)
            if tagged_id is None:
                raise not_found("reference does not exist")
            add(tagged_id, ref)
    return targets


class _Archive:
    """The blobs and documents of one archive, gathered image by image, then written as a tar."""

    def __init__(self, service: ImageService, targets: dict[str, list[Named]]) -> None:
        self.service = service
        self.targets = targets
        self.blobs: dict[str, tuple[int, str | bytes, int]] = {}  # hex -> (size, path or bytes, mtime)
        self.layer_files: dict[str, str] = {}  # diff ID -> blob hex
        self.manifest: list[dict[str, Any]] = []
        self.repos_legacy: dict[str, dict[str, str]] = {}
        self.index_manifests: list[dict[str, Any]] = []

    def write(self, images: dict[str, Image], layers: dict[str, Layer], out: IO[bytes]) -> None:
        work = tempfile.mkdtemp(prefix="docker-export-", dir=self.service.tmp_root)
        try:
            for image_id, refs in self.targets.items():
                self.add_image(images[image_id], refs, layers, work)
            self.write_tar(out)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    # -- gathering ---------------------------------------------------------------------------------
    def add_image(self, image: Image, refs: list[Named], layers: dict[str, Layer], work: str) -> None:
        if not image.diff_ids:
            raise ApiError(500, "empty export - not implemented")
        created = image.created_time
        mtime = created[0] if created else 0
        for raw_v1 in _v1_configs(image):
            self.blobs[hashlib.sha256(raw_v1).hexdigest()] = (len(raw_v1), raw_v1, mtime)
        layer_descs = []
        layer_paths = []
        sources: dict[str, dict[str, Any]] = {}
        for chain in image.chain:
            layer = layers[chain]
            hex_digest = self.layer_blob(layer, mtime, work)
            size = self.blobs[hex_digest][0]
            layer_descs.append({"mediaType": _OCI_LAYER, "digest": "sha256:" + hex_digest, "size": size})
            layer_paths.append(f"blobs/sha256/{hex_digest}")
            sources[layer.diff_id] = {"mediaType": _OCI_LAYER, "size": size, "digest": "sha256:" + hex_digest}
        config_hex = image.id.removeprefix("sha256:")
        self.blobs[config_hex] = (len(image.raw), image.raw, mtime)
        desc = self.oci_manifest(image, layer_descs)
        repo_tags = []
        for ref in refs:
            top_hex = image.diff_ids[-1].removeprefix("sha256:")
            self.repos_legacy.setdefault(ref.familiar_name(), {})[ref.tag] = top_hex
            repo_tags.append(ref.familiar_string())
            annotations = {
                "io.containerd.image.name": ref.string(),
                "org.opencontainers.image.ref.name": ref.tag,
            }
            self.index_manifests.append({**desc, "annotations": annotations})
        if not self.index_manifests:
            self.index_manifests.append(desc)
        item: dict[str, Any] = {
            "Config": f"blobs/sha256/{config_hex}",
            "RepoTags": repo_tags or None,
            "Layers": layer_paths,
        }
        if image.parent and image.parent in self.targets:
            item["Parent"] = image.parent
        item["LayerSources"] = sources
        self.manifest.append(item)

    def layer_blob(self, layer: Layer, mtime: int, work: str) -> str:
        """The layer's tar as a blob (written once per diff ID under ``work``); its hex digest."""
        if layer.diff_id in self.layer_files:
            return self.layer_files[layer.diff_id]
        path = os.path.join(work, secrets.token_hex(8))
        digest = hashlib.sha256()
        size = 0
        with open(path, "wb") as fh:
            for piece in self.service.layers.tar(layer.chain_id):
                fh.write(piece)
                digest.update(piece)
                size += len(piece)
        hex_digest = digest.hexdigest()
        if "sha256:" + hex_digest != layer.diff_id and self.service.log is not None:
            self.service.log.warning(f"layer digest doesn't match its tar archive digest: {layer.diff_id}")
        self.blobs[hex_digest] = (size, path, mtime)
        self.layer_files[layer.diff_id] = hex_digest
        return hex_digest

    def oci_manifest(self, image: Image, layer_descs: list[dict[str, Any]]) -> dict[str, Any]:
        """The image's OCI manifest as a blob; its descriptor."""
        manifest = go_json(
            {
                "schemaVersion": 2,
                "mediaType": _OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": image.id,
                    "size": len(image.raw),
                },
                "layers": layer_descs,
            }
        )
        manifest_hex = hashlib.sha256(manifest).hexdigest()
        self.blobs[manifest_hex] = (len(manifest), manifest, 0)
        return {"mediaType": _OCI_MANIFEST, "digest": "sha256:" + manifest_hex, "size": len(manifest)}

    # -- writing -----------------------------------------------------------------------------------
    def documents(self) -> dict[str, bytes]:
        files: dict[str, bytes] = {
            "index.json": go_json(
                {
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": self.index_manifests,
                }
            ),
            "manifest.json": go_json(self.manifest) + b"\n",
            "oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
        }
        if self.repos_legacy:
            legacy = {k: sorted_keys(v) for k, v in sorted(self.repos_legacy.items())}
            files["repositories"] = go_json(legacy) + b"\n"
        return files

    def write_tar(self, out: IO[bytes]) -> None:
        files = self.documents()
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for dirname in ("blobs", "blobs/sha256"):
                info = tarfile.TarInfo(dirname)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                tar.addfile(info)
            for hex_digest in sorted(self.blobs):
                size, src, mtime = self.blobs[hex_digest]
                info = tarfile.TarInfo(f"blobs/sha256/{hex_digest}")
                info.size, info.mode, info.mtime = size, 0o644, mtime
                if isinstance(src, bytes):
                    tar.addfile(info, _BytesReader(src))
                else:
                    with open(src, "rb") as fh:
                        tar.addfile(info, fh)
            for name in sorted(files):
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(files[name]), 0o644, 0
                tar.addfile(info, _BytesReader(files[name]))


def _v1_image(config: dict[str, Any]) -> dict[str, Any]:
    """image.V1Image decoded from an image config and marshalled again (Go's field order and omitempty)."""
    out: dict[str, Any] = {}  # "id" and "parent" never survive: CreateID recomputes them
    if config.get("comment"):
        out["comment"] = config["comment"]
    parsed = parse_go_time(config.get("created") or "")
    out["created"] = format_go_time(*parsed) if parsed else None
    if config.get("container"):
        out["container"] = config["container"]
    out["container_config"] = go_container_config(config.get("container_config"))
    for key in ("docker_version", "author"):
        if config.get(key):
            out[key] = config[key]
    if isinstance(config.get("config"), dict):
        out["config"] = go_container_config(config["config"])
    for key in ("architecture", "variant", "os", "Size"):
        if config.get(key):
            out[key] = config[key]
    return out


def _v1_configs(image: Image) -> list[bytes]:
    """The legacy v1 layer configs ``docker save`` still writes as blobs (moby tarexport saveImage)."""
    out: list[bytes] = []
    parent = ""
    chains = chain_ids(image.diff_ids)
    for index, chain in enumerate(chains):
        if index == len(chains) - 1:
            v1 = _v1_image(image.config)
        else:
            v1 = {"created": "1970-01-01T00:00:00Z", "container_config": go_container_config(None)}
        identity = dict(v1, layer_id=chain, **({"parent": parent} if parent else {}))
        v1_id = hashlib.sha256(go_json(sorted_keys(identity))).hexdigest()
        final: dict[str, Any] = {"id": v1_id}
        if parent:
            final["parent"] = parent.removeprefix("sha256:")
        final.update({k: v for k, v in v1.items() if k not in ("id", "parent")})
        if image.os and "os" not in final:
            final["os"] = image.config.get("os") or ""
            if not final["os"]:
                del final["os"]
        out.append(go_json({k: final[k] for k in _V1_ORDER if k in final}))
        parent = "sha256:" + v1_id
    return out


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else self.pos + n
        chunk = self.data[self.pos : end]
        self.pos += len(chunk)
        return chunk
