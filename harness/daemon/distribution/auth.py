"""Registry authentication: ``X-Registry-Auth``, ``WWW-Authenticate`` challenges, basic and bearer tokens.

Follows docker/distribution's ``registry/client/auth`` (what dockerd vendors): the ``/v2/`` ping's 401
challenges are remembered per endpoint; every later request to that endpoint is authorised by the
first handler whose scheme a challenge names (token handler first, then basic). A basic challenge
without credentials fails the request with ``no basic auth credentials``; a bearer challenge fetches
a token from the realm (``GET realm?service=&scope=repository:<name>:<actions>``, basic auth when
credentials are given; ``POST`` with ``grant_type=refresh_token`` for an identity token).
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from .challenges import Challenge
from .errorbody import error_from_response
from .errors import DistributionError, NoBasicAuthCredentials

__all__ = ["AuthConfig", "Authorizer", "decode_auth_config"]


@dataclass
class AuthConfig:
    """registry.AuthConfig (the fields dockerd uses)."""

    username: str = ""
    password: str = ""
    auth: str = ""
    server_address: str = ""
    identity_token: str = ""
    registry_token: str = ""
    email: str = ""

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> AuthConfig:
        def get(*names: str) -> str:
            lowered = {str(k).lower(): v for k, v in doc.items()}
            for name in names:
                value = lowered.get(name)
                if isinstance(value, str):
                    return value
            return ""

        cfg = cls(
            get("username"),
            get("password"),
            get("auth"),
            get("serveraddress"),
            get("identitytoken"),
            get("registrytoken"),
            get("email"),
        )
        if cfg.auth and not cfg.username:
            try:
                user, _, password = base64.b64decode(cfg.auth).decode().partition(":")
                cfg.username, cfg.password = user, password
            except (binascii.Error, UnicodeDecodeError):
                pass
        return cfg

    def hmac_key_input(self) -> bytes:
        """authConfigKeyInput marshalled (moby distribution/metadata)."""
        doc = {}
        for key, value in (
            ("username", self.username),
            ("password", self.password),
            ("auth", self.auth),
            ("identitytoken", self.identity_token),
            ("registrytoken", self.registry_token),
        ):
            if value:
                doc[key] = value
        return json.dumps(doc, separators=(",", ":")).encode()


def decode_auth_config(header: str) -> AuthConfig:
    """registry.DecodeAuthConfig for ``X-Registry-Auth``; an invalid header is an empty config."""
    if not header:
        return AuthConfig()
    text = header.strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        doc = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        return AuthConfig()
    return AuthConfig.from_dict(doc) if isinstance(doc, dict) else AuthConfig()


class Authorizer:
    """Authorises requests to one endpoint from its ping challenges (an ``endpointAuthorizer``)."""

    def __init__(
        self,
        transport: Any,
        challenges: list[Challenge],
        creds: AuthConfig,
        scopes: list[str],
        offline_access: bool = False,
    ) -> None:
        self.transport = transport
        self.challenges = challenges
        self.creds = creds
        self.scopes = scopes
        self.offline_access = offline_access
        self._token = ""
        self._expires = 0.0
        self._lock = threading.Lock()

    def headers(self, query: str = "") -> list[tuple[str, str]]:
        """The Authorization header(s) for a request (``query``: its query string, for ``from=``)."""
        out: list[tuple[str, str]] = []
        for scheme in ("bearer", "basic"):
            for challenge in self.challenges:
                if challenge.scheme != scheme:
                    continue
                if scheme == "bearer":
                    if self.creds.registry_token:
                        out = [("Authorization", f"Bearer {self.creds.registry_token}")]
                    else:
                        extra = []
                        source = urllib.parse.parse_qs(query).get("from")
                        if source:
                            extra.append(f"repository:{source[0]}:pull")
                        out = [("Authorization", f"Bearer {self._get_token(challenge.params, extra)}")]
                else:
                    if not self.creds.username or not self.creds.password:
                        raise NoBasicAuthCredentials()
                    raw = f"{self.creds.username}:{self.creds.password}".encode()
                    out = [("Authorization", "Basic " + base64.b64encode(raw).decode())]
        return out

    def _get_token(self, params: dict[str, str], extra: list[str]) -> str:
        with self._lock:
            scopes = list(self.scopes)
            added = False
            for scope in extra:
                if scope not in scopes:
                    scopes.append(scope)
                    added = True
            if time.monotonic() < self._expires and not added:
                return self._token
            token, lifetime = self._fetch(params, scopes)
            if not added:
                self._token, self._expires = token, time.monotonic() + lifetime
            return token

    def _fetch(self, params: dict[str, str], scopes: list[str]) -> tuple[str, float]:
        realm = params.get("realm")
        if not realm:
            raise DistributionError("no realm specified for token auth challenge")
        service = params.get("service", "")
        if self.creds.identity_token:
            form = {
                "scope": " ".join(scopes),
                "service": service,
                "client_id": "docker",
                "grant_type": "refresh_token",
                "refresh_token": self.creds.identity_token,
            }
            resp = self.transport.request(
                "POST",
                realm,
                {"Content-Type": "application/x-www-form-urlencoded"},
                urllib.parse.urlencode(form).encode(),
            )
        else:
            query: list[tuple[str, str]] = []
            if service:
                query.append(("service", service))
            query += [("scope", s) for s in scopes]
            if self.offline_access:
                query += [("offline_token", "true"), ("client_id", "docker")]
            headers = {}
            if self.creds.username and self.creds.password:
                query.append(("account", self.creds.username))
                raw = f"{self.creds.username}:{self.creds.password}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
            sep = "&" if "?" in realm else "?"
            resp = self.transport.request(
                "GET", realm + (sep + urllib.parse.urlencode(query) if query else ""), headers
            )
        try:
            if not 200 <= resp.status < 400:
                raise error_from_response(resp)
            try:
                doc = json.loads(resp.read() or b"{}")
            except ValueError as exc:
                raise DistributionError(f"unable to decode token response: {exc}") from None
        finally:
            resp.close()
        token = doc.get("access_token") or doc.get("token") or ""
        if doc.get("refresh_token"):
            self.creds.identity_token = str(doc["refresh_token"])
        if not token:
            raise DistributionError("authorization server did not include a token in the response")
        lifetime = max(int(doc.get("expires_in") or 0), 60)
        return str(token), float(lifetime)
