"""Server TLS for refd's TCP listeners, with dockerd's ``--tls``/``--tlsverify`` rules.

dockerd turns TLS on when ``--tls`` is set or ``tlsverify`` is set *at all*, and when
``--tlsverify`` was not given it copies ``--tls`` into it: ``--tls`` alone verifies
clients (spec 3.4). Only the given CA is trusted for client certificates.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

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
    return TLSSettings(enabled=enabled, verify=verify, explicit=tls_set or verify_set,
                       cacert=str(values.get("tlscacert") or ""), cert=str(values.get("tlscert") or ""),
                       key=str(values.get("tlskey") or ""))


def _read(path: str) -> None:
    with open(path, "rb"):
        pass


def server_context(settings: TLSSettings) -> ssl.SSLContext:
    """Build the listener's SSLContext or raise TLSError worded like go-connections."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        _read(settings.cert)
        _read(settings.key)
        ctx.load_cert_chain(settings.cert, settings.key)
    except (OSError, ssl.SSLError) as exc:
        reason = "no such file or directory" if isinstance(exc, FileNotFoundError) else (
            getattr(exc, "strerror", None) or str(exc)).lower()
        failing = settings.cert if isinstance(exc, FileNotFoundError) and not _exists(settings.cert) else settings.key
        raise TLSError(f'invalid TLS configuration: Could not load X509 key pair (cert: "{settings.cert}", '
                       f'key: "{settings.key}"): open {failing}: {reason}') from None
    if settings.verify and settings.cacert:
        try:
            ctx.load_verify_locations(cafile=settings.cacert)
        except FileNotFoundError:
            raise TLSError(f'invalid TLS configuration: could not read CA certificate "{settings.cacert}": '
                           f"open {settings.cacert}: no such file or directory") from None
        except (OSError, ssl.SSLError) as exc:
            raise TLSError(f'invalid TLS configuration: failed to append certificates from PEM file: '
                           f'"{settings.cacert}": {exc}') from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    elif settings.verify:
        raise TLSError('invalid TLS configuration: could not read CA certificate "": '
                       "open : no such file or directory")
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _exists(path: str) -> bool:
    try:
        _read(path)
        return True
    except OSError:
        return False
