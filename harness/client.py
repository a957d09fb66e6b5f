"""A thin Engine API client on requests (+requests-unixsocket) for scenarios.

Scenarios observe raw HTTP (status, headers, body) rather than an SDK's interpretation,
so this stays a URL builder around a requests Session.
"""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import unquote, urlparse

import requests
from requests_unixsocket import adapters as _unix

from .apitrace import response_hook
from .endpoints import Endpoint

__all__ = ["EngineClient"]


class _UnixConnection(_unix.UnixHTTPConnection):  # type: ignore[misc]
    """requests-unixsocket's connection, but a refused connect closes its socket instead of leaking it."""

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(unquote(urlparse(self.unix_socket_url).netloc))
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class _UnixPool(_unix.UnixHTTPConnectionPool):  # type: ignore[misc]
    def _new_conn(self) -> _UnixConnection:
        return _UnixConnection(self.socket_path, self.timeout)


class _UnixAdapter(_unix.UnixAdapter):  # type: ignore[misc]
    def get_connection(self, url: str, proxies: Any = None) -> _UnixPool:
        # one pool per socket, not per URL: keyed by URL, every new path opened (and kept) a connection
        key = urlparse(url).netloc
        with self.pools.lock:
            pool = self.pools.get(key)
            if pool is None:
                pool = self.pools[key] = _UnixPool(url, self.timeout)
        return pool  # type: ignore[no-any-return]


class EngineClient:
    """``client.get("/_ping")`` against one endpoint; paths may carry ``/v1.NN``."""

    def __init__(self, endpoint: Endpoint, timeout: float = 30.0) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.session = requests.Session()
        if endpoint.kind == "unix":
            self.session.mount("http+unix://", _UnixAdapter())
        elif endpoint.tls is not None:
            self.session.verify = endpoint.tls.ca if endpoint.tls.verify else False
            if endpoint.tls.cert and endpoint.tls.key:
                self.session.cert = (endpoint.tls.cert, endpoint.tls.key)
        # never let REQUESTS_CA_BUNDLE or *_PROXY from the environment redirect or re-verify daemon traffic
        self.session.trust_env = False
        self.session.hooks["response"].append(response_hook)  # the plugin's schema checks (harness.apitrace)
        self.base = endpoint.base_url()

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return self.session.request(method, self.base + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("HEAD", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def close(self) -> None:
        self.session.close()
