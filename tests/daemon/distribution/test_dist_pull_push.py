"""Pull, push and login end to end against an in-process registry, into a real (vfs) image store."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.daemon.distribution.auth import AuthConfig
from harness.daemon.distribution.errors import DistributionError
from harness.daemon.distribution.login import login
from harness.daemon.distribution.metadata import MetadataStore
from harness.daemon.distribution.progress import ProgressOutput
from harness.daemon.distribution.pull import PullOptions, log_pull_event, pull, pull_image
from harness.daemon.distribution.push import PushOptions, push_image
from harness.daemon.distribution.service import ServiceConfig
from harness.daemon.goformat import go_arch
from harness.daemon.images.reference import parse_normalized_named
from harness.daemon.images.service import ImageService

from .fakeregistry import FakeRegistry

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="layers are unpacked with their owners: needs root")

MT = "application/vnd.docker.distribution.manifest.v2+json"


def _layer(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mtime = len(data), 0
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _image(reg: FakeRegistry, repo: str, tag: str, layers: list[bytes]) -> str:
    blobs = [gzip.compress(t, mtime=0) for t in layers]
    config = json.dumps(
        {
            "architecture": go_arch(),
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [_digest(t) for t in layers]},
            "history": [{"created_by": "x"} for _ in layers],
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MT,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": _digest(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(b),
                    "digest": _digest(b),
                }
                for b in blobs
            ],
        },
        indent=3,
    ).encode()
    reg.add_image(repo, tag, manifest, MT, [(_digest(b), b) for b in [config, *blobs]])
    return _digest(manifest)


@pytest.fixture
def reg() -> Iterator[FakeRegistry]:
    r = FakeRegistry()
    yield r
    r.close()


@pytest.fixture
def store(tmp_path: Path) -> ImageService:
    return ImageService(str(tmp_path / "root"), "vfs")


def _pull(
    store: ImageService, ref: str, creds: AuthConfig | None = None, **kw: object
) -> list[dict[str, object]]:
    lines: list[bytes] = []
    opts = PullOptions(
        store,
        ServiceConfig.build([], []),
        MetadataStore(os.path.join(store.root, "distribution")),
        ProgressOutput(lines.append),
        creds or AuthConfig(),
        retry_wait=0.01,
        **kw,  # type: ignore[arg-type]
    )
    pull(opts, parse_normalized_named(ref))
    return [json.loads(line) for line in lines]


def test_pull_then_up_to_date_then_already_exists(reg: FakeRegistry, store: ImageService) -> None:
    base = _layer("base", b"base" * 1000)
    digest = _image(reg, "library/a", "latest", [base])
    _image(reg, "library/b", "latest", [base, _layer("top", b"top")])
    first = _pull(store, f"{reg.host}/library/a:latest")
    assert first[0] == {"status": "Pulling from library/a", "id": "latest"}
    assert first[-2:] == [
        {"status": f"Digest: {digest}"},
        {"status": f"Status: Downloaded newer image for {reg.host}/library/a:latest"},
    ]
    assert [d["status"] for d in first if d.get("id") and d["id"] != "latest"][-1] == "Pull complete"
    image = store.resolve(f"{reg.host}/library/a:latest")
    assert store.references.repo_digests(image.id) == [f"{reg.host}/library/a@{digest}"]
    again = _pull(store, f"{reg.host}/library/a:latest")
    assert [d["status"] for d in again] == [
        "Pulling from library/a",
        f"Digest: {digest}",
        f"Status: Image is up to date for {reg.host}/library/a:latest",
    ]
    shared = _pull(store, f"{reg.host}/library/b")
    assert shared[1]["status"] == "Already exists"


def test_pull_missing_tag_and_digest_mismatch(reg: FakeRegistry, store: ImageService) -> None:
    _image(reg, "library/a", "latest", [_layer("f", b"x")])
    with pytest.raises(DistributionError) as info:
        _pull(store, f"{reg.host}/library/a:nope")
    assert info.value.status == 404
    assert (
        str(info.value)
        == f"manifest for {reg.host}/library/a:nope not found: manifest unknown: manifest unknown"
    )


def test_pull_retries_a_truncated_blob(reg: FakeRegistry, store: ImageService) -> None:
    _image(reg, "library/a", "latest", [_layer("f", os.urandom(4096))])
    reg.fail_blob_gets = 1  # the layer blob (after the config) is cut once
    out = _pull(store, f"{reg.host}/library/a:latest", max_attempts=3)
    assert any(str(d["status"]).startswith("Retrying in") for d in out) or str(out[-1]["status"]).startswith(
        "Status:"
    )


def test_basic_auth_pull_and_login(reg: FakeRegistry, store: ImageService) -> None:
    reg.basic = ("alice", "pw")
    _image(reg, "library/a", "latest", [_layer("f", b"x")])
    with pytest.raises(DistributionError, match="no basic auth credentials"):
        _pull(store, f"{reg.host}/library/a:latest")
    _pull(store, f"{reg.host}/library/a:latest", AuthConfig(username="alice", password="pw"))
    service = ServiceConfig.build([], [])
    assert login(service, AuthConfig(username="alice", password="pw", server_address=reg.host)) == (
        "Login Succeeded",
        "",
    )
    with pytest.raises(DistributionError, match="failed with status: 401 Unauthorized"):
        login(service, AuthConfig(username="alice", password="no", server_address=reg.host))


def test_bearer_token_pull_and_login(reg: FakeRegistry, store: ImageService) -> None:
    reg.bearer = True
    _image(reg, "library/a", "latest", [_layer("f", b"x")])
    _pull(store, f"{reg.host}/library/a:latest")
    assert reg.token_requests[0]["scope"] == ["repository:library/a:pull"]
    status, token = login(
        ServiceConfig.build([], []), AuthConfig(username="u", password="p", server_address=reg.host)
    )
    assert status == "Login Succeeded" and token == "refresh-me"
    assert reg.token_requests[-1]["offline_token"] == ["true"]


def test_push_uploads_then_mounts_then_skips(reg: FakeRegistry, store: ImageService) -> None:
    _image(reg, "library/a", "latest", [_layer("f", b"payload" * 100)])
    _pull(store, f"{reg.host}/library/a:latest")
    image = store.resolve(f"{reg.host}/library/a:latest")

    def push(ref: str) -> list[dict[str, object]]:
        lines: list[bytes] = []
        store.tag(image, parse_normalized_named(ref))
        opts = PushOptions(
            store,
            ServiceConfig.build([], []),
            MetadataStore(os.path.join(store.root, "distribution")),
            ProgressOutput(lines.append),
        )
        push_image(opts, parse_normalized_named(ref))
        return [json.loads(line) for line in lines]

    mounted = push(f"{reg.host}/other/a:v1")
    assert [d.get("status") for d in mounted][:3] == [
        f"The push refers to repository [{reg.host}/other/a]",
        "Preparing",
        "Mounted from library/a",
    ]
    assert mounted[-1]["aux"]["Tag"] == "v1"  # type: ignore[index]
    skipped = push(f"{reg.host}/other/a:v2")
    assert "Layer already exists" in [d.get("status") for d in skipped]
    reg.repo_blobs.clear()
    uploaded = push(f"{reg.host}/fresh/a:v1")
    assert [d.get("status") for d in uploaded if d.get("id")][-1] == "Pushed"


def test_pull_image_warns_about_another_platform_and_logs_the_event(
    reg: FakeRegistry, store: ImageService
) -> None:
    _image(reg, "library/a", "latest", [_layer("f", b"one")])
    events: list[tuple[str, str, dict[str, str]]] = []
    store.events = lambda action, actor, attrs: events.append((action, actor, attrs))
    other = "s390x" if go_arch() != "s390x" else "ppc64le"
    for platform, warned in [(("linux", go_arch(), ""), False), (("linux", other, ""), True), (None, False)]:
        lines: list[bytes] = []
        opts = PullOptions(
            store,
            ServiceConfig.build([], []),
            MetadataStore.under(store.root),
            ProgressOutput(lines.append),
            platform=platform,
            retry_wait=0.01,
        )
        ref = parse_normalized_named(f"{reg.host}/library/a")
        pulled = pull_image(opts, ref)
        statuses = [json.loads(line).get("status", "") for line in lines]
        warning = (
            f"WARNING: image with reference {ref.string()} was found but its platform (linux/{go_arch()}) "
            f"does not match the specified platform (linux/{other})"
        )
        assert (warning in statuses) is warned, platform
    log_pull_event(store, ref, pulled)
    assert events[-1] == ("pull", ref.familiar_string(), {"name": f"{reg.host}/library/a"})  # as asked for
