"""refd's content-addressed image store, laid out on disk as dockerd's graphdriver image store.

Layout under ``<data-root>/image/<driver>/`` (the source of truth; nothing is kept only in memory)::

    repositories.json                       {"Repositories": {"busybox": {"busybox:latest": "sha256:..."}}}
    imagedb/content/sha256/<hex>            the raw image config; <hex> = sha256 of these bytes = image ID
    imagedb/metadata/sha256/<hex>/parent    parent image ID (optional)
    imagedb/metadata/sha256/<hex>/lastUpdated  RFC 3339 time of the last tag (optional)
    layerdb/sha256/<chain hex>/{diff,size,cache-id,parent,tar-split.json.gz}
    layerdb/mounts/<container id>/{mount-id,init-id,parent}   a container's read-write layer
    layerdb/tmp/                            write sets being assembled (removed at start-up)

Layer contents live with the storage driver (``layers.py``): ``<data-root>/overlay2/<cache-id>``
or ``<data-root>/vfs/dir/<cache-id>``.

Crash safety (kill -9 at any point leaves no half-written image): every file is written to a
temporary name and ``os.replace``-d; a layer's metadata directory is assembled under
``layerdb/tmp`` and renamed into place only after its contents are fully unpacked; an image
config is written only after all its layers exist, and tags only after the image. Start-up
drops what a crash can leave behind: ``layerdb/tmp``, driver directories no layer or mount
refers to, configs whose digest does not match or whose layers are missing, tags of missing
images.

Interface for the container runtime (``Daemon.images`` is an ``ImageStore``)::

    image = store.resolve("busybox")            # Image, or ApiError 404 "No such image: busybox:latest"
    image.id, image.config                      # "sha256:...", the image config document (dict: os,
                                                #   architecture, rootfs, history, config={Cmd, Env...})
    image.runtime_config                        # image.config["config"] (Cmd, Entrypoint, Env, User...)
    store.layer_dirs(image)                     # bottom-first diff dirs (overlay2) / [top dir] (vfs)
    store.create_rw_layer(container_id, image)  # <mount-id>-init layer (dockerd's init files) + rw layer
    path = store.mount_rootfs(container_id)     # overlay2: <data-root>/overlay2/<mount-id>/merged
                                                # vfs: <data-root>/vfs/dir/<mount-id> (a full copy)
    store.unmount_rootfs(container_id)
    store.remove_rw_layer(container_id)
    store.graph_driver(container_id, image)     # {"Data": {...}, "Name": "overlay2"} for inspect
    store.in_use_by = lambda image_id: [container ids]      # set by the container code
    store.container_running = lambda container_id: bool    # running containers block rmi -f
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, cast

from ..errors import ApiError, conflict, invalid, not_found
from ..goformat import format_go_time, go_arch, go_json, now_rfc3339nano, parse_go_time, sorted_keys
from .changes import ChangeError, apply_changes, empty_config, go_container_config
from .layers import DRIVERS, Driver, Overlay2Driver, TarSplit, assemble, overlay_supported
from .reference import (
    DigestReference,
    Named,
    ReferenceError,
    parse_any_reference,
    parse_normalized_named,
    tag_name_only,
)
from .tarsafe import ArchiveError, decompress, extract, resolve_in_scope

__all__ = [
    "Image",
    "ImageStore",
    "Layer",
    "LoadError",
    "StorageInitError",
    "chain_ids",
]

_HEX64 = re.compile(r"^[a-f0-9]{64}$")
INIT_PATHS = (
    ("dev/pts", "dir"),
    ("dev/shm", "dir"),
    ("proc", "dir"),
    ("sys", "dir"),
    (".dockerenv", "file"),
    ("etc/resolv.conf", "file"),
    ("etc/hosts", "file"),
    ("etc/hostname", "file"),
    ("dev/console", "file"),
    ("etc/mtab", "/proc/mounts"),
)


class StorageInitError(Exception):
    """The storage driver could not be initialised; ``str()`` is dockerd's start-up message."""


class LoadError(Exception):
    """``docker load`` failed; the message goes into the JSON stream as dockerd's ``error``."""


# -- model ----------------------------------------------------------------------------------------------
def chain_ids(diff_ids: list[str]) -> list[str]:
    """Layer chain IDs: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
    return out


@dataclass
class Layer:
    chain_id: str
    diff_id: str
    parent: str
    cache_id: str
    size: int


@dataclass
class Image:
    """An image: ``id`` (``sha256:`` + digest of ``raw``) and its config document ``config``."""

    id: str
    raw: bytes
    config: dict[str, Any]
    parent: str = ""
    last_updated: str = ""

    @property
    def diff_ids(self) -> list[str]:
        rootfs = self.config.get("rootfs") or {}
        return [str(d) for d in rootfs.get("diff_ids") or []]

    @property
    def top_chain(self) -> str:
        chains = chain_ids(self.diff_ids)
        return chains[-1] if chains else ""

    @property
    def created(self) -> str | None:
        value = self.config.get("created")
        return value if isinstance(value, str) and value else None

    @property
    def created_time(self) -> tuple[int, int, int] | None:
        return parse_go_time(self.created or "")

    @property
    def created_unix(self) -> int:
        parsed = self.created_time
        return parsed[0] if parsed else 0

    @property
    def runtime_config(self) -> dict[str, Any]:
        cfg = self.config.get("config")
        return cfg if isinstance(cfg, dict) else {}

    @property
    def labels(self) -> dict[str, str]:
        labels = self.runtime_config.get("Labels")
        return labels if isinstance(labels, dict) else {}

    @property
    def os(self) -> str:
        return str(self.config.get("os") or "linux")

    @property
    def history(self) -> list[dict[str, Any]]:
        history = self.config.get("history")
        return [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []


@dataclass
class RWLayer:
    container_id: str
    mount_id: str
    init_id: str
    parent: str


@dataclass
class _Repos:
    """repositories.json: familiar name -> familiar reference string -> image ID."""

    repos: dict[str, dict[str, str]] = field(default_factory=dict)


# -- files ------------------------------------------------------------------------------------------------
def _atomic_write(path: str, data: bytes, mode: int = 0o644) -> None:
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-" + os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


class ImageStore:
    """Images, layers, tags and read-write layers of one refd daemon (thread-safe)."""

    def __init__(
        self,
        data_root: str,
        driver: str = "",
        log: Any = None,
        events: Callable[[str, str, dict[str, str]], None] | None = None,
        engine_version: str = "",
    ) -> None:
        self.data_root = data_root
        self.log = log
        self.events = events
        self.engine_version = engine_version
        self.in_use_by: Callable[[str], list[str]] = lambda _image_id: []
        self.container_running: Callable[[str], bool] = lambda _container_id: False
        self.lock = threading.RLock()
        self.driver: Driver = self._select_driver(driver)
        self.root = os.path.join(data_root, "image", self.driver.name)
        self.tmp_root = os.path.join(data_root, "tmp")
        for sub in (
            "imagedb/content/sha256",
            "imagedb/metadata/sha256",
            "layerdb/sha256",
            "layerdb/mounts",
            "layerdb/tmp",
        ):
            os.makedirs(os.path.join(self.root, sub), mode=0o700, exist_ok=True)
        os.makedirs(self.tmp_root, mode=0o700, exist_ok=True)
        self.layers: dict[str, Layer] = {}
        self.images: dict[str, Image] = {}
        self.mounts: dict[str, RWLayer] = {}
        self.repos = _Repos()
        self._pins: dict[str, int] = {}
        self.prune_running = False  # dockerd answers 409 to a second concurrent prune
        self._restore()

    # -- driver selection ------------------------------------------------------------------------
    def _warn(self, text: str) -> None:
        if self.log is not None:
            self.log.warning(text)

    def _info(self, text: str) -> None:
        if self.log is not None:
            self.log.info(text)

    def _select_driver(self, name: str) -> Driver:
        if name:
            self._info(f"[graphdriver] trying configured driver: {name}")
            if name in REMOVED_DRIVERS:  # moby graphdriver checkRemoved
                raise StorageInitError(
                    f"error initializing graphdriver: [graphdriver] ERROR: the {name} storage-driver has "
                    "been deprecated and removed; visit https://docs.docker.com/go/storage-driver/ for more "
                    f"information: {name}"
                )
            if name == "btrfs" and not _on_btrfs(self.data_root):  # built into dockerd, refused off btrfs
                raise StorageInitError(
                    "error initializing graphdriver: prerequisites for driver not satisfied (wrong "
                    "filesystem?): btrfs"
                )
            if name not in DRIVERS:
                if self.log is not None:
                    self.log.error("Failed to GetDriver graph", driver=name, **{"home-dir": self.data_root})
                raise StorageInitError(f"error initializing graphdriver: driver not supported: {name}")
            if name == "overlay2":
                why = overlay_supported(self.data_root)
                if why:
                    if self.log is not None:
                        self.log.error(why)
                    raise StorageInitError("error initializing graphdriver: driver not supported: overlay2")
            return DRIVERS[name](os.path.join(self.data_root, name))
        prior = [n for n in DRIVERS if _non_empty_dir(os.path.join(self.data_root, n))]
        if len(prior) > 1:
            raise StorageInitError(
                f"{self.data_root} contains several valid graphdrivers: {', '.join(prior)}; "
                "cleanup or explicitly choose storage driver (-s <DRIVER>)"
            )
        if prior:
            self._info(f"[graphdriver] using prior storage driver: {prior[0]}")
            if prior[0] == "overlay2":
                why = overlay_supported(self.data_root)
                if why:
                    raise StorageInitError("error initializing graphdriver: driver not supported")
            return DRIVERS[prior[0]](os.path.join(self.data_root, prior[0]))
        why = overlay_supported(self.data_root)
        if not why:
            return Overlay2Driver(os.path.join(self.data_root, "overlay2"))
        self._warn(f"[graphdriver] overlay2 is not supported here ({why}); falling back to vfs")
        return DRIVERS["vfs"](os.path.join(self.data_root, "vfs"))

    @property
    def driver_name(self) -> str:
        return self.driver.name

    def driver_status(self) -> list[list[str]] | None:
        return self.driver.status()

    # -- restore ---------------------------------------------------------------------------------
    def _p(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def _restore(self) -> None:
        tmp = self._p("layerdb", "tmp")
        for name in os.listdir(tmp):
            shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)
        for name in os.listdir(self.tmp_root):
            if name.startswith(("docker-import-", "docker-export-", "refd-upload-", "GetImageBlob")):
                path = os.path.join(self.tmp_root, name)
                shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.unlink(path)
        for hex_id in os.listdir(self._p("layerdb", "sha256")):
            layer_dir = self._p("layerdb", "sha256", hex_id)
            diff, size, cache = (_read(os.path.join(layer_dir, f)) for f in ("diff", "size", "cache-id"))
            if (
                not _HEX64.match(hex_id)
                or diff is None
                or size is None
                or cache is None
                or not self.driver.exists(cache)
            ):
                shutil.rmtree(layer_dir, ignore_errors=True)
                continue
            self.layers["sha256:" + hex_id] = Layer(
                "sha256:" + hex_id,
                diff,
                _read(os.path.join(layer_dir, "parent")) or "",
                cache,
                int(size or 0),
            )
        for cid in os.listdir(self._p("layerdb", "mounts")):
            mdir = self._p("layerdb", "mounts", cid)
            mount_id, init_id = _read(os.path.join(mdir, "mount-id")), _read(os.path.join(mdir, "init-id"))
            if not mount_id or not self.driver.exists(mount_id):
                shutil.rmtree(mdir, ignore_errors=True)
                continue
            self.mounts[cid] = RWLayer(
                cid, mount_id, init_id or "", _read(os.path.join(mdir, "parent")) or ""
            )
        known = {layer.cache_id for layer in self.layers.values()}
        known |= {m.mount_id for m in self.mounts.values()} | {m.init_id for m in self.mounts.values()}
        for cache_id in self.driver.ids():
            if cache_id not in known:
                self.driver.remove(cache_id)
        if isinstance(self.driver, Overlay2Driver):
            links = os.path.join(self.driver.home, "l")
            for link in os.listdir(links):
                if not os.path.exists(os.path.join(links, link)):
                    os.unlink(os.path.join(links, link))
        content = self._p("imagedb", "content", "sha256")
        for hex_id in os.listdir(content):
            path = os.path.join(content, hex_id)
            if not _HEX64.match(hex_id):
                with contextlib.suppress(OSError):
                    os.unlink(path)
                continue
            with open(path, "rb") as fh:
                raw = fh.read()
            if hashlib.sha256(raw).hexdigest() != hex_id:
                self._warn(f"failed to verify image config sha256:{hex_id}: removing it")
                os.unlink(path)
                continue
            try:
                config = json.loads(raw)
            except json.JSONDecodeError:
                continue
            image = Image("sha256:" + hex_id, raw, config)
            if image.top_chain and image.top_chain not in self.layers:
                self._warn(f"Failed to load image sha256:{hex_id}: layer {image.top_chain} does not exist")
                continue
            meta = self._p("imagedb", "metadata", "sha256", hex_id)
            image.parent = _read(os.path.join(meta, "parent")) or ""
            image.last_updated = _read(os.path.join(meta, "lastUpdated")) or ""
            self.images[image.id] = image
        for image in self.images.values():
            if image.parent and image.parent not in self.images:
                image.parent = ""
        try:
            with open(self._p("repositories.json"), "rb") as fh:
                data = json.load(fh)
        except (FileNotFoundError, json.JSONDecodeError):
            data = {}
        for name, refs in (data.get("Repositories") or {}).items():
            kept = {r: i for r, i in (refs or {}).items() if i in self.images}
            if kept:
                self.repos.repos[name] = kept

    # -- reference store -------------------------------------------------------------------------
    def _save_repos(self) -> None:
        doc = {"Repositories": {name: sorted_keys(refs) for name, refs in sorted(self.repos.repos.items())}}
        _atomic_write(self._p("repositories.json"), go_json(doc), 0o600)

    def references(self, image_id: str) -> list[Named]:
        """Tags and digests of an image, sorted as dockerd sorts them (by full reference string)."""
        with self.lock:
            refs = [
                parse_normalized_named(r)
                for repo in self.repos.repos.values()
                for r, i in repo.items()
                if i == image_id
            ]
        return sorted(refs, key=lambda r: r.string())

    def repo_tags(self, image_id: str) -> list[str]:
        return [r.familiar_string() for r in self.references(image_id) if r.is_tagged and not r.is_canonical]

    def repo_digests(self, image_id: str) -> list[str]:
        return [r.familiar_string() for r in self.references(image_id) if r.is_canonical]

    def _ref_get(self, ref: Named) -> str | None:
        ref = Named(ref.domain, ref.path, "", ref.digest) if ref.is_canonical else tag_name_only(ref)
        return self.repos.repos.get(ref.familiar_name(), {}).get(ref.familiar_string())

    def _ref_add(self, ref: Named, image_id: str) -> str | None:
        """AddTag with force: returns the image the tag was moved away from, if any."""
        name, key = ref.familiar_name(), ref.familiar_string()
        repo = self.repos.repos.setdefault(name, {})
        old = repo.get(key)
        repo[key] = image_id
        self._save_repos()
        return old if old != image_id else None

    def _ref_delete(self, ref: Named) -> bool:
        if ref.is_canonical and ref.tag:
            ref = Named(ref.domain, ref.path, "", ref.digest)
        ref = tag_name_only(ref)
        repo = self.repos.repos.get(ref.familiar_name())
        if not repo or ref.familiar_string() not in repo:
            return False
        del repo[ref.familiar_string()]
        if not repo:
            del self.repos.repos[ref.familiar_name()]
        self._save_repos()
        return True

    # -- distribution (pull and push set references as dockerd's reference store does: no tag event) --
    def reference(self, ref: Named) -> str | None:
        """The image ID a tag or digest reference points to (``None``: no such reference)."""
        with self.lock:
            return self._ref_get(ref)

    def set_reference(self, ref: Named, image_id: str) -> None:
        """AddTag/AddDigest with force, without LastTagTime or a tag event (what a pull records)."""
        with self.lock:
            self._ref_add(ref if ref.is_canonical else tag_name_only(ref), image_id)

    def pinned(self) -> contextlib.AbstractContextManager[Callable[[str], None]]:
        """Keep layers registered while pulling alive until their image exists (see ``register_layer``)."""
        return self._pinned()

    # -- lookups -----------------------------------------------------------------------------------
    def count(self) -> int:
        with self.lock:
            return len(self.images)

    def all_images(self) -> list[Image]:
        with self.lock:
            return list(self.images.values())

    def children(self, image_id: str) -> list[str]:
        with self.lock:
            return [i.id for i in self.images.values() if i.parent == image_id]

    def search(self, term: str) -> Image | None:
        """An image by ID or unique ID prefix (``f0fb``, ``sha256:f0fb``)."""
        if not term:
            return None
        with self.lock:
            if ":" in term:
                matches = [i for i in self.images if i.startswith(term)]
            else:
                matches = [i for i in self.images if i[7:].startswith(term)]
            return self.images[matches[0]] if len(matches) == 1 else None

    def resolve(self, ref_or_id: str) -> Image:
        """dockerd's GetImage: a reference, an ID or an ID prefix; ApiError 400/404 as dockerd."""
        try:
            ref = parse_any_reference(ref_or_id)
        except ReferenceError as exc:
            raise invalid(str(exc)) from None
        with self.lock:
            if isinstance(ref, DigestReference):
                image = self.images.get(ref.digest)
                if image is None:
                    raise not_found(f"No such image: {ref.digest}")
                return image
            image_id = self._ref_get(ref)
            if image_id and image_id in self.images:
                return self.images[image_id]
            found = self.search(ref_or_id)
            if found is not None:
                return found
        raise not_found(f"No such image: {tag_name_only(ref).familiar_string()}")

    def layer(self, chain_id: str) -> Layer:
        with self.lock:
            return self.layers[chain_id]

    def size(self, image: Image) -> int:
        """The image size: the sum of its layers' sizes."""
        with self.lock:
            return sum(self.layers[c].size for c in chain_ids(image.diff_ids) if c in self.layers)

    def image_metadata(self, image: Image) -> dict[str, str] | None:
        """GraphDriver.Data of an image (its top layer)."""
        top = image.top_chain
        if not top:
            return None
        return self.driver.metadata(self.layers[top].cache_id)

    def layer_dirs(self, image: Image) -> list[str]:
        """Bottom-first extracted layer dirs (overlay2 ``diff`` dirs), or the top vfs dir."""
        with self.lock:
            layers = [self.layers[c] for c in chain_ids(image.diff_ids)]
        if not layers:
            return []
        if isinstance(self.driver, Overlay2Driver):
            return [self.driver.root(layer.cache_id) for layer in layers]
        return [self.driver.root(layers[-1].cache_id)]

    # -- events --------------------------------------------------------------------------------------
    def _event(self, action: str, image_id: str, name: str) -> None:
        if self.events is None:
            return
        attrs: dict[str, str] = {}
        image = self.images.get(image_id)
        if image is not None:
            attrs.update({str(k): str(v) for k, v in image.labels.items()})
        if name:
            attrs["name"] = name
        self.events(action, image_id, attrs)

    def event(self, action: str, actor: str, attrs: dict[str, str]) -> None:
        if self.events is not None:
            self.events(action, actor, attrs)

    # -- layers ---------------------------------------------------------------------------------------
    def register_layer(
        self, stream: IO[bytes], parent: str = "", pin: Callable[[str], None] | None = None
    ) -> Layer:
        """Unpack a (possibly compressed) layer tar on top of ``parent`` (a chain ID).

        The caller keeps ``parent`` alive; ``pin`` (from ``_pinned``) keeps the new layer alive
        until an image refers to it.
        """
        parent_layer = self.layers.get(parent) if parent else None
        cache_id = secrets.token_hex(32)
        self.driver.create(cache_id, parent_layer.cache_id if parent_layer else None)
        try:
            split = TarSplit(decompress(stream))
            size = self.driver.apply(cache_id, cast(IO[bytes], split), on_member=split.member)
            split.finish()
        except BaseException:
            self.driver.remove(cache_id)
            raise
        diff_id = split.digest
        chain = chain_ids([parent, diff_id])[-1] if parent else diff_id
        with self.lock:
            existing = self.layers.get(chain)
            if existing is not None:
                self.driver.remove(cache_id)
                if pin is not None:
                    pin(chain)
                return existing
            write_set = self._p("layerdb", "tmp", "write-set-" + secrets.token_hex(8))
            os.mkdir(write_set, 0o700)
            files = {
                "diff": diff_id.encode(),
                "size": str(size).encode(),
                "cache-id": cache_id.encode(),
                "tar-split.json.gz": split.dump(),
            }
            if parent:
                files["parent"] = parent.encode()
            for fname, data in files.items():
                _atomic_write(os.path.join(write_set, fname), data)
            os.rename(write_set, self._p("layerdb", "sha256", chain.removeprefix("sha256:")))
            layer = Layer(chain, diff_id, parent, cache_id, size)
            self.layers[chain] = layer
            if pin is not None:
                pin(chain)
            return layer

    def layer_tar(self, chain_id: str) -> Iterator[bytes]:
        """The layer's tar, re-created byte for byte from tar-split."""
        layer = self.layers[chain_id]
        with open(
            self._p("layerdb", "sha256", chain_id.removeprefix("sha256:"), "tar-split.json.gz"), "rb"
        ) as fh:
            split = fh.read()
        return assemble(split, self.driver.root(layer.cache_id))

    @contextlib.contextmanager
    def _pinned(self) -> Iterator[Callable[[str], None]]:
        """Keep layers registered during a load/import alive until their image exists."""
        held: list[str] = []

        def pin(chain: str) -> None:
            with self.lock:
                self._pins[chain] = self._pins.get(chain, 0) + 1
            held.append(chain)

        try:
            yield pin
        finally:
            with self.lock:
                for chain in held:
                    self._pins[chain] -= 1
                    if not self._pins[chain]:
                        del self._pins[chain]
                for chain in reversed(held):
                    self._release(chain)

    def _layer_referenced(self, chain: str) -> bool:
        if chain in self._pins:
            return True
        if any(i.top_chain == chain for i in self.images.values()):
            return True
        if any(layer.parent == chain for layer in self.layers.values()):
            return True
        return any(m.parent == chain for m in self.mounts.values())

    def _release(self, chain: str) -> list[Layer]:
        """Delete ``chain`` and its ancestors while nothing refers to them; top-first list."""
        removed: list[Layer] = []
        while chain and chain in self.layers and not self._layer_referenced(chain):
            layer = self.layers.pop(chain)
            src = self._p("layerdb", "sha256", chain.removeprefix("sha256:"))
            doomed = self._p("layerdb", "tmp", "deleted-" + secrets.token_hex(8))
            with contextlib.suppress(FileNotFoundError):
                os.rename(src, doomed)
            self.driver.remove(layer.cache_id)
            shutil.rmtree(doomed, ignore_errors=True)
            removed.append(layer)
            chain = layer.parent
        return removed

    # -- images ---------------------------------------------------------------------------------------
    def create_image(self, raw: bytes) -> Image:
        """Store an image config whose layers are already registered; returns the (new or existing) image."""
        try:
            config = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise invalid(f"invalid character in image config: {exc.msg}") from None
        if not isinstance(config, dict) or not isinstance(config.get("rootfs"), dict):
            raise invalid("invalid image JSON, no RootFS key")
        hex_id = hashlib.sha256(raw).hexdigest()
        image = Image("sha256:" + hex_id, raw, config)
        non_empty = sum(1 for h in image.history if not h.get("empty_layer"))
        if non_empty > len(image.diff_ids):
            raise invalid("too many non-empty layers in History section")
        with self.lock:
            if image.id in self.images:
                return self.images[image.id]
            if image.top_chain and image.top_chain not in self.layers:
                raise invalid(f"failed to get layer {image.top_chain}: layer does not exist")
            os.makedirs(self._p("imagedb", "metadata", "sha256", hex_id), mode=0o700, exist_ok=True)
            _atomic_write(self._p("imagedb", "content", "sha256", hex_id), raw, 0o600)
            self.images[image.id] = image
            return image

    def _set_meta(self, image: Image, key: str, value: str) -> None:
        meta = self._p("imagedb", "metadata", "sha256", image.id.removeprefix("sha256:"))
        os.makedirs(meta, mode=0o700, exist_ok=True)
        _atomic_write(os.path.join(meta, key), value.encode(), 0o600)

    def set_parent(self, image: Image, parent: Image) -> None:
        with self.lock:
            self._set_meta(image, "parent", parent.id)
            image.parent = parent.id

    def set_built_locally(self, image: Image) -> None:
        """SetBuiltLocally: only such images answer the builder's cache probes."""
        with self.lock:
            meta = self._p("imagedb", "metadata", "sha256", image.id.removeprefix("sha256:"))
            os.makedirs(meta, mode=0o700, exist_ok=True)
            _atomic_write(os.path.join(meta, "builtLocally"), b"\x01", 0o600)

    def is_built_locally(self, image_id: str) -> bool:
        path = self._p("imagedb", "metadata", "sha256", image_id.removeprefix("sha256:"), "builtLocally")
        try:
            with open(path, "rb") as fh:
                return bool(fh.read())
        except OSError:
            return False

    def _delete_image(self, image: Image) -> list[Layer]:
        hex_id = image.id.removeprefix("sha256:")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._p("imagedb", "content", "sha256", hex_id))
        shutil.rmtree(self._p("imagedb", "metadata", "sha256", hex_id), ignore_errors=True)
        del self.images[image.id]
        for child in self.images.values():
            if child.parent == image.id:
                child.parent = ""
        return self._release(image.top_chain)

    def tag(self, image: Image, ref: Named) -> None:
        """TagImage: add (or move) a tag and set LastTagTime."""
        if ref.is_canonical:
            raise invalid("refusing to create a tag with a digest reference")
        ref = tag_name_only(ref)
        if ref.familiar_name() == "sha256":
            raise invalid("refusing to create an ambiguous tag using digest algorithm as name")
        with self.lock:
            self._ref_add(ref, image.id)
            image.last_updated = now_rfc3339nano()
            self._set_meta(image, "lastUpdated", image.last_updated)
        self._event("tag", image.id, ref.familiar_string())

    # -- delete (moby daemon/images/image_delete.go) --------------------------------------------
    def _users(self, image_id: str) -> list[str]:
        return list(self.in_use_by(image_id))

    def _conflict(
        self, image: Image, hard_only: bool, skip_active_refs: bool
    ) -> tuple[str, bool, bool] | None:
        """(message, hard, used) of the first delete conflict, dockerd's checkImageDeleteConflict."""
        if self.children(image.id):
            return "image has dependent child images", True, False
        users = self._users(image.id)
        running = [c for c in users if self.container_running(c)]
        if running:
            return f"image is being used by running container {running[0][:12]}", True, True
        if hard_only:
            return None
        if not skip_active_refs and self.references(image.id):
            return "image is referenced in multiple repositories", False, False
        stopped = [c for c in users if not self.container_running(c)]
        if stopped:
            return f"image is being used by stopped container {stopped[0][:12]}", False, True
        return None

    @staticmethod
    def _conflict_error(image: Image, conflict_info: tuple[str, bool, bool]) -> ApiError:
        message, hard, _ = conflict_info
        force = "cannot be forced" if hard else "must be forced"
        return conflict(f"conflict: unable to delete {image.id[7:19]} ({force}) - {message}")

    @staticmethod
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

    def delete(self, ref_or_id: str, force: bool = False, prune: bool = True) -> list[dict[str, str]]:
        """ImageDelete: ``[{"Untagged": ...}, {"Deleted": ...}]`` or ApiError (404, 409...)."""
        with self.lock:
            image = self.resolve(ref_or_id)
            records: list[dict[str, str]] = []
            refs = self.references(image.id)
            removed_repo_ref = False
            if not _is_id_prefix(image.id, ref_or_id):
                if not force and self._single_reference(refs):
                    users = self._users(image.id)
                    if users:
                        raise conflict(
                            f'conflict: unable to remove repository reference "{ref_or_id}" (must force) '
                            f"- container {users[0][:12]} is using its referenced image {image.id[7:19]}"
                        )
                try:
                    parsed = tag_name_only(parse_normalized_named(ref_or_id))
                except ReferenceError as exc:
                    raise ApiError(500, str(exc)) from None
                self._ref_delete(parsed)
                records.append({"Untagged": parsed.familiar_string()})
                self._event("untag", image.id, image.id)
                refs = self.references(image.id)
                same_repo_tag = any(not r.is_canonical and r.name == parsed.name for r in refs)
                if not parsed.is_canonical and not same_repo_tag:
                    remaining = []
                    for r in refs:
                        if r.is_canonical and r.name == parsed.name:
                            self._ref_delete(r)
                            records.append({"Untagged": r.familiar_string()})
                        else:
                            remaining.append(r)
                    refs = remaining
                if refs:
                    return records
                removed_repo_ref = True
            elif self._single_reference(refs):
                found = self._conflict(image, hard_only=force, skip_active_refs=True)
                if found is not None:
                    raise self._conflict_error(image, found)
                for r in refs:
                    self._ref_delete(r)
                    self._event("untag", image.id, image.id)
                    records.append({"Untagged": tag_name_only(r).familiar_string()})
            self._delete_helper(image, records, force, prune, removed_repo_ref)
            return records

    def _dangling(self, image: Image) -> bool:
        return not self.references(image.id) and not self.children(image.id)

    def _delete_helper(
        self, image: Image, records: list[dict[str, str]], force: bool, prune: bool, quiet: bool
    ) -> None:
        found = self._conflict(image, hard_only=force, skip_active_refs=False)
        if found is not None:
            if quiet and (not self._dangling(image) or found[2]):
                return
            raise self._conflict_error(image, found)
        parent = self.images.get(image.parent) if image.parent else None
        for r in self.references(image.id):
            self._ref_delete(r)
            self._event("untag", image.id, image.id)
            records.append({"Untagged": tag_name_only(r).familiar_string()})
        removed = self._delete_image(image)
        self._event("delete", image.id, image.id)
        records.append({"Deleted": image.id})
        records.extend({"Deleted": layer.chain_id} for layer in removed)
        if prune and parent is not None:
            self._delete_helper(parent, records, False, True, True)

    def prune(self, dangling_only: bool, keep: Callable[[Image], bool]) -> tuple[list[dict[str, str]], int]:
        """ImagesPrune: delete unused images (dangling ones only by default); (records, bytes reclaimed)."""
        with self.lock:
            sizes = {c: layer.size for c, layer in self.layers.items()}
            candidates = [i for i in self.images.values() if not dangling_only or not self.children(i.id)]
            deleted: list[dict[str, str]] = []
            for image in candidates:
                if image.id not in self.images:
                    continue
                if not self.references(image.id) and self.children(image.id):
                    continue
                if keep(image):
                    continue
                refs = self.references(image.id)
                try:
                    if refs:
                        if dangling_only and any(r.is_tagged and not r.is_canonical for r in refs):
                            continue
                        for r in refs:
                            with contextlib.suppress(ApiError):
                                deleted += self.delete(r.string(), force=False, prune=True)
                    else:
                        deleted += self.delete(image.id[7:], force=False, prune=True)
                except ApiError as exc:
                    if exc.status != 409 and self.log is not None:
                        self.log.warning(f"failed to prune image {image.id}: {exc.message}")
            reclaimed = sum(sizes.get(d["Deleted"], 0) for d in deleted if "Deleted" in d)
        return deleted, reclaimed

    # -- import -----------------------------------------------------------------------------------
    def import_image(
        self,
        stream: IO[bytes],
        ref: Named | None,
        changes: list[str],
        message: str,
        arch: str = "",
        variant: str = "",
    ) -> Image:
        """ImportImage: one layer from ``stream``, config from ``changes``; tagged ``ref`` if given."""
        try:
            config = apply_changes(empty_config(), changes) if changes else empty_config()
        except ChangeError as exc:
            raise invalid(str(exc)) from None
        with self._pinned() as pin:
            try:
                layer = self.register_layer(stream, pin=pin)
            except ArchiveError as exc:
                raise ApiError(500, str(exc)) from None
            return self._import_config(layer, ref, config, message, arch, variant)

    def _import_config(
        self, layer: Layer, ref: Named | None, config: dict[str, Any], message: str, arch: str, variant: str
    ) -> Image:
        created = now_rfc3339nano()
        doc: dict[str, Any] = {
            "architecture": arch or go_arch(),
            "comment": message,
            "config": config,
            "container_config": empty_config(),
            "created": created,
        }
        if self.engine_version:
            doc["docker_version"] = self.engine_version
        doc["history"] = [{"created": created, "comment": message}]
        doc["os"] = "linux"
        doc["rootfs"] = {"type": "layers", "diff_ids": [layer.diff_id]}
        if variant:
            doc["variant"] = variant
        image = self.create_image(go_json(sorted_keys(doc)))
        if ref is not None:
            self.tag(image, ref)
        self._event("import", image.id, image.id)
        return image

    # -- load (moby image/tarexport/load.go, plus OCI layouts) -----------------------------------
    def load(
        self,
        archive: IO[bytes],
        emit: Callable[[str], None],
        progress: Callable[[str, int], None] | None = None,
    ) -> None:
        """Load a ``docker save`` archive; ``emit`` gets each stdout line, errors raise LoadError."""
        tmp = tempfile.mkdtemp(prefix="docker-import-", dir=self.tmp_root)
        try:
            try:
                extract(archive, tmp, whiteouts="keep", allow_devices=False)
            except ArchiveError as exc:
                raise LoadError(str(exc)) from None
            if os.path.lexists(resolve_in_scope(tmp, "manifest.json")):
                self._load_manifest(tmp, emit, progress)
            elif os.path.lexists(resolve_in_scope(tmp, "index.json")):
                self._load_oci(tmp, emit, progress)
            else:
                raise LoadError(f"open {resolve_in_scope(tmp, 'repositories')}: no such file or directory")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _read_json(self, tmp: str, rel: str) -> Any:
        path = resolve_in_scope(tmp, rel)
        try:
            with open(path, "rb") as fh:
                return json.load(fh)
        except FileNotFoundError:
            raise LoadError(f"open {path}: no such file or directory") from None
        except IsADirectoryError:
            raise LoadError(f"read {path}: is a directory") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LoadError(f"invalid JSON in {rel}: {exc}") from None

    def _load_layers(
        self,
        tmp: str,
        layer_files: list[str],
        diff_ids: list[str],
        progress: Callable[[str, int], None] | None,
        pin: Callable[[str], None],
    ) -> None:
        chain = ""
        for index, (rel, diff_id) in enumerate(zip(layer_files, diff_ids, strict=True)):
            want = chain_ids([chain, diff_id])[-1] if chain else diff_id
            with self.lock:
                exists = want in self.layers
                if exists:
                    pin(want)
            if not exists:
                path = resolve_in_scope(tmp, rel)
                try:
                    with open(path, "rb") as fh:
                        if progress is not None:
                            progress(diff_id, os.fstat(fh.fileno()).st_size)
                        layer = self.register_layer(fh, chain, pin)
                except (FileNotFoundError, IsADirectoryError):
                    raise LoadError(f"open {path}: no such file or directory") from None
                except ArchiveError as exc:
                    raise LoadError(str(exc)) from None
                if layer.diff_id != diff_id:
                    raise LoadError(
                        f'invalid diffID for layer {index}: expected "{diff_id}", got "{layer.diff_id}"'
                    )
            chain = want

    def _config_checks(self, raw: bytes) -> dict[str, Any]:
        try:
            config = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise LoadError(f"invalid image config: {exc.msg}") from None
        if not isinstance(config, dict) or not isinstance(config.get("rootfs"), dict):
            raise LoadError("invalid image JSON, no RootFS key")
        os_name = config.get("os") or "linux"
        if os_name != "linux":
            raise LoadError(f"cannot load {os_name} image on linux")
        return config

    def _tag_loaded(self, ref: Named, image: Image, emit: Callable[[str], None]) -> None:
        old = self._ref_get(ref)
        if old and old != image.id:
            emit(
                f"The image {ref.familiar_string()} already exists, renaming the old one with ID {old} "
                "to empty string\n"
            )
        self._ref_add(ref, image.id)

    def _load_manifest(
        self, tmp: str, emit: Callable[[str], None], progress: Callable[[str, int], None] | None
    ) -> None:
        manifest = self._read_json(tmp, "manifest.json")
        if manifest is None:
            raise LoadError("invalid manifest, manifest cannot be null (but can be [])")
        if not isinstance(manifest, list):
            raise LoadError("json: cannot unmarshal object into Go value of type []tarexport.manifestItem")
        ids_text = ""
        ref_count = 0
        parent_links: list[tuple[Image, str]] = []
        with self._pinned() as pin:
            for item in manifest:
                ids_text, ref_count = self._load_item(tmp, item, emit, progress, pin, ids_text, parent_links)
        loaded = {img.id for img, _ in parent_links}
        for image, parent_id in parent_links:
            if parent_id and parent_id in loaded and parent_id != image.id:
                self.set_parent(image, self.images[parent_id])
        if ref_count == 0:
            emit(ids_text)

    def _load_item(
        self,
        tmp: str,
        item: Any,
        emit: Callable[[str], None],
        progress: Callable[[str, int], None] | None,
        pin: Callable[[str], None],
        ids_text: str,
        parent_links: list[tuple[Image, str]],
    ) -> tuple[str, int]:
        if not isinstance(item, dict):
            raise LoadError("json: cannot unmarshal value into Go value of type tarexport.manifestItem")
        raw_path = resolve_in_scope(tmp, str(item.get("Config") or ""))
        try:
            with open(raw_path, "rb") as fh:
                raw = fh.read()
        except (FileNotFoundError, IsADirectoryError):
            raise LoadError(f"open {raw_path}: no such file or directory") from None
        config = self._config_checks(raw)
        diff_ids = [str(d) for d in (config["rootfs"].get("diff_ids") or [])]
        layers = [str(p) for p in (item.get("Layers") or [])]
        if len(layers) != len(diff_ids):
            raise LoadError(
                f"invalid manifest, layers length mismatch: expected {len(layers)}, got {len(diff_ids)}"
            )
        self._load_layers(tmp, layers, diff_ids, progress, pin)
        with self.lock:
            try:
                image = self.create_image(raw)
            except ApiError as exc:
                raise LoadError(exc.message) from None
            ids_text += f"Loaded image ID: {image.id}\n"
            ref_count = 0
            for repo_tag in item.get("RepoTags") or []:
                try:
                    named = parse_normalized_named(str(repo_tag))
                except ReferenceError as exc:
                    raise LoadError(str(exc)) from None
                if not named.is_tagged or named.is_canonical:
                    raise LoadError(f'invalid tag "{repo_tag}"')
                self._tag_loaded(named, image, emit)
                emit(f"Loaded image: {named.familiar_string()}\n")
                ref_count += 1
        parent_links.append((image, str(item.get("Parent") or "")))
        self._event("load", image.id, image.id)
        return ids_text, ref_count

    def _blob(self, tmp: str, digest: str) -> str:
        alg, _, hex_part = str(digest).partition(":")
        return resolve_in_scope(tmp, f"blobs/{alg}/{hex_part}")

    def _oci_manifests(
        self, tmp: str, descriptors: list[Any], depth: int = 0
    ) -> list[tuple[dict[str, Any], str]]:
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
                index = self._read_json(tmp, os.path.relpath(self._blob(tmp, desc.get("digest", "")), tmp))
                wanted = [
                    m
                    for m in index.get("manifests") or []
                    if isinstance(m, dict)
                    and (m.get("platform") or {}).get("os", "linux") == "linux"
                    and (m.get("platform") or {}).get("architecture", go_arch()) == go_arch()
                ]
                for sub, sub_name in self._oci_manifests(tmp, wanted[:1], depth + 1):
                    out.append((sub, sub_name or name))
            else:
                out.append((desc, name))
        return out

    def _load_oci(
        self, tmp: str, emit: Callable[[str], None], progress: Callable[[str, int], None] | None
    ) -> None:
        index = self._read_json(tmp, "index.json")
        if not isinstance(index, dict):
            raise LoadError("invalid OCI layout: index.json is not an object")
        ids_text = ""
        with self._pinned() as pin:
            for desc, name in self._oci_manifests(tmp, index.get("manifests") or []):
                ids_text += self._load_oci_image(tmp, desc, name, emit, progress, pin)
        if ids_text:
            emit(ids_text)

    def _load_oci_image(
        self,
        tmp: str,
        desc: dict[str, Any],
        name: str,
        emit: Callable[[str], None],
        progress: Callable[[str, int], None] | None,
        pin: Callable[[str], None],
    ) -> str:
        ids_text = ""
        manifest = self._read_json(tmp, os.path.relpath(self._blob(tmp, desc.get("digest", "")), tmp))
        config_desc = manifest.get("config") or {}
        try:
            with open(self._blob(tmp, config_desc.get("digest", "")), "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            raise LoadError(f"content digest {config_desc.get('digest')}: not found") from None
        config = self._config_checks(raw)
        diff_ids = [str(d) for d in (config["rootfs"].get("diff_ids") or [])]
        layer_descs = [d for d in manifest.get("layers") or [] if isinstance(d, dict)]
        if len(layer_descs) != len(diff_ids):
            raise LoadError(
                f"invalid manifest, layers length mismatch: expected {len(layer_descs)}, got {len(diff_ids)}"
            )
        files = [os.path.relpath(self._blob(tmp, d.get("digest", "")), tmp) for d in layer_descs]
        self._load_layers(tmp, files, diff_ids, progress, pin)
        with self.lock:
            try:
                image = self.create_image(raw)
            except ApiError as exc:
                raise LoadError(exc.message) from None
            if name:
                try:
                    named = tag_name_only(parse_normalized_named(name))
                except ReferenceError as exc:
                    raise LoadError(str(exc)) from None
                if named.is_canonical:
                    named = Named(named.domain, named.path, named.tag or "latest")
                self._tag_loaded(named, image, emit)
                emit(f"Loaded image: {named.familiar_string()}\n")
            else:
                ids_text += f"Loaded image ID: {image.id}\n"
        self._event("load", image.id, image.id)
        return ids_text

    # -- save (moby image/tarexport/save.go, dockerd 25+ layout) -----------------------------------
    def _save_targets(self, names: list[str]) -> dict[str, list[Named]]:
        targets: dict[str, list[Named]] = {}

        def add(image_id: str, ref: Named | None) -> None:
            if image_id not in self.images:
                path = self._p("imagedb", "content", "sha256", image_id.removeprefix("sha256:"))
                raise ApiError(
                    500, f"failed to get digest {image_id}: open {path}: no such file or directory"
                )
            refs = targets.setdefault(image_id, [])
            if ref is not None and not ref.is_canonical:
                tagged = tag_name_only(ref)
                if all(t.string() != tagged.string() for t in refs):
                    refs.append(tagged)

        for name in names:
            try:
                ref = parse_any_reference(name)
            except ReferenceError as exc:
                raise ApiError(500, str(exc)) from None
            if isinstance(ref, DigestReference):
                add(ref.digest, None)
                continue
            if ref.familiar_name() == "sha256":
                found = self.search(name)
                if found is None:
                    raise not_found(f"No such image: {name}")
                add(found.id, None)
                continue
            if ref.is_name_only:
                assocs = sorted(
                    (
                        (parse_normalized_named(r), i)
                        for r, i in self.repos.repos.get(ref.familiar_name(), {}).items()
                    ),
                    key=lambda a: a[0].string(),
                )
                for assoc_ref, image_id in assocs:
                    add(image_id, assoc_ref)
                if not assocs:
                    found = self.search(name)
                    if found is None:
                        raise not_found(f"No such image: {name}")
                    add(found.id, None)
                continue
            tagged_id = self._ref_get(ref)
            if tagged_id is None:
                raise not_found("reference does not exist")
            add(tagged_id, ref)
        return targets

    def save(self, names: list[str]) -> str:
        """Write a ``docker save`` archive (manifest.json + OCI layout) to a temp file; returns its path.

        The images' layers are pinned rather than the store locked while the archive is written.
        """
        with self._pinned() as pin:
            with self.lock:
                targets = self._save_targets(names)
                images = {image_id: self.images[image_id] for image_id in targets}
                for image in images.values():
                    for chain in chain_ids(image.diff_ids):
                        pin(chain)
                layers = {c: self.layers[c] for i in images.values() for c in chain_ids(i.diff_ids)}
            fd, out_path = tempfile.mkstemp(prefix="docker-export-", suffix=".tar", dir=self.tmp_root)
            try:
                with os.fdopen(fd, "wb") as out:
                    self._write_save(targets, images, layers, out)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(out_path)
                raise
        for image_id in targets:
            self._event("save", image_id, image_id)
        return out_path

    def _write_save(
        self,
        targets: dict[str, list[Named]],
        images: dict[str, Image],
        layers: dict[str, Layer],
        out: IO[bytes],
    ) -> None:
        blobs: dict[str, tuple[int, str | bytes, int]] = {}  # hex -> (size, path or bytes, mtime)
        layer_files: dict[str, str] = {}
        manifest: list[dict[str, Any]] = []
        repos_legacy: dict[str, dict[str, str]] = {}
        index_manifests: list[dict[str, Any]] = []
        work = tempfile.mkdtemp(prefix="docker-export-", dir=self.tmp_root)
        try:
            for image_id, refs in targets.items():
                image = images[image_id]
                if not image.diff_ids:
                    raise ApiError(500, "empty export - not implemented")
                created = image.created_time
                mtime = created[0] if created else 0
                layer_descs = []
                layer_paths = []
                sources: dict[str, dict[str, Any]] = {}
                for raw_v1 in _v1_configs(image):
                    blobs[hashlib.sha256(raw_v1).hexdigest()] = (len(raw_v1), raw_v1, mtime)
                for chain in chain_ids(image.diff_ids):
                    layer = layers[chain]
                    if layer.diff_id not in layer_files:
                        path = os.path.join(work, secrets.token_hex(8))
                        digest = hashlib.sha256()
                        size = 0
                        with open(path, "wb") as fh:
                            for piece in self.layer_tar(chain):
                                fh.write(piece)
                                digest.update(piece)
                                size += len(piece)
                        hex_digest = digest.hexdigest()
                        if "sha256:" + hex_digest != layer.diff_id and self.log is not None:
                            self.log.warning(
                                f"layer digest doesn't match its tar archive digest: {layer.diff_id}"
                            )
                        blobs[hex_digest] = (size, path, mtime)
                        layer_files[layer.diff_id] = hex_digest
                    hex_digest = layer_files[layer.diff_id]
                    layer_descs.append(
                        {
                            "mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": "sha256:" + hex_digest,
                            "size": blobs[hex_digest][0],
                        }
                    )
                    layer_paths.append(f"blobs/sha256/{hex_digest}")
                    sources[layer.diff_id] = {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "size": blobs[hex_digest][0],
                        "digest": "sha256:" + hex_digest,
                    }
                config_hex = image.id.removeprefix("sha256:")
                blobs[config_hex] = (len(image.raw), image.raw, mtime)
                oci_manifest = go_json(
                    {
                        "schemaVersion": 2,
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "config": {
                            "mediaType": "application/vnd.oci.image.config.v1+json",
                            "digest": image.id,
                            "size": len(image.raw),
                        },
                        "layers": layer_descs,
                    }
                )
                manifest_hex = hashlib.sha256(oci_manifest).hexdigest()
                blobs[manifest_hex] = (len(oci_manifest), oci_manifest, 0)
                desc = {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": "sha256:" + manifest_hex,
                    "size": len(oci_manifest),
                }
                repo_tags = []
                for ref in refs:
                    repos_legacy.setdefault(ref.familiar_name(), {})[ref.tag] = image.diff_ids[
                        -1
                    ].removeprefix("sha256:")
                    repo_tags.append(ref.familiar_string())
                    index_manifests.append(
                        {
                            **desc,
                            "annotations": {
                                "io.containerd.image.name": ref.string(),
                                "org.opencontainers.image.ref.name": ref.tag,
                            },
                        }
                    )
                if not index_manifests:
                    index_manifests.append(desc)
                item: dict[str, Any] = {
                    "Config": f"blobs/sha256/{config_hex}",
                    "RepoTags": repo_tags or None,
                    "Layers": layer_paths,
                }
                if image.parent and image.parent in targets:
                    item["Parent"] = image.parent
                item["LayerSources"] = sources
                manifest.append(item)
            files: dict[str, bytes] = {
                "index.json": go_json(
                    {
                        "schemaVersion": 2,
                        "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": index_manifests,
                    }
                ),
                "manifest.json": go_json(manifest) + b"\n",
                "oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
            }
            if repos_legacy:
                files["repositories"] = (
                    go_json({k: sorted_keys(v) for k, v in sorted(repos_legacy.items())}) + b"\n"
                )
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for dirname in ("blobs/", "blobs/sha256/"):
                    info = tarfile.TarInfo(dirname.rstrip("/"))
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                    tar.addfile(info)
                for hex_digest in sorted(blobs):
                    size, src, mtime = blobs[hex_digest]
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
        finally:
            shutil.rmtree(work, ignore_errors=True)

    # -- read-write layers (containers) ----------------------------------------------------------
    def create_rw_layer(self, container_id: str, image: Image) -> RWLayer:
        """A container's init layer (``<mount-id>-init``) and read-write layer on top of ``image``."""
        with self.lock:
            if container_id in self.mounts:
                return self.mounts[container_id]
            parent = image.top_chain
            parent_cache = self.layers[parent].cache_id if parent else None
            mount_id = secrets.token_hex(32)
            init_id = mount_id + "-init"
            self.driver.create(init_id, parent_cache)
            try:
                root = self.driver.get(init_id)
                try:
                    _setup_init_layer(root)
                finally:
                    self.driver.put(init_id)
                self.driver.create(mount_id, init_id)
            except BaseException:
                self.driver.remove(init_id)
                self.driver.remove(mount_id)
                raise
            mdir = self._p("layerdb", "mounts", container_id)
            write_set = self._p("layerdb", "tmp", "mount-" + secrets.token_hex(8))
            os.mkdir(write_set, 0o700)
            _atomic_write(os.path.join(write_set, "mount-id"), mount_id.encode())
            _atomic_write(os.path.join(write_set, "init-id"), init_id.encode())
            if parent:
                _atomic_write(os.path.join(write_set, "parent"), parent.encode())
            os.rename(write_set, mdir)
            rw = RWLayer(container_id, mount_id, init_id, parent)
            self.mounts[container_id] = rw
            return rw

    def _rw(self, container_id: str) -> RWLayer:
        rw = self.mounts.get(container_id)
        if rw is None:
            raise not_found(f"No such container: {container_id}")
        return rw

    def mount_rootfs(self, container_id: str) -> str:
        """Mount (overlay2) or locate (vfs) the container's root filesystem; returns its path."""
        with self.lock:
            rw = self._rw(container_id)
        return self.driver.get(rw.mount_id)

    def unmount_rootfs(self, container_id: str) -> None:
        with self.lock:
            rw = self.mounts.get(container_id)
        if rw is not None:
            self.driver.put(rw.mount_id)

    def remove_rw_layer(self, container_id: str) -> None:
        with self.lock:
            rw = self.mounts.pop(container_id, None)
            if rw is None:
                return
            mdir = self._p("layerdb", "mounts", container_id)
            doomed = self._p("layerdb", "tmp", "deleted-" + secrets.token_hex(8))
            with contextlib.suppress(FileNotFoundError):
                os.rename(mdir, doomed)
            self.driver.remove(rw.mount_id)
            self.driver.remove(rw.init_id)
            shutil.rmtree(doomed, ignore_errors=True)
            # a layer kept only by this container (its image was force-removed) goes now
            self._release(rw.parent)

    def graph_driver(self, container_id: str, image: Image | None = None) -> dict[str, Any]:
        """``GraphDriver`` of a container's inspect."""
        with self.lock:
            rw = self.mounts.get(container_id)
        data = self.driver.metadata(rw.mount_id) if rw is not None else None
        return {"Data": data, "Name": self.driver.name}


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
        out.append(go_json(_v1_order(final)))
        parent = "sha256:" + v1_id
    return out


def _v1_order(doc: dict[str, Any]) -> dict[str, Any]:
    order = (
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
    return {k: doc[k] for k in order if k in doc}


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else self.pos + n
        chunk = self.data[self.pos : end]
        self.pos += len(chunk)
        return chunk


def _is_id_prefix(image_id: str, candidate: str) -> bool:
    return image_id.startswith(candidate) or image_id[7:].startswith(candidate)


#: drivers dockerd 28 names as removed (moby daemon/graphdriver checkRemoved) rather than unknown
REMOVED_DRIVERS = ("aufs", "devicemapper", "overlay")
_BTRFS_MAGIC = 0x9123683E


def _on_btrfs(path: str) -> bool:
    """True when ``path`` is on btrfs (``stat -f -c %t``), where dockerd's btrfs driver would start."""
    import subprocess

    try:
        out = subprocess.run(["stat", "-f", "-c", "%t", path], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip() == f"{_BTRFS_MAGIC:x}"


def _non_empty_dir(path: str) -> bool:
    """Prior driver state: anything in the driver's home besides an empty overlay2 ``l``."""
    try:
        names = os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    for name in names:
        sub = os.path.join(path, name)
        if name in ("l", "dir") and os.path.isdir(sub) and not os.listdir(sub):
            continue
        return True
    return False


def _setup_init_layer(root: str) -> None:
    """dockerd's initlayer.Setup: mount points and placeholder files every container gets."""
    for rel, kind in INIT_PATHS:
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            prefix = os.path.join(root, *parts[:i])
            with contextlib.suppress(OSError):
                if stat.S_ISLNK(os.lstat(prefix).st_mode):
                    os.unlink(prefix)
        target = os.path.join(root, rel)
        if os.path.lexists(target):
            continue
        parent = os.path.dirname(target)
        os.makedirs(parent, mode=0o755, exist_ok=True)
        if kind == "dir":
            os.makedirs(target, mode=0o755, exist_ok=True)
        elif kind == "file":
            fd = os.open(target, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o755)
            os.close(fd)
        else:
            os.symlink(kind, target)
