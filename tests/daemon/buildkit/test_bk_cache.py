"""The BuildKit build cache's records: lookups, DiskUsage, Prune, persistence and held layers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from harness.daemon.buildkit.cache import BuildCache, Record, new_id


class _Layers(dict[str, Any]):
    """The layer store's part the cache uses: lookups and retain/release counts."""

    def __init__(self, layers: dict[str, Any]) -> None:
        super().__init__(layers)
        self.held: dict[str, int] = {}

    def retain(self, chain: str) -> None:
        self.held[chain] = self.held.get(chain, 0) + 1

    def release(self, chain: str) -> list[Any]:
        self.held[chain] -= 1
        return []


class _Images(dict[str, Any]):
    def all_images(self) -> list[Any]:
        return list(self.values())


class _Store:
    def __init__(self) -> None:
        self.layers = _Layers(
            {
                "sha256:base": SimpleNamespace(size=100, diff_id="sha256:d0"),
                "sha256:run": SimpleNamespace(size=6, diff_id="sha256:d1"),
                "sha256:copy": SimpleNamespace(size=5, diff_id="sha256:d2"),
            }
        )
        self.images = _Images()

    @property
    def held(self) -> dict[str, int]:
        return self.layers.held


def _cache(tmp_path: Path, store: _Store | None = None) -> BuildCache:
    daemon = SimpleNamespace(
        images=store or _Store(), config={"data-root": str(tmp_path)}, log=SimpleNamespace(warning=print)
    )
    return BuildCache(daemon)  # type: ignore[arg-type]


def test_ids_look_like_buildkits() -> None:
    ident = new_id()
    assert len(ident) == 25 and ident.isalnum() and ident.lower() == ident


def test_find_add_and_persist(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    run = cache.add(
        Record(
            id="r1",
            type="regular",
            description="mount / from exec sh",
            key="k1",
            chain="sha256:run",
            own_layer=True,
        )
    )
    assert cache.store.held == {"sha256:run": 1}
    assert cache.find("k1") is run and run.usage == 2
    assert cache.find("nope") is None
    cache.save()
    again = _cache(tmp_path, cache.store)
    assert set(again.records) == {"r1"} and cache.store.held == {"sha256:run": 2}  # held again when loaded


def test_a_record_whose_layer_went_is_dropped_on_load(tmp_path: Path) -> None:
    store = _Store()
    cache = _cache(tmp_path, store)
    cache.add(Record(id="r1", type="regular", description="x", key="k", chain="sha256:run", own_layer=True))
    cache.save()
    del store.layers["sha256:run"]
    assert _cache(tmp_path, store).records == {}


def test_usage_marks_shared_and_mutable(tmp_path: Path) -> None:
    store = _Store()
    cache = _cache(tmp_path, store)
    cache.add(
        Record(id="r1", type="regular", description="run", key="k1", chain="sha256:run", own_layer=True)
    )
    cache.add(
        Record(
            id="r2",
            type="regular",
            description="copy",
            key="k2",
            chain="sha256:copy",
            own_layer=True,
            parent="r1",
        )
    )
    ctx = cache.directory("source.local", "local source for context")
    (Path(ctx.path) / "f").write_bytes(b"12345")
    store.images["i"] = SimpleNamespace(diff_ids=["sha256:base"])  # chain of one layer: sha256:base
    usage = {u.ID: u for u in asyncio.run(cache.usage([]))}
    assert usage["r1"].Size == 6 and not usage["r1"].Mutable and not usage["r1"].Shared
    assert usage["r2"].Parents == ["r1"]
    assert usage[ctx.id].Mutable and usage[ctx.id].Size == 5 and usage[ctx.id].RecordType == "source.local"
    only_local = asyncio.run(cache.usage(["type==source.local"]))
    assert [u.ID for u in only_local] == [ctx.id]


def test_prune_leaves_first_and_keeps_what_images_share(tmp_path: Path) -> None:
    store = _Store()
    cache = _cache(tmp_path, store)
    cache.add(
        Record(id="r1", type="regular", description="run", key="k1", chain="sha256:run", own_layer=True)
    )
    cache.add(
        Record(
            id="r2",
            type="regular",
            description="copy",
            key="k2",
            chain="sha256:copy",
            own_layer=True,
            parent="r1",
        )
    )
    ctx = cache.directory("source.local", "local source for context")
    from harness.daemon.images.layerstore import chain_ids

    store.images["i"] = SimpleNamespace(diff_ids=["sha256:d1"])
    shared_chain = chain_ids(["sha256:d1"])[-1]
    store.layers[shared_chain] = SimpleNamespace(size=1, diff_id="sha256:d1")
    cache.add(
        Record(id="r3", type="regular", description="shared", key="k3", chain=shared_chain, own_layer=True)
    )
    removed = [u.ID for u in asyncio.run(cache.prune([], False, 0, 0))]
    assert removed == ["r2", ctx.id, "r1"] or removed == [ctx.id, "r2", "r1"]  # r2 before its parent r1
    assert set(cache.records) == {"r3"} and not Path(ctx.path).exists()
    assert store.held["sha256:run"] == 0 and store.held["sha256:copy"] == 0
    assert [u.ID for u in asyncio.run(cache.prune([], True, 0, 0))] == ["r3"]  # --all: shared ones too


def test_cache_mount_directories_are_reused_by_key(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    a = cache.directory("exec.cachemount", "cached mount /c", key="id:/c")
    b = cache.directory("exec.cachemount", "cached mount /c", key="id:/c")
    assert a is b and a.usage == 2
