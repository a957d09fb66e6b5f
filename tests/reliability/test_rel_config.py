"""Hostile daemon.json and flags: every malformed shape is a one-line error and exit 1, never a traceback.

In-process (no root): hypothesis draws daemon.json documents (every known key with values of every JSON
kind, unknown keys, broken and non-UTF-8 text) and argv lists (every flag with hostile values) and runs
refd's ``main([... "--validate"])``: it must return 0 or 1 and raise nothing. With root, a table of
configurations that pass validation but break at boot (addresses, pools, limits, drivers) boots refd for real:
it serves or exits 1 with an error line, and its log holds no Python traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.daemon.__main__ import main
from harness.daemon.flags import FLAGS

from .conftest import LONG, ROOT, boot, scale

EXAMPLES = scale(150, 3000)
KEYS = sorted({f.file_key for f in FLAGS} | {"log-opts", "default-ulimits", "runtimes", "registry-mirrors"})

_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(["", "tcp://", "unix://", "fd://x", "1.2.3.4/40", "-1", "999999999999", "0x10", "\x00"]),
)
_value = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_doc = st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=10)), _value, max_size=4)
_raw = st.one_of(
    _doc.map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=64),
    st.sampled_from([b"{", b"[]", b"null", b"\xef\xbb\xbf{}", b"{}{}", b'{"debug": true', b"\xff\xfe{}"]),
    st.just(b"[" * 20000),
)


@st.composite
def _argv(draw: st.DrawFn) -> list[str]:
    argv = []
    for _ in range(draw(st.integers(0, 3))):
        flag = draw(st.sampled_from(FLAGS))
        if flag.name in ("config-file", "validate", "help", "version"):
            continue
        value = draw(st.one_of(st.text(max_size=12), st.sampled_from(["", "-1", "x=y", "=", "1e9", "true"])))
        form = draw(st.integers(0, 2))
        if form == 0:
            argv.append(f"--{flag.name}={value}")
        elif form == 1 and flag.short:
            argv += [f"-{flag.short}", value]
        else:
            argv.append(f"--{flag.name}")
    if draw(st.integers(0, 9)) == 0:
        argv.append(draw(st.sampled_from(["--nope", "-Z", "positional", "--", "---x"])))
    return argv


def _run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=not LONG,
    suppress_health_check=list(HealthCheck),
)
@given(raw=_raw, argv=_argv())
def test_hostile_config_is_an_error_not_a_crash(raw: bytes, argv: list[str]) -> None:
    with tempfile.NamedTemporaryFile(suffix=".json") as fh:
        fh.write(raw)
        fh.flush()
        code, err = _run([*argv, "--config-file", fh.name, "--validate"])
    assert code in (0, 1), err
    assert "Traceback" not in err
    if code == 1:
        assert err.strip(), "exit 1 without a message"


def test_config_file_shapes(figures: dict[str, Any]) -> None:
    """Named shapes (each a single error line), counted for the report."""
    shapes = {
        "not-an-object": b"[]",
        "truncated": b'{"debug": true',
        "two-documents": b"{}{}",
        "deep": b"[" * 20000,
        "utf16": '{"debug": true}'.encode("utf-16"),
        "wrong-type": b'{"debug": "yes"}',
        "unknown-key": b'{"no-such-key": 1}',
        "bad-hosts": b'{"hosts": "tcp://x"}',
        "bad-ulimits": b'{"default-ulimits": {"nofile": 5}}',
        "bad-log-opts": b'{"log-opts": {"max-size": 5}}',
        "huge-int": b'{"max-concurrent-downloads": 1e400}',
        "negative": b'{"max-concurrent-downloads": -1}',
        "labels": b'{"labels": ["a=b", "a=c"]}',
    }
    out = {}
    for name, raw in shapes.items():
        with tempfile.NamedTemporaryFile(suffix=".json") as fh:
            fh.write(raw)
            fh.flush()
            code, err = _run(["--config-file", fh.name, "--validate"])
        assert code in (0, 1) and "Traceback" not in err, (name, err)
        assert code == 0 or len(err.strip().splitlines()) == 1, (name, err)
        out[name] = code
    figures.setdefault("config", {})["shapes"] = out
    figures["config"]["fuzzed_examples"] = EXAMPLES


#: pass --validate, break (or not) at boot; the boot must end in service or a one-line error
BOOT_CASES: dict[str, dict[str, Any]] = {
    "bip-out-of-range": {"bip": "300.1.1.1/24"},
    "bip-no-mask": {"bip": "10.99.0.1"},
    "address-pool-garbage": {"default-address-pools": [{"base": "x", "size": 99}]},
    "address-pool-size": {"default-address-pools": [{"base": "10.98.0.0/16", "size": 8}]},
    "address-pool-size-past-32": {"default-address-pools": [{"base": "10.98.0.0/16", "size": 40}]},
    "address-pool-only-ipv6": {"default-address-pools": [{"base": "fd00:98::/56", "size": 64}]},
    "mtu-negative": {"mtu": -5},
    "log-opts-bad-size": {"log-opts": {"max-size": "-1"}},
    "log-driver-unknown": {"log-driver": "nope"},
    "storage-driver-unknown": {"storage-driver": "nope"},
    "ulimit-negative": {"default-ulimits": {"nofile": {"Name": "nofile", "Hard": -1, "Soft": -1}}},
    "dns-garbage": {"dns": ["x"]},
    "group-missing": {"group": "harness-no-such-group"},
    "tls-missing-files": {"tlsverify": True, "tlscacert": "/nonexistent/ca.pem"},
    "cgroup-parent-garbage": {"cgroup-parent": "../../x"},
    "registry-mirror-garbage": {"registry-mirrors": ["::"]},
    "insecure-registry-garbage": {"insecure-registries": ["://"]},
    "shutdown-timeout-negative": {"shutdown-timeout": -10},
    "max-concurrent-negative": {"max-concurrent-downloads": -1},
    "default-runtime-unknown": {"default-runtime": "nope"},
}


#: what dockerd 28.5 did with each (recorded on the dockerd-28 target; the long variant boots it again)
DOCKERD_28_BOOT = {
    "bip-out-of-range": "refused",
    "bip-no-mask": "refused",
    "address-pool-garbage": "refused",
    "address-pool-size": "refused",
    "address-pool-size-past-32": "refused",
    "address-pool-only-ipv6": "refused",
    "mtu-negative": "refused",
    "log-opts-bad-size": "serves",
    "log-driver-unknown": "serves",
    "storage-driver-unknown": "refused",
    "ulimit-negative": "serves",
    "dns-garbage": "refused",
    "group-missing": "refused",
    "tls-missing-files": "refused",
    "registry-mirror-garbage": "refused",
    "insecure-registry-garbage": "refused",
    "shutdown-timeout-negative": "serves",
    "max-concurrent-negative": "refused",
    "default-runtime-unknown": "refused",
}
#: refd still starts where dockerd refuses (checks dockerd makes while starting, not at config load)
KNOWN_DIVERGENCES = {
    "bip-no-mask": "dockerd: parse bip failed: invalid CIDR address (refd reads a bare address as /16)",
    "default-runtime-unknown": "dockerd: failed to start daemon: specified default runtime does not exist",
}
#: never booted on dockerd: it would make cgroups outside its own parent on the host
NOT_ON_DOCKERD = {"cgroup-parent-garbage"}


def _boot_outcome(target: str, config: dict[str, Any]) -> tuple[str, str]:
    from harness.backends.base import DaemonSpec
    from harness.errors import HarnessError

    try:
        backend, handle = boot(target, DaemonSpec(config=config))
    except HarnessError as exc:
        return "refused", str(exc)
    try:
        return "serves", handle.logs()
    finally:
        backend.teardown(handle)


@pytest.mark.skipif(not ROOT, reason="booting refd needs root")
@pytest.mark.parametrize("case", list(BOOT_CASES))
def test_hostile_config_at_boot(case: str, figures: dict[str, Any]) -> None:
    outcome, text = _boot_outcome("refd", BOOT_CASES[case])
    assert "Traceback" not in text, text
    fig = figures.setdefault("config", {}).setdefault("boot", {})
    fig[case] = {"refd": outcome}
    if case in NOT_ON_DOCKERD:
        return
    expected = DOCKERD_28_BOOT[case]
    if LONG:
        from harness.errors import HarnessError
        from harness.targets import resolve_target

        try:
            resolve_target("dockerd-28").check_available()
        except HarnessError:
            pass
        else:
            expected = _boot_outcome("dockerd-28", BOOT_CASES[case])[0]
    fig[case]["dockerd-28"] = expected
    if case in KNOWN_DIVERGENCES:
        fig[case]["divergence"] = KNOWN_DIVERGENCES[case]
        return
    assert outcome == expected, f"{case}: refd {outcome}, dockerd 28.5 {expected}\n{text[-2000:]}"
