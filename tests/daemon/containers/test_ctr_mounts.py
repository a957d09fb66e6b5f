"""Mount wiring: inspect's Mounts from Binds, Mounts and the image's Volumes; the rootfs and volumes
mounted at start and released at exit; anonymous volumes taken along by rm -v."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.daemon.containers.mountparse import public_view
from harness.daemon.containers.mounts import MountWiring, source_mount, volume_names
from harness.daemon.errors import ApiError

from .conftest import make_container


@dataclass
class _Volume:
    name: str
    anonymous: bool


class FakeVolumes:
    """What the wiring asks of the volume store, recorded."""

    def __init__(self, root: Path, fail_mount: str = "") -> None:
        self.root = root
        self.volumes: dict[str, _Volume] = {}
        self.active: dict[str, set[str]] = {}
        self.calls: list[tuple[str, ...]] = []
        self.fail_mount = fail_mount
        self.count = 0

    def create(
        self,
        name: str,
        labels: Any = None,
        options: Any = None,
        driver: str = "local",
        anonymous: bool = False,
    ) -> _Volume:
        if driver != "local":
            raise ApiError(404, f'error looking up volume plugin {driver}: plugin "{driver}" not found')
        if not name:
            self.count += 1
            name = f"anon{self.count}"
        return self.volumes.setdefault(name, _Volume(name, anonymous))

    def path(self, name: str) -> str:
        return str(self.root / name / "_data")

    def mount(self, name: str, cid: str) -> None:
        if name == self.fail_mount:
            raise OSError("mount failed")
        self.calls.append(("mount", name))

    def unmount(self, name: str, cid: str) -> None:
        self.calls.append(("unmount", name))

    def get(self, name: str) -> _Volume:
        return self.volumes[name]

    def copy_up_into(self, target: str, source: str) -> None:
        self.calls.append(("copy_up", target, source))

    def remove(self, name: str) -> None:
        self.calls.append(("remove", name))
        del self.volumes[name]


class FakeLayers:
    def __init__(self, rootfs: str) -> None:
        self.rootfs = rootfs
        self.calls: list[tuple[str, str]] = []

    def mount_rootfs(self, cid: str) -> str:
        self.calls.append(("mount_rootfs", cid))
        return self.rootfs

    def unmount_rootfs(self, cid: str) -> None:
        self.calls.append(("unmount_rootfs", cid))

    def remove_rw_layer(self, cid: str) -> None:
        self.calls.append(("remove_rw_layer", cid))


def _wiring(
    tmp_path: Path, data_root: str = "/var/lib/refd", **volume_options: Any
) -> tuple[MountWiring, FakeVolumes, FakeLayers]:
    volumes = FakeVolumes(tmp_path / "volumes", **volume_options)
    layers = FakeLayers(str(tmp_path / "rootfs"))
    daemon = SimpleNamespace(
        volumes=volumes, images=SimpleNamespace(layers=layers), config={"data-root": data_root}
    )
    return MountWiring(daemon), volumes, layers  # type: ignore[arg-type]


def test_binds_mounts_and_image_volumes_become_inspects_mounts(tmp_path: Path) -> None:
    wiring, volumes, _ = _wiring(tmp_path)
    c = make_container(str(tmp_path), Volumes={"/data": {}, "/cache": {}, "/run": {}})
    c.host_config["Binds"] = ["/srv:/srv:ro,rshared", "named:/data"]
    c.host_config["Mounts"] = [
        {"Type": "volume", "Target": "/v", "VolumeOptions": {"NoCopy": True}},
        {"Type": "bind", "Source": "/etc", "Target": "/host-etc", "ReadOnly": True},
        {"Type": "tmpfs", "Target": "/run"},
    ]
    points = wiring.mount_points(c)
    assert public_view(points[0]) == {
        "Type": "bind",
        "Source": "/srv",
        "Destination": "/srv",
        "Mode": "ro,rshared",
        "RW": False,
        "Propagation": "rshared",
    }
    assert (points[1]["Name"], points[1]["Destination"], points[1]["Mode"], points[1]["RW"]) == (
        "named",
        "/data",
        "z",
        True,
    )
    assert (
        points[2]["Name"] == "anon1" and points[2]["CopyData"] is False and volumes.volumes["anon1"].anonymous
    )
    assert points[3]["Propagation"] == "rprivate" and points[3]["RW"] is False
    assert public_view(points[4]) == {
        "Type": "tmpfs",
        "Source": "",
        "Destination": "/run",
        "Mode": "",
        "RW": True,
        "Propagation": "",
    }
    # /data is taken by the bind, /run by the tmpfs: only /cache gets an anonymous volume from the image
    assert [(p["Destination"], p["Name"], p["Mode"]) for p in points[5:]] == [("/cache", "anon2", "")]
    c.mounts = points
    assert volume_names(c) == ["named", "anon1", "anon2"]


@pytest.mark.parametrize(
    ("binds", "mounts", "message"),
    [
        (["/a:/x", "/b:/x"], [], "Duplicate mount point: /x"),
        (["/a:/x"], [{"Type": "volume", "Target": "/x/"}], "Duplicate mount point: /x/"),
        (["/a:/t"], [], "Duplicate mount point: /t"),  # --tmpfs /t
    ],
)
def test_two_mounts_at_one_destination_are_refused(
    tmp_path: Path, binds: list[str], mounts: list[dict[str, Any]], message: str
) -> None:
    wiring, _, _ = _wiring(tmp_path)
    c = make_container(str(tmp_path))
    c.host_config.update(Binds=binds, Mounts=mounts, Tmpfs={"/t": ""})
    with pytest.raises(ApiError) as err:
        wiring.mount_points(c)
    assert (err.value.status, err.value.message) == (400, message)


@pytest.mark.parametrize(
    ("propagation", "expected"),
    [(None, "rslave"), ("", "rslave"), ("rslave", "rslave"), ("rshared", "rshared")]
    + [(p, None) for p in ("private", "rprivate", "slave", "shared")],
)
@pytest.mark.parametrize("where", ["root", "root/containers", "", "/"])
def test_binds_of_the_daemon_root_are_rslave_or_refused(
    tmp_path: Path, propagation: str | None, expected: str | None, where: str
) -> None:
    """moby's TestMountDaemonRoot: the root, a path in it, or a parent of it, by -v and by --mount."""
    root = tmp_path / "root"
    (root / "containers").mkdir(parents=True)
    source = where if where == "/" else str(tmp_path / where) if where else str(tmp_path)
    wiring, _, _ = _wiring(tmp_path, data_root=str(root))
    for how in ("bind", "mount"):
        c = make_container(str(tmp_path))
        if how == "bind":
            c.host_config["Binds"] = [f"{source}:/foo" + (f":{propagation}" if propagation else "")]
        else:
            options = None if propagation is None else {"Propagation": propagation}
            c.host_config["Mounts"] = [
                {"Type": "bind", "Source": source, "Target": "/foo", "BindOptions": options}
            ]
        if expected is None:
            with pytest.raises(ApiError) as err:
                wiring.mount_points(c)
            assert err.value.status == 400
            assert err.value.message == (
                'invalid mount config: must use either propagation mode "rslave" or "rshared" when mount '
                f'source is within the daemon root, daemon root: "{root}", bind mount source: "{source}", '
                f'propagation: "{propagation}"'
            )
        else:
            assert wiring.mount_points(c)[0]["Propagation"] == expected


def test_binds_elsewhere_keep_their_propagation(tmp_path: Path) -> None:
    wiring, _, _ = _wiring(tmp_path, data_root=str(tmp_path / "root"))
    c = make_container(str(tmp_path))
    c.host_config["Binds"] = ["/srv:/a", "/srv:/b:private", f"{tmp_path}/root2:/c"]  # a prefix, as in moby
    assert [p["Propagation"] for p in wiring.mount_points(c)] == ["rprivate", "private", "rslave"]


def test_read_only_binds_of_old_clients_stay_non_recursive(tmp_path: Path) -> None:
    wiring, _, _ = _wiring(tmp_path)
    c = make_container(str(tmp_path))
    c.host_config["Binds"] = ["/srv:/a:ro", "/srv:/b"]
    c.host_config["Mounts"] = [{"Type": "bind", "Source": "/", "Target": "/c", "ReadOnly": True}]
    points = wiring.mount_points(c, default_ro_non_recursive=True)
    flags = [(p["Spec"].get("BindOptions") or {}).get("ReadOnlyNonRecursive") for p in points]
    assert flags == [True, None, True]
    assert [
        (p["Spec"].get("BindOptions") or {}).get("ReadOnlyNonRecursive") for p in wiring.mount_points(c)
    ] == [
        None,
        None,
        None,
    ]


def test_volumes_from_copies_the_other_containers_mounts(tmp_path: Path) -> None:
    wiring, _, _ = _wiring(tmp_path)
    other = make_container(str(tmp_path), cid="o", name="other")
    other.host_config["Binds"] = ["data:/data", "/srv:/srv"]
    other.mounts = wiring.mount_points(other)
    containers = {"other": other}

    def get(ref: str) -> Any:
        if ref not in containers:
            raise ApiError(404, f"No such container: {ref}")
        return containers[ref]

    wiring.daemon.containers = SimpleNamespace(get=get)  # type: ignore[attr-defined]
    c = make_container(str(tmp_path))
    c.host_config["VolumesFrom"] = ["other:ro"]
    points = wiring.mount_points(c)
    assert [(p["Destination"], p["RW"], p["CopyData"]) for p in points] == [
        ("/data", False, False),
        ("/srv", False, False),
    ]
    c.host_config["VolumesFrom"] = ["nosuchcontainer"]
    with pytest.raises(ApiError) as err:
        wiring.mount_points(c)
    assert (err.value.status, err.value.message) == (400, "No such container: nosuchcontainer")
    c.host_config["VolumesFrom"] = ["other:rshared"]
    with pytest.raises(ApiError) as err:
        wiring.mount_points(c)
    assert (err.value.status, err.value.message) == (400, "invalid mode: rshared")


def test_a_volume_of_a_missing_driver_is_a_404(tmp_path: Path) -> None:
    wiring, _, _ = _wiring(tmp_path)
    c = make_container(str(tmp_path))
    c.host_config["Mounts"] = [
        {"Type": "volume", "Target": "/foo", "VolumeOptions": {"DriverConfig": {"Name": "nosuch"}}}
    ]
    with pytest.raises(ApiError) as err:
        wiring.mount_points(c)
    assert err.value.status == 404 and 'plugin "nosuch" not found' in err.value.message


@pytest.mark.parametrize("bind", ["a:/b:ro:extra", ":/x", "/x:", "/foo:rw"])
def test_a_bad_bind_is_dockerds_500(tmp_path: Path, bind: str) -> None:
    """("/x:" and "/foo:rw" are a destination with a mode and no source; moby's parser returns plain
    errors, which dockerd answers with 500)"""
    wiring, _, _ = _wiring(tmp_path)
    c = make_container(str(tmp_path))
    c.host_config["Binds"] = [bind]
    with pytest.raises(ApiError) as err:
        wiring.mount_points(c)
    assert (err.value.status, err.value.message) == (500, f"invalid volume specification: '{bind}'")


def test_start_mounts_rootfs_then_volumes_and_copies_nothing(tmp_path: Path) -> None:
    wiring, volumes, layers = _wiring(tmp_path)
    c = make_container(str(tmp_path))
    c.mounts = [
        {"Type": "volume", "Name": "a", "Destination": "/a"},
        {"Type": "volume", "Name": "b", "Destination": "/b", "NoCopy": True},
        {"Type": "bind", "Source": "/srv", "Destination": "/srv"},
    ]
    assert wiring.mount(c) == str(tmp_path / "rootfs")
    assert layers.calls == [("mount_rootfs", c.id)]
    assert volumes.calls == [("mount", "a"), ("mount", "b")]  # dockerd copies image content at create only
    volumes.calls.clear()
    wiring.unmount_volumes(c)
    wiring.unmount_rootfs(c)
    assert volumes.calls == [("unmount", "a"), ("unmount", "b")]
    assert layers.calls[-1] == ("unmount_rootfs", c.id)


def test_a_volume_that_fails_to_mount_releases_the_ones_before_it(tmp_path: Path) -> None:
    wiring, volumes, _ = _wiring(tmp_path, fail_mount="b")
    c = make_container(str(tmp_path))
    c.mounts = [{"Type": "volume", "Name": n, "Destination": f"/{n}"} for n in ("a", "b", "c")]
    with pytest.raises(OSError):
        wiring.mount(c)
    assert volumes.calls == [("mount", "a"), ("unmount", "a")]


def test_rm_v_takes_only_unused_anonymous_volumes(tmp_path: Path) -> None:
    wiring, volumes, layers = _wiring(tmp_path)
    for name, anonymous in (("anon", True), ("shared", True), ("named", False)):
        volumes.create(name, anonymous=anonymous)
    c = make_container(str(tmp_path))
    c.mounts = [{"Type": "volume", "Name": n} for n in ("anon", "shared", "named")]
    wiring.remove_layer(c)
    wiring.remove_anonymous_volumes(c, lambda name: ["other"] if name == "shared" else [])
    assert layers.calls == [("remove_rw_layer", c.id)]
    assert volumes.calls == [("remove", "anon")] and set(volumes.volumes) == {"shared", "named"}


def test_live_restore_marks_the_volumes_still_mounted(tmp_path: Path) -> None:
    wiring, volumes, _ = _wiring(tmp_path)
    c = make_container(str(tmp_path))
    c.mounts = [{"Type": "volume", "Name": "a"}]
    wiring.restore(c)
    assert volumes.active == {"a": {c.id}}


def test_without_volumes_or_layers_nothing_is_mounted(tmp_path: Path) -> None:
    wiring = MountWiring(SimpleNamespace())  # type: ignore[arg-type]
    c = make_container(str(tmp_path))
    c.mounts = [{"Type": "volume", "Name": "a", "Destination": "/a"}]
    assert wiring.mount(c) == ""
    c.host_config["Binds"] = ["named:/x"]
    with pytest.raises(ApiError) as err:
        wiring.mount_points(c)
    assert err.value.message == "volumes are not available"


@pytest.fixture
def volume_tree(tmp_path: Path) -> Path:
    """_data with file.txt, sub/, link -> sub, out -> /, up -> .. (the layout of moby's subpath tests)."""
    data = tmp_path / "vol" / "_data"
    (data / "sub").mkdir(parents=True)
    (data / "file.txt").write_text("foo\n")
    (data / "link").symlink_to("sub")
    (data / "out").symlink_to("/")
    (data / "up").symlink_to("..")
    return data


@pytest.mark.parametrize(
    ("subpath", "inside"),
    [("sub", "sub"), ("file.txt", "file.txt"), ("link", "sub"), ("sub/../file.txt", "file.txt")],
)
def test_a_subpath_resolves_inside_its_volume(volume_tree: Path, subpath: str, inside: str) -> None:
    from harness.daemon.containers.mounts import _safe_join

    assert _safe_join(str(volume_tree), subpath) == str(volume_tree / inside)


@pytest.mark.parametrize(
    ("subpath", "status", "start"),
    [
        ("nosuch", 404, "cannot access path {base}/nosuch: lstat {base}/nosuch: no such file or directory"),
        ("out", 400, "path concatenation escapes the base directory, base: {base}, subpath: out"),
        ("up", 400, "path concatenation escapes the base directory, base: {base}, subpath: up"),
    ],
)
def test_a_subpath_that_is_missing_or_leaves_is_refused(
    volume_tree: Path, subpath: str, status: int, start: str
) -> None:
    from harness.daemon.containers.mounts import _safe_join

    with pytest.raises(ApiError) as err:
        _safe_join(str(volume_tree), subpath)
    assert (err.value.status, err.value.message) == (status, start.format(base=volume_tree))


def test_start_resolves_subpaths(tmp_path: Path, volume_tree: Path) -> None:
    wiring, volumes, _ = _wiring(tmp_path)
    c = make_container(str(tmp_path))
    c.mounts = [
        {
            "Type": "volume",
            "Name": "vol",
            "Source": str(volume_tree),
            "Destination": "/v",
            "Spec": {"VolumeOptions": {"Subpath": "link"}},
            "CopyData": True,
        },
        {"Type": "bind", "Source": str(tmp_path / "made"), "Destination": "/made", "Spec": {}},
        {
            "Type": "bind",
            "Source": str(tmp_path / "not-made"),
            "Destination": "/nm",
            "Spec": {},
            "SkipMountpointCreation": True,
        },
    ]
    wiring.mount(c)
    assert wiring.sources(c) == {
        "/v": str(volume_tree / "sub"),
        "/made": str(tmp_path / "made"),
        "/nm": str(tmp_path / "not-made"),
    }
    assert (tmp_path / "made").is_dir() and not (
        tmp_path / "not-made"
    ).exists()  # -v creates, --mount does not
    wiring.unmount_volumes(c)
    assert wiring.sources(c) == {}
    c.mounts[0]["Spec"] = {"VolumeOptions": {"Subpath": "out"}}
    with pytest.raises(ApiError):
        wiring.mount(c)
    assert volumes.calls[-1] == ("unmount", "vol")  # what it mounted is released


def test_source_mount_finds_the_longest_mount_point() -> None:
    point, optional = source_mount("/proc/self/status")
    assert point == "/proc" and isinstance(optional, str)


def test_create_fills_empty_volumes_and_subpaths_from_the_image_once(tmp_path: Path) -> None:
    """moby populateVolumes: at create, each copying volume (its subpath) that is empty gets the image's
    content; a missing subpath is skipped, NoCopy and paths the image lacks are left alone."""
    wiring, volumes, layers = _wiring(tmp_path)
    rootfs = tmp_path / "rootfs"
    for d in ("www", "bin", "lib"):
        (rootfs / d).mkdir(parents=True)
    for name in ("a", "b", "c", "d", "e"):
        os.makedirs(volumes.path(name))
    os.makedirs(os.path.join(volumes.path("b"), "sub"))
    c = make_container(str(tmp_path))
    c.mounts = [
        {"Type": "volume", "Name": "a", "Destination": "/www", "CopyData": True},
        {
            "Type": "volume",
            "Name": "b",
            "Destination": "/bin",
            "CopyData": True,
            "Spec": {"VolumeOptions": {"Subpath": "sub"}},
        },
        {"Type": "volume", "Name": "c", "Destination": "/lib", "CopyData": False},
        {"Type": "volume", "Name": "d", "Destination": "/nothing-there", "CopyData": True},
        {
            "Type": "volume",
            "Name": "e",
            "Destination": "/www",
            "CopyData": True,
            "Spec": {"VolumeOptions": {"Subpath": "nosuch"}},
        },
    ]
    wiring.populate(c)
    copies = [call for call in volumes.calls if call[0] == "copy_up"]
    assert copies == [
        ("copy_up", volumes.path("a"), str(rootfs / "www")),
        ("copy_up", os.path.join(volumes.path("b"), "sub"), str(rootfs / "bin")),
    ]
    assert ("mount", "a") in volumes.calls and ("unmount", "a") in volumes.calls  # mounted for the copy only
    assert layers.calls == [("mount_rootfs", c.id), ("unmount_rootfs", c.id)]
    c.mounts = [
        {
            "Type": "volume",
            "Name": "a",
            "Destination": "/www",
            "CopyData": True,
            "Spec": {"VolumeOptions": {"Subpath": "../../.."}},
        }
    ]
    with pytest.raises(ApiError) as err:
        wiring.populate(c)
    assert err.value.status == 400 and err.value.message.startswith(
        "failed to populate volume: path concatenation"
    )
