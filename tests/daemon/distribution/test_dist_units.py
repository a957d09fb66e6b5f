"""refd distribution building blocks: challenges, X-Registry-Auth, mirrors, endpoints, progress, metadata."""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.daemon.distribution.auth import AuthConfig, decode_auth_config
from harness.daemon.distribution.challenges import parse_challenges
from harness.daemon.distribution.errors import ErrcodeError
from harness.daemon.distribution.metadata import MetadataStore, V2Metadata, check_hmac, hmac_key
from harness.daemon.distribution.progress import ProgressOutput, Reader, progress_bar
from harness.daemon.distribution.pull import PullOptions, continue_on_error, translate_pull_error
from harness.daemon.distribution.push import PushOptions
from harness.daemon.distribution.service import InvalidRegistryConfig, ServiceConfig, validate_mirror
from harness.daemon.images.reference import parse_normalized_named


def test_parse_challenges() -> None:
    got = parse_challenges(['Bearer realm="https://auth.example/token",service="reg",scope="a:b:pull,push"'])
    assert got[0].scheme == "bearer"
    assert got[0].params == {
        "realm": "https://auth.example/token",
        "service": "reg",
        "scope": "a:b:pull,push",
    }
    assert parse_challenges(['Basic realm="basic-realm"'])[0].params == {"realm": "basic-realm"}
    assert parse_challenges([""]) == []


def test_decode_auth_config() -> None:
    doc = {"username": "u", "password": "p", "serveraddress": "h:5000"}
    header = base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")
    cfg = decode_auth_config(header)
    assert (cfg.username, cfg.password, cfg.server_address) == ("u", "p", "h:5000")
    assert decode_auth_config("not base64 json!") == AuthConfig()
    legacy = AuthConfig.from_dict({"auth": base64.b64encode(b"alice:pw").decode()})
    assert (legacy.username, legacy.password) == ("alice", "pw")


def test_validate_mirror() -> None:
    assert validate_mirror("http://127.0.0.1:5000") == "http://127.0.0.1:5000/"
    assert validate_mirror("https://m.example/") == "https://m.example/"
    with pytest.raises(InvalidRegistryConfig, match="no scheme specified"):
        validate_mirror("m.example")
    with pytest.raises(InvalidRegistryConfig, match='unsupported scheme "ftp"'):
        validate_mirror("ftp://m.example")
    with pytest.raises(InvalidRegistryConfig, match="query or fragment"):
        validate_mirror("https://m.example/?x=1")


def test_endpoints_hub_mirrors_and_insecure() -> None:
    conf = ServiceConfig.build(["http://127.0.0.1:5000"], ["10.1.0.0/16", "myreg:5000"])
    hub = conf.endpoints("docker.io")
    assert [e.url for e in hub] == ["http://127.0.0.1:5000", "https://registry-1.docker.io"]
    assert hub[0].mirror and hub[1].official
    assert [e.url for e in conf.endpoints("docker.io", mirrors=False)] == ["https://registry-1.docker.io"]
    assert [e.url for e in conf.endpoints("myreg:5000")] == ["https://myreg:5000", "http://myreg:5000"]
    assert [e.url for e in conf.endpoints("10.1.2.3:443")] == ["https://10.1.2.3:443", "http://10.1.2.3:443"]
    assert [e.url for e in conf.endpoints("127.0.0.1:1")][1] == "http://127.0.0.1:1"
    assert [e.url for e in conf.endpoints("192.0.2.10:5000")] == ["https://192.0.2.10:5000"]
    with pytest.raises(InvalidRegistryConfig, match="should not contain '://'"):
        ServiceConfig.build([], ["ftp://x"])


def test_certs_d_pairs_are_checked(tmp_path: object) -> None:
    import os

    base = str(tmp_path)
    os.makedirs(os.path.join(base, "h:1"))
    open(os.path.join(base, "h:1", "client.cert"), "w").close()
    conf = ServiceConfig.build([], [], certs_dir=base)
    with pytest.raises(
        InvalidRegistryConfig, match=r"missing key client\.key for client certificate client\.cert"
    ):
        conf.endpoints("h:1")


def test_progress_bar_matches_jsonmessage() -> None:
    assert (
        progress_bar(32768, 1036415)
        == "[=>                                                 ]  32.77kB/1.036MB"
    )
    assert progress_bar(130, 130) == "[==================================================>]     130B/130B"
    assert progress_bar(5, 0) == "      5B"
    assert progress_bar(0, 0) == ""


def test_progress_lines() -> None:
    lines: list[bytes] = []
    out = ProgressOutput(lines.append)
    out.message("latest", "Pulling from library/busybox")
    out.update("4f964ad0c75e", "Pulling fs layer")
    out.message("", "Digest: sha256:x")
    out.aux({"Tag": "v1"})
    out.error("boom <x>")
    assert lines == [
        b'{"status":"Pulling from library/busybox","id":"latest"}\r\n',
        b'{"status":"Pulling fs layer","progressDetail":{},"id":"4f964ad0c75e"}\r\n',
        b'{"status":"Digest: sha256:x"}\r\n',
        b'{"progressDetail":{},"aux":{"Tag":"v1"}}\r\n',
        b'{"errorDetail":{"message":"boom \\u003cx\\u003e"},"error":"boom \\u003cx\\u003e"}\r\n',
    ]


def test_reader_reports_first_and_last_and_eof_once() -> None:
    lines: list[bytes] = []
    reader = Reader(io.BytesIO(b"x" * 100_000), ProgressOutput(lines.append), 100_000, "id", "Extracting")
    while reader.read(32768):
        pass
    for _ in range(3):  # gzip readers read again after the end
        reader.read(32768)
    reader.close()
    docs = [json.loads(line) for line in lines]
    assert docs[0]["progressDetail"] == {"current": 32768, "total": 100000}
    assert [d["progressDetail"]["current"] for d in docs[-2:]] == [100000, 100000]
    assert len(docs) <= 4  # rate-limited in between


def test_errcode_texts_and_translation() -> None:
    err = ErrcodeError("MANIFEST_UNKNOWN", "manifest unknown")
    assert str(err) == "manifest unknown: manifest unknown" and err.status == 404
    ref = parse_normalized_named("127.0.0.1:5000/library/busybox:nope")
    found = translate_pull_error(err, ref)
    assert (
        str(found)
        == "manifest for 127.0.0.1:5000/library/busybox:nope not found: manifest unknown: manifest unknown"
    )
    denied = translate_pull_error(ErrcodeError("DENIED", "requested access to the resource is denied"), ref)
    assert str(denied).startswith(
        "pull access denied for 127.0.0.1:5000/library/busybox, repository does not exist"
    )
    assert continue_on_error(err, mirror=True) and not continue_on_error(err, mirror=False)
    assert ErrcodeError("UNAUTHORIZED", "x").status == 401


def test_metadata_store(tmp_path: object) -> None:
    store = MetadataStore(str(tmp_path))
    meta = V2Metadata("sha256:" + "a" * 64, "docker.io/library/busybox")
    store.add("sha256:" + "b" * 64, meta)
    assert store.get_diff_id(meta.digest) == "sha256:" + "b" * 64
    assert store.get_metadata("sha256:" + "b" * 64) == [meta]
    key = hmac_key(AuthConfig(username="u", password="p").hmac_key_input())
    store.tag_and_add("sha256:" + "b" * 64, key, V2Metadata("sha256:" + "c" * 64, "docker.io/x/y"))
    tagged = store.get_metadata("sha256:" + "b" * 64)[-1]
    assert tagged.hmac and check_hmac(tagged, key) and not check_hmac(tagged, b"other")
    store.remove(meta)
    assert [m.digest for m in store.get_metadata("sha256:" + "b" * 64)] == ["sha256:" + "c" * 64]
    assert time.time() > 0


def _daemon_config(**values: object) -> dict[str, object]:
    config: dict[str, object] = {
        "registry-mirror": [],
        "insecure-registry": [],
        "max-concurrent-downloads": 3,
        "max-download-attempts": 5,
        "max-concurrent-uploads": 5,
    }
    config.update({key.replace("_", "-"): value for key, value in values.items()})
    return config


def test_pull_and_push_options_follow_the_daemon_config(tmp_path: Path) -> None:
    store: Any = SimpleNamespace(root=str(tmp_path / "image" / "vfs"))
    config = _daemon_config(
        registry_mirror=["https://mirror.example"], max_concurrent_downloads=7, max_download_attempts=2
    )
    pull_opts = PullOptions.from_config(config, store, ProgressOutput(list().append), AuthConfig())
    assert (pull_opts.max_concurrent, pull_opts.max_attempts) == (7, 2)
    assert pull_opts.service.mirrors == ["https://mirror.example/"]
    assert pull_opts.metadata.root == str(tmp_path / "image" / "vfs" / "distribution")
    push_opts = PushOptions.from_config(
        _daemon_config(max_concurrent_uploads=0),
        store,
        ProgressOutput(list().append),
        AuthConfig(),
    )
    assert push_opts.max_concurrent == 5  # 0 means the default, as dockerd's flag does
    assert push_opts.metadata.root == pull_opts.metadata.root


def test_options_refuse_invalid_registry_settings(tmp_path: Path) -> None:
    store: Any = SimpleNamespace(root=str(tmp_path))
    with pytest.raises(InvalidRegistryConfig, match="no scheme specified"):
        PullOptions.from_config(
            _daemon_config(registry_mirror=["mirror.example"]),
            store,
            ProgressOutput(list().append),
            AuthConfig(),
        )
