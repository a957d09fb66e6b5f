"""``docker update``: decoding, dockerd's checks and warnings, and UpdateContainer's merge rules.

Writing the limits into a running container's cgroup is proven against dockerd by the scenarios in
suites/api/test_changes_update.py.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from harness.daemon.containers.model import Container
from harness.daemon.containers.update import (
    SysInfo,
    _merge,
    parse_update,
    sysinfo,
    update_container,
    verify_update,
)
from harness.daemon.errors import ApiError
from harness.daemon.gotime import now_rfc3339

FULL = SysInfo(cpus="0-1", mems="0")
MB = 1024 * 1024


def _container(**host_config: Any) -> Container:
    return Container(
        id="c" * 64,
        name="/up",
        created=now_rfc3339(),
        path="sleep",
        args=["60"],
        config={},
        host_config={"RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, **host_config},
        image_id="sha256:x",
        root="/nonexistent",
    )


@pytest.mark.parametrize(
    "body,message",
    [
        (
            {"Memory": "abc"},
            "json: cannot unmarshal string into Go struct field UpdateConfig.Memory of type int64",
        ),
        (
            {"CpuShares": 1.5},
            "json: cannot unmarshal number 1.5 into Go struct field UpdateConfig.CpuShares of type int64",
        ),
        (
            {"BlkioWeight": 70000},
            "json: cannot unmarshal number 70000 into Go struct field UpdateConfig.BlkioWeight of "
            "type uint16",
        ),
        (
            {"CpusetCpus": 1},
            "json: cannot unmarshal number 1 into Go struct field UpdateConfig.CpusetCpus of type string",
        ),
        ([], "json: cannot unmarshal array into Go value of type container.UpdateConfig"),
    ],
)
def test_wrong_json_types_have_gos_messages(body: Any, message: str) -> None:
    with pytest.raises(ApiError) as err:
        parse_update(body, (1, 51))
    assert err.value.status == 400 and err.value.message == f"invalid JSON: {message}"


def test_version_rules_and_unlimited_pids() -> None:
    assert parse_update({"PidsLimit": 7}, (1, 39)) == {}
    assert parse_update({"PidsLimit": -1}, (1, 41)) == {"PidsLimit": 0}
    assert parse_update({"KernelMemory": 5000}, (1, 42)) == {}
    assert parse_update({"KernelMemory": 5000}, (1, 41)) == {"KernelMemory": 5000}
    assert parse_update(None, (1, 51)) == {}


@pytest.mark.parametrize(
    "update,message",
    [
        ({"Memory": 1000}, "Minimum memory limit allowed is 6MB"),
        (
            {"Memory": 24 * MB, "MemorySwap": 12 * MB},
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ),
        ({"MemorySwappiness": 200}, "Invalid value: 200, valid memory swappiness range is 0-100"),
        ({"MemoryReservation": 1000}, "Minimum memory reservation allowed is 6MB"),
        (
            {"Memory": 8 * MB, "MemorySwap": 16 * MB, "MemoryReservation": 12 * MB},
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ),
        (
            {"NanoCpus": 1, "CpuQuota": 50000},
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        ),
        (
            {"NanoCpus": 1, "CpuPeriod": 50000},
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ),
        (
            {"NanoCpus": 3_000_000_000},
            "range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available",
        ),
        (
            {"CpuPeriod": 500},
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ),
        ({"CpuQuota": 500}, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
        ({"CpusetCpus": "abc"}, "Invalid value abc for cpuset cpus: invalid format: abc"),
        ({"CpusetCpus": "5"}, "Requested CPUs are not available - requested 5, available: 0-1"),
        ({"CpusetMems": "3"}, "Requested memory nodes are not available - requested 3, available: 0"),
        ({"BlkioWeight": 5}, "Range of blkio weight is from 10 to 1000"),
        (
            {"IOMaximumIOps": 5},
            "Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps",
        ),
        (
            {"RestartPolicy": {"Name": "sometimes", "MaximumRetryCount": 0}},
            "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', "
            "'on-failure', or 'unless-stopped'",
        ),
        (
            {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}},
            "invalid restart policy: maximum retry count can only be used with 'on-failure'",
        ),
        (
            {"RestartPolicy": {"Name": "no", "MaximumRetryCount": -2}},
            "invalid restart policy: maximum retry count can only be used with 'on-failure' and "
            "cannot be negative",
        ),
        (
            {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}},
            "invalid restart policy: maximum retry count cannot be negative",
        ),
    ],
)
def test_invalid_values_are_400s(update: dict[str, Any], message: str) -> None:
    with pytest.raises(ApiError) as err:
        verify_update(update, FULL, ncpu=2)
    assert err.value.status == 400 and err.value.message == message


def test_missing_controllers_warn_and_discard() -> None:
    bare = SysInfo(
        swap_limit=False,
        memory_swappiness=False,
        cpu_shares=False,
        cpu_cfs=False,
        blkio_weight=False,
        pids_limit=False,
        oom_kill_disable=False,
        cpuset=False,
    )
    update = {
        "Memory": 24 * MB,
        "CpuShares": 512,
        "CpuQuota": 50000,
        "BlkioWeight": 300,
        "PidsLimit": 10,
        "MemorySwappiness": 10,
        "OomKillDisable": True,
        "CpusetCpus": "0",
        "CpuPercent": 5,
    }
    warnings = verify_update(update, bare, ncpu=2)
    assert warnings == [
        (
            "Your kernel does not support swap limit capabilities or the cgroup is not mounted. "
            "Memory limited without swap."
        ),
        (
            "Your kernel does not support memory swappiness capabilities or the cgroup is not "
            "mounted. Memory swappiness discarded."
        ),
        "Your kernel does not support OomKillDisable. OomKillDisable discarded.",
        (
            "Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. "
            "PIDs limit discarded."
        ),
        "Your kernel does not support CPU shares or the cgroup is not mounted. Shares discarded.",
        "Your kernel does not support CPU CFS scheduler. CPU period/quota discarded.",
        "linux does not support CPU percent. Percent discarded.",
        "Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded.",
        "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.",
    ]
    assert update["MemorySwap"] == -1 and update["CpuShares"] == 0 and update["BlkioWeight"] == 0
    assert "PidsLimit" not in update and "OomKillDisable" not in update


def test_oom_kill_disable_without_memory_warns() -> None:
    assert verify_update({"OomKillDisable": True}, FULL) == [
        "OOM killer is disabled for the container, but no memory limit is set, this can result in the system "
        "running out of resources."
    ]


def test_merge_changes_only_what_is_set() -> None:
    c = _container(Memory=20 * MB, MemorySwap=40 * MB, CpuShares=256, PidsLimit=None)
    hc = _merge(c, {"CpuShares": 512, "Memory": 0, "PidsLimit": 0, "RestartPolicy": {"Name": "always"}})
    assert hc["CpuShares"] == 512 and hc["Memory"] == 20 * MB and hc["PidsLimit"] == 0
    assert hc["RestartPolicy"] == {"Name": "always"}
    assert c.host_config["CpuShares"] == 256  # the record is untouched until the update is accepted


@pytest.mark.parametrize(
    "host_config,update,message",
    [
        (
            {},
            {"Memory": 20 * MB},
            "Memory limit should be smaller than already set memoryswap limit, update the "
            "memoryswap at the same time",
        ),
        (
            {"CpuPeriod": 50000},
            {"NanoCpus": 1},
            "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set",
        ),
        (
            {"CpuQuota": 50000},
            {"NanoCpus": 1},
            "Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set",
        ),
        (
            {"NanoCpus": 1},
            {"CpuPeriod": 50000},
            "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set",
        ),
        (
            {"NanoCpus": 1},
            {"CpuQuota": 50000},
            "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set",
        ),
        (
            {"AutoRemove": True},
            {"RestartPolicy": {"Name": "always"}},
            "Restart policy cannot be updated because AutoRemove is enabled for the container",
        ),
    ],
)
def test_merge_conflicts_are_409s(host_config: dict[str, Any], update: dict[str, Any], message: str) -> None:
    c = _container(**host_config)
    with pytest.raises(ApiError) as err:
        _merge(c, update)
    assert err.value.status == 409 and err.value.message == f"Cannot update container {c.id}: {message}"


class _Manager:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.daemon = SimpleNamespace(config={})

    def lock(self, cid: str) -> asyncio.Lock:
        return asyncio.Lock()

    def emit(self, c: Container, action: str, **extra: str) -> None:
        self.events.append(action)


def test_update_of_a_stopped_container_persists_and_emits(tmp_path: Any) -> None:
    c = _container()
    c.root = str(tmp_path)
    manager = _Manager()
    update = {"Memory": 24 * MB, "MemorySwap": 48 * MB}
    assert asyncio.run(update_container(manager, c, update, ["w"])) == ["w"]  # type: ignore[arg-type]
    assert c.host_config["Memory"] == 24 * MB and manager.events == ["update"]
    assert (tmp_path / "hostconfig.json").exists()


def test_update_of_a_container_being_removed_is_refused() -> None:
    c = _container()
    c.state["Status"] = "removing"
    with pytest.raises(ApiError) as err:
        asyncio.run(update_container(_Manager(), c, {}, []))  # type: ignore[arg-type]
    assert err.value.status == 500
    assert err.value.message == (
        f'Cannot update container {c.id}: container is marked for removal and cannot be "update"'
    )


def test_sysinfo_reads_this_host() -> None:
    info = sysinfo()
    assert isinstance(info, SysInfo)
    if info.cpuset:
        assert info.cpus
