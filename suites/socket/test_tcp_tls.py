"""TCP and TLS listeners: default ports, warnings, --tls vs --tlsverify, Go's replies (spec 3.3-3.4)."""

from __future__ import annotations

import os
import socket
import ssl
from typing import Any

import pytest

from harness.backends.base import DaemonHandle
from harness.client import EngineClient
from harness.endpoints import Endpoint, TLSFiles
from harness.errors import HarnessError
from harness.fixtures import DaemonFactory, Observations, make_cli

TLS_PORT = 2376


def _tls_verdict(address: str, ca: str | None, client_dir: str | None, server_name: str = "127.0.0.1") -> str:
    """'ok' if a TLS client gets 200 from /_ping, else 'refused' (reasons differ between Go and Python)."""
    host, _, port = address.rpartition(":")
    ctx = ssl.create_default_context(cafile=ca) if ca else ssl._create_unverified_context()
    if client_dir:
        ctx.load_cert_chain(os.path.join(client_dir, "cert.pem"), os.path.join(client_dir, "key.pem"))
    try:
        with (
            socket.create_connection((host, int(port)), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname=server_name) as tls,
        ):
            tls.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := tls.recv(4096):
                data += chunk
    except (ssl.SSLError, OSError):
        return "refused"
    return "ok" if data.startswith(b"HTTP/1.1 200") else f"answered {data[:20]!r}"


def _tls_daemon(
    daemon_factory: DaemonFactory, tls_material: Any, args: list[str]
) -> tuple[DaemonHandle, str]:
    daemon = daemon_factory(args=args, extra_hosts=[f"tcp://127.0.0.1:{TLS_PORT}"])
    return daemon, daemon_factory.forward(daemon, TLS_PORT).address


def _logged(daemon: DaemonHandle, needle: str, timeout: float = 5.0) -> bool:
    """dockerd logs each 'API listen on' from its own goroutine: wait for the line, don't race it."""
    try:
        daemon.wait_for_log(needle, timeout)
        return True
    except HarnessError:
        return False


def _server_args(tls: Any) -> list[str]:
    return [f"--tlscacert={tls.ca}", f"--tlscert={tls.server_cert}", f"--tlskey={tls.server_key}"]


@pytest.mark.scenario(
    "socket/tcp/plain-listen",
    "-H tcp://127.0.0.1:PORT without TLS MUST serve plain HTTP and warn that it is insecure",
    ref="spec 3.3; moby cmd/dockerd/daemon.go loadListeners",
)
def test_tcp_plain(daemon_factory: DaemonFactory, observe: Observations) -> None:
    daemon = daemon_factory(extra_hosts=["tcp://127.0.0.1:2375"])
    client = EngineClient(daemon.endpoint_for("tcp"))
    try:
        resp = client.get("/_ping")
        info = client.get("/info").json()
    finally:
        client.close()
    listening = _logged(daemon, "API listen on 127.0.0.1:2375")
    logs = daemon.logs()
    observe("status", resp.status_code)
    observe("listen_line", listening)
    observe("warned_insecure", "Binding to IP address without --tlsverify is insecure" in logs)
    observe(
        "warned_browser",
        "Binding to an IP address, even on localhost, can also give access to scripts run in"
        " a browser. Be safe out there!" in logs,
    )
    observe("info_warning", [w.split("\n")[0] for w in info.get("Warnings", []) if "2375" in w])
    assert resp.status_code == 200
    assert listening


@pytest.mark.scenario(
    "socket/tcp/default-port",
    "-H tcp://127.0.0.1 without a port MUST listen on 2375, even with TLS",
    ref="spec 3.1",
)
def test_tcp_default_port(daemon_factory: DaemonFactory, observe: Observations) -> None:
    daemon = daemon_factory(extra_hosts=["tcp://127.0.0.1"])
    listening = observe("listen_line", _logged(daemon, "API listen on 127.0.0.1:2375"))
    assert listening


@pytest.mark.scenario(
    "socket/tls/verify-good-client",
    "With --tlsverify a client presenting a certificate from the CA MUST be served",
    ref="spec 3.4",
)
def test_tlsverify_good(daemon_factory: DaemonFactory, tls_material: Any, observe: Observations) -> None:
    _, address = _tls_daemon(daemon_factory, tls_material, [*_server_args(tls_material), "--tlsverify"])
    verdict = observe("verdict", _tls_verdict(address, tls_material.ca, tls_material.client_dir))
    assert verdict == "ok"


@pytest.mark.parametrize("client", ["none", "rogue-ca", "expired"])
@pytest.mark.scenario(
    "socket/tls/verify-refuses-bad-clients",
    "With --tlsverify a client without a certificate, with one from another CA or an expired one "
    "MUST be refused during the handshake",
    ref="spec 3.4",
)
def test_tlsverify_refuses(
    daemon_factory: DaemonFactory, tls_material: Any, observe: Observations, client: str
) -> None:
    _, address = _tls_daemon(daemon_factory, tls_material, [*_server_args(tls_material), "--tlsverify"])
    client_dir = {
        "none": None,
        "rogue-ca": tls_material.rogue_client_dir,
        "expired": tls_material.expired_client_dir,
    }[client]
    verdict = observe(client, _tls_verdict(address, tls_material.ca, client_dir))
    assert verdict == "refused"


@pytest.mark.scenario(
    "socket/tls/tls-alone-verifies",
    "--tls alone MUST still require a client certificate (tlsverify defaults to --tls)",
    ref="spec 3.4; moby cmd/dockerd/daemon.go loadDaemonCliConfig",
)
def test_tls_alone_verifies(daemon_factory: DaemonFactory, tls_material: Any, observe: Observations) -> None:
    _, address = _tls_daemon(daemon_factory, tls_material, [*_server_args(tls_material), "--tls"])
    observe("without_cert", _tls_verdict(address, tls_material.ca, None))
    observe("with_cert", _tls_verdict(address, tls_material.ca, tls_material.client_dir))
    assert _tls_verdict(address, tls_material.ca, None) == "refused"


@pytest.mark.scenario(
    "socket/tls/server-auth-only",
    "--tls --tlsverify=false MUST serve clients without certificates and warn in /info",
    ref="spec 3.4",
)
def test_tls_server_only(daemon_factory: DaemonFactory, tls_material: Any, observe: Observations) -> None:
    daemon, address = _tls_daemon(
        daemon_factory, tls_material, [*_server_args(tls_material), "--tls", "--tlsverify=false"]
    )
    verdict = observe("without_cert", _tls_verdict(address, tls_material.ca, None))
    client = EngineClient(Endpoint("tcp", address, TLSFiles(ca=tls_material.ca)))
    try:
        warnings = client.get("/info").json().get("Warnings") or []
    finally:
        client.close()
    first_lines = observe(
        "info_warnings", [w.split("\n")[0].replace(address, "<addr>") for w in warnings if "TLS" in w]
    )
    observe("logs_insecure_warning", "Binding to IP address without --tlsverify is insecure" in daemon.logs())
    assert verdict == "ok"
    assert first_lines and "without TLS client verification" in first_lines[0]


@pytest.mark.scenario(
    "socket/tls/plaintext-to-tls-port",
    "Plain HTTP to a TLS port MUST get Go's 'HTTP/1.0 400 Bad Request' and 'Client sent an HTTP "
    "request to an HTTPS server.'",
    ref="spec 3.4; Go net/http server.go",
)
def test_plaintext_to_tls(daemon_factory: DaemonFactory, tls_material: Any, observe: Observations) -> None:
    _, address = _tls_daemon(daemon_factory, tls_material, [*_server_args(tls_material), "--tlsverify"])
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    observe("reply", data.decode(errors="replace"))
    assert data == b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"


@pytest.mark.scenario(
    "socket/tls/tls-to-plain-port", "A TLS client on a plain TCP port MUST fail the handshake", ref="spec 3.3"
)
def test_tls_to_plain(daemon_factory: DaemonFactory, tls_material: Any, observe: Observations) -> None:
    daemon = daemon_factory(extra_hosts=["tcp://127.0.0.1:2375"])
    verdict = observe("verdict", _tls_verdict(daemon.endpoint_for("tcp").address, tls_material.ca, None))
    assert verdict == "refused"


@pytest.mark.scenario(
    "socket/tls/wrong-server-name",
    "A client verifying the server name MUST refuse a certificate issued for another name",
    ref="spec 3.4",
)
def test_wrong_server_name(daemon_factory: DaemonFactory, tls_material: Any, observe: Observations) -> None:
    args = [
        f"--tlscacert={tls_material.ca}",
        f"--tlscert={tls_material.wrong_name_server_cert}",
        f"--tlskey={tls_material.wrong_name_server_key}",
        "--tlsverify",
    ]
    _, address = _tls_daemon(daemon_factory, tls_material, args)
    verdict = observe("verdict", _tls_verdict(address, tls_material.ca, tls_material.client_dir))
    assert verdict == "refused"


@pytest.mark.scenario(
    "socket/tls/docker-cli-tlsverify",
    "The docker CLI with --tlsverify and DOCKER_CERT_PATH material MUST reach the daemon; without a "
    "certificate it MUST report the client-authentication error",
    ref="spec 3.4",
)
def test_docker_cli_tls(
    daemon_factory: DaemonFactory, tls_material: Any, observe: Observations, tmp_path: Any
) -> None:
    _, address = _tls_daemon(daemon_factory, tls_material, [*_server_args(tls_material), "--tlsverify"])
    good = make_cli(
        Endpoint(
            "tcp",
            address,
            TLSFiles(
                tls_material.ca, tls_material.client_cert, tls_material.client_key, tls_material.client_dir
            ),
        ),
        str(tmp_path),
    )
    result = good("version", "--format", "{{.Server.Os}}")
    observe("ok_exit", result.returncode)
    observe("ok_stdout", result.stdout.strip())
    bare = make_cli(Endpoint("tcp", address, TLSFiles(tls_material.ca)), str(tmp_path))
    refused = bare("version", "--format", "{{.Server.Os}}")
    observe("refused_exit", refused.returncode)
    observe("refused_mentions_tlsverify", "client authentication (--tlsverify) enabled" in refused.stderr)
    assert result.returncode == 0 and result.stdout.strip() == "linux"
    assert refused.returncode != 0


@pytest.mark.scenario(
    "socket/tls/missing-ca",
    "--tlsverify with a CA file that does not exist MUST stop start-up naming the file",
    ref="spec 3.4",
)
def test_missing_ca(daemon_factory: DaemonFactory, tls_material: Any, observe: Observations) -> None:
    code, daemon = daemon_factory.start_expecting_exit(
        args=[
            "--tlscacert=/nonexistent/ca.pem",
            f"--tlscert={tls_material.server_cert}",
            f"--tlskey={tls_material.server_key}",
            "--tlsverify",
        ],
        extra_hosts=[f"tcp://127.0.0.1:{TLS_PORT}"],
    )
    observe("exit_code", code)
    observe("names_file", 'could not read CA certificate "/nonexistent/ca.pem"' in daemon.logs())
    assert code == 1
    assert 'could not read CA certificate "/nonexistent/ca.pem"' in daemon.logs()


@pytest.mark.scenario(
    "socket/tls/sdk-client",
    "The docker SDK MUST work as a TLS client of a --tlsverify daemon with the client certificate (ping, "
    "version, info, a container list) and MUST be refused without one",
    ref="docker-py docker.tls.TLSConfig; spec 3.4",
)
def test_sdk_tls_client(daemon_factory: DaemonFactory, tls_material: Any, observe: Observations) -> None:
    _, address = _tls_daemon(daemon_factory, tls_material, [*_server_args(tls_material), "--tlsverify"])
    client_dir = tls_material.client_dir
    with_cert = TLSFiles(
        ca=tls_material.ca, cert=os.path.join(client_dir, "cert.pem"), key=os.path.join(client_dir, "key.pem")
    )
    # Endpoint.sdk_client turns requests' trust_env off: a REQUESTS_CA_BUNDLE in the environment would
    # otherwise replace the daemon's CA
    sdk = Endpoint("tcp", address, with_cert).sdk_client(timeout=20)
    try:
        observe("ping", sdk.ping())
        observe(
            "version_keys", sorted(k for k in sdk.version() if k in ("ApiVersion", "Os", "Arch", "Version"))
        )
        observe("info_has_id", bool(sdk.info().get("ID")))
        observe("containers_listed", isinstance(sdk.containers.list(all=True), list))
    finally:
        sdk.close()
    try:
        anonymous = Endpoint("tcp", address, TLSFiles(ca=tls_material.ca)).sdk_client(
            version="1.41", timeout=10
        )
    except Exception as exc:  # refused during the version handshake
        refused = type(exc).__name__
    else:
        try:
            anonymous.ping()
            refused = "answered"
        except Exception as exc:  # the SDK wraps the TLS alert in requests' SSLError / ConnectionError
            refused = type(exc).__name__
        finally:
            anonymous.close()
    observe("without_cert", "refused" if refused != "answered" else "answered")
    assert refused != "answered"
