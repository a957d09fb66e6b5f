"""The layer store: content-addressed layers and containers' read-write layers (moby ``layer/``).

On disk under ``<data-root>/image/<driver>/layerdb/``::

    sha256/<chain hex>/{diff,size,cache-id,parent,tar-split.json.gz}   a layer
    mounts/<container id>/{mount-id,init-id,parent}                    a container's read-write layer
    tmp/                                                               write sets being assembled

A layer is found by its chain ID (``chain_ids``: the diff IDs below it hashed together); its files
live with the storage driver under its cache ID. A layer's directory is assembled under ``tmp`` and
renamed into place only after its contents are fully unpacked, so kill -9 never leaves half a layer;
``restore`` drops what a crash can leave (``tmp``, unreadable layers, driver directories nothing
refers to).

A layer lives while something refers to it: images (``retain``/``release``, counted), a pull, load
or commit in progress (``pinned``), a layer on top of it, or a container's read-write layer. The
last reference gone, it is deleted with the ancestors nothing else holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, cast

from ..errors import not_found
from ..fsutil import atomic_write, read_record
from .layers import Driver, Overlay2Driver, TarSplit, assemble
from .tarsafe import decompress

__all__ = ["INIT_PATHS", "Layer", "LayerStore", "RWLayer", "chain_ids"]

_HEX64 = re.compile(r"^[a-f0-9]{64}$")
#: what dockerd's initlayer.Setup puts in every container's init layer: mount points and placeholders
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
class RWLayer:
    """A container's layers: ``init_id`` (dockerd's init files) on the image, ``mount_id`` on top."""

    container_id: str
    mount_id: str
    init_id: str
    parent: str


class LayerStore:
    """Layers and read-write layers of one daemon over one storage driver (thread-safe)."""

    def __init__(self, root: str, driver: Driver, lock: threading.RLock | None = None) -> None:
        self.root = os.path.join(root, "layerdb")
        self.driver = driver
        self.lock = lock or threading.RLock()
        for sub in ("sha256", "mounts", "tmp"):
            os.makedirs(os.path.join(self.root, sub), mode=0o700, exist_ok=True)
        self._layers: dict[str, Layer] = {}
        self._mounts: dict[str, RWLayer] = {}
        self._refs: dict[str, int] = {}  # chain -> images and pins holding it

    def _p(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    # -- restore ---------------------------------------------------------------------------------
    def restore(self) -> None:
        """Read layers and read-write layers back; drop what a crash left half done."""
        for name in os.listdir(self._p("tmp")):
            shutil.rmtree(self._p("tmp", name), ignore_errors=True)
        for hex_id in os.listdir(self._p("sha256")):
            layer = self._read_layer(hex_id)
            if layer is None:
                shutil.rmtree(self._p("sha256", hex_id), ignore_errors=True)
            else:
                self._layers[layer.chain_id] = layer
        for cid in os.listdir(self._p("mounts")):
            rw = self._read_mount(cid)
            if rw is None:
                shutil.rmtree(self._p("mounts", cid), ignore_errors=True)
            else:
                self._mounts[cid] = rw
        known = {layer.cache_id for layer in self._layers.values()}
        known |= {m.mount_id for m in self._mounts.values()} | {
            m.init_id for m in self._mounts.values() if m.init_id
        }
        for cache_id in self.driver.ids():
            if cache_id not in known:
                self.driver.remove(cache_id)
        self.driver.prune_links()

    def _read_layer(self, hex_id: str) -> Layer | None:
        layer_dir = self._p("sha256", hex_id)
        diff, size, cache = (read_record(os.path.join(layer_dir, f)) for f in ("diff", "size", "cache-id"))
        if not _HEX64.match(hex_id) or diff is None or size is None or cache is None:
            return None
        if not self.driver.exists(cache):
            return None
        parent = read_record(os.path.join(layer_dir, "parent")) or ""
        return Layer("sha256:" + hex_id, diff, parent, cache, int(size or 0))

    def _read_mount(self, container_id: str) -> RWLayer | None:
        mdir = self._p("mounts", container_id)
        mount_id = read_record(os.path.join(mdir, "mount-id"))
        if not mount_id or not self.driver.exists(mount_id):
            return None
        init_id = read_record(os.path.join(mdir, "init-id")) or ""
        return RWLayer(container_id, mount_id, init_id, read_record(os.path.join(mdir, "parent")) or "")

    # -- lookups -----------------------------------------------------------------------------------
    def __contains__(self, chain_id: object) -> bool:
        with self.lock:
            return chain_id in self._layers

    def get(self, chain_id: str) -> Layer:
        """The layer ``chain_id`` (KeyError when there is none)."""
        with self.lock:
            return self._layers[chain_id]

    def all_layers(self) -> list[Layer]:
        """Every layer, in no promised order (after a restart: the order the filesystem lists them)."""
        with self.lock:
            return list(self._layers.values())

    def size(self, chains: list[str]) -> int:
        """The sum of these layers' sizes (an image's size: its chain)."""
        with self.lock:
            return sum(self._layers[c].size for c in chains if c in self._layers)

    def layer_dirs(self, chains: list[str]) -> list[str]:
        """Bottom-first extracted layer dirs of a chain (overlay2 ``diff`` dirs), or the top vfs dir."""
        with self.lock:
            layers = [self._layers[c] for c in chains]
        if not layers:
            return []
        if isinstance(self.driver, Overlay2Driver):
            return [self.driver.root(layer.cache_id) for layer in layers]
        return [self.driver.root(layers[-1].cache_id)]

    def metadata(self, chain_id: str) -> dict[str, str] | None:
        """GraphDriver.Data of a layer (an image's: its top layer)."""
        return self.driver.metadata(self.get(chain_id).cache_id)

    # -- layers ------------------------------------------------------------------------------------
    def register(
        self, stream: IO[bytes], parent: str = "", pin: Callable[[str], None] | None = None
    ) -> Layer:
        """Unpack a (possibly compressed) layer tar on top of ``parent`` (a chain ID).

        The caller keeps ``parent`` alive; ``pin`` (from ``pinned``) keeps the new layer alive
        until an image refers to it.
        """
        parent_layer = self._layers.get(parent) if parent else None
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
            existing = self._layers.get(chain)
            if existing is not None:
                self.driver.remove(cache_id)
                if pin is not None:
                    pin(chain)
                return existing
            files = {
                "diff": diff_id.encode(),
                "size": str(size).encode(),
                "cache-id": cache_id.encode(),
                "tar-split.json.gz": split.dump(),
            }
            if parent:
                files["parent"] = parent.encode()
            self._commit_write_set("write-set-", files, self._p("sha256", chain.removeprefix("sha256:")))
            layer = Layer(chain, diff_id, parent, cache_id, size)
            self._layers[chain] = layer
            if pin is not None:
                pin(chain)
            return layer

    def _commit_write_set(self, prefix: str, files: dict[str, bytes], final: str) -> None:
        """Write ``files`` into a directory under ``tmp`` and rename it to ``final`` in one step."""
        write_set = self._p("tmp", prefix + secrets.token_hex(8))
        os.mkdir(write_set, 0o700)
        for fname, data in files.items():
            atomic_write(os.path.join(write_set, fname), data)
        os.rename(write_set, final)

    def tar(self, chain_id: str) -> Iterator[bytes]:
        """The layer's tar, re-created byte for byte from tar-split."""
        layer = self.get(chain_id)
        with open(self._p("sha256", chain_id.removeprefix("sha256:"), "tar-split.json.gz"), "rb") as fh:
            split = fh.read()
        return assemble(split, self.driver.root(layer.cache_id))

    # -- references --------------------------------------------------------------------------------
    def retain(self, chain_id: str) -> None:
        """One more holder (an image, a pin) of ``chain_id``."""
        with self.lock:
            self._refs[chain_id] = self._refs.get(chain_id, 0) + 1

    def release(self, chain_id: str) -> list[Layer]:
        """One holder fewer; deletes the layer and its ancestors nothing refers to (top first)."""
        with self.lock:
            count = self._refs.get(chain_id, 0) - 1
            if count > 0:
                self._refs[chain_id] = count
            else:
                self._refs.pop(chain_id, None)
            return self._sweep(chain_id)

    @contextlib.contextmanager
    def pinned(self) -> Iterator[Callable[[str], None]]:
        """Keep layers registered during a pull, load, import or commit alive until their image exists."""
        held: list[str] = []

        def pin(chain: str) -> None:
            self.retain(chain)
            held.append(chain)

        try:
            yield pin
        finally:
            with self.lock:
                for chain in reversed(held):
                    self.release(chain)

    def _referenced(self, chain: str) -> bool:
        if chain in self._refs:
            return True
        if any(layer.parent == chain for layer in self._layers.values()):
            return True
        return any(m.parent == chain for m in self._mounts.values())

    def _sweep(self, chain: str) -> list[Layer]:
        removed: list[Layer] = []
        while chain and chain in self._layers and not self._referenced(chain):
            layer = self._layers.pop(chain)
            self._remove_dir(self._p("sha256", chain.removeprefix("sha256:")), layer.cache_id)
            removed.append(layer)
            chain = layer.parent
        return removed

    def _remove_dir(self, meta_dir: str, *cache_ids: str) -> None:
        """Move a metadata dir out of sight first, then remove the driver's dirs, then it."""
        doomed = self._p("tmp", "deleted-" + secrets.token_hex(8))
        with contextlib.suppress(FileNotFoundError):
            os.rename(meta_dir, doomed)
        for cache_id in cache_ids:
            self.driver.remove(cache_id)
        shutil.rmtree(doomed, ignore_errors=True)

    # -- read-write layers (containers) ----------------------------------------------------------
    def create_rw_layer(self, container_id: str, parent: str, init: bool = True) -> RWLayer:
        """A container's init layer (``<mount-id>-init``) and read-write layer on the layer ``parent``
        (without ``init``, the read-write layer right on ``parent``: an image mount's)."""
        with self.lock:
            if container_id in self._mounts:
                return self._mounts[container_id]
            parent_cache = self._layers[parent].cache_id if parent else None
            mount_id = secrets.token_hex(32)
            init_id = mount_id + "-init" if init else ""
            try:
                if init:
                    self.driver.create(init_id, parent_cache)
                    root = self.driver.get(init_id)
                    try:
                        setup_init_layer(root, self.driver.remapped_root)
                    finally:
                        self.driver.put(init_id)
                self.driver.create(mount_id, init_id or parent_cache)
            except BaseException:
                if init_id:
                    self.driver.remove(init_id)
                self.driver.remove(mount_id)
                raise
            files = {"mount-id": mount_id.encode()}
            if init_id:
                files["init-id"] = init_id.encode()
            if parent:
                files["parent"] = parent.encode()
            self._commit_write_set("mount-", files, self._p("mounts", container_id))
            rw = RWLayer(container_id, mount_id, init_id, parent)
            self._mounts[container_id] = rw
            return rw

    def rw_layer(self, container_id: str) -> RWLayer | None:
        with self.lock:
            return self._mounts.get(container_id)

    def mount_rootfs(self, container_id: str) -> str:
        """Mount (overlay2) or locate (vfs) the container's root filesystem; returns its path."""
        rw = self.rw_layer(container_id)
        if rw is None:
            raise not_found(f"No such container: {container_id}")
        return self.driver.get(rw.mount_id)

    def unmount_rootfs(self, container_id: str) -> None:
        rw = self.rw_layer(container_id)
        if rw is not None:
            self.driver.put(rw.mount_id)

    def remove_rw_layer(self, container_id: str) -> None:
        with self.lock:
            rw = self._mounts.pop(container_id, None)
            if rw is None:
                return
            self._remove_dir(self._p("mounts", container_id), *[i for i in (rw.mount_id, rw.init_id) if i])
            # a layer kept only by this container (its image was force-removed) goes now
            self._sweep(rw.parent)

    def graph_driver(self, container_id: str) -> dict[str, Any]:
        """``GraphDriver`` of a container's inspect."""
        rw = self.rw_layer(container_id)
        data = self.driver.metadata(rw.mount_id) if rw is not None else None
        return {"Data": data, "Name": self.driver.name}


def setup_init_layer(root: str, owner: tuple[int, int] | None = None) -> None:
    """dockerd's initlayer.Setup: mount points and placeholder files every container gets (owned by the
    remapped root under --userns-remap, as dockerd's ``rootIdentity``)."""
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
        made = []
        probe = parent
        while not os.path.lexists(probe):
            made.append(probe)
            probe = os.path.dirname(probe)
        os.makedirs(parent, mode=0o755, exist_ok=True)
        if kind == "dir":
            os.makedirs(target, mode=0o755, exist_ok=True)
        elif kind == "file":
            fd = os.open(target, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o755)
            os.close(fd)
        else:
            os.symlink(kind, target)
        if owner is not None:
            for path in [*made, target]:
                os.chown(path, *owner, follow_symlinks=False)
