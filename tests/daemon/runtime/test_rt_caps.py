"""Capabilities: dockerd's defaults, CapAdd/CapDrop and errors, privileged on a host missing some."""

from __future__ import annotations

import pytest

from harness.daemon.runtime import caps
from harness.daemon.runtime.errors import ContainerStartError

from .conftest import Runner

#: What ``docker run busybox grep CapEff /proc/self/status`` prints.
DOCKER_DEFAULT_CAPEFF = 0x00000000A80425FB


def _status(out: str) -> dict[str, int]:
    return {
        line.split(":")[0]: int(line.split()[1], 16) for line in out.splitlines() if line.startswith("Cap")
    }


def test_default_set_is_dockerds() -> None:
    assert caps.mask(caps.DEFAULT_CAPABILITIES) == DOCKER_DEFAULT_CAPEFF
    assert len(caps.DEFAULT_CAPABILITIES) == 14


def test_names_with_or_without_prefix_and_all() -> None:
    assert caps.normalise(["net_admin", "CAP_SYS_TIME", "all"]) == ["CAP_NET_ADMIN", "CAP_SYS_TIME", "ALL"]


def test_unknown_capability_has_dockerds_error() -> None:
    with pytest.raises(caps.CapabilityError) as err:
        caps.normalise(["foo"])
    assert str(err.value) == 'unknown capability: "CAP_FOO"'
    with pytest.raises(ValueError, match='unknown capability: "CAP_BAR"'):
        caps.tweak(caps.DEFAULT_CAPABILITIES, adds=["CAP_BAR"])


def test_tweak_add_drop_all() -> None:
    host = caps.CAPABILITIES[:38]
    out = caps.tweak(caps.DEFAULT_CAPABILITIES, adds=["NET_ADMIN"], drops=["chown"], host=host)
    assert "CAP_NET_ADMIN" in out and "CAP_CHOWN" not in out and len(out) == 14
    assert caps.tweak(caps.DEFAULT_CAPABILITIES, drops=["ALL"], adds=["KILL"], host=host) == ["CAP_KILL"]
    everything = caps.tweak(caps.DEFAULT_CAPABILITIES, adds=["ALL"], drops=["SYS_ADMIN"], host=host)
    assert "CAP_SYS_ADMIN" not in everything and len(everything) == 37
    without_resource = [c for c in host if c != "CAP_SYS_RESOURCE"]
    assert caps.tweak(caps.DEFAULT_CAPABILITIES, privileged=True, host=without_resource) == without_resource


def test_container_gets_default_set(runner: Runner) -> None:
    got = _status(runner.run(["grep", "Cap", "/proc/self/status"]).out)
    assert got["CapEff"] == got["CapPrm"] == got["CapBnd"] == DOCKER_DEFAULT_CAPEFF
    assert got["CapInh"] == got["CapAmb"] == 0


def test_cap_add_and_drop(runner: Runner) -> None:
    names = caps.tweak(caps.DEFAULT_CAPABILITIES, adds=["NET_ADMIN"], drops=["CHOWN", "KILL"])
    got = _status(runner.run(["grep", "Cap", "/proc/self/status"], capabilities=names).out)
    assert got["CapEff"] == got["CapBnd"] == caps.mask(names)
    assert caps.names_from_mask(got["CapEff"]) == frozenset(names)


def test_chown_dropped_really_denies(runner: Runner) -> None:
    names = caps.tweak(caps.DEFAULT_CAPABILITIES, drops=["CHOWN"])
    res = runner.sh("touch /f; chown 123 /f; echo rc=$?", capabilities=names)
    assert "rc=1" in res.out


def test_non_root_user_has_no_effective_caps_like_dockerd(runner: Runner) -> None:
    got = _status(runner.run(["grep", "Cap", "/proc/self/status"], uid=1000, gid=1000).out)
    assert got["CapEff"] == got["CapPrm"] == 0 and got["CapBnd"] == DOCKER_DEFAULT_CAPEFF


def test_ambient_caps_for_non_root_when_asked(runner: Runner) -> None:
    got = _status(
        runner.run(
            ["grep", "Cap", "/proc/self/status"],
            uid=1000,
            gid=1000,
            capabilities=["CAP_NET_BIND_SERVICE"],
            ambient_capabilities=True,
        ).out
    )
    bit = 1 << caps.cap_number("CAP_NET_BIND_SERVICE")
    assert got["CapEff"] == got["CapAmb"] == got["CapPrm"] == bit


def test_privileged_gets_the_hosts_bounding_set(runner: Runner) -> None:
    host = caps.mask(caps.bounding_set())
    got = _status(runner.run(["grep", "Cap", "/proc/self/status"], privileged=True).out)
    assert got["CapEff"] == got["CapBnd"] == host


def test_cap_missing_on_host_fails_like_runc(runner: Runner) -> None:
    missing = [c for c in caps.known_capabilities() if c not in caps.bounding_set()]
    if not missing:
        pytest.skip("this host's bounding set has every capability")
    with pytest.raises(ContainerStartError, match=r"^unable to apply caps: operation not permitted$"):
        runner.start(["true"], capabilities=[*caps.DEFAULT_CAPABILITIES, missing[0]])


def test_all_in_an_explicit_list_means_the_host_set(runner: Runner) -> None:
    got = _status(runner.run(["grep", "Cap", "/proc/self/status"], capabilities=["CAP_CHOWN", "ALL"]).out)
    assert got["CapEff"] == caps.mask(caps.bounding_set())
    with pytest.raises(ContainerStartError, match='unknown capability: "CAP_NOPE"'):
        runner.start(["true"], capabilities=["nope"])
