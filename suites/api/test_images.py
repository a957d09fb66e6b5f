"""Images over the raw API and the real CLI: load, import, list, inspect, tag, delete, history, save, prune.

Archives are built here with ``tarfile`` (legacy ``docker save`` layout, OCI layout, hostile
layers); the busybox test image comes from ``harness.images``. Scenarios that delete or prune
work on images with unique content so they never touch what other scenarios use.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import shutil
import tarfile
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from harness.checks import expect_error
from harness.client import EngineClient
from harness.fixtures import Observations
from harness.images import busybox_rootfs, save_tarball
from harness.profiles import Profile

V = "/v1.41"  # a version both dockerd 20.10 and newer daemons serve
TAR = {"Content-Type": "application/x-tar"}
CLI = Callable[..., Any]


# -- archive builders ------------------------------------------------------------------------------
def _info(
    name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, link: str = "", mode: int = 0o644
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname, info.mode, info.mtime = kind, size, link, mode, 0
    return info


def layer_tar(entries: list[tuple[str, bytes, str, str]]) -> bytes:
    """A layer from (name, kind, data, link) tuples; kind is 'f', 'd', 'l' (symlink) or 'h' (hardlink)."""
    kinds = {"f": tarfile.REGTYPE, "d": tarfile.DIRTYPE, "l": tarfile.SYMTYPE, "h": tarfile.LNKTYPE}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, kind, link in entries:
            mode = 0o755 if kind == "d" else 0o644
            tar.addfile(_info(name, kinds[kind], len(data), link, mode), io.BytesIO(data) if data else None)
    return buf.getvalue()


def unique_layer() -> bytes:
    """A small layer no other image shares."""
    return layer_tar([("data", b"", "d", ""), ("data/token", secrets.token_hex(16).encode(), "f", "")])


def diff_id(layer: bytes) -> str:
    return "sha256:" + hashlib.sha256(layer).hexdigest()


def image_config(layers: list[bytes], **extra: Any) -> bytes:
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2020-01-02T03:04:05.123456789Z",
        "config": {"Cmd": ["sh"], **extra.pop("runtime", {})},
        "rootfs": {"type": "layers", "diff_ids": [diff_id(layer) for layer in layers]},
        "history": [
            {"created": "2020-01-02T03:04:05.123456789Z", "created_by": f"layer {i}"}
            for i in range(len(layers))
        ],
        **extra,
    }
    return json.dumps(config, separators=(",", ":")).encode()


def save_archive(
    layers: list[bytes], repo_tags: list[str] | None, config: bytes | None = None, manifest: Any = ...
) -> bytes:
    """A legacy-layout ``docker save`` archive (manifest.json, <config>.json, <dir>/layer.tar)."""
    config = config or image_config(layers)
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    names = [f"{hashlib.sha256(diff_id(layer).encode()).hexdigest()}/layer.tar" for layer in layers]
    if manifest is ...:
        manifest = [{"Config": config_name, "RepoTags": repo_tags, "Layers": names}]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in [
            (config_name, config),
            *zip(names, layers, strict=True),
            ("manifest.json", json.dumps(manifest).encode()),
        ]:
            tar.addfile(_info(name, size=len(data)), io.BytesIO(data))
    return buf.getvalue()


def oci_archive(layers: list[bytes], name: str) -> bytes:
    """An OCI image layout (index.json, oci-layout, blobs/) without manifest.json."""
    config = image_config(layers)
    blobs = {hashlib.sha256(b).hexdigest(): b for b in [config, *layers]}
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": diff_id(layer),
                    "size": len(layer),
                }
                for layer in layers
            ],
        }
    ).encode()
    blobs[hashlib.sha256(manifest).hexdigest()] = manifest
    full_name = ("docker.io/" if "/" in name else "docker.io/library/") + name
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": "sha256:" + hashlib.sha256(manifest).hexdigest(),
                    "size": len(manifest),
                    "annotations": {
                        "io.containerd.image.name": full_name,
                        "org.opencontainers.image.ref.name": name.split(":")[1],
                    },
                }
            ],
        }
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for dirname in ("blobs", "blobs/sha256"):
            tar.addfile(_info(dirname, tarfile.DIRTYPE, mode=0o755))
        files = [(f"blobs/sha256/{h}", b) for h, b in blobs.items()]
        files += [("index.json", index.encode()), ("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')]
        for fname, data in files:
            tar.addfile(_info(fname, size=len(data)), io.BytesIO(data))
    return buf.getvalue()


# -- client helpers --------------------------------------------------------------------------------
def stream_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def load(engine: EngineClient, archive: bytes, quiet: bool = True) -> Any:
    return engine.post(f"{V}/images/load?quiet={1 if quiet else 0}", data=archive, headers=TAR, timeout=120)


def import_image(
    engine: EngineClient,
    data: bytes,
    repo: str = "",
    tag: str = "",
    changes: tuple[str, ...] = (),
    message: str = "",
) -> Any:
    query = [("fromSrc", "-")] + ([("repo", repo)] if repo else []) + ([("tag", tag)] if tag else [])
    query += [("changes", c) for c in changes] + ([("message", message)] if message else [])
    return engine.post(
        f"{V}/images/create?{urllib.parse.urlencode(query)}", data=data, headers=TAR, timeout=60
    )


def imported_id(resp: Any) -> str:
    assert resp.status_code == 200, resp.text
    return str(stream_lines(resp.text)[-1]["status"])


def anon(value: Any, name: str) -> Any:
    """``value`` with this scenario's random repository name replaced by <repo> (for observations)."""
    return json.loads(json.dumps(value).replace(name.split(":")[0], "<repo>"))


def repo_name() -> str:
    return f"imgtest/{secrets.token_hex(4)}"


@pytest.fixture
def images(engine: EngineClient) -> Iterator[list[str]]:
    """References or IDs to force-remove after the scenario."""
    refs: list[str] = []
    yield refs
    for ref in reversed(refs):
        engine.delete(f"{V}/images/{ref}?force=1")


@pytest.fixture
def outside(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A host directory a hostile archive aims at; it must stay untouched."""
    path = tempfile.mkdtemp(prefix="harness-hostile-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


# -- load ----------------------------------------------------------------------------------------------
@pytest.mark.scenario(
    "api/images/load-legacy",
    "POST /images/load of a docker save archive MUST answer 200 application/json and stream "
    '{"stream":"Loaded image: <tag>\\n"}',
    ref="operation ImageLoad; moby image/tarexport/load.go",
)
def test_load_legacy(engine: EngineClient, images: list[str], observe: Observations) -> None:
    tag = f"{repo_name()}:legacy"
    images.append(tag)
    resp = load(engine, save_tarball(busybox_rootfs(), tag))
    observe("status", resp.status_code)
    observe("content_type", resp.headers.get("Content-Type"))
    observe("lines", anon(stream_lines(resp.text), tag))
    observe("raw_ends_with_crlf", resp.text.endswith("\r\n"))
    assert resp.status_code == 200
    assert stream_lines(resp.text) == [{"stream": f"Loaded image: {tag}\n"}]
    assert engine.get(f"{V}/images/{tag}/json").status_code == 200


@pytest.mark.scenario(
    "api/images/load-progress",
    "POST /images/load?quiet=0 MUST report 'Loading layer' progress (12-hex id) for a new layer "
    "before the 'Loaded image' line",
    ref="moby image/tarexport/load.go loadLayer",
)
def test_load_progress(engine: EngineClient, images: list[str], observe: Observations) -> None:
    tag = f"{repo_name()}:progress"
    images.append(tag)
    resp = load(engine, save_archive([unique_layer()], [tag]), quiet=False)
    lines = stream_lines(resp.text)
    progress = [line for line in lines if line.get("status") == "Loading layer"]
    observe("statuses", sorted({line.get("status", "") for line in lines} - {""}))
    observe("progress_keys", sorted(progress[-1]) if progress else None)
    observe("progress_id_len", len(progress[-1]["id"]) if progress else None)
    observe("last", anon(lines[-1], tag))
    assert progress and len(progress[-1]["id"]) == 12
    assert progress[-1]["progressDetail"]["current"] == progress[-1]["progressDetail"]["total"]
    assert lines[-1] == {"stream": f"Loaded image: {tag}\n"}


@pytest.mark.scenario(
    "api/images/load-retag",
    "Loading an image under a tag held by another image MUST say the old one is renamed and move the tag",
    ref="moby image/tarexport/load.go setLoadedTag",
)
def test_load_retag(engine: EngineClient, images: list[str], observe: Observations) -> None:
    tag = f"{repo_name()}:retag"
    first = imported_id(import_image(engine, unique_layer(), *tag.split(":")))
    images += [first, tag]
    resp = load(engine, save_archive([unique_layer()], [tag]))
    lines = stream_lines(resp.text)
    observe("lines", anon(lines, tag))
    new_id = engine.get(f"{V}/images/{tag}/json").json()["Id"]
    observe("moved", new_id != first)
    assert lines == [
        {"stream": f"The image {tag} already exists, renaming the old one with ID {first} to empty string\n"},
        {"stream": f"Loaded image: {tag}\n"},
    ]
    assert new_id != first


@pytest.mark.scenario(
    "api/images/load-untagged",
    "Loading an archive whose manifest has no RepoTags MUST print 'Loaded image ID: sha256:...'",
    ref="moby image/tarexport/load.go",
)
def test_load_untagged(engine: EngineClient, images: list[str], observe: Observations) -> None:
    layer = unique_layer()
    config = image_config([layer])
    expected = "sha256:" + hashlib.sha256(config).hexdigest()
    images.append(expected)
    resp = load(engine, save_archive([layer], None, config))
    observe("lines", stream_lines(resp.text))
    assert stream_lines(resp.text) == [{"stream": f"Loaded image ID: {expected}\n"}]


@pytest.mark.scenario(
    "api/images/load-null-manifest",
    "A manifest.json of null MUST fail the load with 'invalid manifest, manifest cannot be null "
    "(but can be [])' in the stream",
    ref="moby image/tarexport/load.go validateManifest",
)
def test_load_null_manifest(engine: EngineClient, observe: Observations) -> None:
    resp = load(engine, save_archive([unique_layer()], None, manifest=None))
    lines = stream_lines(resp.text)
    observe("status", resp.status_code)
    observe("lines", lines)
    message = "invalid manifest, manifest cannot be null (but can be [])"
    assert resp.status_code == 200
    assert lines == [{"errorDetail": {"message": message}, "error": message}]


@pytest.mark.scenario(
    "api/images/load-diffid-mismatch",
    "A layer whose content does not match the config's diff_id MUST fail the load with 'invalid "
    "diffID for layer 0'",
    ref="moby image/tarexport/load.go",
)
def test_load_diffid_mismatch(engine: EngineClient, observe: Observations) -> None:
    claimed = unique_layer()
    actual = unique_layer()
    config = image_config([claimed])
    archive = save_archive([actual], [f"{repo_name()}:bad"], config)
    lines = stream_lines(load(engine, archive).text)
    observe("lines", lines)
    message = f'invalid diffID for layer 0: expected "{diff_id(claimed)}", got "{diff_id(actual)}"'
    assert lines == [{"errorDetail": {"message": message}, "error": message}]


@pytest.mark.refd_only(
    "dockerd's graphdriver image store (20.10, 26, 28) cannot load an OCI image layout; only the containerd "
    "image store can, and refd's store accepts it so OCI tooling can feed refd"
)
@pytest.mark.scenario(
    "api/images/load-oci-layout",
    "POST /images/load SHOULD accept an OCI image layout (index.json, no manifest.json) and tag "
    "it from the io.containerd.image.name annotation",
    ref="moby image/tarexport; OCI image-layout",
)
def test_load_oci_layout(engine: EngineClient, images: list[str], observe: Observations) -> None:
    tag = f"{repo_name()}:oci"
    images.append(tag)
    lines = stream_lines(load(engine, oci_archive([unique_layer()], tag)).text)
    observe("lines", anon(lines, tag))
    assert lines == [{"stream": f"Loaded image: {tag}\n"}]


# -- list / inspect ------------------------------------------------------------------------------------
@pytest.mark.scenario(
    "api/images/list-shape",
    "GET /images/json MUST list summaries with Id, ParentId, RepoTags, RepoDigests, Created (int), "
    "Size, SharedSize, VirtualSize (API < 1.44), Labels and Containers",
    ref="operation ImageList; moby daemon/images/image_list.go",
)
def test_list_shape(engine: EngineClient, test_image: str, observe: Observations) -> None:
    resp = engine.get(f"{V}/images/json")
    body = resp.json()
    mine = next(s for s in body if test_image in (s.get("RepoTags") or []))
    observe("status", resp.status_code)
    observe("keys", list(mine))
    observe("summary", {k: v for k, v in mine.items() if k != "RepoTags"})
    assert resp.status_code == 200
    assert list(mine) == [
        "Containers",
        "Created",
        "Id",
        "Labels",
        "ParentId",
        "RepoDigests",
        "RepoTags",
        "SharedSize",
        "Size",
        "VirtualSize",
    ]
    assert mine["Created"] == 0 and mine["SharedSize"] == -1 and mine["Containers"] == -1
    assert mine["Size"] == mine["VirtualSize"] > 0


@pytest.mark.scenario(
    "api/images/inspect-shape",
    "GET /images/{name}/json MUST describe Id, RepoTags, Created (RFC 3339), Config, Architecture, "
    "Os, Size, GraphDriver, RootFS and Metadata",
    ref="operation ImageInspect",
)
def test_inspect_shape(
    engine: EngineClient, test_image: str, observe: Observations, profile: Profile
) -> None:
    resp = engine.get(f"{V}/images/{test_image}/json")
    body = resp.json()
    observe("status", resp.status_code)
    observe("keys", sorted(body))
    observe("Config", body["Config"])
    observe("RootFS", body["RootFS"])
    observe(
        "GraphDriver",
        {"Name": body["GraphDriver"]["Name"], "Data": sorted(body["GraphDriver"]["Data"] or {})},
    )
    observe(
        "facts",
        {k: body[k] for k in ("Created", "Architecture", "Os", "Size", "Parent", "Comment", "Metadata")},
    )
    assert resp.status_code == 200
    assert body["Config"]["Cmd"] == ["sh"] and body["RootFS"]["Type"] == "layers"
    assert body["Created"] == "1970-01-01T00:00:00Z" and body["Os"] == "linux"
    driver = profile.setting("storage-driver", "overlay2")  # the vfs profile's: vfs
    assert body["GraphDriver"]["Name"] == driver
    if driver == "overlay2":
        assert {"MergedDir", "UpperDir", "WorkDir"} <= set(body["GraphDriver"]["Data"])
    else:  # vfs keeps no metadata: a copy has no lower, upper or merged directories
        assert body["GraphDriver"]["Data"] is None
    assert not {"Id", "RepoTags", "RepoDigests", "Config", "Size", "GraphDriver", "RootFS", "Metadata"} - set(
        body
    )


@pytest.mark.scenario(
    "api/images/inspect-by-id-prefix",
    "An image MUST be found by its full ID, its 12-hex short ID and 'sha256:'-prefixed ID",
    ref="moby daemon/images/image.go GetImage",
)
def test_inspect_by_id_prefix(engine: EngineClient, test_image: str, observe: Observations) -> None:
    full = engine.get(f"{V}/images/{test_image}/json").json()["Id"]
    found = {
        form: engine.get(f"{V}/images/{ref}/json").json().get("Id") == full
        for form, ref in (("full", full), ("hex", full[7:]), ("short", full[7:19]))
    }
    observe("found", found)
    assert all(found.values())


@pytest.mark.scenario(
    "api/images/inspect-not-found",
    "Inspecting a missing image MUST answer 404 'No such image: nosuch:latest'",
    ref="spec 6.5; moby daemon/images/image.go ErrImageDoesNotExist",
)
def test_inspect_not_found(engine: EngineClient, observe: Observations) -> None:
    resp = engine.get(f"{V}/images/nosuch/json")
    observe("status", resp.status_code)
    observe("message", resp.json()["message"])
    expect_error(resp, 404, "No such image: nosuch:latest")
    assert resp.json()["message"] == "No such image: nosuch:latest"


@pytest.mark.scenario(
    "api/images/inspect-invalid-reference",
    "An upper-case image name MUST answer 400 'invalid reference format: repository name "
    "(library/Busybox) must be lowercase'",
    ref="distribution/reference v0.6 ParseNormalizedNamed",
)
def test_inspect_invalid_reference(engine: EngineClient, observe: Observations) -> None:
    resp = engine.get(f"{V}/images/Busybox/json")
    observe("status", resp.status_code)
    observe("message", resp.json()["message"])
    expect_error(resp, 400, "invalid reference format: repository name (library/Busybox) must be lowercase")
    assert (
        resp.json()["message"]
        == "invalid reference format: repository name (library/Busybox) must be lowercase"
    )


# -- import -------------------------------------------------------------------------------------------
CHANGES = (
    'CMD ["sh"]',
    "ENV A=b",
    "WORKDIR /x",
    'ENTRYPOINT ["/bin/sh", "-c"]',
    "LABEL org.test=yes",
    "EXPOSE 80",
    "USER nobody",
)


@pytest.mark.scenario(
    "api/images/import-with-changes",
    'POST /images/create?fromSrc=- MUST import the body as one layer, stream {"status":"sha256:'
    '..."} and apply CMD/ENV/WORKDIR/ENTRYPOINT/LABEL/EXPOSE/USER changes',
    ref="operation ImageCreate; moby daemon/images/image_import.go",
)
def test_import_with_changes(engine: EngineClient, images: list[str], observe: Observations) -> None:
    repo = repo_name()
    images.append(f"{repo}:v1")
    resp = import_image(engine, unique_layer(), repo, "v1", CHANGES)
    lines = stream_lines(resp.text)
    observe("status", resp.status_code)
    observe("lines", lines)
    body = engine.get(f"{V}/images/{repo}:v1/json").json()
    config = body["Config"]
    observe(
        "config",
        {
            k: config.get(k)
            for k in ("Cmd", "Env", "WorkingDir", "Entrypoint", "Labels", "ExposedPorts", "User")
        },
    )
    observe("Comment", body["Comment"])
    observe("RepoTags", anon(body["RepoTags"], repo))
    observe("layers", len(body["RootFS"]["Layers"]))
    assert resp.status_code == 200 and lines == [{"status": body["Id"]}]
    assert config["Cmd"] == ["sh"]  # ENTRYPOINT keeps a CMD set by the same change list
    assert config["Env"] == ["A=b"] and config["WorkingDir"] == "/x" and config["User"] == "nobody"
    assert config["Entrypoint"] == ["/bin/sh", "-c"] and config["Labels"] == {"org.test": "yes"}
    assert config["ExposedPorts"] == {"80/tcp": {}}
    assert body["Comment"] == "Imported from -"


@pytest.mark.scenario(
    "api/images/import-message",
    "An import's 'message' MUST become the image Comment and its history comment",
    ref="moby daemon/images/image_import.go",
)
def test_import_message(engine: EngineClient, images: list[str], observe: Observations) -> None:
    image_id = imported_id(import_image(engine, unique_layer(), message="hello from import"))
    images.append(image_id)
    body = engine.get(f"{V}/images/{image_id}/json").json()
    history = engine.get(f"{V}/images/{image_id}/history").json()
    observe("Comment", body["Comment"])
    observe("history", [{k: h[k] for k in ("Comment", "CreatedBy", "Tags")} for h in history])
    assert body["Comment"] == "hello from import"
    assert [h["Comment"] for h in history] == ["hello from import"]


@pytest.mark.scenario(
    "api/images/import-invalid-change",
    "An import with a change other than the commit instructions MUST answer 400 '<cmd> is not a "
    "valid change command'",
    ref="moby builder/dockerfile BuildFromConfig",
)
def test_import_invalid_change(engine: EngineClient, observe: Observations) -> None:
    bad = import_image(engine, unique_layer(), changes=("RUN echo hi",))
    empty = import_image(engine, unique_layer(), changes=("ENV",))
    observe("run", (bad.status_code, bad.json()["message"]))
    observe("env", (empty.status_code, empty.json()["message"]))
    assert (bad.status_code, bad.json()["message"]) == (400, "RUN is not a valid change command")
    assert (empty.status_code, empty.json()["message"]) == (400, "ENV requires at least one argument")


@pytest.mark.scenario(
    "api/images/import-digest-repo",
    "Importing with a repo that carries a digest MUST answer 400 'cannot import digest reference'",
    ref="moby api/server/httputils RepoTagReference",
)
def test_import_digest_repo(engine: EngineClient, observe: Observations) -> None:
    resp = import_image(engine, unique_layer(), "imgtest/x@sha256:" + "a" * 64)
    observe("status", resp.status_code)
    observe("message", resp.json()["message"])
    assert (resp.status_code, resp.json()["message"]) == (400, "cannot import digest reference")


# -- tag ---------------------------------------------------------------------------------------------
@pytest.mark.scenario(
    "api/images/tag-and-untag",
    "POST /images/{name}/tag MUST answer 201 and add the tag; DELETE of one of two tags MUST only untag",
    ref="operations ImageTag, ImageDelete",
)
def test_tag_and_untag(engine: EngineClient, images: list[str], observe: Observations) -> None:
    repo = repo_name()
    image_id = imported_id(import_image(engine, unique_layer(), repo, "one"))
    images.append(image_id)
    resp = engine.post(f"{V}/images/{repo}:one/tag?repo={repo}&tag=two")
    observe("tag_status", resp.status_code)
    observe("tag_body", resp.text)
    tags = engine.get(f"{V}/images/{image_id}/json").json()["RepoTags"]
    observe("tags", [t.replace(repo, "<repo>") for t in tags])
    untag = engine.delete(f"{V}/images/{repo}:two")
    observe("untag", anon(untag.json(), repo))
    after = engine.get(f"{V}/images/{image_id}/json").json()["RepoTags"]
    observe("after", [t.replace(repo, "<repo>") for t in after])
    assert resp.status_code == 201 and resp.text == ""
    assert tags == [f"{repo}:one", f"{repo}:two"]
    assert untag.json() == [{"Untagged": f"{repo}:two"}] and after == [f"{repo}:one"]


@pytest.mark.scenario(
    "api/images/tag-default-latest",
    "Tagging without 'tag' MUST use 'latest' and set Metadata.LastTagTime",
    ref="moby api/server/httputils RepoTagReference; daemon/images/image_tag.go",
)
def test_tag_default_latest(engine: EngineClient, images: list[str], observe: Observations) -> None:
    repo = repo_name()
    image_id = imported_id(import_image(engine, unique_layer()))
    images.append(image_id)
    before = engine.get(f"{V}/images/{image_id}/json").json()["Metadata"]["LastTagTime"]
    resp = engine.post(f"{V}/images/{image_id}/tag?repo={repo}")
    body = engine.get(f"{V}/images/{image_id}/json").json()
    observe("status", resp.status_code)
    observe("tags", [t.replace(repo, "<repo>") for t in body["RepoTags"]])
    observe("before", before)
    observe("last_tag_time_set", body["Metadata"]["LastTagTime"] != "0001-01-01T00:00:00Z")
    assert resp.status_code == 201 and body["RepoTags"] == [f"{repo}:latest"]
    assert before == "0001-01-01T00:00:00Z" and body["Metadata"]["LastTagTime"] != before


@pytest.mark.scenario(
    "api/images/tag-missing-image",
    "Tagging a missing image MUST answer 404 'No such image: nosuch:latest'",
    ref="moby api/server/router/image/image_routes.go postImagesTag",
)
def test_tag_missing_image(engine: EngineClient, observe: Observations) -> None:
    resp = engine.post(f"{V}/images/nosuch/tag?repo=imgtest/x&tag=y")
    observe("status", resp.status_code)
    observe("message", resp.json()["message"])
    assert (resp.status_code, resp.json()["message"]) == (404, "No such image: nosuch:latest")


@pytest.mark.scenario(
    "api/images/tag-invalid-repo",
    "A tag with an upper-case repository MUST answer 400 with the reference error",
    ref="moby api/server/router/image/image_routes.go postImagesTag (errdefs.InvalidParameter)",
)
def test_tag_invalid_repo(engine: EngineClient, test_image: str, observe: Observations) -> None:
    resp = engine.post(f"{V}/images/{test_image}/tag?repo=Imgtest&tag=x")
    observe("status", resp.status_code)
    observe("message", resp.json()["message"])
    expect_error(resp, 400, "invalid reference format: repository name (library/Imgtest) must be lowercase")
    assert (
        resp.json()["message"]
        == "invalid reference format: repository name (library/Imgtest) must be lowercase"
    )


@pytest.mark.scenario(
    "api/images/tag-digest-name",
    "A tag named 'sha256' MUST be refused with 400 'refusing to create an ambiguous tag using "
    "digest algorithm as name'",
    ref="moby api/server/router/image/image_routes.go",
)
def test_tag_digest_name(engine: EngineClient, test_image: str, observe: Observations) -> None:
    resp = engine.post(f"{V}/images/{test_image}/tag?repo=sha256&tag={'a' * 64}")
    observe("status", resp.status_code)
    observe("message", resp.json()["message"])
    assert (resp.status_code, resp.json()["message"]) == (
        400,
        "refusing to create an ambiguous tag using digest algorithm as name",
    )


# -- delete ------------------------------------------------------------------------------------------
@pytest.mark.scenario(
    "api/images/delete-not-found",
    "Deleting a missing image MUST answer 404 'No such image: nosuch:latest'",
    ref="moby daemon/images/image_delete.go",
)
def test_delete_not_found(engine: EngineClient, observe: Observations) -> None:
    resp = engine.delete(f"{V}/images/nosuch")
    observe("status", resp.status_code)
    observe("message", resp.json()["message"])
    assert (resp.status_code, resp.json()["message"]) == (404, "No such image: nosuch:latest")


@pytest.mark.scenario(
    "api/images/delete-blank-name",
    "DELETE /images/%20 MUST answer 400 'image name cannot be blank'",
    ref="moby api/server/router/image/image_routes.go deleteImages",
)
def test_delete_blank_name(engine: EngineClient, observe: Observations) -> None:
    resp = engine.delete(f"{V}/images/%20")
    observe("status", resp.status_code)
    observe("message", resp.json()["message"])
    assert (resp.status_code, resp.json()["message"]) == (400, "image name cannot be blank")


@pytest.mark.scenario(
    "api/images/delete-image-and-layers",
    "Deleting an image's last tag MUST untag it, delete the image and its unshared layer: "
    "[{Untagged},{Deleted: image},{Deleted: layer chain}]",
    ref="moby daemon/images/image_delete.go",
)
def test_delete_image_and_layers(engine: EngineClient, images: list[str], observe: Observations) -> None:
    repo = repo_name()
    layer = unique_layer()
    image_id = imported_id(import_image(engine, layer, repo, "gone"))
    images.append(image_id)
    resp = engine.delete(f"{V}/images/{repo}:gone")
    observe("status", resp.status_code)
    observe("records", [{k: v.replace(repo, "<repo>") for k, v in r.items()} for r in resp.json()])
    assert resp.status_code == 200
    assert resp.json() == [{"Untagged": f"{repo}:gone"}, {"Deleted": image_id}, {"Deleted": diff_id(layer)}]
    expect_error(engine.get(f"{V}/images/{image_id}/json"), 404, f"No such image: {image_id}")


@pytest.mark.scenario(
    "api/images/delete-conflict-references",
    "Deleting by ID an image tagged in two repositories MUST answer 409 '... (must be forced) - "
    "image is referenced in multiple repositories'; force MUST untag both and delete",
    ref="moby daemon/images/image_delete.go checkImageDeleteConflict",
)
def test_delete_conflict_references(engine: EngineClient, images: list[str], observe: Observations) -> None:
    first, second = repo_name(), repo_name()
    image_id = imported_id(import_image(engine, unique_layer(), first, "x"))
    images.append(image_id)
    engine.post(f"{V}/images/{image_id}/tag?repo={second}&tag=y")
    resp = engine.delete(f"{V}/images/{image_id[7:19]}")
    observe("status", resp.status_code)
    observe("message", resp.json()["message"])
    forced = engine.delete(f"{V}/images/{image_id[7:19]}?force=1")
    records = forced.json()
    observe(
        "forced",  # untag order follows the (random) names, so compare as a sorted list
        sorted(
            (
                [k, v.replace(first, "<repo>").replace(second, "<repo>")]
                for r in records
                for k, v in r.items()
            ),
        ),
    )
    expect_error(resp, 409)
    assert resp.json()["message"] == (
        f"conflict: unable to delete {image_id[7:19]} (must be forced) - image is "
        "referenced in multiple repositories"
    )
    assert forced.status_code == 200
    assert sorted(r["Untagged"] for r in records if "Untagged" in r) == sorted([f"{first}:x", f"{second}:y"])
    assert {"Deleted": image_id} in records


@pytest.mark.scenario(
    "api/images/delete-conflict-container",
    "An image used by a stopped container MUST NOT be deleted without force: 409 with dockerd's "
    "messages for the ID and for its only tag",
    ref="moby daemon/images/image_delete.go",
)
def test_delete_conflict_container(
    engine: EngineClient, images: list[str], containers: list[str], observe: Observations
) -> None:
    repo = repo_name()
    image_id = imported_id(import_image(engine, unique_layer(), repo, "used", changes=('CMD ["/nothing"]',)))
    images.append(image_id)
    created = engine.post(f"{V}/containers/create", json={"Image": f"{repo}:used"})
    assert created.status_code == 201, created.text
    cid = created.json()["Id"]
    containers.append(cid)
    by_id = engine.delete(f"{V}/images/{image_id[7:19]}")
    by_tag = engine.delete(f"{V}/images/{repo}:used")
    observe("by_id", (by_id.status_code, by_id.json()["message"]))
    observe("by_tag", (by_tag.status_code, by_tag.json()["message"].replace(repo, "<repo>")))
    assert by_id.status_code == 409
    assert by_id.json()["message"] == (
        f"conflict: unable to delete {image_id[7:19]} (must be forced) - image is "
        f"being used by stopped container {cid[:12]}"
    )
    assert by_tag.status_code == 409
    assert by_tag.json()["message"] == (
        f'conflict: unable to remove repository reference "{repo}:used" (must '
        f"force) - container {cid[:12]} is using its referenced image "
        f"{image_id[7:19]}"
    )


@pytest.mark.scenario(
    "api/images/delete-conflict-running",
    "An image used by a running container MUST NOT be deleted even with force: 409 '(cannot be forced) - "
    "image is being used by running container <id>'",
    ref="moby daemon/images/image_delete.go conflictRunningContainer",
)
def test_delete_conflict_running(
    engine: EngineClient, images: list[str], containers: list[str], observe: Observations
) -> None:
    tag = f"{repo_name()}:running"
    layer = busybox_rootfs().read()
    config = image_config([layer], runtime={"Labels": {"imgtest.unique": secrets.token_hex(8)}})
    load(engine, save_archive([layer], [tag], config))
    image_id = "sha256:" + hashlib.sha256(config).hexdigest()
    images.append(image_id)
    created = engine.post(f"{V}/containers/create", json={"Image": tag, "Cmd": ["sleep", "60"]})
    assert created.status_code == 201, created.text
    cid = created.json()["Id"]
    containers.append(cid)
    assert engine.post(f"{V}/containers/{cid}/start").status_code == 204
    forced = engine.delete(f"{V}/images/{image_id[7:19]}?force=1")
    observe("status", forced.status_code)
    observe("message", forced.json()["message"])
    engine.post(f"{V}/containers/{cid}/kill")
    expect_error(forced, 409)
    assert forced.json()["message"] == (
        f"conflict: unable to delete {image_id[7:19]} (cannot be forced) - image is being used by running "
        f"container {cid[:12]}"
    )


# -- history -----------------------------------------------------------------------------------------
@pytest.mark.scenario(
    "api/images/history-shape",
    "GET /images/{name}/history MUST list layers newest first with Id, Created, CreatedBy, Size, "
    "Comment and Tags; older entries have Id '<missing>' and Tags null",
    ref="operation ImageHistory; moby daemon/images/image_history.go",
)
def test_history_shape(engine: EngineClient, images: list[str], observe: Observations) -> None:
    tag = f"{repo_name()}:hist"
    images.append(tag)
    layers = [unique_layer(), unique_layer()]
    load(engine, save_archive(layers, [tag]))
    resp = engine.get(f"{V}/images/{tag}/history")
    body = resp.json()
    observe("status", resp.status_code)
    observe(
        "entries",
        [
            {
                k: (v.replace(tag.split(":")[0], "<repo>") if isinstance(v, str) else v)
                for k, v in h.items()
                if k != "Tags"
            }
            for h in body
        ],
    )
    observe("tags", [h["Tags"] and [t.replace(tag.split(":")[0], "<repo>") for t in h["Tags"]] for h in body])
    assert (
        resp.status_code == 200
        and [list(h) for h in body] == [["Comment", "Created", "CreatedBy", "Id", "Size", "Tags"]] * 2
    )
    assert [h["CreatedBy"] for h in body] == ["layer 1", "layer 0"]
    assert body[0]["Tags"] == [tag] and body[1]["Tags"] is None and body[1]["Id"] == "<missing>"
    assert body[0]["Created"] == 1577934245


@pytest.mark.scenario(
    "api/images/history-not-found",
    "History of a missing image MUST answer 404 'No such image: nosuch:latest'",
    ref="moby daemon/images/image_history.go",
)
def test_history_not_found(engine: EngineClient, observe: Observations) -> None:
    resp = engine.get(f"{V}/images/nosuch/history")
    observe("status", resp.status_code)
    observe("message", resp.json()["message"])
    assert (resp.status_code, resp.json()["message"]) == (404, "No such image: nosuch:latest")


# -- save --------------------------------------------------------------------------------------------
def _members(archive: bytes) -> dict[str, bytes]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar:
            fh = tar.extractfile(member) if member.isfile() else None
            out[member.name.rstrip("/")] = fh.read() if fh else b""
    return out


@pytest.mark.scenario(
    "api/images/save-load-roundtrip",
    "An image saved with GET /images/{name}/get, deleted and loaded again MUST come back with the "
    "same ID, tag and layers",
    ref="operations ImageGet, ImageLoad",
)
def test_save_load_roundtrip(engine: EngineClient, images: list[str], observe: Observations) -> None:
    repo = repo_name()
    image_id = imported_id(import_image(engine, unique_layer(), repo, "rt", changes=("ENV ROUND=trip",)))
    images.append(image_id)
    saved = engine.get(f"{V}/images/{repo}:rt/get", timeout=120)
    observe("content_type", saved.headers.get("Content-Type"))
    before = engine.get(f"{V}/images/{image_id}/json").json()
    engine.delete(f"{V}/images/{repo}:rt")
    lines = stream_lines(load(engine, saved.content).text)
    after = engine.get(f"{V}/images/{repo}:rt/json").json()
    observe("lines", [{k: v.replace(repo, "<repo>") for k, v in line.items()} for line in lines])
    observe("same_id", after["Id"] == image_id)
    observe("same_layers", after["RootFS"] == before["RootFS"])
    assert saved.status_code == 200 and saved.headers.get("Content-Type") == "application/x-tar"
    assert lines == [{"stream": f"Loaded image: {repo}:rt\n"}]
    assert after["Id"] == image_id and after["RootFS"] == before["RootFS"]


@pytest.mark.scenario(
    "api/images/save-layout",
    "docker save archives MUST carry manifest.json (Config, RepoTags, Layers) and repositories; "
    "dockerd >= 25 also writes the OCI layout (index.json, oci-layout, blobs/sha256)",
    ref="moby image/tarexport/save.go",
)
def test_save_layout(engine: EngineClient, images: list[str], observe: Observations) -> None:
    repo = repo_name()
    layer = unique_layer()
    image_id = imported_id(import_image(engine, layer, repo, "layout"))
    images.append(image_id)
    members = _members(engine.get(f"{V}/images/get?names={repo}:layout", timeout=120).content)
    manifest = json.loads(members["manifest.json"])
    observe("top_level", sorted(m for m in members if "/" not in m))
    observe("manifest_keys", sorted(manifest[0]))
    observe("manifest_repo_tags", [t.replace(repo, "<repo>") for t in manifest[0]["RepoTags"]])
    observe(
        "layer_digest_matches",
        [hashlib.sha256(members[p]).hexdigest() == diff_id(layer)[7:] for p in manifest[0]["Layers"]],
    )
    observe("config_is_image", hashlib.sha256(members[manifest[0]["Config"]]).hexdigest() == image_id[7:])
    assert manifest[0]["RepoTags"] == [f"{repo}:layout"]
    assert hashlib.sha256(members[manifest[0]["Config"]]).hexdigest() == image_id[7:]
    assert all(hashlib.sha256(members[p]).hexdigest() == diff_id(layer)[7:] for p in manifest[0]["Layers"])
    assert {"index.json", "oci-layout", "blobs", "manifest.json", "repositories"} <= set(members)
    index = json.loads(members["index.json"])
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == f"docker.io/{repo}:layout"


@pytest.mark.scenario(
    "api/images/save-multiple",
    "GET /images/get?names=a&names=b MUST put both images in one manifest.json",
    ref="operation ImageGetAll",
)
def test_save_multiple(engine: EngineClient, images: list[str], observe: Observations) -> None:
    repo = repo_name()
    ids = [imported_id(import_image(engine, unique_layer(), repo, t)) for t in ("a", "b")]
    images.extend(ids)
    resp = engine.get(f"{V}/images/get?names={repo}:a&names={repo}:b", timeout=120)
    manifest = json.loads(_members(resp.content)["manifest.json"])
    tags = sorted(t for item in manifest for t in item["RepoTags"])
    observe("items", len(manifest))
    observe("tags", [t.replace(repo, "<repo>") for t in tags])
    assert resp.status_code == 200 and tags == [f"{repo}:a", f"{repo}:b"]


@pytest.mark.scenario(
    "api/images/save-not-found",
    "Saving a missing tag MUST answer 404 'reference does not exist'; a missing name 404 "
    "'No such image: <name>'",
    ref="moby image/tarexport/save.go parseNames",
)
def test_save_not_found(engine: EngineClient, observe: Observations) -> None:
    tagged = engine.get(f"{V}/images/get?names=nosuch:latest")
    bare = engine.get(f"{V}/images/get?names=nosuch")
    observe("tagged", (tagged.status_code, tagged.json()["message"]))
    observe("bare", (bare.status_code, bare.json()["message"]))
    assert (tagged.status_code, tagged.json()["message"]) == (404, "reference does not exist")
    assert (bare.status_code, bare.json()["message"]) == (404, "No such image: nosuch")


# -- prune / filters -----------------------------------------------------------------------------------
@pytest.mark.scenario(
    "api/images/prune-dangling",
    "POST /images/prune MUST delete dangling images (and their layers), report ImagesDeleted and "
    "SpaceReclaimed, and keep tagged images",
    ref="operation ImagePrune",
)
def test_prune_dangling(engine: EngineClient, images: list[str], observe: Observations) -> None:
    repo = repo_name()
    old_layer = unique_layer()
    old = imported_id(import_image(engine, old_layer, repo, "p"))
    new = imported_id(import_image(engine, unique_layer(), repo, "p"))  # moves the tag: 'old' dangles
    images += [old, new]
    listed = engine.get(
        f"{V}/images/json?filters={urllib.parse.quote(json.dumps({'dangling': ['true']}))}"
    ).json()
    resp = engine.post(f"{V}/images/prune")
    body = resp.json()
    deleted = [r["Deleted"] for r in body["ImagesDeleted"] or [] if "Deleted" in r]
    observe("status", resp.status_code)
    observe("keys", sorted(body))
    observe("old_listed_dangling", old in [s["Id"] for s in listed])
    observe("old_and_layer_deleted", old in deleted and diff_id(old_layer) in deleted)
    observe("tagged_kept", engine.get(f"{V}/images/{repo}:p/json").status_code == 200)
    assert resp.status_code == 200 and sorted(body) == ["ImagesDeleted", "SpaceReclaimed"]
    assert old in deleted and diff_id(old_layer) in deleted and body["SpaceReclaimed"] > 0
    assert engine.get(f"{V}/images/{repo}:p/json").json()["Id"] == new


@pytest.mark.scenario(
    "api/images/prune-invalid-filter",
    "An unknown prune filter MUST answer 400 \"invalid filter 'foo'\"",
    ref="moby api/types/filters Validate",
)
def test_prune_invalid_filter(engine: EngineClient, observe: Observations) -> None:
    resp = engine.post(f"{V}/images/prune?filters={urllib.parse.quote(json.dumps({'foo': {'x': True}}))}")
    observe("status", resp.status_code)
    observe("message", resp.json()["message"])
    assert (resp.status_code, resp.json()["message"]) == (400, "invalid filter 'foo'")


@pytest.mark.scenario(
    "api/images/list-filters",
    "GET /images/json MUST honour the reference (glob), label, dangling and before/since filters",
    ref="moby daemon/images/image_list.go",
)
def test_list_filters(engine: EngineClient, images: list[str], observe: Observations) -> None:
    repo = repo_name()
    first = imported_id(
        import_image(engine, unique_layer(), repo, "one", changes=("LABEL imgtest.kind=first",))
    )
    second = imported_id(
        import_image(engine, unique_layer(), repo, "two", changes=("LABEL imgtest.kind=second",))
    )
    images += [first, second]

    def ids(filters: dict[str, Any]) -> list[str]:
        resp = engine.get(f"{V}/images/json?filters={urllib.parse.quote(json.dumps(filters))}")
        assert resp.status_code == 200, resp.text
        return [s["Id"] for s in resp.json()]

    results = {
        "reference": ids({"reference": [f"{repo}:*"]}),
        "reference_tag": ids({"reference": [f"{repo}:two"]}),
        "label": ids({"label": ["imgtest.kind=first"]}),
        "label_key": sorted(ids({"label": ["imgtest.kind"]})),
        "since": ids({"since": [f"{repo}:one"], "reference": [f"{repo}:*"]}),
        "before": ids({"before": [f"{repo}:two"], "reference": [f"{repo}:*"]}),
    }
    observe(
        "results",
        {
            k: sorted("first" if i == first else "second" if i == second else "other" for i in v)
            for k, v in results.items()
        },
    )
    assert sorted(results["reference"]) == sorted([first, second]) and results["reference_tag"] == [second]
    assert results["label"] == [first] and results["label_key"] == sorted([first, second])
    assert results["since"] == [second] and results["before"] == [first]


@pytest.mark.scenario(
    "api/images/events",
    "Image operations MUST emit image events (import, tag, untag, delete) with the deprecated status/id "
    "fields and a 'name' attribute",
    ref="moby daemon/images/image_events.go; daemon/events/events.go",
)
def test_image_events(engine: EngineClient, images: list[str], observe: Observations) -> None:
    repo = repo_name()
    start = int(time.time())
    image_id = imported_id(import_image(engine, unique_layer(), repo, "one"))
    images.append(image_id)
    engine.post(f"{V}/images/{repo}:one/tag?repo={repo}&tag=two")
    engine.delete(f"{V}/images/{repo}:two")
    engine.delete(f"{V}/images/{repo}:one")
    query = urllib.parse.urlencode(
        {"since": start, "until": int(time.time()) + 1, "filters": json.dumps({"type": ["image"]})}
    )
    resp = engine.get(f"{V}/events?{query}", timeout=30)
    events = [e for e in stream_lines(resp.text) if e["Actor"]["ID"] == image_id]
    seen = [
        (e.get("status"), e.get("id") == image_id, e["Action"], e["Actor"]["Attributes"].get("name"))
        for e in events
    ]
    observe("events", anon(seen, repo))
    observe("keys", sorted(events[0]) if events else None)
    assert [s[2] for s in seen] == ["tag", "import", "tag", "untag", "untag", "delete"]
    assert all(s[0] == s[2] and s[1] for s in seen)
    assert [s[3] for s in seen[:3]] == [f"{repo}:one", image_id, f"{repo}:two"]


# -- hostile archives ---------------------------------------------------------------------------------
def _hostile(engine: EngineClient, entries: list[tuple[str, bytes, str, str]]) -> list[dict[str, Any]]:
    tag = f"{repo_name()}:hostile"
    lines = stream_lines(load(engine, save_archive([layer_tar(entries)], [tag])).text)
    engine.delete(f"{V}/images/{tag}?force=1")
    return lines


def _error(lines: list[dict[str, Any]], outside: str) -> str | None:
    """The load's error message with the scenario's host directory replaced by <outside>."""
    errors = [line["error"] for line in lines if "error" in line]
    return errors[0].replace(outside.lstrip("/"), "<outside>") if errors else None


@pytest.mark.scenario(
    "api/images/hostile-path-traversal",
    "A layer entry climbing out with '../' MUST be refused ('invalid entry name \"...\"') and nothing "
    "written outside the layer store",
    ref="dockerd 28.5.2 (Debian) layer unpack; CVE-2014-6407 class",
)
def test_hostile_path_traversal(engine: EngineClient, outside: str, observe: Observations) -> None:
    target = os.path.join(outside, "pwned")
    name = "../" * 12 + target.lstrip("/")
    lines = _hostile(engine, [(name, b"pwned\n", "f", "")])
    observe("outside_written", os.path.exists(target))
    observe("error", _error(lines, outside))
    assert not os.path.exists(target) and os.listdir(outside) == []
    assert _error(lines, outside) == f'invalid entry name "{name}"'.replace(outside.lstrip("/"), "<outside>")


@pytest.mark.scenario(
    "api/images/hostile-absolute-path",
    "A layer entry with an absolute path MUST NOT be written to that host path",
    ref="moby pkg/archive Unpack",
)
def test_hostile_absolute_path(engine: EngineClient, outside: str, observe: Observations) -> None:
    target = os.path.join(outside, "pwned")
    lines = _hostile(engine, [(target, b"pwned\n", "f", "")])
    observe("outside_written", os.path.exists(target))
    observe("refused", any("error" in line for line in lines))
    assert not os.path.exists(target)


@pytest.mark.scenario(
    "api/images/hostile-symlink-escape",
    "A layer that writes through its own absolute symlink to a host directory MUST write nothing there",
    ref="moby pkg/archive createTarFile; chrootarchive",
)
def test_hostile_symlink_escape(engine: EngineClient, outside: str, observe: Observations) -> None:
    lines = _hostile(engine, [("evil", b"", "l", outside), ("evil/pwned", b"pwned\n", "f", "")])
    observe("outside_written", os.listdir(outside) != [])
    observe("refused", any("error" in line for line in lines))
    assert os.listdir(outside) == []


@pytest.mark.scenario(
    "api/images/hostile-hardlink-escape",
    "A hardlink whose target climbs out of the layer MUST be refused ('invalid hardlink target') and link no "
    "host file",
    ref="dockerd 28.5.2 (Debian) layer unpack; moby pkg/archive 'invalid hardlink'",
)
def test_hostile_hardlink_escape(engine: EngineClient, outside: str, observe: Observations) -> None:
    secret = os.path.join(outside, "secret")
    with open(secret, "w") as fh:
        fh.write("host secret\n")
    link = "../" * 12 + secret.lstrip("/")
    lines = _hostile(engine, [("hl", b"", "h", link)])
    observe("host_file_links", os.stat(secret).st_nlink)
    observe("error", _error(lines, outside))
    assert os.stat(secret).st_nlink == 1
    assert _error(lines, outside) == f'invalid hardlink target "{link}"'.replace(
        outside.lstrip("/"), "<outside>"
    )


# -- the real CLI ---------------------------------------------------------------------------------------
@pytest.mark.scenario(
    "api/images/cli-load",
    "`docker load -i FILE` MUST print 'Loaded image: <tag>' and exit 0",
    ref="docker CLI load",
)
def test_cli_load(docker_cli: CLI, images: list[str], tmp_path: Any, observe: Observations) -> None:
    tag = f"{repo_name()}:cli"
    images.append(tag)
    path = tmp_path / "image.tar"
    path.write_bytes(save_archive([unique_layer()], [tag]))
    result = docker_cli("load", "-i", str(path))
    observe("exit", result.returncode)
    observe("stdout", result.stdout.replace(tag, "<tag>"))
    assert result.returncode == 0 and result.stdout == f"Loaded image: {tag}\n"


@pytest.mark.scenario(
    "api/images/cli-images",
    "`docker images REPO` MUST list the repository's tags with short ID and size",
    ref="docker CLI images",
)
def test_cli_images(docker_cli: CLI, engine: EngineClient, images: list[str], observe: Observations) -> None:
    repo = repo_name()
    image_id = imported_id(
        import_image(engine, layer_tar([("hello", b"hello world\n", "f", "")]), repo, "v1")
    )
    images.append(image_id)
    result = docker_cli("images", "--format", "{{.Repository}}|{{.Tag}}|{{.ID}}|{{.Size}}", repo)
    observe("exit", result.returncode)
    observe("stdout", result.stdout.replace(repo, "<repo>"))
    assert result.stdout == f"{repo}|v1|{image_id[7:19]}|12B\n"


@pytest.mark.scenario(
    "api/images/cli-tag-rmi",
    "`docker tag` then `docker rmi` MUST print 'Untagged: <tag>' and, for the last tag, "
    "'Deleted: sha256:...'",
    ref="docker CLI tag, rmi",
)
def test_cli_tag_rmi(docker_cli: CLI, engine: EngineClient, images: list[str], observe: Observations) -> None:
    repo = repo_name()
    layer = unique_layer()
    image_id = imported_id(import_image(engine, layer, repo, "a"))
    images.append(image_id)
    tagged = docker_cli("tag", f"{repo}:a", f"{repo}:b")
    first = docker_cli("rmi", f"{repo}:b")
    second = docker_cli("rmi", f"{repo}:a")
    missing = docker_cli("rmi", f"{repo}:a")
    observe("tag", (tagged.returncode, tagged.stdout, tagged.stderr))
    observe("rmi_one", first.stdout.replace(repo, "<repo>"))
    observe("rmi_last", second.stdout.replace(repo, "<repo>"))
    observe("rmi_missing", (missing.returncode, missing.stderr.replace(repo, "<repo>")))
    assert tagged.returncode == 0 and first.stdout == f"Untagged: {repo}:b\n"
    assert second.stdout == f"Untagged: {repo}:a\nDeleted: {image_id}\nDeleted: {diff_id(layer)}\n"
    assert missing.returncode == 1
    assert missing.stderr == f"Error response from daemon: No such image: {repo}:a\n"


@pytest.mark.scenario(
    "api/images/cli-history",
    "`docker history` MUST show the image's layers, sizes and comments",
    ref="docker CLI history",
)
def test_cli_history(docker_cli: CLI, engine: EngineClient, images: list[str], observe: Observations) -> None:
    image_id = imported_id(
        import_image(engine, layer_tar([("f", b"x" * 2000, "f", "")]), message="from cli test")
    )
    images.append(image_id)
    result = docker_cli(
        "history", "--format", "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}", image_id[7:19]
    )
    observe("exit", result.returncode)
    observe("stdout", result.stdout)
    assert result.stdout == f"{image_id[7:19]}||2kB|from cli test\n"


@pytest.mark.scenario(
    "api/images/cli-save-load",
    "`docker save -o` then `docker rmi` and `docker load -i` MUST restore the image",
    ref="docker CLI save, load",
)
def test_cli_save_load(
    docker_cli: CLI, engine: EngineClient, images: list[str], tmp_path: Any, observe: Observations
) -> None:
    repo = repo_name()
    image_id = imported_id(import_image(engine, unique_layer(), repo, "s"))
    images.append(image_id)
    path = tmp_path / "saved.tar"
    saved = docker_cli("save", "-o", str(path), f"{repo}:s")
    removed = docker_cli("rmi", f"{repo}:s")
    loaded = docker_cli("load", "-i", str(path))
    inspect = docker_cli("image", "inspect", "--format", "{{.Id}}", f"{repo}:s")
    observe("save", (saved.returncode, saved.stdout, saved.stderr))
    observe("rmi_exit", removed.returncode)
    observe("load", loaded.stdout.replace(repo, "<repo>"))
    observe("same_id", inspect.stdout.strip() == image_id)
    assert saved.returncode == 0 and path.stat().st_size > 0
    assert loaded.stdout == f"Loaded image: {repo}:s\n" and inspect.stdout.strip() == image_id


@pytest.mark.scenario(
    "api/images/cli-import",
    "`docker import - REPO:TAG --change` MUST print the new image ID and apply the change",
    ref="docker CLI import",
)
def test_cli_import(docker_cli: CLI, images: list[str], tmp_path: Any, observe: Observations) -> None:
    repo = repo_name()
    images.append(f"{repo}:imp")
    path = tmp_path / "rootfs.tar"
    path.write_bytes(unique_layer())
    result = docker_cli("import", "--change", "ENV FROM_CLI=1", "-m", "cli import", str(path), f"{repo}:imp")
    env = docker_cli("image", "inspect", "--format", "{{json .Config.Env}}|{{.Comment}}", f"{repo}:imp")
    observe("exit", result.returncode)
    observe("stdout_is_id", result.stdout.startswith("sha256:") and len(result.stdout.strip()) == 71)
    observe("inspect", env.stdout)
    assert result.returncode == 0 and result.stdout.startswith("sha256:")
    assert env.stdout == '["FROM_CLI=1"]|cli import\n'


@pytest.mark.scenario(
    "api/images/cli-inspect-missing",
    "`docker image inspect nosuch` MUST exit 1 with 'No such image: nosuch:latest'",
    # the CLI's own wording: CLI 20.10 prints 'Error: No such image: nosuch' (the harness pins CLI 28.5)
    ref="docker CLI 28.5 image inspect",
)
def test_cli_inspect_missing(docker_cli: CLI, observe: Observations) -> None:
    result = docker_cli("image", "inspect", "nosuch")
    observe("exit", result.returncode)
    observe("stdout", result.stdout)
    observe("stderr", result.stderr)
    assert result.returncode == 1
    assert result.stderr == "Error response from daemon: No such image: nosuch:latest\n"


# -- daemon-level ------------------------------------------------------------------------------------------
@pytest.mark.kernel
@pytest.mark.scenario(
    "api/images/info-images-and-driver",
    "/info MUST count images and report the storage driver (overlay2 by default, the profile's when it "
    "names one) and its status",
    ref="spec 6.4; moby daemon/info.go",
)
def test_info_images_and_driver(daemon_factory: Any, observe: Observations, profile: Profile) -> None:
    daemon = daemon_factory()
    client = EngineClient(daemon.endpoint)
    try:
        before = client.get("/info").json()
        load(client, save_tarball(busybox_rootfs(), "busybox:latest"))
        after = client.get("/info").json()
    finally:
        client.close()
    observe("Images", (before["Images"], after["Images"]))
    observe("Driver", after["Driver"])
    observe("DriverStatus_keys", [k for k, _ in after["DriverStatus"] or []])
    assert (before["Images"], after["Images"]) == (0, 1)
    driver = profile.setting("storage-driver", "overlay2")
    assert after["Driver"] == driver
    if driver == "overlay2":
        assert [k for k, _ in after["DriverStatus"]][:2] == ["Backing Filesystem", "Supports d_type"]
    else:  # vfs reports no status
        assert not after["DriverStatus"]


@pytest.mark.kernel
@pytest.mark.parametrize("how", ["flag", "daemon.json"])
@pytest.mark.scenario(
    "api/images/storage-driver-vfs",
    "With --storage-driver=vfs (or daemon.json storage-driver) /info MUST report vfs (DriverStatus null) and "
    "images MUST have GraphDriver {Data: null, Name: vfs} and the vfs layer size",
    ref="moby daemon/graphdriver/vfs",
)
def test_storage_driver_vfs(daemon_factory: Any, observe: Observations, how: str) -> None:
    if how == "flag":
        daemon = daemon_factory(args=["--storage-driver=vfs"])
    else:
        daemon = daemon_factory(config={"storage-driver": "vfs"})
    client = EngineClient(daemon.endpoint)
    try:
        load(client, save_tarball(busybox_rootfs(), "busybox:latest"))
        info = client.get("/info").json()
        body = client.get(f"{V}/images/busybox/json").json()
    finally:
        client.close()
    observe(f"{how}: Driver", info["Driver"])
    observe(f"{how}: DriverStatus", info["DriverStatus"])
    observe(f"{how}: GraphDriver", body["GraphDriver"])
    observe(f"{how}: Size", body["Size"])
    assert info["Driver"] == "vfs" and info["DriverStatus"] is None
    assert body["GraphDriver"] == {"Data": None, "Name": "vfs"}
    assert daemon.is_dir(os.path.join(daemon.data_root, "vfs", "dir"))


@pytest.mark.kernel
@pytest.mark.scenario(
    "api/images/storage-driver-unknown",
    "An unknown --storage-driver MUST stop start-up with exit 1 and 'failed to start daemon: error "
    "initializing graphdriver: driver not supported: <name>'",
    ref="moby layer/layer_store.go NewStoreFromOptions (v28.5.2)",
)
def test_storage_driver_unknown(daemon_factory: Any, observe: Observations) -> None:
    code, handle = daemon_factory.start_expecting_exit(args=["--storage-driver=nosuch"])
    last = handle.logs().strip().splitlines()[-1]
    observe("exit", code)
    observe("last_line", last)
    assert code == 1
    assert last == "failed to start daemon: error initializing graphdriver: driver not supported: nosuch"


@pytest.mark.scenario(
    "api/images/persist-across-restart",
    "Images, tags and layers MUST survive a daemon restart",
    ref="moby image/store.go restore",
)
def test_persist_across_restart(daemon_factory: Any, observe: Observations) -> None:
    daemon = daemon_factory()
    client = EngineClient(daemon.endpoint)
    try:
        load(client, save_tarball(busybox_rootfs(), "busybox:latest"))
        client.post(f"{V}/images/busybox/tag?repo=kept&tag=v1")
        before = client.get(f"{V}/images/json").json()
    finally:
        client.close()
    daemon = daemon_factory.restart(daemon)
    client = EngineClient(daemon.endpoint)
    try:
        after = client.get(f"{V}/images/json").json()
        history = client.get(f"{V}/images/kept:v1/history").status_code
    finally:
        client.close()
    observe("same_list", after == before)
    observe("tags", sorted(t for s in after for t in s["RepoTags"]))
    observe("history_status", history)
    assert after == before and sorted(t for s in after for t in s["RepoTags"]) == [
        "busybox:latest",
        "kept:v1",
    ]
