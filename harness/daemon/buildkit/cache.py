"""refd's BuildKit build cache: records of what builds made, for reuse (``CACHED``), ``du`` and ``prune``.

A *regular* record is one layer-making step's result (RUN, COPY, ADD, WORKDIR, the FROM image):
its cache key, the layer chain it produced (held in the layer store with ``retain``, so it
outlives the build without an image on it) and its parent record. *source.local* records are the
build contexts and Dockerfiles received from clients (kept as directories, as BuildKit keeps
them), *exec.cachemount* records the ``RUN --mount=type=cache`` directories. Records live in
``<data-root>/buildkit/refd-cache.json`` (written atomically); a record whose layer has gone (an
image removal before the cache was loaded again) is dropped when read.

``usage`` answers DiskUsage as dockerd does (``Shared`` when an image also uses the layer,
``Mutable`` for directories); ``prune`` removes what nothing in flight uses: without ``all`` only
records no image shares, with ``all`` every one (the images keep their layers), leaves first.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import string
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .messages import Timestamp, UsageRecord

if TYPE_CHECKING:
    from ..daemon import Daemon

__all__ = ["BuildCache", "Record", "build_cache", "disk_usage_documents", "new_id", "prune_for_api"]

_ALPHABET = string.ascii_lowercase + string.digits


def new_id() -> str:
    """A BuildKit-style identifier: 25 characters of [a-z0-9]."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(25))


@dataclass
class Record:
    id: str
    type: str  # regular | source.local | exec.cachemount
    description: str
    key: str = ""
    chain: str = ""  # the layer chain (regular)
    own_layer: bool = False  # the step added a layer (else it shares its parent's chain)
    parent: str = ""  # the parent record's id
    path: str = ""  # the directory (source.local, exec.cachemount)
    created: int = field(default_factory=time.time_ns)
    last_used: int = field(default_factory=time.time_ns)
    usage: int = 0
    in_use: int = 0  # builds using it now (not persisted meaningfully)


class BuildCache:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.store = daemon.images
        self.root = os.path.join(str(daemon.config["data-root"]), "buildkit")
        self.path = os.path.join(self.root, "refd-cache.json")
        self.records: dict[str, Record] = {}
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        self._load()

    # -- persistence ----------------------------------------------------------------------------------
    def _load(self) -> None:
        try:
            with open(self.path) as fh:
                doc = json.load(fh)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            self.daemon.log.warning(f"build cache records at {self.path} unreadable, starting afresh: {exc}")
            return
        for item in doc.get("records", []) if isinstance(doc, dict) else []:
            try:
                record = Record(**{k: v for k, v in item.items() if k in Record.__dataclass_fields__})
            except TypeError:
                continue
            record.in_use = 0
            if record.chain and record.chain not in self.store.layers:
                continue
            if record.path and not os.path.isdir(record.path):
                continue
            if record.chain:
                self.store.layers.retain(record.chain)
            self.records[record.id] = record

    def save(self) -> None:
        doc = {"records": [asdict(r) for r in self.records.values()]}
        tmp = self.path + f".tmp-{os.getpid()}"
        with open(tmp, "w") as fh:
            json.dump(doc, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    # -- lookups ---------------------------------------------------------------------------------------
    def find(self, key: str) -> Record | None:
        """The newest regular record for a cache key whose layer is still there."""
        found = [r for r in self.records.values() if r.key == key and r.type == "regular"]
        found = [r for r in found if not r.chain or r.chain in self.store.layers]
        if not found:
            return None
        record = max(found, key=lambda r: r.created)
        record.last_used = time.time_ns()
        record.usage += 1
        return record

    def add(self, record: Record) -> Record:
        if record.chain:
            self.store.layers.retain(record.chain)
        record.usage = max(record.usage, 1)
        self.records[record.id] = record
        return record

    def directory(self, kind: str, description: str, key: str = "") -> Record:
        """A new (or, for a cache mount, the existing) directory record."""
        if key:
            for r in self.records.values():
                if r.type == kind and r.key == key:
                    r.last_used = time.time_ns()
                    r.usage += 1
                    return r
        rid = new_id()
        path = os.path.join(self.root, "dirs", rid)
        os.makedirs(path, mode=0o755)
        return self.add(Record(id=rid, type=kind, description=description, key=key, path=path))

    # -- DiskUsage -------------------------------------------------------------------------------------
    def _shared_chains(self) -> set[str]:
        from ..images.layerstore import chain_ids

        shared: set[str] = set()
        for image in self.store.images.all_images():
            shared.update(chain_ids(image.diff_ids))
        return shared

    def _size(self, record: Record) -> int:
        if record.path:
            return _dir_size(record.path)
        if record.own_layer and record.chain in self.store.layers:
            return int(self.store.layers.get(record.chain).size)
        return 0

    def _usage_record(self, record: Record, shared: set[str]) -> UsageRecord:
        mutable = record.type != "regular"
        return UsageRecord(
            ID=record.id,
            Mutable=mutable,
            InUse=record.in_use > 0,
            Size=self._size(record),
            CreatedAt=Timestamp.from_ns(record.created),
            LastUsedAt=Timestamp.from_ns(record.last_used),
            UsageCount=record.usage,
            Description=record.description,
            RecordType=record.type,
            Shared=bool(record.chain) and record.chain in shared,
            Parents=[record.parent] if record.parent in self.records else [],
        )

    async def usage(self, filters: list[str]) -> list[UsageRecord]:
        def work() -> list[UsageRecord]:
            shared = self._shared_chains()
            return [
                self._usage_record(r, shared) for r in list(self.records.values()) if _matches(r, filters)
            ]

        return await asyncio.to_thread(work)

    # -- Prune -------------------------------------------------------------------------------------------
    async def prune(
        self, filters: list[str], all_: bool, keep_duration: int, keep_bytes: int
    ) -> list[UsageRecord]:
        def work() -> list[UsageRecord]:
            shared = self._shared_chains()
            now = time.time_ns()
            removed: list[UsageRecord] = []
            while True:
                children = {r.parent for r in self.records.values() if r.parent}
                doomed = [
                    r
                    for r in self.records.values()
                    if r.id not in children
                    and not r.in_use
                    and (all_ or not (r.chain and r.chain in shared))
                    and not (keep_duration and now - r.last_used < keep_duration)
                    and _matches(r, filters)
                ]
                if keep_bytes:
                    total = sum(self._size(r) for r in self.records.values())
                    doomed.sort(key=lambda r: r.last_used)
                    kept: list[Record] = []
                    for r in doomed:
                        if total <= keep_bytes:
                            kept.append(r)
                        else:
                            total -= self._size(r)
                    doomed = [r for r in doomed if r not in kept]
                if not doomed:
                    break
                for record in doomed:
                    removed.append(self._usage_record(record, shared))
                    self._remove(record)
            if removed:
                self.save()
            return removed

        return await asyncio.to_thread(work)

    def _remove(self, record: Record) -> None:
        self.records.pop(record.id, None)
        if record.chain:
            self.store.layers.release(record.chain)
        if record.path:
            shutil.rmtree(record.path, ignore_errors=True)

    def report(self) -> list[dict[str, Any]]:
        """``/system/df``'s BuildCache entries (moby's types.BuildCache)."""
        shared = self._shared_chains()
        out = []
        for r in self.records.values():
            u = self._usage_record(r, shared)
            out.append(
                {
                    "ID": r.id,
                    "Parent": r.parent if r.parent in self.records else "",
                    "Parents": list(u.Parents) or None,
                    "Type": r.type,
                    "Description": r.description,
                    "InUse": u.InUse,
                    "Shared": u.Shared,
                    "Size": u.Size,
                    "CreatedAt": _rfc3339(r.created),
                    "LastUsedAt": _rfc3339(r.last_used),
                    "UsageCount": r.usage,
                }
            )
        return out


def _matches(record: Record, filters: list[str]) -> bool:
    """BuildKit's cache filters: ``type==``, ``id==``/``id~=``, ``description==``/``description~=``."""
    for text in filters:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            for op in ("==", "~=", "!="):
                if op in part:
                    name, _, value = part.partition(op)
                    break
            else:
                continue
            have = {"type": record.type, "id": record.id, "description": record.description}.get(name.strip())
            if have is None:
                continue
            if (
                (op == "==" and have != value)
                or (op == "!=" and have == value)
                or (op == "~=" and value not in have)
            ):
                return False
    return True


def _dir_size(path: str) -> int:
    total = 0
    for root, dirs, files in os.walk(path):
        for name in files + dirs:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if not os.path.isdir(os.path.join(root, name)) or os.path.islink(os.path.join(root, name)):
                total += st.st_size
    return total


def _rfc3339(ns: int) -> str:
    from ..goformat import format_go_time

    return format_go_time(ns // 1_000_000_000, ns % 1_000_000_000)


def build_cache(daemon: Daemon) -> BuildCache:
    """The daemon's one build cache (its records hold layers: there must be one per daemon)."""
    found = daemon.__dict__.get("_buildkit_cache")
    if found is None:
        found = daemon.__dict__["_buildkit_cache"] = BuildCache(daemon)
    return found


def _known(daemon: Daemon) -> bool:
    """Whether there is a build cache to read (no need to load one that was never written)."""
    path = os.path.join(str(daemon.config["data-root"]), "buildkit", "refd-cache.json")
    return "_buildkit_cache" in daemon.__dict__ or os.path.exists(path)


async def disk_usage_documents(daemon: Daemon) -> list[dict[str, Any]]:
    """``GET /system/df``'s ``BuildCache``: the records, as dockerd lists BuildKit's."""
    if not _known(daemon):
        return []
    cache = build_cache(daemon)
    return await asyncio.to_thread(cache.report)


async def prune_for_api(
    daemon: Daemon, all_: bool, filters: dict[str, list[str]], keep_bytes: int
) -> tuple[list[str], int]:
    """``POST /build/prune``: the removed records' IDs and the bytes reclaimed."""
    if not _known(daemon):
        return [], 0
    cache = build_cache(daemon)
    texts = [f"{key}=={value}" for key in ("type", "id", "description") for value in filters.get(key, [])]
    keep = 0
    for value in filters.get("until", []) + filters.get("unused-for", []):
        from ..gotime import parse_go_duration

        try:
            keep = max(keep, parse_go_duration(value))
        except ValueError:
            continue
    removed = await cache.prune(texts, all_, keep, keep_bytes)
    return [str(r.ID) for r in removed], sum(int(r.Size) for r in removed)
