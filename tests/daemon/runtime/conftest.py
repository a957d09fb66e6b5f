"""Fixtures for the runtime's tests: a busybox rootfs per test (overlay over one extraction), cgroups under
a per-session parent, and a runner that starts containers and always cleans up.

Every test leaves nothing behind, even when it fails: containers are killed and reaped, their cgroups
deleted, the overlay unmounted; the ``_no_leftovers`` fixture then checks /proc/self/mountinfo, the cgroup
hierarchies and /proc for anything carrying this session's token.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.daemon.images.tarsafe import extract
from harness.daemon.runtime import process as rt
from harness.daemon.runtime import syscalls as sc
from harness.daemon.runtime.cgroups import Cgroup, CgroupFS
from harness.daemon.runtime.mountinfo import mounts_under

#: Distinguishes this session's cgroups and processes from everyone else's.
TOKEN = f"refd-rt-test-{uuid.uuid4().hex[:8]}"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here) and os.geteuid() != 0:
            item.add_marker(pytest.mark.skip(reason="the runtime needs root (namespaces, mounts, cgroups)"))


@pytest.fixture(scope="session")
def busybox_lower(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The busybox rootfs, extracted once: the lower layer of every test's overlay."""
    from harness.errors import ImageBuildError
    from harness.images import busybox_rootfs

    try:
        image = busybox_rootfs()
    except ImageBuildError as exc:
        pytest.skip(str(exc))
    lower = tmp_path_factory.mktemp("busybox-lower")
    with open(image.path, "rb") as fh:  # refd's own extractor: the same on every Python (no tarfile filters)
        extract(fh, str(lower))
    return lower


@pytest.fixture
def rootfs(tmp_path: Path, busybox_lower: Path) -> Iterator[Path]:
    """A writable busybox rootfs for one test: overlayfs (upper in tmp_path) over the shared extraction."""
    upper, work, merged = tmp_path / "upper", tmp_path / "work", tmp_path / "rootfs"
    for d in (upper, work, merged):
        d.mkdir()
    sc.mount(
        "overlay", str(merged), "overlay", 0, f"lowerdir={busybox_lower},upperdir={upper},workdir={work}"
    )
    try:
        yield merged
    finally:
        with contextlib.suppress(OSError):
            sc.umount2(str(merged))
        left = mounts_under(str(tmp_path))
        if left:
            for m in reversed(left):
                with contextlib.suppress(OSError):
                    sc.umount2(m.mountpoint, sc.MNT_DETACH)
            pytest.fail(f"mounts left under {tmp_path}: {[m.mountpoint for m in left]}")


@dataclass
class Result:
    code: int
    out: str


@dataclass
class Started:
    proc: rt.ContainerProcess
    out: int  # read end of the container's stdout+stderr pipe
    buf: bytearray = field(default_factory=bytearray)

    def read_until(self, marker: str, timeout: float = 10.0) -> str:
        """Read output until ``marker`` shows up (AssertionError with what came on timeout)."""
        deadline = time.monotonic() + timeout
        while marker.encode() not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{marker!r} not seen in {bytes(self.buf)!r}")
            ready, _, _ = select.select([self.out], [], [], left)
            if ready:
                data = os.read(self.out, 65536)
                if not data:
                    raise AssertionError(f"EOF before {marker!r}; output {bytes(self.buf)!r}")
                self.buf += data
        return self.buf.decode(errors="replace")

    def drain(self, wait: float = 0.0) -> bytes:
        """Whatever output arrives within ``wait`` seconds (non-blocking read loop)."""
        got = bytearray()
        deadline = time.monotonic() + wait
        while True:
            ready, _, _ = select.select([self.out], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                break
            data = os.read(self.out, 65536)
            if not data:
                break
            got += data
        self.buf += got
        return bytes(got)

    def finish(self, timeout: float = 20.0) -> Result:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no EOF within {timeout}s; output {bytes(self.buf)!r}")
            ready, _, _ = select.select([self.out], [], [], left)
            if ready:
                data = os.read(self.out, 65536)
                if not data:
                    break
                self.buf += data
        return Result(
            self.proc.wait(timeout=max(deadline - time.monotonic(), 1.0)), self.buf.decode(errors="replace")
        )


class Runner:
    """Starts containers for one test and tears all of them down afterwards."""

    def __init__(self, rootfs: Path) -> None:
        self.rootfs = rootfs
        self.procs: list[rt.ContainerProcess] = []
        self.fds: list[int] = []
        self.cgroups: list[Cgroup] = []

    def cgroup_path(self) -> str:
        return f"{TOKEN}/c{os.getpid()}-{uuid.uuid4().hex[:6]}"

    def spec(self, args: Sequence[str], **kw: Any) -> rt.ProcessSpec:
        values: dict[str, Any] = {"env": [PATH_ENV], "rootfs": str(self.rootfs), "cgroup": self.cgroup_path()}
        values.update(kw)
        return rt.ProcessSpec(args=list(args), **values)

    def start(
        self, args: Sequence[str], *, stdin: int = -1, cgroup: Cgroup | None = None, **kw: Any
    ) -> Started:
        spec = self.spec(args, **kw)
        r, w = os.pipe2(os.O_CLOEXEC)
        self.fds.append(r)
        try:
            proc = rt.spawn(spec, stdin, w, w, cgroup=cgroup)
        finally:
            os.close(w)
        self.procs.append(proc)
        if proc.cgroup is not None and proc.cgroup not in self.cgroups:
            self.cgroups.append(proc.cgroup)
        return Started(proc, r)

    def run(self, args: Sequence[str], timeout: float = 20.0, **kw: Any) -> Result:
        return self.start(args, **kw).finish(timeout)

    def sh(self, script: str, **kw: Any) -> Result:
        return self.run(["sh", "-c", script], **kw)

    def exec(self, container: rt.ContainerProcess, args: Sequence[str], **kw: Any) -> Started:
        spec = rt.ProcessSpec(args=list(args), **{"env": [PATH_ENV], **kw})
        r, w = os.pipe2(os.O_CLOEXEC)
        self.fds.append(r)
        try:
            proc = rt.exec_in(container.pid, spec, -1, w, w)
        finally:
            os.close(w)
        self.procs.append(proc)
        return Started(proc, r)

    def cleanup(self) -> list[str]:
        problems: list[str] = []
        for proc in self.procs:
            if proc.returncode is None:
                proc.kill()
                try:
                    proc.wait(timeout=10)
                except (TimeoutError, ChildProcessError) as exc:
                    problems.append(f"process {proc.pid} not reaped: {exc}")
        for cg in reversed(self.cgroups):  # the first one created the shared parent: it prunes it last
            try:
                cg.delete()
            except Exception as exc:
                problems.append(f"cgroup {cg.path}: {exc}")
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        return problems


@pytest.fixture
def runner(rootfs: Path) -> Iterator[Runner]:
    r = Runner(rootfs)
    try:
        yield r
    finally:
        problems = r.cleanup()
        if problems:
            pytest.fail("; ".join(problems))


def processes_with_token() -> list[int]:
    """Live (non-zombie) processes whose cgroup path carries this session's token."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cgroup") as fh:
                text = fh.read()
            with open(f"/proc/{entry}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if TOKEN in text and state != "Z":
            out.append(int(entry))
    return out


def cgroup_dirs_with_token() -> list[str]:
    fs = CgroupFS.detect()
    out = []
    for h in fs.hierarchies:
        for base in {h.mountpoint, fs.directory(h, fs.own_path(h))}:
            path = os.path.join(base, TOKEN)
            if os.path.exists(path):
                out.append(path)
    for m in mounts_under("/sys/fs/cgroup"):
        if m.fstype == "cgroup2" and os.path.exists(os.path.join(m.mountpoint, TOKEN)):
            out.append(os.path.join(m.mountpoint, TOKEN))
    return out


def _reap_zombies() -> None:
    """spawn() makes this process a subreaper: collect anything re-parented to it."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            return
        if pid == 0:
            return


def _thaw_leftovers() -> None:
    for d in cgroup_dirs_with_token():
        for sub, _, files in os.walk(d):
            for name, value in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
                if name in files:
                    with contextlib.suppress(OSError), open(os.path.join(sub, name), "w") as fh:
                        fh.write(value)


@pytest.fixture(autouse=True)
def _no_leftovers(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if Path(str(request.node.fspath)).parent != Path(__file__).parent:
        return
    _reap_zombies()
    deadline = time.monotonic() + 5
    while (left := processes_with_token()) and time.monotonic() < deadline:
        time.sleep(0.05)
    _thaw_leftovers()  # frozen leftovers cannot die
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _reap_zombies()
    assert not left, f"processes left in this session's cgroups: {left}"
    dirs = cgroup_dirs_with_token()
    for d in dirs:  # last resort so the next test starts clean; the assertion below still fails
        for sub, _, _ in sorted(os.walk(d), key=lambda t: -t[0].count("/")):
            with contextlib.suppress(OSError):
                os.rmdir(sub)
    assert not dirs, f"cgroup directories left: {dirs}"
