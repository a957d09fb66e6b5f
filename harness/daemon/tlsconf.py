"""Server TLS for refd's TCP listeners, with dockerd's ``--tls``/``--tlsverify`` rules.

dockerd turns TLS on when ``--tls`` is set or ``tlsverify`` is set *at all*, and when
``--tlsverify`` was not given it copies ``--tls`` into it: ``--tls`` alone verifies
clients (spec 3.4). Only the given CA is trusted for client certificates.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl
else:
    from .lazy import ssl  # imported with the first TLS listener: refd answers /_ping without it

__all__ = ["TLSError", "TLSSettings", "resolve_tls", "server_context"]


class TLSError(Exception):
    """TLS material could not be loaded; the message is dockerd's."""


@dataclass(frozen=True)
class TLSSettings:
    enabled: bool
    verify: bool
    explicit: bool  # TLS configured at all (dockerd's conf.TLS != nil)
    cacert: str
    cert: str
    key: str


def resolve_tls(values: dict[str, object], set_keys: set[str]) -> TLSSettings:
    """Apply dockerd's implication rules; ``set_keys`` are flags given or file keys present."""
    tls_set = "tls" in set_keys
    verify_set = "tlsverify" in set_keys
    enabled = bool(values.get("tls")) or verify_set or bool(values.get("tlsverify"))
    verify = bool(values.get("tlsverify")) if verify_set else enabled
    return TLSSettings(
        enabled=enabled,
        verify=verify,
        explicit=tls_set or verify_set,
        cacert=str(values.get("tlscacert") or ""),
        cert=str(values.get("tlscert") or ""),
        key=str(values.get("tlskey") or ""),
    )


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _os_error(path: str, exc: OSError) -> str:
    """Go's ``*PathError`` text: ``open <path>: no such file or directory``."""
    return f"open {path}: {(exc.strerror or str(exc)).lower()}"


def _load_key_pair(ctx: ssl.SSLContext, cert: str, key: str) -> None:
    """``tls.LoadX509KeyPair`` wrapped as go-connections ``tlsconfig.Server`` words it."""
    pair = f'(cert: "{cert}", key: "{key}")'
    try:
        cert_pem = _read(cert)
        key_pem = _read(key)
    except FileNotFoundError as exc:
        failing = key if os.path.exists(cert) else cert
        raise TLSError(
            f"invalid TLS configuration: Could not load X509 key pair {pair}: {_os_error(failing, exc)}"
        ) from None
    except OSError as exc:
        failing = key if os.access(cert, os.R_OK) else cert
        raise TLSError(
            f"invalid TLS configuration: Error reading X509 key pair {pair}: "
            f"{_os_error(failing, exc)}. Make sure the key is not encrypted."
        ) from None
    reason = ""
    if b"-----BEGIN" not in cert_pem:
        reason = "tls: failed to find any PEM data in certificate input"
    elif b"-----BEGIN" not in key_pem:
        reason = "tls: failed to find any PEM data in key input"
    else:
        try:
            ctx.load_cert_chain(cert, key)
        except ssl.SSLError as exc:
            mismatch = "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc)
            reason = "tls: private key does not match public key" if mismatch else f"tls: {exc.reason or exc}"
    if reason:
        raise TLSError(
            f"invalid TLS configuration: Error reading X509 key pair {pair}: {reason}. "
            "Make sure the key is not encrypted."
        )


def server_context(settings: TLSSettings) -> ssl.SSLContext:
    """Build the listener's SSLContext or raise TLSError worded like go-connections ``tlsconfig.Server``.

    With verification on and no CA file, Go leaves ``ClientCAs`` nil, which means the
    host's roots; refd loads the system default CAs for that case.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_key_pair(ctx, settings.cert, settings.key)
    if not settings.verify:
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx.verify_mode = ssl.CERT_REQUIRED
    if not settings.cacert:
        ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        return ctx
    try:
        pem = _read(settings.cacert)
    except OSError as exc:
        raise TLSError(
            f'invalid TLS configuration: could not read CA certificate "{settings.cacert}": '
            f"{_os_error(settings.cacert, exc)}"
        ) from None
    try:
        ctx.load_verify_locations(cadata=pem.decode("ascii", errors="replace"))
    except (ssl.SSLError, ValueError):
        raise TLSError(
            f'invalid TLS configuration: failed to append certificates from PEM file: "{settings.cacert}"'
        ) from None
    return ctx
