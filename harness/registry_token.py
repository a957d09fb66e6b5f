"""A bearer-token server for the harness registry: Docker's token authentication (``Bearer`` realms).

``docker-registry`` started with ``token=TokenServer(...)`` answers ``401`` with
``WWW-Authenticate: Bearer realm="http://127.0.0.1:<port>/token",service="harness-registry",scope=...``;
clients fetch a JWT here (``GET /token?service=&scope=repository:<name>:pull,push`` with basic auth, or
``POST /token`` with ``grant_type=refresh_token`` or ``password``) and send it as ``Authorization: Bearer``.

Tokens are ES256 JWTs (encoded by PyJWT) signed by a key whose certificate (from a trustme CA) is in the
``x5c`` header; the registry trusts the CA (``rootcertbundle``). Known users get the actions they ask for;
anonymous requests get no access (so the registry answers ``insufficient_scope``); a wrong password is
refused with 401. A request with ``offline_token=true`` (``docker login``) also gets a refresh token,
accepted later as ``grant_type=refresh_token``.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["TokenServer"]

SERVICE = "harness-registry"
ISSUER = "harness-token-issuer"


class TokenServer:
    """Issues registry tokens on ``127.0.0.1:<port>`` until ``close()``."""

    def __init__(self, directory: str, users: dict[str, str]) -> None:
        import trustme
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
        from cryptography.x509 import load_pem_x509_certificate

        self.users = dict(users)
        self.refresh_tokens: dict[str, str] = {}
        self.requests: list[dict[str, Any]] = []
        ca = trustme.CA()
        leaf = ca.issue_cert("harness-token-signer")
        self.rootcertbundle = os.path.join(directory, "token-ca.pem")
        ca.cert_pem.write_to_path(self.rootcertbundle)
        from cryptography.hazmat.primitives.asymmetric import ec

        key = load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError("trustme issued a non-EC key: ES256 needs an EC P-256 key")
        self._key = key
        from cryptography.hazmat.primitives.serialization import Encoding

        chain = [load_pem_x509_certificate(b.bytes()) for b in leaf.cert_chain_pems]
        chain.append(load_pem_x509_certificate(ca.cert_pem.bytes()))
        self._x5c = [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in chain]
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, doc: dict[str, Any]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                user = server._basic_user(self.headers.get("Authorization", ""))
                if user is False:
                    self._reply(401, {"details": "incorrect username or password"})
                    return
                name = user if isinstance(user, str) else ""
                self._issue(query.get("scope", []), name, query.get("offline_token") == ["true"])

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                grant = form.get("grant_type", [""])[0]
                scopes = " ".join(form.get("scope", [])).split()
                if grant == "refresh_token":
                    user = server.refresh_tokens.get(form.get("refresh_token", [""])[0])
                elif grant == "password":
                    name, password = form.get("username", [""])[0], form.get("password", [""])[0]
                    user = name if server.users.get(name) == password else None
                else:
                    user = None
                if user is None:
                    self._reply(401, {"details": "incorrect username or password"})
                    return
                self._issue(scopes, user, grant == "password", post=True)

            def _issue(self, scopes: list[str], user: str, offline: bool, post: bool = False) -> None:
                server.requests.append({"scopes": scopes, "user": user, "offline": offline})
                token = server.token(scopes, user)
                doc: dict[str, Any] = {"token": token, "access_token": token, "expires_in": 300}
                if post:
                    doc = {"access_token": token, "expires_in": 300}
                if offline and user:
                    refresh = secrets.token_hex(16)
                    server.refresh_tokens[refresh] = user
                    doc["refresh_token"] = refresh
                self._reply(200, doc)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="token-server", daemon=True)
        self._thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def _basic_user(self, header: str) -> str | bool | None:
        """The user of a Basic header: None without one, False for wrong credentials."""
        if not header.startswith("Basic "):
            return None
        try:
            name, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return name if self.users.get(name) == password else False

    def token(self, scopes: list[str], user: str) -> str:
        import jwt

        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind == "repository" and user:
                access.append({"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]})
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": user,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 60,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"x5c": self._x5c})

    def auth_config(self) -> dict[str, str]:
        """The registry's ``auth: token:`` settings that send clients here."""
        return {
            "realm": self.realm,
            "service": SERVICE,
            "issuer": ISSUER,
            "rootcertbundle": self.rootcertbundle,
        }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
