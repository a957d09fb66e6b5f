"""Stats of a container that does not run: dockerd's zero document, once, or as a stream that ends."""

from __future__ import annotations

import asyncio
import os
from types import SimpleNamespace
from typing import Any

import pytest

from harness.daemon.containers.stats import network_stats, sample, stats, top
from harness.daemon.errors import ApiError

from .conftest import make_container


def test_a_stopped_container_has_zero_stats(tmp_path: Any) -> None:
    c = make_container(str(tmp_path))
    doc = sample(SimpleNamespace(cgroup_version="2"), c)  # type: ignore[arg-type]
    assert (doc["read"], doc["name"], doc["id"], doc["memory_stats"]) == (
        "0001-01-01T00:00:00Z",
        "/box",
        c.id,
        {},
    )
    assert doc["cpu_stats"]["cpu_usage"]["total_usage"] == 0


@pytest.mark.parametrize(("stream", "one_shot"), [(True, False), (False, True)])
def test_one_document_for_a_stopped_container_with_a_zero_precpu(
    tmp_path: Any, stream: bool, one_shot: bool
) -> None:
    c = make_container(str(tmp_path))

    async def collect() -> list[dict[str, Any]]:
        return [doc async for doc in stats(SimpleNamespace(cgroup_version="2"), c, stream, one_shot)]  # type: ignore[arg-type]

    docs = asyncio.run(collect())
    assert len(docs) == 1
    assert docs[0]["preread"] == "0001-01-01T00:00:00Z"
    assert docs[0]["precpu_stats"]["throttling_data"] == {
        "periods": 0,
        "throttled_periods": 0,
        "throttled_time": 0,
    }


def test_top_of_a_stopped_container_is_a_409(tmp_path: Any) -> None:
    c = make_container(str(tmp_path))
    with pytest.raises(ApiError) as err:
        asyncio.run(top(SimpleNamespace(), c, "-ef"))  # type: ignore[arg-type]
    assert (err.value.status, err.value.message) == (409, f"container {c.id} is not running")


def test_network_stats_are_the_namespaces_interfaces_but_loopback(tmp_path: Any) -> None:
    c = make_container(str(tmp_path))
    c.state["Pid"] = os.getpid()
    with open("/proc/self/net/dev") as fh:
        names = sorted(line.split(":")[0].strip() for line in fh.read().splitlines()[2:])
    networks = network_stats(c)
    assert sorted(networks) == [n for n in names if n != "lo"]
    for counters in networks.values():
        assert list(counters) == [
            "rx_bytes",
            "rx_packets",
            "rx_errors",
            "rx_dropped",
            "tx_bytes",
            "tx_packets",
            "tx_errors",
            "tx_dropped",
        ]
    c.host_config["NetworkMode"] = "host"
    assert network_stats(c) == {}
    c.host_config["NetworkMode"], c.state["Pid"] = "bridge", 0
    assert network_stats(c) == {}
