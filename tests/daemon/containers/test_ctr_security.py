"""``HostConfig.SecurityOpt`` as moby's parseSecurityOpt reads it: the keys it knows, Go booleans, and its
untyped errors (500s) for the rest."""

from __future__ import annotations

import pytest

from harness.daemon.containers.security import SecurityOptions, security_options
from harness.daemon.errors import ApiError


def _opts(*opts: str, daemon_nnp: bool = False) -> SecurityOptions:
    return security_options({"SecurityOpt": list(opts)}, daemon_nnp)


def test_nothing_asked_is_the_default() -> None:
    assert security_options({}) == SecurityOptions()
    assert security_options({"SecurityOpt": None}, True) == SecurityOptions(no_new_privileges=True)


@pytest.mark.parametrize(
    ("opts", "writable"),
    [
        (("writable-cgroups",), True),
        (("writable-cgroups=true",), True),
        (("writable-cgroups=1",), True),  # Go's strconv.ParseBool
        (("writable-cgroups=false",), False),
        (("writable-cgroups:F",), False),  # the deprecated ':' separator
        (("writable-cgroups=false", "writable-cgroups"), True),  # the last one wins
    ],
)
def test_writable_cgroups(opts: tuple[str, ...], writable: bool) -> None:
    assert _opts(*opts).writable_cgroups is writable


def test_the_containers_no_new_privileges_wins_over_the_daemons() -> None:
    assert _opts("no-new-privileges=false", daemon_nnp=True).no_new_privileges is False
    assert _opts("no-new-privileges", daemon_nnp=False).no_new_privileges is True
    assert _opts(daemon_nnp=True).no_new_privileges is True


def test_profiles_and_labels_are_kept_or_taken() -> None:
    opts = _opts("seccomp=unconfined", "apparmor=docker-default", "label=disable", "label:type:x", "disable")
    assert (opts.seccomp, opts.apparmor) == ("unconfined", "docker-default")


@pytest.mark.parametrize(
    ("opt", "message"),
    [
        ("foo", 'invalid --security-opt 1: "foo"'),
        ("writeable-cgroups=true", 'invalid --security-opt 2: "writeable-cgroups=true"'),
        ("writable-cgroups=potato", 'invalid --security-opt 2: "writable-cgroups=potato"'),
        ("no-new-privileges=yes", 'invalid --security-opt 2: "no-new-privileges=yes"'),
    ],
)
def test_malformed_options_are_dockerds_untyped_errors(opt: str, message: str) -> None:
    with pytest.raises(ApiError) as err:
        _opts(opt)
    assert (err.value.status, err.value.message) == (500, message)
