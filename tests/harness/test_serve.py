"""The fixture service: leases over HTTP, the CLI client, expiry, errors; daemons are real local refd."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from harness.serve import _request, client_main, make_server
from harness.wait import wait_until

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="leases boot local daemons: needs root (unshare)")


@pytest.fixture
def service() -> Iterator[str]:
    server = make_server(port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"http://{host!s}:{port}"
    finally:
        server.shutdown()
        server.service.close()
        server.server_close()


def _ping(docker_host: str, cert_path: str = "") -> int:
    from harness.endpoints import Endpoint, TLSFiles
    from harness.wait import ping_once

    tls = (
        TLSFiles(ca=f"{cert_path}/ca.pem", cert=f"{cert_path}/cert.pem", key=f"{cert_path}/key.pem")
        if cert_path
        else None
    )
    return ping_once(
        Endpoint("tcp", docker_host.removeprefix("tcp://"), tls)
        if docker_host.startswith("tcp://")
        else Endpoint("unix", docker_host.removeprefix("unix://"))
    )


def test_health_and_bad_requests(service: str) -> None:
    assert _request("GET", "/health", url=service) == (200, {"status": "ok", "leases": 0, "pools": {}})
    status, reply = _request("POST", "/leases", {"target": "nope"}, url=service)
    assert status == 400 and "unknown target 'nope'" in reply["message"]
    status, reply = _request("POST", "/leases", {"target": "refd", "backend": "qemu"}, url=service)
    assert status == 400 and "unknown backend 'qemu'" in reply["message"]
    status, reply = _request("POST", "/leases", {"target": "refd", "args": "--debug"}, url=service)
    assert status == 400 and "args must be a list" in reply["message"]
    assert _request("DELETE", "/leases/abc", url=service)[0] == 404
    assert _request("GET", "/nothing", url=service)[0] == 404
    req = urllib.request.Request(service + "/leases", data=b"{", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    with err.value:
        assert err.value.code == 400


@needs_root
def test_lease_answers_lists_and_release_tears_down(service: str) -> None:
    status, lease = _request("POST", "/leases", {"target": "refd", "args": ["--debug"]}, url=service)
    assert status == 201, lease
    assert lease["env"]["DOCKER_HOST"] == lease["docker_host"]
    assert _ping(lease["docker_host"]) == 200
    assert [x["id"] for x in _request("GET", "/leases", url=service)[1]] == [lease["id"]]
    assert _request("GET", f"/leases/{lease['id']}", url=service)[1]["alive"] is True
    assert _request("DELETE", f"/leases/{lease['id']}", url=service)[0] == 204
    assert not os.path.exists(lease["workdir"])
    assert _request("GET", f"/leases/{lease['id']}", url=service)[0] == 404


@needs_root
def test_tls_lease_hands_back_a_cert_path(service: str) -> None:
    status, lease = _request("POST", "/leases", {"target": "refd", "tls": True}, url=service)
    assert status == 201, lease
    assert lease["env"]["DOCKER_TLS_VERIFY"] == "1"
    assert sorted(os.listdir(lease["cert_path"])) >= ["ca.pem", "cert.pem", "key.pem"]
    assert _ping(lease["docker_host"], lease["cert_path"]) == 200
    _request("DELETE", f"/leases/{lease['id']}", url=service)
    assert not os.path.exists(lease["cert_path"])


@needs_root
def test_an_expired_lease_is_torn_down(service: str) -> None:
    status, lease = _request("POST", "/leases", {"target": "refd", "ttl": 1}, url=service)
    assert status == 201
    gone = wait_until(
        lambda: _request("GET", f"/leases/{lease['id']}", url=service)[0] == 404, 20, interval=0.2
    )
    assert gone, "the lease outlived its ttl"

    assert not os.path.exists(lease["workdir"])


@needs_root
def test_a_daemon_that_does_not_boot_is_a_503_with_its_log(service: str) -> None:
    status, reply = _request("POST", "/leases", {"target": "refd", "args": ["--no-such-flag"]}, url=service)
    assert status == 503 and "no-such-flag" in reply["message"]


@needs_root
def test_cli_lease_and_release(service: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert client_main("lease", ["refd", "--url", service]) == 0
    out = capsys.readouterr().out
    env = dict(
        line.removeprefix("export ").split("=", 1) for line in out.splitlines() if line.startswith("export ")
    )
    assert _ping(env["DOCKER_HOST"]) == 200
    assert client_main("leases", ["--url", service]) == 0
    assert env["HARNESS_LEASE"] in capsys.readouterr().out
    assert client_main("release", [env["HARNESS_LEASE"], "--url", service]) == 0
    assert client_main("release", [env["HARNESS_LEASE"], "--url", service]) == 1
    assert "no lease" in capsys.readouterr().err


def test_client_names_a_service_that_does_not_answer() -> None:
    with pytest.raises(SystemExit, match=r"does not answer.*harness serve"):
        _request("GET", "/leases", url="http://127.0.0.1:9")


@needs_root
def test_harness_serve_command_tears_leases_down_on_sigterm(tmp_path: Any) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "serve", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().split("=", 1)[1]
        status, lease = _request("POST", "/leases", {"target": "refd"}, url=url)
        assert status == 201
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) == 0
        if proc.stdout is not None:
            proc.stdout.close()
    assert not os.path.exists(lease["workdir"])
    assert json.dumps(lease)
