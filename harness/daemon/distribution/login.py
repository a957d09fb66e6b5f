"""``docker login``: moby ``registry/service.go`` Auth and ``registry/auth.go`` loginV2.

The server address picks the registry (Docker Hub when empty); its endpoints are tried without
mirrors (credentials never go to a mirror): ``GET /v2/`` is pinged for challenges, then sent again
authorised (a bearer challenge fetches a token with ``offline_token=true``; a refresh token it
returns is the identity token). A 401 ends the attempts; other failures try the next endpoint.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from .auth import AuthConfig, Authorizer
from .client import Fallback, ping
from .errors import DistributionError, ErrcodeError, TransportError
from .service import INDEX_HOSTNAME, ServiceConfig
from .transport import Transport

__all__ = ["login"]


class Unauthorized(DistributionError):
    status = 401


def _login_v2(endpoint: Any, creds: AuthConfig, log: Any) -> str:
    url = endpoint.url.rstrip("/") + "/v2/"
    if log is not None:
        log.debug("attempting v2 login to registry endpoint", endpoint=url)
    transport = Transport(endpoint.tls)
    try:
        challenges = ping(endpoint, transport)
    except Fallback as exc:
        raise exc.err from None
    working = AuthConfig(**vars(creds))
    authorizer = Authorizer(transport, challenges, working, [], offline_access=True)
    try:
        headers = authorizer.headers()
    except DistributionError as exc:
        err = TransportError("GET", url, exc.message, exc)
        if isinstance(exc, ErrcodeError) and exc.code == "UNAUTHORIZED":
            raise Unauthorized(err.message) from None
        raise err from None
    resp = transport.request("GET", url, headers)
    try:
        if resp.status != 200:
            raise DistributionError(
                f"login attempt to {url} failed with status: {resp.status} {_status_text(resp.status)}"
            )
    finally:
        resp.close()
    return working.identity_token


def _status_text(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def login(service: ServiceConfig, creds: AuthConfig, log: Any = None) -> tuple[str, str]:
    """("Login Succeeded", identity token) or DistributionError with dockerd's text."""
    host = INDEX_HOSTNAME
    if creds.server_address:
        address = creds.server_address
        if not address.startswith(("http://", "https://")):
            address = "https://" + address
        host = urllib.parse.urlsplit(address).netloc
    try:
        endpoints = service.endpoints(host, mirrors=False)
    except DistributionError as exc:
        raise DistributionError(exc.message, 400) from None
    last: DistributionError | None = None
    for endpoint in endpoints:
        try:
            token = _login_v2(endpoint, creds, log)
        except Unauthorized:
            raise
        except DistributionError as exc:
            if log is not None:
                log.info(f"Error logging in to endpoint, trying next endpoint: {exc.message}")
            last = exc
            continue
        return "Login Succeeded", token
    raise last or DistributionError("no endpoint to log in to")
