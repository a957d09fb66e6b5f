"""The Backend protocol and the value types every backend shares.

A DaemonSpec says what to boot (flags, daemon.json, sockets); a backend turns it into a
running DaemonHandle. Scenarios talk to handles only, so a backend is swappable.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..endpoints import Endpoint, TLSFiles
from ..errors import HarnessError
from ..targets import Target

__all__ = ["Backend", "DaemonHandle", "DaemonSpec", "NotifyListener", "refuse_netns_setup"]


@dataclass
class DaemonSpec:
    """What to boot. ``config`` is written as daemon.json (a str is written verbatim).

    ``hosts`` are dockerd ``-H`` values given as flags; ``None`` means one private unix socket.
    ``activation`` lists unix socket paths the harness binds and passes as systemd ``LISTEN_FDS``.
    """

    args: list[str] = field(default_factory=list)
    config: dict[str, Any] | str | None = None
    hosts: list[str] | None = None
    extra_hosts: list[str] = field(default_factory=list)
    activation: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    notify: bool = False
    wait: bool = True
    timeout: float = 60.0
    client_tls: TLSFiles | None = None
    config_file_flag: bool = True
    wrapper: list[str] = field(default_factory=list)  # argv prefix run inside the namespaces (e.g. setpriv)
    #: shell lines run (``set -e``) in the daemon's own network namespace before each boot (a profile's)
    netns_setup: list[str] = field(default_factory=list)
    #: teardown stops the daemon with SIGTERM and waits for its exit (a data-root kept for later, such as the
    #: container engine's image cache), instead of SIGKILL: a throwaway daemon's shutdown is not under test,
    #: and dockerd spends about a second on it
    graceful_teardown: bool = False

    def config_text(self) -> str | None:
        if self.config is None:
            return None
        return self.config if isinstance(self.config, str) else json.dumps(self.config, indent=2)


class NotifyListener:
    """Collects sd_notify datagrams sent to a private NOTIFY_SOCKET."""

    def __init__(self, path: str) -> None:
        import socket

        self.path = path
        self.messages: list[tuple[float, str]] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(path)
        self._sock.settimeout(0.2)
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="notify-listener")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.time(), data.decode(errors="replace")))

    def payloads(self) -> list[str]:
        return [m for _, m in self.messages]

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=1)
        self._sock.close()


@dataclass
class DaemonHandle:
    """A booted (or booting) daemon: its process, files, endpoints and log."""

    target: Target
    spec: DaemonSpec
    workdir: str
    command: list[str]
    process: subprocess.Popen[bytes] | None = None
    endpoint: Endpoint | None = None
    endpoints: list[Endpoint] = field(default_factory=list)
    notify_listener: NotifyListener | None = None
    netns_path: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    # files --------------------------------------------------------------------------------------
    @property
    def data_root(self) -> str:
        return os.path.join(self.workdir, "root")

    @property
    def exec_root(self) -> str:
        return os.path.join(self.workdir, "exec")

    @property
    def pidfile(self) -> str:
        return os.path.join(self.workdir, "daemon.pid")

    @property
    def config_path(self) -> str:
        return os.path.join(self.workdir, "daemon.json")

    @property
    def socket_path(self) -> str:
        return os.path.join(self.workdir, "docker.sock")

    @property
    def stderr_path(self) -> str:
        return os.path.join(self.workdir, "stderr.log")

    @property
    def stdout_path(self) -> str:
        return os.path.join(self.workdir, "stdout.log")

    @property
    def pid(self) -> int:
        if self.process is None:
            raise HarnessError("daemon was never started")
        return self.process.pid

    # logs ---------------------------------------------------------------------------------------
    def logs(self) -> str:
        """Everything the daemon wrote to stderr so far (dockerd logs there)."""
        try:
            with open(self.stderr_path, errors="replace") as fh:
                return fh.read()
        except FileNotFoundError:
            return ""

    def stdout(self) -> str:
        try:
            with open(self.stdout_path, errors="replace") as fh:
                return fh.read()
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 25) -> str:
        """The last ``lines`` log lines."""
        return "\n".join(self.logs().splitlines()[-lines:])

    def log_excerpt(self, lines: int = 25, head: int = 5) -> str:
        """For errors: the last ``lines`` log lines, preceded by the first ``head`` when the log is longer.

        A daemon that fails at start-up often says why first and then prints its usage or more:
        the head keeps the reason in the error message.
        """
        all_lines = self.logs().splitlines()
        if len(all_lines) <= lines + head:
            return "\n".join(all_lines)
        return "\n".join(
            [*all_lines[:head], f"... ({len(all_lines) - lines - head} lines) ...", *all_lines[-lines:]]
        )

    def wait_for_log(self, needle: str, timeout: float = 10.0, start: int = 0) -> str:
        """Wait until ``needle`` appears in the log after offset ``start``; returns the matching line."""
        from ..wait import wait_until

        found: list[str] = []

        def appeared() -> bool:
            found[:] = [line for line in self.logs()[start:].splitlines() if needle in line][:1]
            return bool(found)

        if not wait_until(appeared, timeout, interval=0.05):
            raise HarnessError(
                f"{self.target.name}: log line containing {needle!r} did not appear "
                f"within {timeout}s; last lines:\n{self.log_tail()}"
            )
        return found[0]

    def notify_messages(self) -> list[str]:
        return self.notify_listener.payloads() if self.notify_listener else []

    # control ------------------------------------------------------------------------------------
    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def signal(self, signo: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signo)

    def reload(self) -> None:
        """SIGHUP, as ``systemctl reload`` does through ExecReload."""
        self.signal(signal.SIGHUP)

    def wait_exit(self, timeout: float = 30.0) -> int:
        if self.process is None:
            raise HarnessError("daemon was never started")
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise HarnessError(
                f"{self.target.name} (pid {self.process.pid}) did not exit within {timeout}s; "
                f"last lines:\n{self.log_tail()}"
            ) from None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for exit."""
        self.signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill(self) -> None:
        """SIGKILL the daemon (and, by the backend's cleanup, everything it started)."""
        self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)

    def endpoint_for(self, kind: str) -> Endpoint:
        """The first endpoint of ``kind`` ("unix" or "tcp")."""
        for endpoint in self.endpoints:
            if endpoint.kind == kind:
                return endpoint
        have = ", ".join(e.docker_host for e in self.endpoints) or "none"
        raise HarnessError(f"{self.target.name} has no {kind} endpoint (has: {have})")

    def url(self, path: str) -> str:
        if self.endpoint is None:
            raise HarnessError("daemon has no endpoint")
        return self.endpoint.base_url() + path

    # where the daemon lives -----------------------------------------------------------------------
    def processes(self) -> list[str]:
        """``pid: command line`` of every process of this daemon on this host: in its network namespace
        (the daemon, dockerd's containerd and shims, refd's zygote and shim hosts) or in the cgroup parent
        the backend gave its containers. After a clean exit there must be none."""
        from ..daemonprocs import describe, in_cgroup_parent, in_netns

        ino = self.extras.get("netns_ino", 0)
        if not ino:
            raise HarnessError(f"{self.target.name}: the daemon's network namespace was never recorded")
        pids = in_netns(ino) - set(self.extras.get("netns_keepers", ()))
        pids |= in_cgroup_parent(self.extras.get("cgroup_parent", ""))
        return [describe(pid) for pid in sorted(pids)]

    def reach(self, host: str, port: int) -> tuple[str, int]:
        """The address this host connects to for ``host:port`` as the daemon sees it (a published port).

        Here the same address (in ``netns_path`` when set); the vm backend relays it out of the guest."""
        return host, port

    def is_dir(self, path: str) -> bool:
        """Whether ``path`` is a directory where the daemon runs (in its data-root, say): this host's file
        system here; the guest's under the vm backend, whose data-root is guest tmpfs."""
        return os.path.isdir(path)


def refuse_netns_setup(handle: DaemonHandle, backend: str) -> None:
    """Backends that cannot run a profile's ``netns-setup`` lines say so instead of booting without them."""
    if handle.spec.netns_setup:
        raise HarnessError(
            f"{handle.target.name}: the {backend} backend cannot run netns-setup lines (a profile's, such as "
            "host-docker0's) in the daemon's network namespace; run that profile with --backend local"
        )


class Backend(Protocol):
    """Boots a DaemonSpec for a Target and always tears it down."""

    name: str

    def start(self, target: Target, spec: DaemonSpec, workdir: str) -> DaemonHandle: ...

    def restart(self, handle: DaemonHandle) -> DaemonHandle: ...

    def forward(self, handle: DaemonHandle, port: int, tls: TLSFiles | None = None) -> Endpoint: ...

    def teardown(self, handle: DaemonHandle, keep: bool = False) -> None: ...
