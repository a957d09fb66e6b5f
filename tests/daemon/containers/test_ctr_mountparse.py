"""moby's Linux mount parser: -v strings, Mounts entries, --volumes-from, tmpfs options and destinations,
and the create router's per-API-version gates, with dockerd's words and statuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.daemon.containers.mountparse import (
    api_version_gates,
    is_local,
    parse_mount_raw,
    parse_mount_spec,
    parse_volumes_from,
    public_view,
    tmpfs_options,
    validate_mount_config,
    validate_tmpfs_destination,
)
from harness.daemon.errors import ApiError


@pytest.mark.parametrize(
    ("raw", "kind", "name", "source", "dest", "rw", "mode", "propagation"),
    [
        ("/data", "volume", "", "", "/data", True, "", ""),
        ("named:/data", "volume", "named", "", "/data", True, "", ""),
        ("named:/data:ro,nocopy", "volume", "named", "", "/data", False, "ro,nocopy", ""),
        ("/src/./x/:/dst//y/", "bind", "", "/src/x", "/dst/y", True, "", "rprivate"),
        ("/src:/dst:ro,rslave,z", "bind", "", "/src", "/dst", False, "ro,rslave,z", "rslave"),
    ],
)
def test_raw_binds(
    raw: str, kind: str, name: str, source: str, dest: str, rw: bool, mode: str, propagation: str
) -> None:
    point = parse_mount_raw(raw)
    assert (point["Type"], point["Name"], point["Source"], point["Destination"]) == (kind, name, source, dest)
    assert (point["RW"], point["Mode"], point["Propagation"]) == (rw, mode, propagation)


def test_raw_modes_become_the_mounts_entry() -> None:
    spec = parse_mount_raw("v:/d:nocopy", volume_driver="drv")["Spec"]
    assert spec["VolumeOptions"] == {"DriverConfig": {"Name": "drv"}, "NoCopy": True}
    assert parse_mount_raw("v:/d:nocopy")["CopyData"] is False
    assert parse_mount_raw("/s:/d:shared")["Spec"]["BindOptions"] == {"Propagation": "shared"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (":/x", "invalid volume specification: ':/x'"),
        ("/x:", "invalid volume specification: '/x:'"),
        ("/foo:rw", "invalid volume specification: '/foo:rw'"),
        ("a:b:c:d", "invalid volume specification: 'a:b:c:d'"),
        ("/s:/d:rw,ro", "invalid mode: rw,ro"),
        ("/s:/d:bogus", "invalid mode: bogus"),
        (
            "v:relative",
            "invalid volume specification: 'v:relative': invalid mount config for type \"volume\": "
            "invalid mount path: 'relative' mount path must be absolute",
        ),
        (
            "/s:/",
            "invalid volume specification: '/s:/': invalid mount config for type \"bind\": "
            "invalid specification: destination can't be '/'",
        ),
    ],
)
def test_raw_errors_are_plain_500s(raw: str, message: str) -> None:
    with pytest.raises(ApiError) as err:
        parse_mount_raw(raw)
    assert (err.value.status, err.value.message) == (500, message)


def test_a_missing_bind_source_is_only_checked_for_mounts(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    assert parse_mount_raw(f"{missing}:/d")["Source"] == missing  # -v creates it at start
    with pytest.raises(ApiError) as err:
        parse_mount_spec({"Type": "bind", "Source": missing, "Target": "/d"})
    assert (
        err.value.message
        == f'invalid mount config for type "bind": bind source path does not exist: {missing}'
    )
    created = {"Type": "bind", "Source": missing, "Target": "/d", "BindOptions": {"CreateMountpoint": True}}
    assert parse_mount_spec(created)["Propagation"] == "rprivate"


@pytest.mark.parametrize(
    ("mount", "reason"),
    [
        ({"Type": "volume"}, "field Target must not be empty"),
        ({"Type": "volume", "Target": "/"}, "invalid specification: destination can't be '/'"),
        ({"Type": "bind", "Target": "/d"}, "field Source must not be empty"),
        (
            {"Type": "bind", "Source": "rel", "Target": "/d"},
            "invalid mount path: 'rel' mount path must be absolute",
        ),
        (
            {"Type": "bind", "Source": "/", "Target": "/d", "BindOptions": {"Propagation": "x"}},
            "invalid propagation mode: x",
        ),
        (
            {"Type": "bind", "Source": "/", "Target": "/d", "VolumeOptions": {}},
            "field VolumeOptions must not be specified",
        ),
        ({"Type": "volume", "Target": "/d", "BindOptions": {}}, "field BindOptions must not be specified"),
        (
            {"Type": "volume", "Target": "/d", "VolumeOptions": {"Subpath": "x"}},
            "must not set Subpath when using anonymous volumes",
        ),
        (
            {"Type": "volume", "Source": "v", "Target": "/d", "VolumeOptions": {"Subpath": "../x"}},
            "subpath must be a relative path within the volume",
        ),
        (
            {"Type": "volume", "Target": "/d", "ReadOnly": True},
            "must not set ReadOnly mode when using anonymous volumes",
        ),
        ({"Type": "tmpfs", "Source": "x", "Target": "/d"}, "field Source must not be specified"),
        (
            {"Type": "tmpfs", "Target": "/d", "TmpfsOptions": {"Options": [["uid", "1"]]}},
            "invalid option: uid",
        ),
        ({"Type": "image", "Target": "/d"}, "field Source must not be empty"),
        (
            {"Type": "image", "Source": "i", "Target": "/d", "ImageOptions": {"Subpath": "/abs"}},
            "subpath must be a relative path within the volume",
        ),
        ({"Type": "npipe", "Target": "/d"}, "mount type unknown"),
    ],
)
def test_mount_config_errors(mount: dict[str, Any], reason: str) -> None:
    with pytest.raises(ApiError) as err:
        validate_mount_config(mount)
    assert (err.value.status, err.value.message) == (
        400,
        f'invalid mount config for type "{mount["Type"]}": {reason}',
    )


def test_tmpfs_options_and_destinations() -> None:
    opts = {"SizeBytes": 3 << 20, "Mode": 0o1777, "Options": [["exec"], ["noexec"]]}
    assert tmpfs_options(opts, read_only=True) == "ro,mode=1777,size=3m,exec,noexec"
    assert tmpfs_options({"SizeBytes": 1000}, read_only=False) == "size=1000"
    for dest, message in (
        ("rel", "invalid mount path: 'rel' mount path must be absolute"),
        ("//", "invalid specification: destination can't be '/'"),
    ):
        with pytest.raises(ApiError) as err:
            validate_tmpfs_destination(dest)
        assert err.value.message == message


def test_volumes_from() -> None:
    assert parse_volumes_from("c") == ("c", "rw") and parse_volumes_from("c:ro") == ("c", "ro")
    for entry, message in (
        ("", "volumes-from specification cannot be an empty string"),
        ("c:rshared", "invalid mode: rshared"),
        ("c:nocopy", "invalid mode: nocopy"),
    ):
        with pytest.raises(ApiError) as err:
            parse_volumes_from(entry)
        assert (err.value.status, err.value.message) == (400, message)


@pytest.mark.parametrize(
    ("path", "local"),
    [("a/b", True), ("a/../b", True), ("", False), ("/a", False), ("../a", False), ("a/../../b", False)],
)
def test_is_local(path: str, local: bool) -> None:
    assert is_local(path) is local


@pytest.mark.parametrize(
    ("version", "mount", "message"),
    [
        (
            (1, 43),
            {"Type": "bind", "Source": "/", "Target": "/d", "BindOptions": {"ReadOnlyForceRecursive": True}},
            "BindOptions.ReadOnlyForceRecursive needs API v1.44 or newer",
        ),
        (
            (1, 44),
            {"Type": "volume", "Source": "v", "Target": "/d", "VolumeOptions": {"Subpath": "s"}},
            "VolumeOptions.Subpath needs API v1.45 or newer",
        ),
        (
            (1, 47),
            {"Type": "image", "Source": "i", "Target": "/d"},
            'Mount type "Image" needs API v1.48 or newer',
        ),
        (
            (1, 51),
            {"Type": "tmpfs", "Target": "/d", "BindOptions": {}},
            'BindOptions must not be specified on mount type "tmpfs"',
        ),
    ],
)
def test_api_version_gates(version: tuple[int, int], mount: dict[str, Any], message: str) -> None:
    with pytest.raises(ApiError) as err:
        api_version_gates({"Mounts": [mount]}, version)
    assert (err.value.status, err.value.message) == (400, message)


def test_old_clients_get_non_recursive_read_only_and_lose_newer_fields() -> None:
    mount = {
        "Type": "bind",
        "Source": "/",
        "Target": "/d",
        "BindOptions": {"CreateMountpoint": True, "NonRecursive": True},
    }
    stale = {"Type": "tmpfs", "Target": "/t", "VolumeOptions": {}}
    host_config = {"Mounts": [mount, stale]}
    assert api_version_gates(host_config, (1, 39)) is True
    assert mount["BindOptions"] == {} and stale["VolumeOptions"] is None
    assert api_version_gates({"Mounts": []}, (1, 44)) is False


def test_public_view_is_inspects_shape() -> None:
    point = parse_mount_raw("/s:/d:ro")
    point["SkipMountpointCreation"] = False
    assert public_view(point) == {
        "Type": "bind",
        "Source": "/s",
        "Destination": "/d",
        "Mode": "ro",
        "RW": False,
        "Propagation": "rprivate",
    }
    volume = {
        "Type": "volume",
        "Name": "v",
        "Source": "/x",
        "Destination": "/d",
        "Driver": "local",
        "Mode": "z",
        "RW": True,
        "Propagation": "",
    }
    assert list(public_view(volume)) == [
        "Type",
        "Name",
        "Source",
        "Destination",
        "Driver",
        "Mode",
        "RW",
        "Propagation",
    ]
