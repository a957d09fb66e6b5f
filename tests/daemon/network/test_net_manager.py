"""The network manager's pure pieces: the DNS names an endpoint answers to."""

from __future__ import annotations

from typing import Any

from harness.daemon.containers.model import Container
from harness.daemon.network.manager import NetworkManager


def make_container(hostname: str) -> Container:
    return Container(
        id="ab" * 32,
        name="/web",
        created="2024-01-01T00:00:00Z",
        path="sh",
        args=[],
        config={"Hostname": hostname},
        host_config={},
        image_id="sha256:" + "0" * 64,
        root="/nonexistent",
    )


def test_dns_names_are_the_name_aliases_short_id_and_host_name_once_each() -> None:
    c = make_container("foobar")
    endpoint: dict[str, Any] = {"Aliases": ["api", "web"]}
    assert NetworkManager._dns_names(c, endpoint) == ["web", "api", c.id[:12], "foobar"]
    plain = make_container(c.id[:12])  # the default host name: the short ID
    assert NetworkManager._dns_names(plain, {}) == ["web", c.id[:12]]
