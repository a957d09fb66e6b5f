"""Minted TLS material proven by real handshakes: the good client gets in; rogue, expired, wrong names not."""

from __future__ import annotations

import os
import socket
import ssl
import threading
from pathlib import Path

import pytest

from harness.tls import TLSMaterial, mint_tls_material

from .conftest import server_context


class OneShotServer:
    """Accepts one TLS connection, answers b'pong' to b'ping', and keeps the server-side error if any."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.ctx = ctx
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(10)
        try:
            conn, _ = self.listener.accept()
        except OSError as exc:
            self.error = exc
            return
        conn.settimeout(10)
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                if tls.recv(4) == b"ping":
                    tls.sendall(b"pong")
        except OSError as exc:  # ssl.SSLError included
            self.error = exc
        finally:
            conn.close()

    def close(self) -> None:
        self._thread.join(timeout=10)
        self.listener.close()


def _talk(
    tls: TLSMaterial,
    server: ssl.SSLContext,
    client_dir: str | None,
    server_name: str = "127.0.0.1",
) -> tuple[str, BaseException | None]:
    """'pong' when the exchange worked, else 'refused: <client error>'; plus the server's error."""
    srv = OneShotServer(server)
    ctx = ssl.create_default_context(cafile=tls.ca)
    if client_dir is not None:
        ctx.load_cert_chain(os.path.join(client_dir, "cert.pem"), os.path.join(client_dir, "key.pem"))
    try:
        with (
            socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname=server_name) as conn,
        ):
            conn.sendall(b"ping")
            answer = conn.recv(4)
        verdict = answer.decode() or "refused: closed"
    except OSError as exc:  # ssl.SSLError included
        verdict = f"refused: {exc}"
    finally:
        srv.close()
    return verdict, srv.error


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> TLSMaterial:
    return mint_tls_material(str(tmp_path_factory.mktemp("tls")))


def test_files_are_written_in_the_layouts_dockerd_and_the_cli_expect(material: TLSMaterial) -> None:
    for path in (
        material.ca,
        material.server_cert,
        material.server_key,
        material.client_cert,
        material.client_key,
        material.wrong_name_server_cert,
        material.wrong_name_server_key,
    ):
        assert Path(path).read_text().startswith("-----BEGIN"), path
    for directory in (material.client_dir, material.rogue_client_dir, material.expired_client_dir):
        assert sorted(os.listdir(directory)) == ["ca.pem", "cert.pem", "key.pem"]
        assert Path(directory, "ca.pem").read_bytes() == Path(material.ca).read_bytes()
    assert material.daemon_args() == [
        f"--tlscacert={material.ca}",
        f"--tlscert={material.server_cert}",
        f"--tlskey={material.server_key}",
        "--tlsverify",
    ]
    assert material.daemon_args(verify=False)[-2:] == ["--tls", "--tlsverify=false"]


def test_good_client_completes_a_mutual_handshake(material: TLSMaterial) -> None:
    verdict, server_error = _talk(material, server_context(material), material.client_dir)
    assert verdict == "pong"
    assert server_error is None


def test_client_without_a_certificate_is_refused(material: TLSMaterial) -> None:
    verdict, server_error = _talk(material, server_context(material), None)
    assert verdict.startswith("refused")
    assert "certificate" in str(server_error)


def test_client_from_another_ca_is_refused(material: TLSMaterial) -> None:
    verdict, server_error = _talk(material, server_context(material), material.rogue_client_dir)
    assert verdict.startswith("refused")
    assert isinstance(server_error, ssl.SSLError)
    assert "certificate verify failed" in str(server_error)


def test_expired_client_is_refused(material: TLSMaterial) -> None:
    verdict, server_error = _talk(material, server_context(material), material.expired_client_dir)
    assert verdict.startswith("refused")
    assert "certificate has expired" in str(server_error)


def test_server_cert_names_localhost_and_both_loopbacks(material: TLSMaterial) -> None:
    for name in ("127.0.0.1", "localhost"):
        assert _talk(material, server_context(material), material.client_dir, server_name=name)[0] == "pong"


def test_wrong_name_server_cert_fails_hostname_verification(material: TLSMaterial) -> None:
    ctx = server_context(material, require_client=False, wrong_name=True)
    verdict, _ = _talk(material, ctx, None, server_name="127.0.0.1")
    assert verdict.startswith("refused")
    assert "mismatch" in verdict  # "IP address mismatch": the chain is fine, the name is not


def test_wrong_name_server_cert_is_otherwise_valid(material: TLSMaterial) -> None:
    ctx = server_context(material, require_client=False, wrong_name=True)
    assert _talk(material, ctx, None, server_name="not-this-host.invalid")[0] == "pong"


def test_material_from_another_mint_is_not_trusted(material: TLSMaterial, tmp_path: Path) -> None:
    other = mint_tls_material(str(tmp_path / "other"))
    verdict, _ = _talk(other, server_context(material, require_client=False), None)
    assert "certificate verify failed" in verdict
