"""The step committer's decisions that need no runtime: the cache probe, refusals, healthcheck merging."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from harness.daemon.builder.buildargs import BuildArgs
from harness.daemon.builder.commit import StepCommitter
from harness.daemon.builder.options import BuildOptions
from harness.daemon.builder.state import State
from harness.daemon.builder.stream import BuildError


class _Out:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def stdout(self, text: str) -> None:
        self.lines.append(text)


class _Prober:
    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.asked: list[tuple[str, dict[str, Any], str, str]] = []

    def probe(self, parent_id: str, config: dict[str, Any], os_name: str, arch: str) -> str:
        self.asked.append((parent_id, config, os_name, arch))
        return self.answer


def _committer(images: dict[str, Any] | None = None, **options: Any) -> tuple[StepCommitter, _Out]:
    store = SimpleNamespace(images=images or {})
    out = _Out()
    committer = StepCommitter(SimpleNamespace(images=store), BuildOptions(**options), out)  # type: ignore[arg-type]
    return committer, out


def test_a_cache_hit_becomes_the_state_image() -> None:
    committer, out = _committer(platform=("linux", "arm64", ""))
    committer.prober = _Prober("sha256:cached")  # type: ignore[assignment]
    state = State(build_args=BuildArgs(), image_id="sha256:parent")
    assert committer.probe(state, {"Cmd": ["x"]})
    assert state.image_id == "sha256:cached" and out.lines == [" ---> Using cache\n"]
    assert committer.prober.asked == [("sha256:parent", {"Cmd": ["x"]}, "linux", "arm64")]  # type: ignore[attr-defined]


def test_a_miss_leaves_the_state_alone() -> None:
    committer, out = _committer()
    committer.prober = _Prober("")  # type: ignore[assignment]
    state = State(build_args=BuildArgs(), image_id="sha256:parent")
    assert not committer.probe(state, {})
    assert state.image_id == "sha256:parent" and out.lines == []


def test_commit_needs_a_from_and_does_nothing_when_disabled() -> None:
    committer, _ = _committer()
    with pytest.raises(BuildError, match="Please provide a source image with `from` prior to commit"):
        asyncio.run(committer.commit(State(build_args=BuildArgs()), "ENV a=b"))
    committer.disable_commit = True
    state = State(build_args=BuildArgs())
    asyncio.run(committer.commit(state, "ENV a=b"))  # commit --change: config only
    assert state.image_id == ""


def test_parent_healthcheck_fills_zero_fields() -> None:
    parent = SimpleNamespace(
        runtime_config={"Healthcheck": {"Test": ["CMD", "p"], "Interval": 5, "Retries": 2}}
    )
    committer, _ = _committer({"sha256:p": parent})
    state = State(build_args=BuildArgs(), image_id="sha256:p")
    state.run_config = {"Healthcheck": {"Test": [], "Interval": 0, "Retries": 7}}
    config: dict[str, Any] = {}
    committer.merge_parent_healthcheck(state, config)
    assert config["Healthcheck"] == {"Test": ["CMD", "p"], "Interval": 5, "Retries": 7}
