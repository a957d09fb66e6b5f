"""What a build was asked for: dockerd's ImageBuildOptions, as ``POST /build`` reads them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["BuildOptions"]


@dataclass
class BuildOptions:
    """ImageBuildOptions, as newImageBuildOptions reads them from the query."""

    tags: list[Any] = field(default_factory=list)
    dockerfile: str = "Dockerfile"
    quiet: bool = False
    no_cache: bool = False
    remove: bool = True
    force_remove: bool = False
    pull: bool = False
    build_args: dict[str, str | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    target: str = ""
    network_mode: str = ""
    extra_hosts: list[str] = field(default_factory=list)
    platform: tuple[str, str, str] | None = None
    shm_size: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    memory: int = 0
    memory_swap: int = 0
    cgroup_parent: str = ""
    ulimits: list[dict[str, Any]] | None = None
    cache_from: list[str] = field(default_factory=list)
    auth_configs: dict[str, Any] = field(default_factory=dict)
    #: ``version=2``: BuildKit's Dockerfile frontend instead of the classic builder
    buildkit: bool = False
