"""ImageService: GetImage, tag, import, image events, restart and crash safety of its stores together."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.daemon.errors import ApiError
from harness.daemon.images.reference import parse_normalized_named
from harness.daemon.images.service import ImageService

from .conftest import BASE, DRIVERS, TOP, load_archive, save_archive


def test_resolve_as_dockerds_get_image(service: ImageService) -> None:
    load_archive(service, save_archive([BASE, TOP], ["busybox:latest"]))
    image = service.resolve("busybox")
    assert service.resolve(image.id) is image and service.resolve(image.id[7:19]) is image
    assert service.resolve("docker.io/library/busybox:latest") is image
    assert service.resolve(image.id[7:]) is image
    assert image.config["config"]["Cmd"] == ["sh"]
    for name, status, message in [
        ("nosuch", 404, "No such image: nosuch:latest"),
        ("Nope", 400, "invalid reference format: repository name (library/Nope) must be lowercase"),
        ("sha256:" + "0" * 64, 404, "No such image: sha256:" + "0" * 64),
    ]:
        with pytest.raises(ApiError) as info:
            service.resolve(name)
        assert (info.value.status, info.value.message) == (status, message)


def test_tag_moves_references_and_records_the_time(service: ImageService) -> None:
    events: list[tuple[str, str, dict[str, str]]] = []
    service.events = lambda action, actor, attrs: events.append((action, actor, attrs))
    load_archive(service, save_archive([BASE], ["one:1"], {"config": {"Labels": {"l": "v"}}}))
    image = service.resolve("one:1")
    assert not image.last_updated  # loaded, never tagged
    service.tag(image, parse_normalized_named("other"))
    assert service.references.repo_tags(image.id) == ["one:1", "other:latest"]
    assert image.last_updated and events[-1] == ("tag", image.id, {"l": "v", "name": "other:latest"})
    for bad, message in [
        (f"one@sha256:{'d' * 64}", "refusing to create a tag with a digest reference"),
        ("sha256:x", "refusing to create an ambiguous tag using digest algorithm as name"),
    ]:
        with pytest.raises(ApiError, match=message):
            service.tag(image, parse_normalized_named(bad))


def test_import_with_changes(service: ImageService) -> None:
    events: list[str] = []
    service.events = lambda action, _actor, _attrs: events.append(action)
    service.engine_version = "28.5.2-refd"
    image = service.import_image(
        io.BytesIO(BASE),
        parse_normalized_named("imp:v1"),
        ['CMD ["sh"]', "ENV A=b", "WORKDIR x", "EXPOSE 80 53/udp"],
        "Imported from -",
        arch="arm64",
        variant="v8",
    )
    config = image.config
    assert list(config) == sorted(config)  # Go marshals the image config's keys sorted
    assert config["config"]["Cmd"] == ["sh"] and config["config"]["Env"] == ["A=b"]
    assert config["config"]["WorkingDir"] == "/x"
    assert config["config"]["ExposedPorts"] == {"53/udp": {}, "80/tcp": {}}
    assert config["history"] == [{"created": config["created"], "comment": "Imported from -"}]
    assert (config["architecture"], config["variant"], config["docker_version"]) == (
        "arm64",
        "v8",
        "28.5.2-refd",
    )
    assert image.last_updated and events == ["tag", "import"]
    with pytest.raises(ApiError, match="RUN is not a valid change command"):
        service.import_image(io.BytesIO(BASE), None, ["RUN x"], "m")
    with pytest.raises(ApiError) as info:
        service.import_image(io.BytesIO(b"not a tar" * 200), None, [], "m")
    assert info.value.status == 500
    assert [layer.chain_id for layer in service.layers.all_layers()] == image.chain  # the failed layer went


def test_rw_layer_overlay_mount(no_mounts_left: Path) -> None:
    service = ImageService(str(no_mounts_left / "root"), "overlay2")
    load_archive(service, save_archive([BASE, TOP], ["rw:1"]))
    image = service.resolve("rw:1")
    layers = service.layers
    dirs = layers.layer_dirs(image.chain)
    assert len(dirs) == 2 and all(d.endswith("/diff") for d in dirs)
    layers.create_rw_layer("c1", image.top_chain)
    merged = layers.mount_rootfs("c1")
    try:
        assert merged.endswith("/merged") and os.path.ismount(merged)
        assert sorted(os.listdir(Path(merged) / "opq")) == ["new"]
        assert not os.path.exists(Path(merged) / "etc" / "passwd")  # whited out by the top layer
        assert (Path(merged) / "etc" / "added").read_text() == "added"
        for rel in (".dockerenv", "etc/hosts", "etc/resolv.conf", "etc/hostname", "dev/pts", "proc", "sys"):
            assert os.path.lexists(Path(merged) / rel), rel
        assert os.readlink(Path(merged) / "etc" / "mtab") == "/proc/mounts"
        (Path(merged) / "written").write_text("by container")
        graph = layers.graph_driver("c1")
        assert graph["Name"] == "overlay2" and graph["Data"]["MergedDir"] == merged
        assert graph["Data"]["LowerDir"].split(":")[0].endswith("-init/diff")
        assert (Path(graph["Data"]["UpperDir"]) / "written").exists()
        assert service.image_metadata(image)["UpperDir"] == dirs[-1]  # type: ignore[index]
    finally:
        layers.unmount_rootfs("c1")
    assert not os.path.ismount(merged)
    layers.remove_rw_layer("c1")
    assert layers.rw_layer("c1") is None and len(layers.driver.ids()) == 2


# -- restart and crash safety --------------------------------------------------------------------------
def test_state_survives_reopen(service: ImageService) -> None:
    load_archive(service, save_archive([BASE, TOP], ["keep:me"]))
    image = service.resolve("keep:me")
    reopened = ImageService(service.data_root, service.driver_name)
    assert reopened.resolve("keep:me").id == image.id
    # in no promised order: a reopen lists the layer directories as the filesystem does (tmpfs: newest first)
    by_chain = {layer.chain_id: layer for layer in service.layers.all_layers()}
    assert {layer.chain_id: layer for layer in reopened.layers.all_layers()} == by_chain
    assert len(by_chain) == 2


def test_reopen_cleans_crash_leftovers(service: ImageService) -> None:
    load_archive(service, save_archive([BASE], ["kept:1"]))
    root = Path(service.root)
    # a half-assembled layer, an orphan driver dir, a torn config, a tag to a missing image, temp files
    (root / "layerdb" / "tmp" / "write-set-dead").mkdir()
    service.layers.driver.create("f" * 64, None)
    (root / "imagedb" / "content" / "sha256" / ("a" * 64)).write_bytes(b'{"rootfs":')
    repos = json.loads((root / "repositories.json").read_text())
    repos["Repositories"]["ghost"] = {"ghost:latest": "sha256:" + "b" * 64}
    (root / "repositories.json").write_text(json.dumps(repos))
    tmp = Path(service.tmp_root)
    (tmp / "docker-import-123").mkdir()
    (tmp / "refd-upload-456").write_bytes(b"half a body")
    (tmp / "someone-elses").write_bytes(b"kept")
    reopened = ImageService(service.data_root, service.driver_name)
    assert os.listdir(root / "layerdb" / "tmp") == []
    assert "f" * 64 not in reopened.layers.driver.ids()
    kept = service.resolve("kept:1")
    assert [i.id for i in reopened.images.all_images()] == [kept.id]
    assert reopened.references.repo_tags(kept.id) == ["kept:1"]
    assert not (root / "imagedb" / "content" / "sha256" / ("a" * 64)).exists()
    assert sorted(os.listdir(tmp)) == ["someone-elses"]
    with pytest.raises(ApiError):
        reopened.resolve("ghost")


_CRASHER = """
import io, sys
from harness.daemon.images.load import load
from harness.daemon.images.service import ImageService
service = ImageService(sys.argv[1], sys.argv[2])
archive = open(sys.argv[3], "rb").read()
print("ready", flush=True)
while True:
    load(service, io.BytesIO(archive), lambda _: None)
    delete(service, "crash:test")
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
        time.sleep(delay)  # where in the loop the kill lands; the checks below do not wait on it
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        service = ImageService(str(data_root), driver)
        for image in service.images.all_images():
            for chain in image.chain:
                assert chain in service.layers, f"image {image.id} lost layer {chain}"
            assert hashlib.sha256(image.raw).hexdigest() == image.id[7:]
        layers = service.layers.all_layers()
        assert set(service.layers.driver.ids()) == {layer.cache_id for layer in layers}
        for layer in layers:
            assert b"".join(service.layers.tar(layer.chain_id))  # tar-split and files complete
        # a kill between "image written" and "tag written" leaves a dangling image, never a dangling tag
        for ref, image_id in service.references.by_name(parse_normalized_named("crash")):
            assert image_id in service.images, ref
