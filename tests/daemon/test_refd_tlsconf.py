"""TLS for refd's TCP listeners: dockerd's --tls/--tlsverify rules and go-connections error texts (spec 3.4),
proven with a real handshake (trustme material)."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest
import trustme

from harness.daemon.tlsconf import TLSError, TLSSettings, resolve_tls, server_context

# --- resolve_tls ---------------------------------------------------------------------------------------


def _values(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "tls": False,
        "tlsverify": False,
        "tlscacert": "/c/ca.pem",
        "tlscert": "/c/cert.pem",
        "tlskey": "/c/key.pem",
    }
    base.update(kw)
    return base


def test_tls_alone_verifies_clients() -> None:
    settings = resolve_tls(_values(tls=True), {"tls"})
    assert (settings.enabled, settings.verify, settings.explicit) == (True, True, True)


def test_tlsverify_false_is_tls_without_verification() -> None:
    settings = resolve_tls(_values(tlsverify=False), {"tlsverify"})
    assert (settings.enabled, settings.verify, settings.explicit) == (True, False, True)
    settings = resolve_tls(_values(tls=True, tlsverify=False), {"tls", "tlsverify"})
    assert (settings.enabled, settings.verify) == (True, False)


def test_tlsverify_true_implies_tls() -> None:
    settings = resolve_tls(_values(tlsverify=True), {"tlsverify"})
    assert (settings.enabled, settings.verify) == (True, True)


def test_neither_is_off() -> None:
    settings = resolve_tls(_values(), set())
    assert (settings.enabled, settings.verify, settings.explicit) == (False, False, False)


def test_tls_false_is_explicit_but_off() -> None:
    settings = resolve_tls(_values(tls=False), {"tls"})
    assert (settings.enabled, settings.verify, settings.explicit) == (False, False, True)


def test_paths_are_carried() -> None:
    settings = resolve_tls(_values(tls=True), {"tls"})
    assert (settings.cacert, settings.cert, settings.key) == ("/c/ca.pem", "/c/cert.pem", "/c/key.pem")


# --- server_context ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def material(tmp_path: Path, ca: trustme.CA) -> dict[str, str]:
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    paths = {"cacert": tmp_path / "ca.pem", "cert": tmp_path / "cert.pem", "key": tmp_path / "key.pem"}
    ca.cert_pem.write_to_path(str(paths["cacert"]))
    leaf.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    leaf.private_key_pem.write_to_path(str(paths["key"]))
    return {k: str(v) for k, v in paths.items()}


def _settings(material: dict[str, str], verify: bool = True, **over: str) -> TLSSettings:
    paths = {**material, **over}
    return TLSSettings(
        enabled=True,
        verify=verify,
        explicit=True,
        cacert=paths["cacert"],
        cert=paths["cert"],
        key=paths["key"],
    )


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> str:
    """One TLS handshake over a socketpair; returns "ok" or the client's error text."""
    a, b = socket.socketpair()
    result: dict[str, str] = {}

    def serve() -> None:
        try:
            with server.wrap_socket(a, server_side=True) as tls:
                tls.sendall(b"OK")
        except (ssl.SSLError, OSError) as exc:
            result["server"] = str(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client.wrap_socket(b, server_hostname="localhost") as tls:
            return "ok" if tls.recv(2) == b"OK" else "short read"
    except (ssl.SSLError, OSError) as exc:
        return f"error: {exc}"
    finally:
        thread.join(5)
        a.close()
        b.close()


def test_verifying_server_accepts_a_client_cert_from_its_ca(material: dict[str, str], ca: trustme.CA) -> None:
    server = server_context(_settings(material))
    assert server.verify_mode == ssl.CERT_REQUIRED
    assert server.minimum_version == ssl.TLSVersion.TLSv1_2
    client = ssl.create_default_context()
    ca.configure_trust(client)
    ca.issue_cert("client").configure_cert(client)
    assert _handshake(server, client) == "ok"


def test_verifying_server_refuses_a_client_without_cert(material: dict[str, str], ca: trustme.CA) -> None:
    server = server_context(_settings(material))
    client = ssl.create_default_context()
    ca.configure_trust(client)
    assert _handshake(server, client).startswith("error:")


def test_verifying_server_refuses_a_cert_from_another_ca(material: dict[str, str], ca: trustme.CA) -> None:
    server = server_context(_settings(material))
    client = ssl.create_default_context()
    ca.configure_trust(client)
    trustme.CA().issue_cert("client").configure_cert(client)
    assert _handshake(server, client).startswith("error:")


def test_non_verifying_server_needs_no_ca(material: dict[str, str], ca: trustme.CA) -> None:
    server = server_context(_settings(material, verify=False, cacert="/nonexistent/ca.pem"))
    assert server.verify_mode == ssl.CERT_NONE
    client = ssl.create_default_context()
    ca.configure_trust(client)
    assert _handshake(server, client) == "ok"


def _error(settings: TLSSettings) -> str:
    with pytest.raises(TLSError) as info:
        server_context(settings)
    return str(info.value)


def test_missing_cert(material: dict[str, str], tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.pem")
    assert _error(_settings(material, cert=missing)) == (
        f'invalid TLS configuration: Could not load X509 key pair (cert: "{missing}", '
        f'key: "{material["key"]}"): '
        f"open {missing}: no such file or directory"
    )


def test_missing_key(material: dict[str, str], tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.pem")
    assert _error(_settings(material, key=missing)) == (
        f'invalid TLS configuration: Could not load X509 key pair (cert: "{material["cert"]}", '
        f'key: "{missing}"): '
        f"open {missing}: no such file or directory"
    )


def test_blank_cert_and_key() -> None:
    settings = TLSSettings(enabled=True, verify=False, explicit=True, cacert="", cert="", key="")
    assert _error(settings) == (
        "invalid TLS configuration: Could not load X509 key pair "
        '(cert: "", key: ""): open : no such file or directory'
    )


def test_garbage_cert_and_mismatched_key(material: dict[str, str], tmp_path: Path, ca: trustme.CA) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    pair = f'(cert: "{garbage}", key: "{material["key"]}")'
    assert _error(_settings(material, cert=str(garbage))) == (
        f"invalid TLS configuration: Error reading X509 key pair {pair}: tls: failed to find any PEM data in "
        "certificate input. Make sure the key is not encrypted."
    )
    other_key = tmp_path / "other-key.pem"
    ca.issue_cert("other").private_key_pem.write_to_path(str(other_key))
    assert _error(_settings(material, key=str(other_key))).endswith(
        "tls: private key does not match public key. Make sure the key is not encrypted."
    )


def test_missing_ca(material: dict[str, str], tmp_path: Path) -> None:
    missing = str(tmp_path / "A" / "ca.pem")
    assert _error(_settings(material, cacert=missing)) == (
        f'invalid TLS configuration: could not read CA certificate "{missing}": '
        f"open {missing}: no such file or directory"
    )


def test_bad_ca(material: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad-ca.pem"
    bad.write_text("nothing here\n")
    assert (
        _error(_settings(material, cacert=str(bad)))
        == f'invalid TLS configuration: failed to append certificates from PEM file: "{bad}"'
    )


def test_verify_without_ca_file_uses_system_roots(material: dict[str, str]) -> None:
    """go-connections skips ClientCAs when the CA path is empty; Go then verifies against the host roots."""
    server = server_context(_settings(material, cacert=""))
    assert server.verify_mode == ssl.CERT_REQUIRED
