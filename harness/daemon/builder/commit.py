"""Committing the classic builder's steps: the cache probe, step containers, and their layers as images.

A step first asks the cache (``probe``: ``---> Using cache``); on a miss it creates a container from
the current image with the step's config (``---> Running in <id>``), lets the caller run or change
it, and commits its diff as a child image whose ``container_config`` is the step's config (what the
cache compares next time). A metadata step's container never runs: its diff is an empty tar unless
its create could have made the WORKDIR. ``remove_containers`` takes the step containers away
(``---> Removed intermediate container <id>``).
"""

from __future__ import annotations

import asyncio
import copy
import os
from typing import TYPE_CHECKING, Any

from ..errors import ApiError
from ..goformat import go_arch
from ..images.commit import commit_layer, container_diff, spooled_diff
from ..images.imagestore import Image
from ..images.service import ImageService
from .cache import ImageProber
from .options import BuildOptions
from .state import ScratchImage, State, copy_config, shell_of
from .stream import BuildError, BuildOutput

if TYPE_CHECKING:
    from ..containers.model import Container
    from ..daemon import Daemon

__all__ = ["StepCommitter"]


class StepCommitter:
    """Cache lookups, step containers and their commits for one build."""

    def __init__(self, daemon: Daemon, options: BuildOptions, out: BuildOutput) -> None:
        self.daemon = daemon
        self.store: ImageService = daemon.images
        self.options = options
        self.out = out
        self.prober = ImageProber(self.store, options.no_cache)
        self.tmp_containers: list[str] = []
        self.disable_commit = False

    def parent(self, state: State) -> Image | None:
        if not state.image_id:
            return None
        return self.store.images.get(state.image_id)

    def probe(self, state: State, config: dict[str, Any]) -> bool:
        """A cached image for this step: it becomes the state's image (``---> Using cache``)."""
        p = self.options.platform
        arch = p[1] if p is not None else go_arch()
        cached = self.prober.probe(state.image_id, config, state.os, arch)
        if not cached:
            return False
        self.out.stdout(" ---> Using cache\n")
        state.image_id = cached
        return True

    async def commit(self, state: State, comment: str) -> None:
        """A metadata step: ``#(nop) <comment>`` committed from a container that never runs."""
        if self.disable_commit:
            return
        if not state.has_from_image():
            raise BuildError("Please provide a source image with `from` prior to commit")
        config = copy_config(state.run_config, Cmd=[*shell_of(state.run_config), "#(nop) ", comment])
        if self.probe(state, config):
            return
        self.merge_parent_healthcheck(state, config)
        c = await self.create(state, config)
        config["Hostname"] = c.id[:12]  # the create mutated the step's config, as dockerd's does
        if config.get("Labels") is None:
            config["Labels"] = {}
        await self.commit_container(state, c, config, empty=not self._step_layer_may_change(state))

    def merge_parent_healthcheck(self, state: State, config: dict[str, Any]) -> None:
        """Container create merges the image's healthcheck into zero fields of the request's, and the
        builder's step config shares its Healthcheck with the stage's (copyRunConfig is shallow there):
        after a metadata step the stage's healthcheck has the parent's values where its own are 0."""
        hc = state.run_config.get("Healthcheck")
        parent = self.parent(state)
        parent_hc = parent.runtime_config.get("Healthcheck") if parent is not None else None
        if not isinstance(hc, dict) or not isinstance(parent_hc, dict):
            return
        for key in ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
            if not hc.get(key) and parent_hc.get(key):
                hc[key] = copy.deepcopy(parent_hc[key])
        config["Healthcheck"] = copy.deepcopy(hc)

    async def create(self, state: State, config: dict[str, Any]) -> Container:
        """A step container from the state's image, with the build's resource options."""
        o = self.options
        host_config: dict[str, Any] = {
            "CgroupParent": o.cgroup_parent,
            "CpuShares": o.cpu_shares,
            "CpuPeriod": o.cpu_period,
            "CpuQuota": o.cpu_quota,
            "CpusetCpus": o.cpuset_cpus,
            "CpusetMems": o.cpuset_mems,
            "Memory": o.memory,
            "MemorySwap": o.memory_swap,
            "Ulimits": o.ulimits,
            "ShmSize": o.shm_size,
            "NetworkMode": o.network_mode if o.network_mode not in ("", "default") else "bridge",
            "LogConfig": {"Type": "none", "Config": {}},
            "ExtraHosts": list(o.extra_hosts) or None,
        }
        body = {**copy.deepcopy(config), "HostConfig": host_config}
        image = state.base.image if state.base is not None and state.image_id == state.base.id else None
        if image is None and state.image_id:
            image = self.store.resolve(state.image_id)
        try:
            c, warnings = self.daemon.containers.create(body, "", image=image or ScratchImage())
        except ApiError as exc:
            raise BuildError(exc.message, exc.status) from None
        self.tmp_containers.append(c.id)
        for warning in warnings:
            self.out.stdout(f" ---> [Warning] {warning}\n")
        self.out.stdout(f" ---> Running in {c.id[:12]}\n")
        return c

    def _step_layer_may_change(self, state: State) -> bool:
        """A container that never runs only changes if its create made the WORKDIR: overlay2's diff of
        an untouched layer is cheap to read; vfs's (a walk of two full copies) only if that can be."""
        from ..images.layers import Overlay2Driver
        from ..scope import follow_in_scope

        if isinstance(self.store.layers.driver, Overlay2Driver):
            return True
        workdir = str(state.run_config.get("WorkingDir") or "")
        if not workdir:
            return False
        parent = self.parent(state)
        dirs = self.store.layers.layer_dirs(parent.chain) if parent is not None else []
        return not dirs or not os.path.isdir(follow_in_scope(dirs[-1], workdir))

    async def commit_container(
        self, state: State, c: Container, container_config: dict[str, Any], empty: bool = False
    ) -> None:
        """The container's diff as a child of the state's image, which it becomes."""
        parent = self.parent(state)
        store = self.store

        def work() -> Image:
            if empty:
                writer: Any = lambda out: out.write(b"\0" * 1024)  # noqa: E731 - a container that never ran
            else:
                writer = lambda out: container_diff(store.layers, c.id, out)  # noqa: E731
            with spooled_diff(store, writer) as (path, digest):
                return commit_layer(
                    store,
                    parent,
                    path,
                    digest,
                    os_name=state.os,
                    config=copy.deepcopy(state.run_config),
                    container_config=container_config,
                    container_id=c.id,
                    author=state.maintainer,
                    arch=state.base.arch if state.base is not None else "",
                )

        image = await asyncio.to_thread(work)
        store.image_event("create", image.id, image.id)
        state.image_id = image.id

    async def remove_containers(self) -> None:
        manager = self.daemon.containers
        for cid in list(self.tmp_containers):
            c = manager.by_id.get(cid)
            if c is not None:
                try:
                    await manager.remove(c, force=True, volumes=True)
                except ApiError as exc:
                    self.out.stdout(f"Removing intermediate container {cid[:12]}: {exc.message}\n")
                    continue
            self.tmp_containers.remove(cid)
            self.out.stdout(f" ---> Removed intermediate container {cid[:12]}\n")
