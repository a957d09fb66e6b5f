"""Image distribution against a real registry: pull, push, login, distribution inspect, search, mirrors, TLS.

The registry is Debian's ``docker-registry`` run by the ``registry`` fixtures on host loopback and
attached into each daemon's network namespace at the same ``127.0.0.1:<port>`` (or at a
non-loopback ``192.0.2.10:<port>`` for the TLS-trust scenarios, which dockerd treats as a secure
registry). Every scenario boots its own daemon, so pulled images never leak into other scenarios.

Progress streams are recorded as their deterministic part: the messages without a layer id in order
(``Pulling from``, ``Digest:``, ``Status:``), each layer's first and last status (dockerd's
transfer watchers drop intermediate updates under load, so the middle of a layer's sequence is
timing), and the error line. The registry's address is replaced by ``<registry>``.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable
from typing import Any

import pytest

from harness.backends.base import DaemonHandle
from harness.client import EngineClient
from harness.fixtures import REGISTRY_USER, Observations, make_cli

V = "/v1.41"  # served by dockerd 20.10 too
SECURE_HOST = "192.0.2.10"


def _client(handle: DaemonHandle) -> EngineClient:
    assert handle.endpoint is not None
    return EngineClient(handle.endpoint, timeout=120)


def xauth(username: str, password: str, server: str = "") -> dict[str, str]:
    doc = {"username": username, "password": password, "serveraddress": server}
    return {"X-Registry-Auth": base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()}


def _clean(text: str, hosts: list[str]) -> str:
    """Registry addresses become ``<registry>``; a ``=word`` entry (a random suffix) ``<suffix>``."""
    for host in hosts:
        text = (
            text.replace(host[1:], "<suffix>") if host.startswith("=") else text.replace(host, "<registry>")
        )
    return text


def summarise(text: str, hosts: list[str]) -> dict[str, Any]:
    """The deterministic part of a progress stream (see the module doc)."""
    text = _clean(text, hosts)
    messages: list[str] = []
    layers: dict[str, list[str]] = {}
    errors: list[str] = []
    aux: list[Any] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        doc = json.loads(line)
        if "error" in doc or "errorDetail" in doc:
            errors.append(doc.get("error") or doc["errorDetail"].get("message"))
        elif "aux" in doc:
            aux.append(sorted(doc["aux"]))
        elif "progressDetail" in doc and doc.get("id"):
            seq = layers.setdefault(doc["id"], [])
            if not seq or seq[-1] != doc["status"]:
                seq.append(doc["status"])
        else:
            messages.append(f"{doc.get('id')}: {doc['status']}" if doc.get("id") else doc["status"])
    return {
        "messages": messages,
        "layers": {k: [v[0], v[-1]] for k, v in sorted(layers.items())},
        "errors": errors,
        "aux": aux,
    }


def call(client: EngineClient, method: str, path: str, hosts: list[str], **kw: Any) -> dict[str, Any]:
    """A distribution call: status and, for a 200 stream, its summary, else the error message."""
    resp = client.request(method, V + path, **kw)
    out: dict[str, Any] = {"status": resp.status_code}
    streamed = path.startswith("/images/create") or path.split("?")[0].endswith("/push")
    if resp.status_code == 200 and streamed:
        out.update(summarise(resp.text, hosts))
    elif resp.status_code == 200:
        out["body"] = json.loads(_clean(resp.text, hosts))
    else:
        message = resp.json().get("message", "") if resp.text.startswith("{") else resp.text
        out["message"] = _clean(message, hosts)
    return out


def inspect_refs(client: EngineClient, name: str, hosts: list[str]) -> dict[str, Any]:
    resp = client.get(f"{V}/images/{name}/json")
    if resp.status_code != 200:
        return {"status": resp.status_code}
    doc = resp.json()

    def clean(values: list[str] | None) -> list[str]:
        return [_clean(value, hosts) for value in values or []]

    return {
        "RepoTags": clean(doc["RepoTags"]),
        "RepoDigests": clean(doc["RepoDigests"]),
        "Architecture": doc["Architecture"],
        "Layers": len(doc["RootFS"].get("Layers") or []),
        "LastTagTime": doc.get("Metadata", {}).get("LastTagTime"),
    }


# -- pull ----------------------------------------------------------------------------------------------------
@pytest.mark.scenario(
    "api/distribution/pull-by-tag",
    "POST /images/create?fromImage= MUST pull a tag with dockerd's progress stream, record the tag and its "
    "digest, and a second pull MUST say 'Image is up to date'; a layer already present MUST say "
    "'Already exists'",
    ref="moby distribution/pull_v2.go pullTag, xfer/download.go",
)
def test_pull_by_tag(
    daemon_factory: Callable[..., DaemonHandle], registry: Any, observe: Observations
) -> None:
    handle = daemon_factory()
    host = registry.attach(handle)
    hosts = [host]
    client = _client(handle)
    first = observe(
        "first", call(client, "POST", f"/images/create?fromImage={host}/library/busybox&tag=latest", hosts)
    )
    observe(
        "again", call(client, "POST", f"/images/create?fromImage={host}/library/busybox&tag=latest", hosts)
    )
    observe("inspect", inspect_refs(client, f"{host}/library/busybox:latest", hosts))
    shared = observe(
        "shared-base-layer",
        call(client, "POST", f"/images/create?fromImage={host}/library/alpine&tag=3.10", hosts),
    )
    observe(
        "same-image-new-tag",
        call(client, "POST", f"/images/create?fromImage={host}/library/busybox&tag=1.36", hosts),
    )
    assert first["status"] == 200 and first["messages"][-1].startswith("Status: Downloaded newer image")
    assert "Already exists" in [v[0] for v in shared["layers"].values()]


@pytest.mark.scenario(
    "api/distribution/pull-by-digest",
    "A pull by digest MUST verify the manifest, record only the digest reference and report the digest",
    ref="moby distribution/pull_v2.go schema2ManifestDigest",
)
def test_pull_by_digest(
    daemon_factory: Callable[..., DaemonHandle], registry: Any, observe: Observations
) -> None:
    from harness.registry_images import build_seed

    digest = next(i.digest for i in build_seed() if i.repo == "library/busybox" and i.tag == "latest")
    handle = daemon_factory()
    host = registry.attach(handle)
    client = _client(handle)
    pulled = observe(
        "pull", call(client, "POST", f"/images/create?fromImage={host}/library/busybox&tag={digest}", [host])
    )
    observe("inspect", inspect_refs(client, f"{host}/library/busybox@{digest}", [host]))
    observe(
        "name@digest",
        call(client, "POST", f"/images/create?fromImage={host}/library/busybox@{digest}", [host]),
    )
    wrong = "sha256:" + "0" * 64
    observe(
        "unknown-digest",
        call(client, "POST", f"/images/create?fromImage={host}/library/busybox@{wrong}", [host]),
    )
    assert pulled["status"] == 200


@pytest.mark.scenario(
    "api/distribution/pull-missing",
    "Pulling a tag or repository the registry does not have MUST fail with 404 'manifest for X not found'",
    ref="moby distribution/errors.go notFoundError",
)
def test_pull_missing(
    daemon_factory: Callable[..., DaemonHandle], registry: Any, observe: Observations
) -> None:
    handle = daemon_factory()
    host = registry.attach(handle)
    client = _client(handle)
    tag = observe(
        "missing-tag",
        call(client, "POST", f"/images/create?fromImage={host}/library/busybox&tag=nope", [host]),
    )
    repo = observe(
        "missing-repo",
        call(client, "POST", f"/images/create?fromImage={host}/library/nosuch&tag=latest", [host]),
    )
    observe(
        "registry-down",
        call(client, "POST", "/images/create?fromImage=127.0.0.1:1/library/busybox&tag=latest", []),
    )
    observe("scratch", call(client, "POST", "/images/create?fromImage=scratch&tag=latest", []))
    observe("bad-reference", call(client, "POST", "/images/create?fromImage=Busybox&tag=latest", []))
    unknown = "not found: manifest unknown: manifest unknown"
    assert tag == {"status": 404, "message": f"manifest for <registry>/library/busybox:nope {unknown}"}
    assert repo == {"status": 404, "message": f"manifest for <registry>/library/nosuch:latest {unknown}"}


@pytest.mark.scenario(
    "api/distribution/pull-manifest-list",
    "A manifest list or OCI index MUST resolve to this platform's entry; 'Digest:' MUST be the list's "
    "digest; "
    "OCI image manifests MUST pull like schema 2 ones",
    ref="moby distribution/pull_v2.go pullManifestList, pull_v2_unix.go filterManifests",
)
def test_pull_manifest_list(
    daemon_factory: Callable[..., DaemonHandle], registry: Any, observe: Observations
) -> None:
    handle = daemon_factory()
    host = registry.attach(handle)
    client = _client(handle)
    for repo in ("multiarch", "ociindex", "ocibox"):
        result = observe(
            repo, call(client, "POST", f"/images/create?fromImage={host}/library/{repo}&tag=latest", [host])
        )
        observe(f"{repo}-inspect", inspect_refs(client, f"{host}/library/{repo}:latest", [host]))
        assert result["status"] == 200


# -- TLS and insecure registries ----------------------------------------------------------------------------
@pytest.mark.scenario(
    "api/distribution/tls-trust",
    "An HTTPS registry outside 127.0.0.0/8 whose CA is unknown MUST be refused (x509 error) unless it is in "
    "insecure-registries or its CA is in certs.d/<host:port>/ca.crt; on loopback it MUST be insecure by "
    "default",
    ref="moby registry/config.go isSecureIndex, registry/registry.go loadTLSConfig",
)
def test_tls_trust(
    daemon_factory: Callable[..., DaemonHandle], registry_tls: Any, observe: Observations
) -> None:
    secure = f"{SECURE_HOST}:{registry_tls.port}"
    plain = daemon_factory()
    registry_tls.attach(plain, host=SECURE_HOST)
    loopback = registry_tls.attach(plain)
    hosts = [secure, loopback]
    client = _client(plain)
    refused = observe(
        "unknown-ca",
        call(client, "POST", f"/images/create?fromImage={secure}/library/busybox&tag=latest", hosts),
    )
    observe(
        "login-unknown-ca",
        call(
            client, "POST", "/auth", hosts, json={"username": "u", "password": "p", "serveraddress": secure}
        ),
    )
    observe(
        "loopback",
        call(client, "POST", f"/images/create?fromImage={loopback}/library/busybox&tag=latest", hosts),
    )
    registry_tls.trust(plain, secure)
    trusted = observe(
        "certs.d", call(client, "POST", f"/images/create?fromImage={secure}/library/alpine&tag=3.10", hosts)
    )
    insecure = daemon_factory(config={"insecure-registries": [secure]})
    registry_tls.attach(insecure, host=SECURE_HOST)
    client2 = _client(insecure)
    allowed = observe(
        "insecure-registries",
        call(client2, "POST", f"/images/create?fromImage={secure}/library/busybox&tag=latest", hosts),
    )
    assert refused["status"] == 500 and "x509" in refused["message"]
    assert trusted["status"] == 200 and allowed["status"] == 200


# -- auth and login ------------------------------------------------------------------------------------------
@pytest.mark.scenario(
    "api/distribution/auth",
    "A registry behind basic auth MUST refuse a pull without credentials ('no basic auth credentials') or "
    "with bad ones (401), and accept X-Registry-Auth; POST /auth MUST answer 'Login Succeeded' or dockerd's "
    "errors",
    ref="moby registry/auth.go loginV2; docker/distribution registry/client/auth",
)
def test_auth(
    daemon_factory: Callable[..., DaemonHandle], registry_auth: Any, registry: Any, observe: Observations
) -> None:
    handle = daemon_factory()
    host = registry_auth.attach(handle)
    other = f"192.0.2.11:{registry.port}"
    registry.attach(handle, host="192.0.2.11")
    hosts = [host, other]
    client = _client(handle)
    user, password = REGISTRY_USER
    pull = f"/images/create?fromImage={host}/library/busybox&tag=latest"
    observe("pull-anonymous", call(client, "POST", pull, hosts))
    observe("pull-bad-password", call(client, "POST", pull, hosts, headers=xauth(user, "wrong")))
    good = observe("pull-good", call(client, "POST", pull, hosts, headers=xauth(user, password)))
    login = {"username": user, "password": password, "serveraddress": host}
    observe("login-bad", call(client, "POST", "/auth", hosts, json={**login, "password": "wrong"}))
    ok = observe("login-good", call(client, "POST", "/auth", hosts, json=login))
    observe(
        "login-down", call(client, "POST", "/auth", hosts, json={**login, "serveraddress": "127.0.0.1:1"})
    )
    observe(
        "login-http-to-secure",
        call(client, "POST", "/auth", hosts, json={**login, "serveraddress": "http://" + other}),
    )
    observe(
        "inspect-anonymous", call(client, "GET", f"/distribution/{host}/library/busybox:latest/json", hosts)
    )
    observe(
        "inspect-authorised",
        call(
            client,
            "GET",
            f"/distribution/{host}/library/busybox:latest/json",
            hosts,
            headers=xauth(user, password),
        ),
    )
    assert good["status"] == 200
    assert ok["status"] == 200


# -- push ----------------------------------------------------------------------------------------------------
@pytest.mark.scenario(
    "api/distribution/push",
    "POST /images/{name}/push MUST upload new layers ('Pushed'), skip ones the repository has ('Layer "
    "already "
    "exists'), mount ones another repository has ('Mounted from'), put the manifest and report its digest",
    ref="moby distribution/push_v2.go",
)
def test_push(daemon_factory: Callable[..., DaemonHandle], registry: Any, observe: Observations) -> None:
    import secrets

    handle = daemon_factory()
    host = registry.attach(handle)
    suffix = secrets.token_hex(4)  # a repository of its own on the shared registry
    hosts = [host, "=" + suffix]
    client = _client(handle)
    client.post(f"{V}/images/create?fromImage={host}/library/alpine&tag=3.10").close()
    client.post(f"{V}/images/{host}/library/alpine:3.10/tag?repo={host}/push-{suffix}/a&tag=v1").close()
    first = observe("mount", call(client, "POST", f"/images/{host}/push-{suffix}/a/push?tag=v1", hosts))
    observe("again", call(client, "POST", f"/images/{host}/push-{suffix}/a/push?tag=v1", hosts))
    client.post(f"{V}/images/{host}/library/alpine:3.10/tag?repo={host}/push-{suffix}/b&tag=v2").close()
    observe("mount-from-pushed", call(client, "POST", f"/images/{host}/push-{suffix}/b/push", hosts))
    observe("missing", call(client, "POST", f"/images/{host}/push-{suffix}/missing/push?tag=v1", hosts))
    observe("missing-tag", call(client, "POST", f"/images/{host}/push-{suffix}/a/push?tag=nope", hosts))
    from suites.api.test_images import layer_tar

    layer = layer_tar([("pushed", b"", "d", ""), ("pushed/file", suffix.encode(), "f", "")])
    resp = client.post(
        f"{V}/images/create?fromSrc=-&repo={host}/push-{suffix}/new&tag=v1",
        data=layer,
        headers={"Content-Type": "application/x-tar"},
    )
    assert resp.status_code == 200
    new = call(client, "POST", f"/images/{host}/push-{suffix}/new/push?tag=v1", hosts)
    layers = new.get("layers", {})
    new["layers"] = {"<new>" if len(layers) == 1 else k: v for k, v in layers.items()}
    observe("upload", new)
    observe("inspect", inspect_refs(client, f"{host}/push-{suffix}/a:v1", hosts))
    assert first["status"] == 200 and first["aux"]
    assert new["layers"] and next(iter(new["layers"].values()))[-1] == "Pushed"


@pytest.mark.scenario(
    "api/distribution/push-auth",
    "A push to a registry behind basic auth MUST fail in the stream without or with bad credentials and "
    "succeed with X-Registry-Auth",
    ref="moby distribution/push_v2.go, errors.go retryOnError",
)
def test_push_auth(
    daemon_factory: Callable[..., DaemonHandle], registry_auth: Any, registry: Any, observe: Observations
) -> None:
    import secrets

    handle = daemon_factory()
    host = registry_auth.attach(handle)
    plain = registry.attach(handle)
    suffix = secrets.token_hex(4)
    hosts = [host, plain, "=" + suffix]
    client = _client(handle)
    client.post(f"{V}/images/create?fromImage={plain}/library/alpine&tag=3.10").close()
    client.post(f"{V}/images/{plain}/library/alpine:3.10/tag?repo={host}/auth-{suffix}/a&tag=v1").close()
    user, password = REGISTRY_USER
    path = f"/images/{host}/auth-{suffix}/a/push?tag=v1"
    observe("anonymous", call(client, "POST", path, hosts))
    observe("bad-password", call(client, "POST", path, hosts, headers=xauth(user, "wrong")))
    good = observe("good", call(client, "POST", path, hosts, headers=xauth(user, password)))
    assert good["status"] == 200 and not good["errors"]


# -- mirrors -------------------------------------------------------------------------------------------------
@pytest.mark.scenario(
    "api/distribution/mirror",
    "With registry-mirrors, Docker Hub names MUST be pulled from the mirror (official images under "
    "library/); "
    "a name the mirror lacks MUST fall back to registry-1.docker.io",
    ref="moby registry/service_v2.go lookupV2Endpoints, distribution/errors.go continueOnError",
)
def test_mirror(daemon_factory: Callable[..., DaemonHandle], registry: Any, observe: Observations) -> None:
    handle = daemon_factory(config={"registry-mirrors": [registry.url]})
    registry.attach(handle)
    hosts = [registry.host]
    client = _client(handle)
    info = client.get(f"{V}/info").json()["RegistryConfig"]
    observe("info-mirrors", [m.replace(registry.host, "<registry>") for m in info["Mirrors"]])
    busybox = observe("busybox", call(client, "POST", "/images/create?fromImage=busybox&tag=latest", hosts))
    observe("busybox-inspect", inspect_refs(client, "busybox:latest", hosts))
    observe(
        "hello-world",
        call(client, "POST", "/images/create?fromImage=docker.io/library/hello-world&tag=latest", hosts),
    )
    missing = observe(
        "missing-falls-back", call(client, "POST", "/images/create?fromImage=nosuchimage&tag=latest", hosts)
    )
    observe("inspect-via-mirror", call(client, "GET", "/distribution/alpine:3.10/json", hosts))
    assert busybox["status"] == 200
    assert missing["status"] != 200 and "registry-1.docker.io" in missing["message"]


# -- inspect and search ------------------------------------------------------------------------------------
@pytest.mark.scenario(
    "api/distribution/inspect",
    "GET /distribution/{name}/json MUST return the manifest descriptor and its platforms, for images and "
    "lists",
    ref="moby api/server/router/distribution/distribution_routes.go",
)
def test_distribution_inspect(
    daemon_factory: Callable[..., DaemonHandle], registry: Any, observe: Observations
) -> None:
    handle = daemon_factory()
    host = registry.attach(handle)
    client = _client(handle)
    media = {
        "busybox:latest": ("application/vnd.docker.distribution.manifest.v2+json", [("amd64", "linux")]),
        "multiarch:latest": (
            "application/vnd.docker.distribution.manifest.list.v2+json",
            [("arm64", "linux"), ("amd64", "linux")],
        ),
        "ociindex:latest": (
            "application/vnd.oci.image.index.v1+json",
            [("arm64", "linux"), ("amd64", "linux")],
        ),
        "ocibox:latest": ("application/vnd.oci.image.manifest.v1+json", []),
    }
    for name in ("busybox:latest", "multiarch:latest", "ociindex:latest", "ocibox:latest", "busybox:nope"):
        got = observe(name, call(client, "GET", f"/distribution/{host}/library/{name}/json", [host]))
        if name == "busybox:nope":
            assert got == {"status": 404, "message": "manifest unknown: manifest unknown"}
            continue
        assert got["status"] == 200, got
        descriptor, platforms = got["body"]["Descriptor"], got["body"]["Platforms"] or []
        assert descriptor["digest"].startswith("sha256:") and descriptor["size"] > 0, descriptor
        assert descriptor["mediaType"] == media[name][0]
        assert [(p["architecture"], p["os"]) for p in platforms] == media[name][1]
    image_id = observe("image-id", call(client, "GET", f"/distribution/{'a' * 64}/json", [host]))
    assert image_id == {"status": 500, "message": "no manifest found for full image ID"}


@pytest.mark.scenario(
    "api/distribution/search-offline",
    "GET /images/search MUST fail with the index's address error when no index is reachable",
    ref="moby registry/search.go",
)
def test_search_offline(daemon_factory: Callable[..., DaemonHandle], observe: Observations) -> None:
    handle = daemon_factory()
    client = _client(handle)
    result = observe("search", call(client, "GET", "/images/search?term=busybox", []))
    assert result["status"] == 500
    # the lookup's own words name this machine's resolver; the address and the failed step are dockerd's
    assert re.match(
        r'Get "https://index\.docker\.io/v1/search\?q=busybox&n=25": dial tcp: ', result["message"]
    )


# -- the real CLI --------------------------------------------------------------------------------------------
@pytest.mark.scenario(
    "api/distribution/cli-pull-push-login",
    "docker pull, docker push and docker login MUST work against the daemon as against dockerd",
    ref="docker/cli cli/command/image/pull.go, push.go, registry/login.go",
)
def test_cli(
    daemon_factory: Callable[..., DaemonHandle], registry_auth: Any, observe: Observations, tmp_path: Any
) -> None:
    import secrets

    handle = daemon_factory()
    host = registry_auth.attach(handle)
    assert handle.endpoint is not None
    docker = make_cli(handle.endpoint, str(tmp_path))
    user, password = REGISTRY_USER

    def run(*args: str, input: str | None = None) -> dict[str, Any]:
        proc = docker(*args, input=input)
        lines = []
        for text in (proc.stdout + proc.stderr).replace(host, "<registry>").splitlines():
            head = text.split(":", 1)[0]
            if len(head) == 12 and all(c in "0123456789abcdef" for c in head):
                continue  # per-layer progress: timing
            lines.append(text.replace(str(tmp_path), "<home>"))
        return {"exit": proc.returncode, "output": lines}

    observe("pull-anonymous", run("pull", f"{host}/library/busybox:latest"))
    login = observe("login", run("login", "-u", user, "--password-stdin", host, input=password))
    observe("login-bad", run("login", "-u", user, "--password-stdin", host, input="wrong"))
    pulled = observe("pull", run("pull", f"{host}/library/alpine:3.10"))
    suffix = secrets.token_hex(4)
    docker("tag", f"{host}/library/alpine:3.10", f"{host}/cli-{suffix}/alpine:v1")
    pushed = run("push", f"{host}/cli-{suffix}/alpine:v1")
    pushed["output"] = [line.replace(suffix, "<suffix>") for line in pushed["output"]]
    observe("push", pushed)
    observe("logout", run("logout", host))
    assert login["exit"] == 0 and pulled["exit"] == 0 and pushed["exit"] == 0
    assert os.path.exists(os.path.join(str(tmp_path), ".docker"))


# -- platforms, all tags, events --------------------------------------------------------------------------
@pytest.mark.scenario(
    "api/distribution/pull-platform",
    "platform= MUST pick that entry of a manifest list, warn when a single-architecture image differs, and "
    "fail with 'no matching manifest for <platform> in the manifest list entries' when no entry matches",
    ref="moby daemon/images/image_pull.go PullImage, distribution/pull_v2.go noMatchesErr",
)
def test_pull_platform(
    daemon_factory: Callable[..., DaemonHandle], registry: Any, observe: Observations
) -> None:
    from harness.images import _docker_arch

    other = "arm64" if _docker_arch() != "arm64" else "amd64"
    handle = daemon_factory()
    host = registry.attach(handle)
    client = _client(handle)
    path = "/v1.41/images/create?fromImage={}/library/{}&tag=latest&platform=linux/{}"
    for repo, arch in (("multiarch", other), ("ocibox", other), ("ociindex", "s390x")):
        resp = client.post(path.format(host, repo, arch))
        result = {"status": resp.status_code, **summarise(resp.text.replace(other, "<other-arch>"), [host])}
        observe(f"{repo}-{'other' if arch == other else arch}", result)
        assert result["status"] == 200, result
        if repo == "ociindex":
            assert result["errors"] == ["no matching manifest for linux/s390x in the manifest list entries"]
            continue
        assert result["errors"] == [] and result["messages"][-1 if repo == "multiarch" else -2].startswith(
            "Status: Downloaded newer image for <registry>/library/"
        ), result
        if repo == "ocibox":
            assert result["messages"][-1] == (
                "WARNING: image with reference <registry>/library/ocibox:latest was found but its platform "
                f"(linux/{_docker_arch()}) does not match the specified platform (linux/<other-arch>)"
            ), result
    inspected = observe("multiarch-inspect", inspect_refs(client, f"{host}/library/multiarch:latest", [host]))
    assert inspected["Architecture"] == other, inspected


@pytest.mark.scenario(
    "api/distribution/pull-all-tags",
    "A pull without tag or digest in fromImage and tag (docker pull -a) MUST pull every tag of the "
    "repository",
    ref="moby distribution/pull_v2.go pullRepository",
)
def test_pull_all_tags(
    daemon_factory: Callable[..., DaemonHandle], registry: Any, observe: Observations
) -> None:
    handle = daemon_factory()
    host = registry.attach(handle)
    client = _client(handle)
    result = observe("pull", call(client, "POST", f"/images/create?fromImage={host}/library/alpine", [host]))
    tags = sorted(
        t.replace(host, "<registry>")
        for i in client.get(f"{V}/images/json").json()
        for t in i["RepoTags"] or []
    )
    observe("tags", tags)
    assert result["status"] == 200 and len(tags) == 2


@pytest.mark.scenario(
    "api/distribution/events",
    "A pull and a push MUST each emit an image event named after the reference, with the repository as name",
    ref="moby daemon/images/image_events.go LogImageEvent",
)
def test_events(daemon_factory: Callable[..., DaemonHandle], registry: Any, observe: Observations) -> None:
    import secrets
    import time

    handle = daemon_factory()
    host = registry.attach(handle)
    suffix = secrets.token_hex(4)
    hosts = [host, "=" + suffix]
    client = _client(handle)
    since = int(time.time()) - 1
    client.post(f"{V}/images/create?fromImage={host}/library/busybox&tag=latest").close()
    client.post(f"{V}/images/{host}/library/busybox:latest/tag?repo={host}/ev-{suffix}/b&tag=v1").close()
    client.post(f"{V}/images/{host}/ev-{suffix}/b/push?tag=v1", headers=xauth("", "")).close()
    until = int(time.time()) + 1
    events = [
        json.loads(line)
        for line in client.get(f"{V}/events?since={since}&until={until}").text.splitlines()
        if line
    ]
    seen = observe(
        "events",
        [
            {
                "Action": e["Action"],
                "ID": _clean(e["Actor"]["ID"], hosts),
                "name": _clean(e["Actor"]["Attributes"].get("name", ""), hosts),
            }
            for e in events
            if e.get("Type") == "image"
        ],
    )
    pulls = [e for e in seen if e["Action"] == "pull"]
    pushes = [e for e in seen if e["Action"] == "push"]
    assert pulls == [
        {"Action": "pull", "ID": "<registry>/library/busybox:latest", "name": "<registry>/library/busybox"}
    ], seen
    assert pushes == [
        {"Action": "push", "ID": "<registry>/ev-<suffix>/b:v1", "name": "<registry>/ev-<suffix>/b"}
    ], seen


@pytest.mark.scenario(
    "api/distribution/reload-registry-settings",
    "SIGHUP MUST apply registry-mirrors and insecure-registries from daemon.json to /info and to the next "
    "pull",
    ref="moby daemon/reload.go reloadRegistryConfig",
)
def test_reload_registry_settings(
    daemon_factory: Callable[..., DaemonHandle], registry: Any, registry_tls: Any, observe: Observations
) -> None:
    from harness.wait import wait_until

    handle = daemon_factory()
    registry.attach(handle)
    secure = f"{SECURE_HOST}:{registry_tls.port}"
    registry_tls.attach(handle, host=SECURE_HOST)
    hosts = [registry.host, secure]
    client = _client(handle)
    observe("before", call(client, "POST", "/images/create?fromImage=busybox&tag=latest", hosts)["status"])
    with open(handle.config_path, "w") as fh:
        json.dump({"registry-mirrors": [registry.url], "insecure-registries": [secure]}, fh)
    start = len(handle.logs())
    handle.reload()
    assert wait_until(lambda: "Reloaded configuration" in handle.logs()[start:], 10), handle.log_tail()
    info = client.get(f"{V}/info").json()["RegistryConfig"]
    observe("mirrors", [_clean(m, hosts) for m in info["Mirrors"]])
    observe("index", sorted(_clean(k, hosts) for k in info["IndexConfigs"]))
    after = observe("mirror-pull", call(client, "POST", "/images/create?fromImage=busybox&tag=latest", hosts))
    insecure = observe(
        "insecure-pull",
        call(client, "POST", f"/images/create?fromImage={secure}/library/alpine&tag=3.10", hosts),
    )
    assert after["status"] == 200 and insecure["status"] == 200


@pytest.mark.scenario(
    "api/distribution/token-auth",
    "A registry with bearer-token auth: anonymous pulls MUST be 'pull access denied' (404), a wrong password "
    "401 from the token realm, X-Registry-Auth MUST work, docker login MUST return the refresh token as "
    "IdentityToken, and a push MUST work with that identity token",
    ref="docker/distribution registry/client/auth/session.go tokenHandler; moby registry/auth.go",
)
def test_token_auth(
    daemon_factory: Callable[..., DaemonHandle], registry_token: Any, observe: Observations
) -> None:
    import secrets

    handle = daemon_factory()
    host = registry_token.attach(handle)
    suffix = secrets.token_hex(4)
    hosts = [host, "=" + suffix]
    client = _client(handle)
    user, password = REGISTRY_USER
    pull = f"/images/create?fromImage={host}/library/busybox&tag=latest"
    observe("pull-anonymous", call(client, "POST", pull, hosts))
    observe("pull-bad-password", call(client, "POST", pull, hosts, headers=xauth(user, "wrong")))
    observe("pull-good", call(client, "POST", pull, hosts, headers=xauth(user, password)))
    login = {"username": user, "password": password, "serveraddress": host}
    observe("login-bad", call(client, "POST", "/auth", hosts, json={**login, "password": "wrong"}))
    resp = client.post(f"{V}/auth", json=login)
    identity = resp.json().get("IdentityToken", "")
    observe(
        "login-good",
        {"status": resp.status_code, "Status": resp.json().get("Status"), "token": bool(identity)},
    )
    client.post(f"{V}/images/{host}/library/busybox:latest/tag?repo={host}/tok-{suffix}/b&tag=v1").close()
    by_token = {
        "X-Registry-Auth": base64.urlsafe_b64encode(json.dumps({"identitytoken": identity}).encode()).decode()
    }
    pushed = observe(
        "push-identity-token",
        call(client, "POST", f"/images/{host}/tok-{suffix}/b/push?tag=v1", hosts, headers=by_token),
    )
    observe("push-anonymous", call(client, "POST", f"/images/{host}/tok-{suffix}/b/push?tag=v1", hosts))
    assert identity and pushed["status"] == 200 and not pushed["errors"]


@pytest.mark.scenario(
    "api/distribution/cli-run-pulls",
    "docker run of an image that is not present MUST pull it (from the Docker Hub mirror) and run it; "
    "docker pull of a name the mirror lacks MUST fail with the registry's address error",
    ref="docker/cli cli/command/container/create.go pullImage",
)
def test_cli_run_pulls(
    daemon_factory: Callable[..., DaemonHandle], registry: Any, observe: Observations, tmp_path: Any
) -> None:
    handle = daemon_factory(config={"registry-mirrors": [registry.url]})
    registry.attach(handle)
    assert handle.endpoint is not None
    docker = make_cli(handle.endpoint, str(tmp_path))

    def run(*args: str) -> dict[str, Any]:
        proc = docker(*args)
        lines = []
        for text in (proc.stdout + proc.stderr).replace(registry.host, "<registry>").splitlines():
            head = text.split(":", 1)[0]
            if len(head) == 12 and all(c in "0123456789abcdef" for c in head):
                continue  # per-layer progress: timing
            lines.append(text)
        return {"exit": proc.returncode, "output": lines}

    ran = observe("run-hello-world", run("run", "--rm", "hello-world"))
    observe("pull-missing", run("pull", "nosuchimage"))
    assert ran["exit"] == 0 and "Hello from Docker!" in ran["output"]
