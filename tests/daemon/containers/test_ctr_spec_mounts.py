"""The runtime mounts of a container's spec: binds, volumes and image mounts at the sources the wiring
resolved, with moby's options (rbind or bind, rro or ro, the propagation), and tmpfs mounts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.daemon.containers import spec as spec_module
from harness.daemon.containers.mountparse import parse_mount_raw, parse_mount_spec
from harness.daemon.containers.spec import _mounts, kernel_supports_rro
from harness.daemon.errors import ApiError

from .conftest import make_container


@pytest.mark.parametrize(
    ("release", "supported"),
    [
        ("6.18.44-fc-v1300", True),
        ("5.12.0", True),
        ("5.11.22-generic", False),
        ("4.19.0-26-amd64", False),
        ("6", True),
    ],
)
def test_kernel_supports_rro(release: str, supported: bool) -> None:
    assert kernel_supports_rro(release) is supported


def _point(tmp_path: Path, **mount: Any) -> dict[str, Any]:
    return parse_mount_spec({"Type": "bind", "Source": str(tmp_path), "Target": "/d", **mount})


def test_bind_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = make_container(str(tmp_path))
    c.mounts = [
        _point(tmp_path, ReadOnly=True),
        {**_point(tmp_path, ReadOnly=True, BindOptions={"ReadOnlyNonRecursive": True}), "Destination": "/e"},
        {
            **_point(tmp_path, BindOptions={"NonRecursive": True, "Propagation": "rslave"}),
            "Destination": "/f",
        },
    ]
    options = {m["destination"]: m["options"] for m in _mounts(c)}
    assert options == {
        "/d": ["rbind", "rro", "rprivate"],
        "/e": ["rbind", "ro", "rprivate"],
        "/f": ["bind", "rw", "rslave"],
    }
    monkeypatch.setattr(spec_module, "kernel_supports_rro", lambda: False)
    assert _mounts(c)[0]["options"] == ["rbind", "ro", "rprivate"]
    c.mounts = [_point(tmp_path, ReadOnly=True, BindOptions={"ReadOnlyForceRecursive": True})]
    with pytest.raises(ApiError) as err:
        _mounts(c)
    assert err.value.status == 500


@pytest.mark.parametrize(
    ("mount", "message"),
    [
        (
            {"BindOptions": {"ReadOnlyNonRecursive": True}},
            "mount options conflict: !ReadOnly && BindOptions.ReadOnlyNonRecursive",
        ),
        (
            {"BindOptions": {"ReadOnlyForceRecursive": True}},
            "mount options conflict: !ReadOnly && BindOptions.ReadOnlyForceRecursive",
        ),
        (
            {"ReadOnly": True, "BindOptions": {"ReadOnlyNonRecursive": True, "ReadOnlyForceRecursive": True}},
            "mount options conflict: ReadOnlyNonRecursive && BindOptions.ReadOnlyForceRecursive",
        ),
    ],
)
def test_conflicting_read_only_options_fail_the_start(
    tmp_path: Path, mount: dict[str, Any], message: str
) -> None:
    c = make_container(str(tmp_path))
    c.mounts = [_point(tmp_path, **mount)]
    with pytest.raises(ApiError) as err:
        _mounts(c)
    assert (err.value.status, err.value.message) == (500, message)


def test_sources_tmpfs_and_order(tmp_path: Path) -> None:
    c = make_container(str(tmp_path))
    c.host_config["Tmpfs"] = {"/run": "size=1m"}
    volume = parse_mount_raw("v:/a/b")
    volume.update(Source="/volumes/v/_data")
    c.mounts = [
        volume,
        parse_mount_raw(f"{tmp_path}:/a"),
        parse_mount_raw("w:/run"),  # a tmpfs takes the place of a volume at its destination
        parse_mount_spec(
            {"Type": "tmpfs", "Target": "/t", "ReadOnly": True, "TmpfsOptions": {"Mode": 0o700}}
        ),
    ]
    mounts = _mounts(c, {"/a/b": "/volumes/v/_data/sub"})
    assert [(m["destination"], m["type"], m["source"]) for m in mounts] == [
        ("/a", "bind", str(tmp_path)),
        ("/a/b", "bind", "/volumes/v/_data/sub"),
        ("/run", "tmpfs", "tmpfs"),
        ("/t", "tmpfs", "tmpfs"),
    ]
    assert mounts[1]["options"] == ["rbind", "rw"]  # a volume has no propagation of its own
    assert mounts[2]["options"] == ["noexec", "nosuid", "nodev", "rprivate", "size=1m"]
    assert mounts[3]["options"] == ["noexec", "nosuid", "nodev", "rprivate", "ro", "mode=700"]
