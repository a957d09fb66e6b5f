"""ReferenceStore: tags and digests -> image IDs in repositories.json, as dockerd keeps them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.daemon.images.reference import parse_normalized_named
from harness.daemon.images.refstore import ReferenceStore

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
DIGEST = "sha256:" + "d" * 64


def ref(text: str):  # type: ignore[no-untyped-def]
    return parse_normalized_named(text)


@pytest.fixture
def refs(tmp_path: Path) -> ReferenceStore:
    return ReferenceStore(str(tmp_path / "repositories.json"))


def test_tags_and_digests_are_kept_in_dockerds_file(refs: ReferenceStore) -> None:
    assert refs.add(ref("busybox:latest"), A) is None
    assert refs.add(ref(f"registry.example/app@{DIGEST}"), A) is None
    assert refs.add(ref("busybox:latest"), B) == A  # moved: the image it was moved away from
    assert refs.add(ref("busybox:latest"), B) is None  # set again to the same image: nothing moved
    assert json.loads(Path(refs.path).read_text()) == {
        "Repositories": {
            "busybox": {"busybox:latest": B},
            "registry.example/app": {f"registry.example/app@{DIGEST}": A},
        }
    }
    assert Path(refs.path).stat().st_mode & 0o777 == 0o600


def test_lookups_normalise_as_dockerd(refs: ReferenceStore) -> None:
    refs.add(ref("busybox:latest"), A)
    refs.add(ref("busybox:1"), A)
    refs.add(ref(f"busybox@{DIGEST}"), A)
    assert refs.get(ref("busybox")) == A  # :latest by default
    assert refs.get(ref("docker.io/library/busybox:1")) == A
    assert refs.get(ref(f"busybox:nope@{DIGEST}")) == A  # a digest reference's tag plays no part
    assert refs.get(ref("busybox:2")) is None
    assert [r.familiar_string() for r in refs.references(A)] == [
        "busybox:1",
        "busybox:latest",
        f"busybox@{DIGEST}",
    ]
    assert refs.repo_tags(A) == ["busybox:1", "busybox:latest"] and refs.repo_digests(A) == [
        f"busybox@{DIGEST}"
    ]
    assert [(r.familiar_string(), i) for r, i in refs.by_name(ref("busybox"))] == [
        ("busybox:1", A),
        ("busybox:latest", A),
        (f"busybox@{DIGEST}", A),
    ]
    assert refs.by_name(ref("other")) == [] and refs.references(B) == []


def test_delete(refs: ReferenceStore) -> None:
    refs.add(ref("busybox:latest"), A)
    refs.add(ref(f"busybox@{DIGEST}"), A)
    assert refs.delete(ref("busybox")) is True
    assert refs.delete(ref("busybox")) is False
    assert refs.delete(ref(f"busybox:x@{DIGEST}")) is True
    assert refs.references(A) == []
    assert json.loads(Path(refs.path).read_text()) == {"Repositories": {}}  # an emptied name goes too


def test_restore_forgets_references_to_missing_images(tmp_path: Path, refs: ReferenceStore) -> None:
    refs.add(ref("kept:1"), A)
    refs.add(ref("ghost:1"), B)
    again = ReferenceStore(refs.path)
    again.restore(lambda image_id: image_id == A)
    assert again.get(ref("kept:1")) == A and again.get(ref("ghost:1")) is None
    missing = ReferenceStore(str(tmp_path / "none.json"))
    missing.restore(lambda _image_id: True)
    assert missing.references(A) == []
    Path(refs.path).write_text("{torn")
    torn = ReferenceStore(refs.path)
    torn.restore(lambda _image_id: True)
    assert torn.references(A) == []
