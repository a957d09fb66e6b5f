"""Every backend satisfies the Backend protocol: the same checks, run over all of them.

The structural part runs everywhere. The live part boots refd on each backend and drives the whole handle
life cycle (ping, logs, reload, restart, forward, stop, teardown); a backend that cannot run here is skipped
with what is missing. VM boots take minutes under TCG (no usable KVM), so the vm backend's live run only
happens in ``nox -s tests-vm`` (``HARNESS_VM_TESTS=1``).
"""

from __future__ import annotations

import inspect
import os
import shutil
import tempfile
import time

import pytest

from harness.backends import get_backend
from harness.backends.base import Backend, DaemonSpec
from harness.config import BACKENDS
from harness.targets import resolve_target
from harness.wait import ping_once

PROTOCOL_METHODS = ("start", "restart", "forward", "teardown")


@pytest.mark.parametrize("name", BACKENDS)
def test_backend_has_the_protocols_methods_and_signatures(name: str) -> None:
    backend = get_backend(name)
    assert backend.name == name
    for method in PROTOCOL_METHODS:
        want = list(inspect.signature(getattr(Backend, method)).parameters)[1:]
        have = list(inspect.signature(getattr(backend, method)).parameters)
        assert have[: len(want)] == want, f"{name}.{method}{have} does not match Backend.{method}{want}"
        extra = [p for p in inspect.signature(getattr(backend, method)).parameters.values()][len(want) :]
        assert all(p.default is not inspect.Parameter.empty for p in extra), f"{name}.{method}: {extra}"


def _why_not(name: str) -> str:
    """What this machine lacks for a live run of backend ``name`` ("" = nothing)."""
    if os.geteuid() != 0:
        return f"the {name} backend boots daemons in private namespaces: needs root"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    if name == "container" and not os.environ.get("DOCKER_HOST") and shutil.which("dockerd") is None:
        return "the container backend's private engine needs the host's dockerd (apt-get install docker.io)"
    if name == "vm":
        from harness.backends.vm import vm_available

        missing = vm_available()
        if missing:
            return missing
        if os.environ.get("HARNESS_VM_TESTS") != "1":
            return "VM boots take minutes here (TCG): run nox -s tests-vm (HARNESS_VM_TESTS=1)"
    return ""


LIVE = [pytest.param(n, marks=[] if n == "local" else [pytest.mark.slow]) for n in BACKENDS]


@pytest.mark.parametrize("name", LIVE)
def test_backend_boots_drives_and_tears_down_refd(name: str) -> None:
    reason = _why_not(name)
    if reason:
        pytest.skip(reason)
    backend = get_backend(name)
    target = resolve_target("refd")
    workdir = tempfile.mkdtemp(prefix=f"harness-proto-{name}-")
    spec = DaemonSpec(args=["--debug"])
    handle = backend.start(target, spec, workdir)
    try:
        assert handle.endpoint is not None and handle.endpoint in handle.endpoints
        assert ping_once(handle.endpoint) == 200
        assert handle.returncode is None and handle.pid > 0
        assert "API listen on" in handle.logs()
        # reload reaches the daemon (SIGHUP), and it keeps answering
        offset = len(handle.logs())
        handle.reload()
        handle.wait_for_log("configuration", timeout=60, start=offset)
        assert ping_once(handle.endpoint) == 200
        # restart: same work directory, answering again
        handle = backend.restart(handle)
        assert handle.workdir == workdir and ping_once(handle.endpoint) == 200
        # forward: a daemon TCP listener becomes a host loopback endpoint (refd listening on a second -H)
        endpoint = backend.forward(handle, 2375)
        assert endpoint.kind == "tcp" and endpoint.address.startswith("127.0.0.1:")
        # stop: SIGTERM reaches the daemon, which exits 0
        assert handle.stop(timeout=120) == 0
        assert handle.returncode == 0
    finally:
        started = time.monotonic()
        backend.teardown(handle)
        assert time.monotonic() - started < 60
    assert not os.path.exists(workdir)
    deadline = time.monotonic() + 10
    while True:  # nothing of it is left on this host
        try:
            os.kill(handle.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, f"{name}: pid {handle.pid} is alive after teardown"
        time.sleep(0.1)


def test_unknown_backend_names_the_choices() -> None:
    from harness.errors import ConfigValueError

    with pytest.raises(ConfigValueError, match="'local', 'container' or 'vm'"):
        get_backend("qemu")
