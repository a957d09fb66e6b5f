"""The container backend: each daemon in its own (near-)privileged container, started with testcontainers.

The engine is a Docker API engine on this host (``harness.container_engine``: ``DOCKER_HOST``, or a private
engine the backend boots with the local backend). A target's image is made from its cached debootstrap
rootfs (``harness.container_images``). The container

- bind-mounts the daemon's work directory (and ``/tmp``, and the directory of every absolute path in its flags
  or ``daemon.json``, as ``harness/chroot_exec.py`` does, not recursively either) at the same path, so the
  socket, pidfile, data-root, ``daemon.json``, TLS files and log are where a local daemon's are and the
  existing clients work unchanged;
- has network ``none``: a network namespace of its own where the daemon makes its own bridge and iptables
  rules; TCP listeners are reached through the same loopback forwarder the local backend uses;
- shares the host's pid namespace, so the handle's ``pid`` is the daemon's pid on this host, its pidfile says
  the same, and signals behave as for a local daemon (a pid-namespace init would ignore unhandled ones);
- gets the widest privileges the engine grants here (``container_engine.security_settings``), the host's
  ``/sys/fs/cgroup`` read-write (the daemon's private cgroup parent is the local backend's), a fresh ``/proc``
  (no masked paths, ``/proc/sys`` writable: what ``privileged`` gives, which the API cannot ask for without
  it) and ``/sys`` remounted read-write;
- is a small machine for the daemon: its own command only finishes the privileges and then holds it open;
  the daemon is exec'd into it (``DAEMON_SCRIPT`` sends its stdout and stderr to the work directory's log
  files and execs it). A restart execs it again in the same container, so ``/run``, the namespaces and the
  shims of live-restored containers survive it, as they survive restarting dockerd on a real host.

Teardown stops the daemon (SIGTERM, then SIGKILL), removes the container, kills what is left in its cgroup
parent and network namespace and removes the work directory, whatever state the daemon is in. The daemon is in
the ledger like a local one; its container carries owner labels, so a later session removes what a killed one
left. Socket activation (``DaemonSpec.activation``) binds its sockets inside the container (file descriptors
cannot be handed in through the engine's API), at the same paths, with the image's perl.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import IO, Any, ClassVar

from ..chroot_exec import SYSTEM_TOP, bind_candidates
from ..container_engine import Engine, log, owner_labels, security_settings, shared_engine
from ..container_images import IMAGE_PYTHON, ensure_image, ensure_rootfs
from ..errors import BackendStartError, HarnessError, TargetUnavailable
from ..targets import Target
from . import local as _local
from .base import DaemonHandle, DaemonSpec, NotifyListener, refuse_netns_setup
from .local import LocalBackend, _check_socket_paths, _ns_inode, cgroup_parent, kill_netns_members

__all__ = ["ACTIVATE_PERL", "DAEMON_SCRIPT", "HOLDER_SCRIPT", "ContainerBackend", "ContainerProcess"]

READY_MARK = "/run/harness-container-ready"
#: the container's own command: give it what ``privileged`` would (the API cannot ask for these without it),
#: say so, then hold the container open; the daemon is exec'd into it (so a restart keeps /run, namespaces
#: and live-restored shims, as restarting a daemon on a real host does)
HOLDER_SCRIPT = f"""mount -t proc proc /proc || echo "harness container: /proc keeps the engine's masks" >&2
mount -o remount,rw /sys || echo "harness container: /sys stays read-only" >&2
: > {READY_MARK}
exec sleep infinity
"""
#: exec'd into the container: the daemon's output goes to the work dir's files, then the daemon replaces sh
DAEMON_SCRIPT = f"""exec </dev/null >>"$HARNESS_STDOUT" 2>>"$HARNESS_STDERR"
unset HARNESS_STDOUT HARNESS_STDERR
n=0
until [ -e {READY_MARK} ]; do
  n=$((n + 1))
  if [ $n -gt 1000 ]; then echo "harness container entry: the container never got ready" >&2; exit 125; fi
  sleep 0.01
done
exec "$@"
"""
#: socket activation inside the container (perl-base is in every Debian rootfs): bind and listen on each path,
#: hand the sockets over as fds 3.. with LISTEN_FDS/LISTEN_PID, exec the daemon with this same pid
ACTIVATE_PERL = r"""use strict; use Socket; use POSIX ();
my @paths; push @paths, shift @ARGV while @ARGV && $ARGV[0] ne "--"; shift @ARGV;
my @high;
for my $p (@paths) {
  unlink $p;
  socket(my $s, PF_UNIX, SOCK_STREAM, 0) or die "harness activation: socket: $!\n";
  bind($s, pack_sockaddr_un($p)) or die "harness activation: bind $p: $!\n";
  chmod 0660, $p;
  listen($s, 128) or die "harness activation: listen $p: $!\n";
  my $fd = 100 + @high;
  defined POSIX::dup2(fileno($s), $fd) or die "harness activation: dup2: $!\n";
  push @high, $fd; close $s;
}
for my $i (0 .. $#high) {
  defined POSIX::dup2($high[$i], 3 + $i) or die "harness activation: dup2: $!\n";
  POSIX::close($high[$i]);
}
if (@paths) { $ENV{LISTEN_FDS} = scalar @paths; $ENV{LISTEN_PID} = $$; }
exec { $ARGV[0] } @ARGV or die "harness activation: exec $ARGV[0]: $!\n";
"""
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: where the project is bound for refd when its own path is a system directory of the image
PROJECT_MOUNT = "/opt/docker-conformance-harness"


class ContainerProcess(subprocess.Popen[bytes]):
    """A ``Popen`` look-alike for the daemon exec'd into its container, so a ``DaemonHandle`` works unchanged.

    ``pid`` is the daemon's pid on this host. While that process lives (same start time), ``poll()`` costs no
    API call; once it is gone the exit code is the exec's ``ExitCode`` from the engine (a daemon killed by
    signal N reads 128+N there, where a local ``Popen`` says -N).
    """

    def __init__(self, api: Any, exec_id: str, pid: int, args: list[str]) -> None:
        # no Popen.__init__: nothing is spawned here. _child_created=False keeps Popen.__del__ quiet.
        self._child_created = False
        self.args = args
        self.pid = pid
        self.returncode: Any = None
        self.stdin = self.stdout = self.stderr = None
        self.exec_id = exec_id
        self._api = api
        self._start = _local_start_time(pid) if pid else ""

    def _alive(self) -> bool:
        return bool(self._start) and _local_start_time(self.pid) == self._start

    def poll(self) -> int | None:
        if self.returncode is not None:
            return int(self.returncode)
        if self._alive():
            return None
        try:
            state = self._api.exec_inspect(self.exec_id)
        except Exception:
            self.returncode = -signal.SIGKILL  # its container is gone: removed, or its engine died
            return int(self.returncode)
        if state.get("Running"):
            return None  # exited a moment ago; the engine has not noticed yet
        code = state.get("ExitCode")
        self.returncode = -signal.SIGKILL if code is None else int(code)
        return int(self.returncode)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.01
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            time.sleep(delay)
            delay = min(delay * 1.5, 0.1)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _ledger() -> Any:
    """The ledger the local backend records into (the inherited readiness check records there too)."""
    return getattr(_local, "LEDGER")  # noqa: B009 - looked up at call time: tests swap in a private one


def _local_start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _on_this_host(pid: int, container_id: str) -> bool:
    """True when host pid ``pid`` runs in that container (the engine runs on this host, in our pid ns)."""
    for name in ("cgroup", "mountinfo"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/{name}") as fh:
            if container_id in fh.read():
                return True
    return False


class ContainerBackend(LocalBackend):
    """Boots daemons in containers on a Docker API engine; implements the Backend protocol.

    Endpoints, readiness, the command line and TCP forwarding are the local backend's (the paths are the same
    inside the container); starting, restarting and tearing down go through the engine.
    """

    name = "container"

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = sys.stderr if out is None else out

    def command(self, target: Target, spec: DaemonSpec, handle: DaemonHandle) -> list[str]:
        argv = super().command(target, spec, handle)
        if target.is_refd:
            argv[0] = IMAGE_PYTHON  # the image's Python runs refd from the bound project tree
        return argv

    def start(self, target: Target, spec: DaemonSpec, workdir: str) -> DaemonHandle:
        if target.kind == "external":
            raise TargetUnavailable(
                target.name, "it already runs somewhere: the container backend has nothing to boot", ""
            )
        target.check_available()
        entry = ensure_rootfs(target, self.out)
        engine = shared_engine(self.out)
        image = ensure_image(engine.client, entry, self.out)
        handle = DaemonHandle(target=target, spec=spec, workdir=workdir, command=[])
        handle.extras.update(engine=engine, image=image)
        _check_socket_paths(handle)
        os.makedirs(workdir, exist_ok=True)
        text = spec.config_text()
        if spec.config_file_flag:
            with open(handle.config_path, "w") as fh:
                fh.write("{}\n" if text is None else text)
        handle.command = self.command(target, spec, handle)
        try:
            self._spawn(handle)
        except BaseException:
            self.teardown(handle, keep=True)  # the caller owns the workdir (and its log)
            raise
        return handle

    # -- the container ----------------------------------------------------------------------------------

    def _env(self, handle: DaemonHandle) -> dict[str, str]:
        env = {
            "PATH": IMAGE_PATH,
            "HOME": handle.workdir,
            "LANG": "C.UTF-8",
            **handle.target.env,
            **handle.spec.env,
            "HARNESS_STDOUT": handle.stdout_path,
            "HARNESS_STDERR": handle.stderr_path,
        }
        if handle.target.is_refd:
            env["PYTHONPATH"] = self._project_mount(handle.target)[1]
            env["PYTHONDONTWRITEBYTECODE"] = "1"  # the tree is bound read-only
        if handle.spec.notify:
            if handle.notify_listener is None:
                handle.notify_listener = NotifyListener(os.path.join(handle.workdir, "notify.sock"))
            env["NOTIFY_SOCKET"] = handle.notify_listener.path
        return env

    @staticmethod
    def _project_mount(target: Target) -> tuple[str, str]:
        """(host path, path inside) of the tree refd runs from."""
        root = target.env.get("PYTHONPATH", "").split(os.pathsep)[0]
        if not root:
            raise HarnessError(
                f"{target.name}: no PYTHONPATH names the project tree to bind into the container"
            )
        top = root.strip("/").split("/")[0]
        return root, (PROJECT_MOUNT if top in SYSTEM_TOP else root)

    def _volumes(self, handle: DaemonHandle) -> list[tuple[str, str, str]]:
        """(host, inside, mode) bind mounts: the paths a local daemon would share with the harness."""
        binds: list[tuple[str, str, str]] = []
        covered: list[str] = []
        if os.path.isdir("/tmp"):
            binds.append(("/tmp", "/tmp", "rw"))
            covered.append("/tmp")
        if not any(handle.workdir == c or handle.workdir.startswith(c + "/") for c in covered):
            binds.append((handle.workdir, handle.workdir, "rw"))
            covered.append(handle.workdir)
        paths = [*handle.spec.wrapper, *handle.command, *handle.spec.activation]
        for path in bind_candidates(paths, handle.workdir, covered):
            binds.append((path, path, "rw"))
        if handle.target.is_refd:
            host, inside = self._project_mount(handle.target)
            binds.append((host, inside, "ro"))
        binds.append(("/sys/fs/cgroup", "/sys/fs/cgroup", "rw"))
        if os.path.isdir("/lib/modules"):
            binds.append(("/lib/modules", "/lib/modules", "ro"))
        return binds

    #: binds that must carry their submounts (each cgroup hierarchy is one)
    RECURSIVE: ClassVar[frozenset[str]] = frozenset({"/sys/fs/cgroup"})
    #: what every daemon's container has besides its privileges (the probe container too)
    BASE_KWARGS: ClassVar[dict[str, Any]] = {"network_mode": "none", "pid_mode": "host"}
    PROBE_KWARGS: ClassVar[dict[str, Any]] = {
        **BASE_KWARGS,
        "volumes": {"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}},
    }

    def _create(self, handle: DaemonHandle) -> Any:
        from testcontainers.core.config import testcontainers_config
        from testcontainers.core.container import DockerContainer

        # Ryuk (testcontainers' reaper) is an image from a registry; the ledger and owner labels do its job
        testcontainers_config.ryuk_disabled = True
        engine: Engine = handle.extras["engine"]
        image: str = handle.extras["image"]
        security = security_settings(engine, image, self.PROBE_KWARGS)
        handle.extras["security"] = security.note
        container = DockerContainer(
            image,
            docker_client_kw={"environment": dict(engine.client_env)},
            name=os.path.basename(handle.workdir.rstrip("/")),
            env={"PATH": IMAGE_PATH, "LANG": "C.UTF-8"},
        )
        container.with_command(["/bin/sh", "-c", HOLDER_SCRIPT])
        mounts = []
        for host, inside, mode in self._volumes(handle):
            if host in self.RECURSIVE:
                container.with_volume_mapping(host, inside, mode)  # a -v bind: recursive
            else:
                # not recursive, as chroot_exec binds: mounts below /tmp (another daemon's kept netns file)
                # stay out of this container
                mounts.append(
                    {
                        "Type": "bind",
                        "Source": host,
                        "Target": inside,
                        "ReadOnly": mode == "ro",
                        "BindOptions": {"NonRecursive": True},
                    }
                )
        container.with_kwargs(
            **self.BASE_KWARGS,
            **security.kwargs,
            mounts=mounts,
            hostname=socket.gethostname(),  # a local daemon reports the host's name in /info
            working_dir=handle.workdir,
            labels=owner_labels(handle.workdir, handle.target.name),
        )
        return container

    def _container(self, handle: DaemonHandle) -> Any:
        """The daemon's container, created and started on first use (and started again if it stopped)."""
        container = handle.extras.get("container")
        if container is None:
            container = handle.extras["container"] = self._create(handle)
            container.start()
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        if wrapped.status != "running":
            wrapped.start()
            wrapped.reload()
        if wrapped.status != "running":
            raise BackendStartError(
                handle.target.name,
                ["/bin/sh", "-c", HOLDER_SCRIPT],
                wrapped.attrs["State"].get("ExitCode"),
                f"its container {wrapped.short_id} stopped at once: {self._container_logs(handle)}",
            )
        handle.extras["container_id"] = wrapped.id
        return wrapped

    def _exec_daemon(self, handle: DaemonHandle, wrapped: Any) -> ContainerProcess:
        """Exec the daemon into the running container; its pid on this host once it has one."""
        api = handle.extras["engine"].client.api
        argv = ["/bin/sh", "-c", DAEMON_SCRIPT, "harness-entry"]
        if handle.spec.activation:  # bound inside (sockets cannot be handed into a container over the API)
            argv += ["perl", "-e", ACTIVATE_PERL, *handle.spec.activation, "--"]
        argv += [*handle.spec.wrapper, *handle.command]
        exec_id = api.exec_create(
            wrapped.id,
            argv,
            stdout=False,
            stderr=False,
            environment=self._env(handle),
            workdir=handle.workdir,
        )["Id"]
        api.exec_start(exec_id, detach=True)
        deadline = time.monotonic() + 10
        while True:
            state = api.exec_inspect(exec_id)
            pid = int(state.get("Pid") or 0)
            if pid or (not state.get("Running") and state.get("ExitCode") is not None):
                break
            if time.monotonic() > deadline:
                raise BackendStartError(
                    handle.target.name, handle.command, None, f"exec {exec_id[:12]} never got a pid: {state}"
                )
            time.sleep(0.01)
        process = ContainerProcess(api, exec_id, pid, handle.command)
        if not pid:
            process.returncode = int(state.get("ExitCode", -1))
        return process

    def _spawn(self, handle: DaemonHandle, cpu: int | None = None) -> None:
        """(``cpu`` pins the local backend's unshare; there is none here.)"""
        import docker.errors

        refuse_netns_setup(handle, self.name)

        engine: Engine = handle.extras["engine"]
        try:
            wrapped = self._container(handle)
            holder = int(wrapped.attrs["State"].get("Pid") or 0)
            if not _on_this_host(holder, wrapped.id):
                raise HarnessError(
                    f"{engine.description} does not run on this host (container {wrapped.short_id} has no "
                    f"process {holder} here): the container backend shares the daemon's work directory "
                    "through a bind mount and signals it by pid, so it needs an engine on this machine"
                )
            handle.extras["netns_keepers"] = {holder}  # the container's own command, not the daemon's
            handle.process = self._exec_daemon(handle, wrapped)
        except docker.errors.APIError as exc:
            raise BackendStartError(
                handle.target.name,
                handle.command,
                None,
                f"{engine.description} did not start the container: {exc.explanation or exc}\n"
                + self._log_excerpt(handle),
            ) from None
        if handle.process.returncode is not None:  # over before it had a pid: the log says why
            raise BackendStartError(
                handle.target.name, handle.command, handle.process.returncode, self._log_excerpt(handle)
            )
        _ledger().record_daemon(handle.pid, handle.workdir)
        handle.netns_path = f"/proc/{handle.pid}/ns/net"
        self._find_endpoints(handle)
        if handle.spec.wait:
            try:
                self.wait_ready(handle)
            except BackendStartError as exc:
                if exc.log_tail:
                    raise
                raise BackendStartError(
                    exc.target, exc.command, exc.returncode, self._log_excerpt(handle)
                ) from None

    @staticmethod
    def _container_logs(handle: DaemonHandle) -> str:
        container = handle.extras.get("container")
        with contextlib.suppress(Exception):
            raw = container.get_wrapped_container().logs(tail=30) if container is not None else b""
            return str(raw.decode(errors="replace")).strip()
        return ""

    @classmethod
    def _log_excerpt(cls, handle: DaemonHandle) -> str:
        """The daemon's log, else what its container said (a /proc or /sys it could not remount, ...)."""
        return handle.log_excerpt() or cls._container_logs(handle)

    def _netns_of(self, handle: DaemonHandle) -> str:
        """The container's network namespace (never this process's own)."""
        try:
            ino = os.stat(handle.netns_path).st_ino
        except OSError:
            raise BackendStartError(
                handle.target.name, handle.command, handle.returncode, self._log_excerpt(handle)
            ) from None
        if ino == os.stat("/proc/self/ns/net").st_ino:
            raise HarnessError(f"{handle.target.name}: the container shares this host's network namespace")
        return handle.netns_path

    # -- lifecycle --------------------------------------------------------------------------------------

    def restart(self, handle: DaemonHandle) -> DaemonHandle:
        """Stop (SIGTERM) and exec the daemon again in the same container (same data-root, /run, network)."""
        if handle.returncode is None:
            handle.stop()
        if handle.process is not None:
            _ledger().forget_daemon(handle.process.pid)
        self._close_forwarders(handle)
        self._spawn(handle)
        return handle

    def teardown(self, handle: DaemonHandle, keep: bool = False) -> None:
        """Stop the daemon, remove its container, kill what it left, remove its files: always all of it."""
        proc = handle.process
        container = handle.extras.get("container")
        inos: set[int] = set(handle.extras.get("netns_inos", []))
        try:
            if proc is not None:
                inos.add(handle.extras.get("netns_ino") or _ns_inode(proc.pid))
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            proc.wait(timeout=10)
        finally:
            if container is not None:
                try:
                    container.stop()  # testcontainers: remove(force=True, v=True), then close its client
                except Exception as exc:  # the engine is gone: a later session's reaper removes it
                    log.warning(
                        "container backend: could not remove the container of %s: %s", handle.workdir, exc
                    )
            for ino in inos:
                if ino:
                    kill_netns_members(ino)
            _local.remove_cgroup_tree(cgroup_parent(handle))
            if proc is not None:
                _ledger().forget_daemon(proc.pid)
            self._close_forwarders(handle)
            if handle.notify_listener is not None:
                handle.notify_listener.close()
            if not keep:
                shutil.rmtree(handle.workdir, ignore_errors=True)
