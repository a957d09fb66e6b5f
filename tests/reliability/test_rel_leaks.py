"""Leak counts for the report: N container lifecycles and N/4 network lifecycles (a user network, a
published port, DNS, connect/disconnect) on one refd, then what is left compared with the baseline.

The checks are tests/daemon/test_refd_leaks.py's (mounts, container cgroups, processes in the daemon's
netns, open descriptors, links, firewall rules, sandboxes); this runs them at the reliability session's
scale and records the counts.
"""

from __future__ import annotations

from typing import Any

from harness.backends.base import DaemonHandle
from harness.client import EngineClient
from harness.testimage import load_test_image
from tests.daemon.test_refd_leaks import _baseline, _cgroups_of, _cycle, _network_cycle, _settled

from .conftest import scale

CYCLES = scale(10, 200)


def _left(before: list[Any], after: list[Any]) -> int:
    return len(set(map(str, after)) - set(map(str, before)))


def test_leak_counts(refd: DaemonHandle, figures: dict[str, Any]) -> None:
    assert refd.endpoint is not None
    image = load_test_image(refd.endpoint)
    client = EngineClient(refd.endpoint)
    try:
        _cycle(client, image)
        _network_cycle(client, image, 0)
        before = _baseline(refd)
        ids = [_cycle(client, image) for _ in range(CYCLES)]
        for n in range(1, max(CYCLES // 4, 2) + 1):
            _network_cycle(client, image, n)
        after = _settled(refd, before)
    finally:
        client.close()
    counts = {
        "container_lifecycles": CYCLES,
        "network_lifecycles": max(CYCLES // 4, 2),
        "mounts": _left(before["mounts"], after["mounts"]),
        "cgroups": len(_cgroups_of(ids)),
        "processes": _left(before["processes"], after["processes"]),
        "fds": max(0, int(after["fds"]) - int(before["fds"]) - 2),  # a keep-alive socket may come and go
        "links": _left(before["links"], after["links"]),
        "firewall_rules": _left(before["rules"], after["rules"]),
        "sandboxes": _left(before["sandboxes"], after["sandboxes"]),
    }
    figures.setdefault("leaks", {}).update(counts)
    assert all(v == 0 for k, v in counts.items() if not k.endswith("lifecycles")), counts
