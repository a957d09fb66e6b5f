"""The main job's default targets: dockerd-28 joins refd and the host's dockerd when its rootfs can be had."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import pytest

from harness import rootfs, targets
from harness.rootfs import RootfsBuildError
from harness.targets import main_job_rootfs_targets


@dataclass
class FakeEntry:
    built: bool

    def is_built(self) -> bool:
        return self.built


@dataclass
class Env:
    built: bool = False
    root: bool = True
    debootstrap: bool = True
    build_error: str = ""
    builds: list[str] = field(default_factory=list)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Env:
    state = Env()

    def ensure(name: str, out: object = None) -> FakeEntry:
        state.builds.append(name)
        if state.build_error:
            raise RootfsBuildError(state.build_error)
        return FakeEntry(True)

    monkeypatch.setattr(rootfs, "locate", lambda name: FakeEntry(state.built))
    monkeypatch.setattr(rootfs, "ensure", ensure)
    monkeypatch.setattr(targets.os, "geteuid", lambda: 0 if state.root else 1000)
    monkeypatch.setattr(
        targets.shutil, "which", lambda n: "/usr/sbin/debootstrap" if state.debootstrap else None
    )
    monkeypatch.setattr(targets.os, "access", lambda p, m: state.debootstrap)
    return state


def test_a_built_rootfs_is_used_without_building(env: Env) -> None:
    env.built, env.root = True, False
    assert main_job_rootfs_targets() == (["dockerd-28"], "")
    assert env.builds == []


def test_it_is_built_when_it_can_be(env: Env) -> None:
    out = io.StringIO()
    assert main_job_rootfs_targets(out=out) == (["dockerd-28"], "")
    assert env.builds == ["dockerd-28"]
    assert main_job_rootfs_targets(build=False)[0] == []


@pytest.mark.parametrize(
    ("setup", "why"),
    [
        ({"root": False}, "needs root"),
        ({"debootstrap": False}, "apt-get install debootstrap"),
        ({"build_error": "debootstrap sid failed (exit 1): the Debian mirror could not be reached\nmore"},
         "could not be built: debootstrap sid failed (exit 1): the Debian mirror could not be reached"),
    ],
)  # fmt: skip
def test_otherwise_it_is_left_out_with_a_note(env: Env, setup: dict[str, object], why: str) -> None:
    for key, value in setup.items():
        setattr(env, key, value)
    names, note = main_job_rootfs_targets()
    assert names == [] and note.startswith("dockerd-28 left out: ") and why in note
    assert "\n" not in note
