"""Seccomp profiles compiled to BPF and loaded into a forked child (never into the test process): calls
refused or allowed as the profile says, argument conditions, includes/excludes, and bad profiles named."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from typing import Any

import pytest

from harness.daemon.runtime import syscalls as sc
from harness.daemon.runtime.seccomp import SeccompError, compile_profile, install

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64", reason="refd compiles x86_64 filters only")

CHOWN_REFUSED = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["chown", "chown32", "fchownat"], "action": "SCMP_ACT_ERRNO"}],
}


def _in_child(profile: dict[str, Any], probe: Callable[[], int], caps: list[str] | None = None) -> int:
    """Fork, load the filter (with no_new_privs, so no privilege is needed), run ``probe``: its result
    (an errno, 0 for success) as the child's exit status."""
    program = compile_profile(json.dumps(profile), caps)
    pid = os.fork()
    if pid == 0:
        code = 255
        try:
            sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
            install(program)
            code = probe()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _chown(path: str) -> Callable[[], int]:
    def probe() -> int:
        try:
            os.chown(path, os.getuid(), os.getgid())
        except OSError as exc:
            return exc.errno or 254
        return 0

    return probe


def _getpid_then(value: int) -> Callable[[], int]:
    def probe() -> int:
        try:
            os.setpgid(0, value)  # setpgid(0, value): its second argument is checked
        except OSError as exc:
            return exc.errno or 254
        return 0

    return probe


def test_a_refused_call_fails_with_eperm_and_others_run(tmp_path: Any) -> None:
    target = tmp_path / "f"
    target.write_text("x")
    assert _in_child(CHOWN_REFUSED, _chown(str(target))) == 1  # EPERM
    assert _in_child({"defaultAction": "SCMP_ACT_ALLOW"}, _chown(str(target))) == 0


def test_errno_ret_and_default_errno() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["setpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}],
    }
    assert _in_child(profile, _getpid_then(0)) == 38


@pytest.mark.parametrize(
    ("op", "value", "refused_for"),
    [
        ("SCMP_CMP_EQ", 5, [5]),
        ("SCMP_CMP_NE", 5, [0, 7]),
        ("SCMP_CMP_GT", 5, [7]),
        ("SCMP_CMP_GE", 5, [5, 7]),
        ("SCMP_CMP_LT", 5, [0]),
        ("SCMP_CMP_LE", 5, [0, 5]),
    ],
)
def test_argument_conditions(op: str, value: int, refused_for: list[int]) -> None:
    rule = {
        "names": ["setpgid"],
        "action": "SCMP_ACT_ERRNO",
        "errnoRet": 77,
        "args": [{"index": 1, "value": value, "op": op}],
    }
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}
    for arg in (0, 5, 7):
        got = _in_child(profile, _getpid_then(arg))
        assert (got == 77) is (arg in refused_for), (op, arg, got)


def test_rules_for_capabilities_the_container_lacks_are_left_out(tmp_path: Any) -> None:
    target = tmp_path / "f"
    target.write_text("x")
    rule = {"names": ["chown"], "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_ADMIN"]}}
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}
    assert _in_child(profile, _chown(str(target)), caps=["CAP_CHOWN"]) == 0
    assert _in_child(profile, _chown(str(target)), caps=["CAP_SYS_ADMIN"]) == 1
    assert _in_child(profile, _chown(str(target)), caps=None) == 1  # privileged: every capability


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "decoding seccomp profile failed"),
        ('{"defaultAction": "SCMP_ACT_NOPE"}', "unrecognized seccomp action 'SCMP_ACT_NOPE'"),
        ('{"defaultAction": "SCMP_ACT_NOTIFY"}', "needs a listener"),
        (
            '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], '
            '"action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]}',
            "unrecognized seccomp comparison operator 'SCMP_CMP_XX'",
        ),
    ],
)
def test_profiles_refd_cannot_use_say_why(text: str, message: str) -> None:
    with pytest.raises(SeccompError, match=message):
        compile_profile(text)


def test_unknown_call_names_are_skipped() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["no_such_call"], "action": "SCMP_ACT_KILL"}],
    }
    assert len(compile_profile(json.dumps(profile))) == 5  # arch check (3), load nr, default return
