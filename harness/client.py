"""A thin Engine API client on requests (+requests-unixsocket) for scenarios.

Scenarios observe raw HTTP (status, headers, body) rather than an SDK's interpretation,
so this stays a URL builder around a requests Session.
"""

from __future__ import annotations

from typing import Any

import requests

from .endpoints import Endpoint

__all__ = ["EngineClient"]


class EngineClient:
    """``client.get("/_ping")`` against one endpoint; paths may carry ``/v1.NN``."""

    def __init__(self, endpoint: Endpoint, timeout: float = 30.0) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        if endpoint.kind == "unix":
            import requests_unixsocket

            self.session: requests.Session = requests_unixsocket.Session()
        else:
            self.session = requests.Session()
            if endpoint.tls is not None:
                self.session.verify = endpoint.tls.ca if endpoint.tls.verify else False
                if endpoint.tls.cert and endpoint.tls.key:
                    self.session.cert = (endpoint.tls.cert, endpoint.tls.key)
        # never let REQUESTS_CA_BUNDLE or *_PROXY from the environment redirect or re-verify daemon traffic
        self.session.trust_env = False
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
