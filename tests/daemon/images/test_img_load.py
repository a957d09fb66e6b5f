"""load: docker save archives and OCI layouts, with dockerd's output lines and errors."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

import pytest

from harness.daemon.goformat import go_arch
from harness.daemon.images.load import LoadError, load
from harness.daemon.images.reference import parse_normalized_named
from harness.daemon.images.service import ImageService

from .conftest import BASE, TOP, load_archive, save_archive


def test_load_tags_and_reports(service: ImageService) -> None:
    assert load_archive(service, save_archive([BASE, gzip.compress(TOP)], ["a:1", "b:2"])) == [
        "Loaded image: a:1\n",
        "Loaded image: b:2\n",
    ]
    image = service.resolve("a:1")
    assert service.resolve("b:2") is image and len(image.diff_ids) == 2
    assert load_archive(service, save_archive([BASE, gzip.compress(TOP)], None)) == [
        f"Loaded image ID: {image.id}\n"  # untagged: the IDs are printed
    ]
    other = save_archive([BASE], ["a:1"])
    lines = load_archive(service, other)
    assert (
        lines[0] == f"The image a:1 already exists, renaming the old one with ID {image.id} to empty string\n"
    )
    assert lines[1:] == ["Loaded image: a:1\n"] and service.resolve("a:1").id != image.id


def test_load_skips_layers_it_has(service: ImageService) -> None:
    load_archive(service, save_archive([BASE], ["base:1"]))
    seen: list[str] = []
    load(
        service,
        io.BytesIO(save_archive([BASE, TOP], ["two:1"])),
        lambda _line: None,
        lambda d, _n: seen.append(d),
    )
    assert seen == ["sha256:" + hashlib.sha256(TOP).hexdigest()]  # BASE was there already


@pytest.mark.parametrize(
    ("archive", "message"),
    [
        (
            save_archive(
                [BASE], ["x:latest"], {"rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}}
            ),
            r'invalid diffID for layer 0: expected "sha256:0+", got "sha256:',
        ),
        (save_archive([BASE], ["x:latest"], {"os": "windows"}), "cannot load windows image on linux"),
        (save_archive([BASE], ["x@sha256:" + "d" * 64]), 'invalid tag "x@sha256:'),
        (
            save_archive([BASE], ["x:1"], {"rootfs": {"type": "layers", "diff_ids": []}}),
            "invalid manifest, layers length mismatch: expected 1, got 0",
        ),
        (b"\0" * 1024, r"open .*/repositories: no such file or directory"),
    ],
)
def test_load_errors(service: ImageService, archive: bytes, message: str) -> None:
    with pytest.raises(LoadError, match=message):
        load_archive(service, archive)
    if "invalid tag" in message:  # as dockerd: the image is stored before its tags are checked
        assert service.images.count() == 1 and service.references.by_name(parse_normalized_named("x")) == []
        return
    assert service.layers.all_layers() == [] and service.layers.driver.ids() == []  # what it unpacked went
    assert service.images.count() == 0


def _oci_layout(layer: bytes, name: str, nested: bool) -> bytes:
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {"os": "linux", "architecture": go_arch(), "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    ).encode()
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return digest

    manifest = json.dumps(
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"digest": blob(config)},
            "layers": [{"digest": blob(layer)}],
        }
    ).encode()
    desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": blob(manifest)}
    if nested:
        other = {
            **desc,
            "platform": {"os": "linux", "architecture": "s390x" if go_arch() != "s390x" else "ppc64le"},
        }
        index = json.dumps(
            {"manifests": [other, {**desc, "platform": {"os": "linux", "architecture": go_arch()}}]}
        )
        desc = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": blob(index.encode())}
    top = {"manifests": [{**desc, "annotations": {"io.containerd.image.name": name}} if name else desc]}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        files = {"index.json": json.dumps(top).encode(), "oci-layout": b'{"imageLayoutVersion": "1.0.0"}'}
        files.update({f"blobs/sha256/{d[7:]}": data for d, data in blobs.items()})
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_load_oci_layouts(service: ImageService) -> None:
    assert load_archive(service, _oci_layout(BASE, "docker.io/library/oci:1", nested=False)) == [
        "Loaded image: oci:1\n"
    ]
    assert load_archive(service, _oci_layout(TOP, "", nested=True)) == [
        f"Loaded image ID: {service.images.all_images()[-1].id}\n"
    ]
    assert load_archive(service, _oci_layout(TOP, f"reg.example/n@sha256:{'d' * 64}", nested=True)) == [
        "Loaded image: reg.example/n:latest\n"  # a digest name is loaded as its :latest tag
    ]
