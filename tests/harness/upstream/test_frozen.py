"""harness.upstream.frozen: moby's frozen images, deterministic, with what moby's tests need inside."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from harness.upstream.frozen import (
    FROZEN_TAGS,
    STAND_IN_LABEL,
    frozen_images,
    hello_layer,
    save_archive,
    with_user_tools,
)

HELLO = {"amd64": b"\x7fELF amd64 hello", "arm64": b"\x7fELF arm64 hello"}


def _layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("bin/busybox", b"busybox"), ("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _members(layer: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        return {m.name: m for m in tar.getmembers()}


def _read(layer: bytes, name: str) -> str:
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        handle = tar.extractfile(name)
        assert handle is not None
        return handle.read().decode()


def test_the_six_images_have_the_tags_architectures_and_commands_moby_expects() -> None:
    images = frozen_images(_layer(), HELLO, native="amd64")
    assert sorted(t for i in images for t in i.tags) == sorted(FROZEN_TAGS)
    by_tag = {i.tags[0]: i for i in images}
    assert by_tag["hello-world:arm64"].architecture == "arm64"
    assert by_tag["hello-world:frozen"].architecture == by_tag["hello-world:amd64"].architecture == "amd64"
    assert by_tag["hello-world:frozen"].cmd == ("/hello",) and by_tag["busybox:latest"].cmd == ("sh",)
    assert _read(by_tag["hello-world:arm64"].layer, "hello") == "\x7fELF arm64 hello"
    assert STAND_IN_LABEL in by_tag["busybox:glibc"].labels and not by_tag["busybox:latest"].labels
    # hello-world:frozen is the native one: the same image as hello-world:amd64 here; the others differ
    assert by_tag["hello-world:frozen"].id == by_tag["hello-world:amd64"].id
    assert len({i.id for i in images}) == 5
    with pytest.raises(ValueError, match="this machine's architecture riscv64"):
        frozen_images(_layer(), HELLO, native="riscv64")


def test_busybox_gets_dockers_accounts_and_adduser() -> None:
    layer = with_user_tools(_layer())
    members = _members(layer)
    assert members["usr/sbin/adduser"].mode == 0o755 and members["etc/group"].mode == 0o644
    assert "daemon:x:1:1:" in _read(layer, "etc/passwd")
    assert "staff:x:50:" in _read(layer, "etc/group") and "wheel:x:10:root" in _read(layer, "etc/group")
    assert list(members).count("etc/passwd") == 1  # replaced, not appended twice
    assert _read(layer, "bin/busybox") == "busybox"


def test_the_archive_is_the_same_bytes_every_time_so_ids_match_on_every_target() -> None:
    first = save_archive(frozen_images(_layer(), HELLO, native="amd64"))
    assert first == save_archive(frozen_images(_layer(), HELLO, native="amd64"))
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        handle = tar.extractfile("manifest.json")
        assert handle is not None
        manifest = json.load(handle)
        assert all(m.mtime == 0 and m.uid == 0 for m in tar.getmembers())
    assert sorted(t for entry in manifest for t in entry["RepoTags"]) == sorted(FROZEN_TAGS)
    images = {i.tags[0]: i for i in frozen_images(_layer(), HELLO, native="amd64")}
    for entry in manifest:
        assert entry["Config"] == images[entry["RepoTags"][0]].id.removeprefix("sha256:") + ".json"


def test_hello_layer_holds_only_the_binary() -> None:
    members = _members(hello_layer(b"x"))
    assert list(members) == ["hello"] and members["hello"].mode == 0o755
