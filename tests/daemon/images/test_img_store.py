"""ImageStore: layers, tar-split, load/save/import/delete, restart and crash safety, rootfs mounts."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import signal
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from harness.daemon.errors import ApiError
from harness.daemon.images.changes import ChangeError, apply_changes, empty_config
from harness.daemon.images.reference import parse_normalized_named
from harness.daemon.images.store import ImageStore, LoadError, StorageInitError, chain_ids

from .conftest import make_tar

DRIVERS = ["overlay2", "vfs"]


def save_archive(layers: list[bytes], tags: list[str] | None, config_extra: dict | None = None) -> bytes:
    diff_ids = [
        "sha256:" + hashlib.sha256(gzip.decompress(lay) if lay[:2] == b"\x1f\x8b" else lay).hexdigest()
        for lay in layers
    ]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            **(config_extra or {}),
        }
    ).encode()
    names = [f"l{i}/layer.tar" for i in range(len(layers))]
    manifest = json.dumps([{"Config": "config.json", "RepoTags": tags, "Layers": names}]).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in [
            ("config.json", config),
            *zip(names, layers, strict=True),
            ("manifest.json", manifest),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def load(store: ImageStore, archive: bytes) -> list[str]:
    lines: list[str] = []
    store.load(io.BytesIO(archive), lines.append)
    return lines


@pytest.fixture(params=DRIVERS)
def store(request: pytest.FixtureRequest, no_mounts_left: Path) -> ImageStore:
    return ImageStore(str(no_mounts_left / "root"), request.param)


BASE = make_tar(
    [
        ("bin", "d", b""),
        ("bin/sh", "f", b"#!shell\n" * 100),
        ("etc", "d", b""),
        ("etc/passwd", "f", b"root:x:0:0\n"),
        ("etc/link", "l", "passwd"),
        ("etc/hard", "h", "etc/passwd"),
        ("opq", "d", b""),
        ("opq/old", "f", b"old"),
        ("a/very/" + "long/" * 30 + "name", "f", b"long"),
    ]
)
TOP = make_tar(
    [
        ("etc/.wh.passwd", "f", b""),
        ("opq", "d", b""),
        ("opq/.wh..wh..opq", "f", b""),
        ("opq/new", "f", b"new"),
        ("etc/added", "f", b"added"),
    ]
)


# -- layers and tar-split ---------------------------------------------------------------------------
@pytest.mark.parametrize("compress", [False, True])
def test_layer_tar_reassembled_byte_for_byte(store: ImageStore, compress: bool) -> None:
    base = store.register_layer(io.BytesIO(gzip.compress(BASE) if compress else BASE))
    top = store.register_layer(io.BytesIO(TOP), base.chain_id)
    assert base.diff_id == "sha256:" + hashlib.sha256(BASE).hexdigest()
    assert b"".join(store.layer_tar(base.chain_id)) == BASE
    assert b"".join(store.layer_tar(top.chain_id)) == TOP
    assert top.chain_id == chain_ids([base.diff_id, top.diff_id])[-1]


def test_overlay_diff_dirs_and_sizes(no_mounts_left: Path) -> None:
    store = ImageStore(str(no_mounts_left / "root"), "overlay2")
    base = store.register_layer(io.BytesIO(BASE))
    top = store.register_layer(io.BytesIO(TOP), base.chain_id)
    diff = Path(store.driver.root(top.cache_id))
    assert stat.S_ISCHR(os.lstat(diff / "etc" / "passwd").st_mode)
    assert os.getxattr(diff / "opq", "trusted.overlay.opaque") == b"y"
    # overlay2 sizes are disk usage: files once per inode plus symlink target lengths
    assert base.size == len(b"#!shell\n" * 100) + len(b"root:x:0:0\n") + len("passwd") + 3 + 4
    root = no_mounts_left / "root"
    assert (
        root / "image" / "overlay2" / "layerdb" / "sha256" / top.chain_id[7:] / "cache-id"
    ).read_text() == top.cache_id
    assert (root / "overlay2" / top.cache_id / "lower").read_text().startswith("l/")


def test_vfs_layers_are_full_copies_with_whiteouts_applied(no_mounts_left: Path) -> None:
    store = ImageStore(str(no_mounts_left / "root"), "vfs")
    base = store.register_layer(io.BytesIO(BASE))
    top = store.register_layer(io.BytesIO(TOP), base.chain_id)
    layer_dir = Path(store.driver.root(top.cache_id))
    assert not (layer_dir / "etc" / "passwd").exists() and (layer_dir / "bin" / "sh").exists()
    assert sorted(os.listdir(layer_dir / "opq")) == ["new"]
    assert base.size == len(b"#!shell\n" * 100) + len(b"root:x:0:0\n") + 3 + 4  # tar header sizes
    assert os.readlink(Path(store.driver.root(base.cache_id)) / "etc" / "link") == "passwd"


def test_same_layer_registered_once(store: ImageStore) -> None:
    first = store.register_layer(io.BytesIO(BASE))
    second = store.register_layer(io.BytesIO(BASE))
    assert first == second and len(store.driver.ids()) == 1


# -- load / resolve / tag / delete ------------------------------------------------------------------
def test_load_resolve_and_delete(store: ImageStore) -> None:
    lines = load(store, save_archive([BASE, TOP], ["busybox:latest"]))
    assert lines == ["Loaded image: busybox:latest\n"]
    image = store.resolve("busybox")
    assert store.resolve(image.id) is image and store.resolve(image.id[7:19]) is image
    assert store.resolve("docker.io/library/busybox:latest") is image
    assert image.config["config"]["Cmd"] == ["sh"]
    with pytest.raises(ApiError) as info:
        store.resolve("nosuch")
    assert (info.value.status, info.value.message) == (404, "No such image: nosuch:latest")
    with pytest.raises(ApiError) as info:
        store.resolve("Nope")
    assert info.value.status == 400
    store.tag(image, parse_normalized_named("other:v1"))
    assert store.repo_tags(image.id) == ["busybox:latest", "other:v1"]
    assert store.delete("other:v1") == [{"Untagged": "other:v1"}]
    records = store.delete("busybox")
    chains = chain_ids(image.diff_ids)
    assert records == [
        {"Untagged": "busybox:latest"},
        {"Deleted": image.id},
        {"Deleted": chains[1]},
        {"Deleted": chains[0]},
    ]
    assert store.count() == 0 and store.driver.ids() == [] and store.layers == {}
    root = Path(store.data_root) / "image" / store.driver_name
    assert os.listdir(root / "imagedb" / "content" / "sha256") == []
    assert json.loads((root / "repositories.json").read_text()) == {"Repositories": {}}


def test_delete_conflicts(store: ImageStore) -> None:
    load(store, save_archive([BASE], ["one:latest"]))
    image = store.resolve("one")
    store.tag(image, parse_normalized_named("two"))
    with pytest.raises(ApiError) as info:
        store.delete(image.id[7:19])
    assert info.value.status == 409 and "image is referenced in multiple repositories" in info.value.message
    store.in_use_by = lambda image_id: ["c" * 64] if image_id == image.id else []
    store.container_running = lambda cid: True
    with pytest.raises(ApiError) as info:
        store.delete(image.id, force=True)
    assert info.value.message == (
        f"conflict: unable to delete {image.id[7:19]} (cannot be forced) - image is "
        f"being used by running container {'c' * 12}"
    )


def test_load_errors(store: ImageStore) -> None:
    bad = save_archive(
        [BASE], ["x:latest"], {"rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}}
    )
    with pytest.raises(LoadError, match=r'invalid diffID for layer 0: expected "sha256:0+", got "sha256:'):
        load(store, bad)
    assert store.layers == {} and store.driver.ids() == []  # the unpacked layer was released
    with pytest.raises(LoadError, match="cannot load windows image on linux"):
        load(store, save_archive([BASE], ["x:latest"], {"os": "windows"}))


def test_save_round_trip(store: ImageStore) -> None:
    load(store, save_archive([BASE, gzip.compress(TOP)], ["rt:1"]))
    image = store.resolve("rt:1")
    path = store.save(["rt:1"])
    try:
        with open(path, "rb") as fh:
            archive = fh.read()
    finally:
        os.unlink(path)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        blobs = {n: tar.extractfile(n).read() for n in names if n.startswith("blobs/sha256/")}  # type: ignore[union-attr]
    assert {"manifest.json", "index.json", "oci-layout", "repositories"} <= names
    assert manifest[0]["RepoTags"] == ["rt:1"]
    for path_, diff_id in zip(manifest[0]["Layers"], image.diff_ids, strict=True):
        assert "sha256:" + hashlib.sha256(blobs[path_]).hexdigest() == diff_id
    store.delete("rt:1")
    assert load(store, archive) == ["Loaded image: rt:1\n"]
    assert store.resolve("rt:1").id == image.id


def test_import_with_changes(store: ImageStore) -> None:
    image = store.import_image(
        io.BytesIO(BASE),
        parse_normalized_named("imp:v1"),
        ['CMD ["sh"]', "ENV A=b", "WORKDIR x", "EXPOSE 80 53/udp"],
        "Imported from -",
    )
    config = image.config
    assert list(config) == sorted(config)  # Go marshals the image config's keys sorted
    assert config["config"]["Cmd"] == ["sh"] and config["config"]["Env"] == ["A=b"]
    assert config["config"]["WorkingDir"] == "/x"
    assert config["config"]["ExposedPorts"] == {"53/udp": {}, "80/tcp": {}}
    assert config["history"] == [{"created": config["created"], "comment": "Imported from -"}]
    assert image.last_updated
    with pytest.raises(ApiError, match="RUN is not a valid change command"):
        store.import_image(io.BytesIO(BASE), None, ["RUN x"], "m")


# -- restart and crash safety --------------------------------------------------------------------------
def test_state_survives_reopen(store: ImageStore) -> None:
    load(store, save_archive([BASE, TOP], ["keep:me"]))
    image = store.resolve("keep:me")
    reopened = ImageStore(store.data_root, store.driver_name)
    assert reopened.resolve("keep:me").id == image.id
    assert reopened.layers == store.layers


def test_reopen_cleans_crash_leftovers(store: ImageStore) -> None:
    load(store, save_archive([BASE], ["kept:1"]))
    root = Path(store.data_root) / "image" / store.driver_name
    # a half-assembled layer, an orphan driver dir, a torn config, a tag to a missing image, a temp file
    (root / "layerdb" / "tmp" / "write-set-dead").mkdir()
    store.driver.create("f" * 64, None)
    (root / "imagedb" / "content" / "sha256" / ("a" * 64)).write_bytes(b'{"rootfs":')
    (root / "imagedb" / "content" / "sha256" / ".tmp-partial").write_bytes(b"{")
    repos = json.loads((root / "repositories.json").read_text())
    repos["Repositories"]["ghost"] = {"ghost:latest": "sha256:" + "b" * 64}
    (root / "repositories.json").write_text(json.dumps(repos))
    reopened = ImageStore(store.data_root, store.driver_name)
    assert os.listdir(root / "layerdb" / "tmp") == []
    assert "f" * 64 not in reopened.driver.ids()
    assert [i.id for i in reopened.all_images()] == [store.resolve("kept:1").id]
    assert reopened.references(store.resolve("kept:1").id)[0].familiar_string() == "kept:1"
    assert not (root / "imagedb" / "content" / "sha256" / ("a" * 64)).exists()
    with pytest.raises(ApiError):
        reopened.resolve("ghost")


_CRASHER = """
import io, sys
from harness.daemon.images.store import ImageStore
store = ImageStore(sys.argv[1], sys.argv[2])
archive = open(sys.argv[3], "rb").read()
print("ready", flush=True)
i = 0
while True:
    store.load(io.BytesIO(archive), lambda _: None)
    store.delete("crash:test")
    i += 1
"""


@pytest.mark.parametrize("driver", DRIVERS)
def test_kill_9_never_leaves_a_half_written_image(tmp_path: Path, driver: str) -> None:
    """SIGKILL a process that loads and deletes in a loop; every reopen must see a consistent store."""
    archive = tmp_path / "image.tar"
    archive.write_bytes(save_archive([BASE, TOP], ["crash:test"]))
    data_root = tmp_path / "root"
    script = tmp_path / "crash.py"
    script.write_text(_CRASHER)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    # a private mount namespace: overlay probes of a killed process can never leak into the host's table
    argv = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        sys.executable,
        str(script),
        str(data_root),
        driver,
        str(archive),
    ]
    for delay in (0.05, 0.12, 0.2, 0.31, 0.45, 0.6):
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env)
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        store = ImageStore(str(data_root), driver)
        for image in store.all_images():
            for chain in chain_ids(image.diff_ids):
                assert chain in store.layers, f"image {image.id} lost layer {chain}"
            assert hashlib.sha256(image.raw).hexdigest() == image.id[7:]
        referenced = {layer.cache_id for layer in store.layers.values()}
        assert set(store.driver.ids()) == referenced
        for layer in store.layers.values():
            assert b"".join(store.layer_tar(layer.chain_id))  # tar-split and files complete
        # a kill between "image written" and "tag written" leaves a dangling image, never a dangling tag
        for refs in store.repos.repos.values():
            assert all(image_id in store.images for image_id in refs.values())


# -- container root filesystems ----------------------------------------------------------------------
def test_rw_layer_overlay_mount(no_mounts_left: Path) -> None:
    store = ImageStore(str(no_mounts_left / "root"), "overlay2")
    load(store, save_archive([BASE, TOP], ["rw:1"]))
    image = store.resolve("rw:1")
    dirs = store.layer_dirs(image)
    assert len(dirs) == 2 and all(d.endswith("/diff") for d in dirs)
    store.create_rw_layer("c1", image)
    merged = store.mount_rootfs("c1")
    try:
        assert merged.endswith("/merged") and os.path.ismount(merged)
        assert sorted(os.listdir(Path(merged) / "opq")) == ["new"]
        assert not os.path.exists(Path(merged) / "etc" / "passwd")  # whited out by the top layer
        assert (Path(merged) / "etc" / "added").read_text() == "added"
        for rel in (".dockerenv", "etc/hosts", "etc/resolv.conf", "etc/hostname", "dev/pts", "proc", "sys"):
            assert os.path.lexists(Path(merged) / rel), rel
        assert os.readlink(Path(merged) / "etc" / "mtab") == "/proc/mounts"
        (Path(merged) / "written").write_text("by container")
        graph = store.graph_driver("c1", image)
        assert graph["Name"] == "overlay2" and graph["Data"]["MergedDir"] == merged
        assert graph["Data"]["LowerDir"].split(":")[0].endswith("-init/diff")
        assert (Path(graph["Data"]["UpperDir"]) / "written").exists()
    finally:
        store.unmount_rootfs("c1")
    assert not os.path.ismount(merged)
    store.remove_rw_layer("c1")
    assert store.mounts == {} and len(store.driver.ids()) == 2


def test_rw_layer_keeps_force_deleted_image_layers(no_mounts_left: Path) -> None:
    store = ImageStore(str(no_mounts_left / "root"), "vfs")
    load(store, save_archive([BASE], ["gone:1"]))
    image = store.resolve("gone:1")
    store.create_rw_layer("c2", image)
    rootfs = store.mount_rootfs("c2")
    assert (Path(rootfs) / "bin" / "sh").exists() and (Path(rootfs) / ".dockerenv").exists()
    store.delete("gone:1", force=True)
    assert store.layers  # still held by the container's layer
    store.remove_rw_layer("c2")
    assert store.layers == {} and store.driver.ids() == []


def test_unknown_driver_is_a_startup_error(tmp_path: Path) -> None:
    with pytest.raises(
        StorageInitError, match=r"^error initializing graphdriver: driver not supported: zfs2$"
    ):
        ImageStore(str(tmp_path), "zfs2")


def test_prior_driver_is_reused(tmp_path: Path) -> None:
    ImageStore(str(tmp_path), "vfs").register_layer(io.BytesIO(BASE))
    assert ImageStore(str(tmp_path)).driver_name == "vfs"


# -- helpers -----------------------------------------------------------------------------------------------
def test_changes() -> None:
    config = apply_changes(
        empty_config(),
        [
            'ENV A=1 B="two words"',
            "LABEL x=y",
            "USER 1000:1000",
            "ENTRYPOINT /bin/app --flag",
            "VOLUME /data",
            "STOPSIGNAL SIGTERM",
            "ONBUILD RUN true",
            "HEALTHCHECK CMD true",
        ],
    )
    assert config["Env"] == ["A=1", "B=two words"] and config["Labels"] == {"x": "y"}
    assert config["Entrypoint"] == ["/bin/sh", "-c", "/bin/app --flag"] and config["Cmd"] is None
    assert config["Volumes"] == {"/data": {}} and config["StopSignal"] == "SIGTERM"
    assert config["OnBuild"] == ["RUN true"] and config["Healthcheck"] == {"Test": ["CMD-SHELL", "true"]}
    assert list(config)[:3] == ["Hostname", "Domainname", "User"]
    for bad, message in [
        ("FROM x", "FROM is not a valid change command"),
        ("USER", "USER requires exactly one"),
        ("STOPSIGNAL NOPE", "Invalid signal: NOPE"),
    ]:
        with pytest.raises(ChangeError, match=message):
            apply_changes(empty_config(), [bad])


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def warning(self, text: str) -> None:
        self.lines.append(("warning", text))

    def info(self, text: str) -> None:
        self.lines.append(("info", text))

    def error(self, text: str) -> None:
        self.lines.append(("error", text))


def test_falls_back_to_vfs_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.daemon.images import store as store_module

    monkeypatch.setattr(
        store_module, "overlay_supported", lambda _root: "failed to mount overlay: no such device"
    )
    log = _Log()
    store = ImageStore(str(tmp_path), "", log)
    assert store.driver_name == "vfs" and store.driver_status() is None
    assert (
        "warning",
        "[graphdriver] overlay2 is not supported here (failed to mount overlay: no such device); "
        "falling back to vfs",
    ) in log.lines
    with pytest.raises(
        StorageInitError, match=r"^error initializing graphdriver: driver not supported: overlay2$"
    ):
        ImageStore(str(tmp_path / "other"), "overlay2", log)


def test_overlay2_is_the_default_here(tmp_path: Path) -> None:
    store = ImageStore(str(tmp_path))
    assert store.driver_name == "overlay2"
    assert [k for k, _ in store.driver_status() or []] == [
        "Backing Filesystem",
        "Supports d_type",
        "Using metacopy",
        "Native Overlay Diff",
        "userxattr",
    ]
