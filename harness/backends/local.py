"""The local backend: the daemon is a process on this host in private mount + network namespaces.

``unshare --mount --net`` gives each daemon its own mount table (its overlay and bind
mounts vanish with it) and its own netns (bridges, iptables and TCP ports never collide
with another daemon's). Unix sockets live in the shared filesystem; TCP listeners are
reached through a loopback Forwarder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time

from ..cleanup import LEDGER
from ..endpoints import Endpoint, TLSFiles
from ..errors import BackendStartError, HarnessError, ReadinessTimeout
from ..netns import Forwarder, NetnsConnector
from ..private_accounts import CALLER_ENV
from ..targets import Target
from ..wait import ping_once, wait_until
from .base import DaemonHandle, DaemonSpec, NotifyListener

__all__ = ["LocalBackend"]

_WRAPPER = 'ip link set lo up || exit 125\n{setup}{remap}exec "$@"'
_FD_BASE = 100
_SUN_PATH_MAX = 104  # containerd's limit for its socket paths; Linux itself allows 107


def _flag_given(spec: DaemonSpec, flag: str, key: str) -> bool:
    in_args = any(a == flag or a.startswith(flag + "=") for a in spec.args)
    in_file = isinstance(spec.config, dict) and key in spec.config
    return in_args or in_file


def remaps_users(spec: DaemonSpec) -> bool:
    """Whether the daemon is told to remap users (``--userns-remap``, as a flag or in daemon.json)."""
    if _flag_given(spec, "--userns-remap", "userns-remap"):
        return True
    return isinstance(spec.config, str) and '"userns-remap"' in spec.config


def private_accounts_launcher(target: Target, spec: DaemonSpec, workdir: str) -> list[str]:
    """The launcher giving the daemon private ``/etc`` and ``/var/log`` overlays, or ``[]``.

    A daemon that remaps users creates ``dockremap`` and its subordinate ranges (dockerd does it with
    adduser/useradd and usermod): on the host's ``/etc`` for refd and the host's dockerd, so they get
    overlays kept in their work dir (``harness/private_accounts.py``). A rootfs target already runs on
    its rootfs's own ``/etc`` (an overlay in its mount namespace): both end up equally private.
    """
    if target.rootfs or not remaps_users(spec):
        return []
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "private_accounts.py")
    return [sys.executable, "-I", "-S", script, os.path.join(workdir, "private"), "--"]


def _tcp_port(host: str) -> int | None:
    if not host.startswith("tcp://"):
        return None
    tail = host.removeprefix("tcp://").rstrip("/")
    port = tail.rpartition(":")[2] if ":" in tail else ""
    return int(port) if port.isdigit() else 2375


class LocalBackend:
    """Boots daemons as local processes; implements the Backend protocol."""

    name = "local"

    def command(self, target: Target, spec: DaemonSpec, handle: DaemonHandle) -> list[str]:
        argv = list(target.argv)
        if not _flag_given(spec, "--data-root", "data-root"):
            argv.append(f"--data-root={handle.data_root}")
        if not _flag_given(spec, "--exec-root", "exec-root"):
            argv.append(f"--exec-root={handle.exec_root}")
        if not _flag_given(spec, "--pidfile", "pidfile"):
            argv.append(f"--pidfile={handle.pidfile}")
        if spec.config_file_flag:
            argv.append(f"--config-file={handle.config_path}")
        if not _flag_given(spec, "--cgroup-parent", "cgroup-parent"):
            # a private cgroup parent per daemon: teardown removes everything its containers left
            argv.append(f"--cgroup-parent={cgroup_parent(handle)}")
            handle.extras["cgroup_parent"] = cgroup_parent(handle)  # for DaemonHandle.processes()
        hosts = [f"unix://{handle.socket_path}"] if spec.hosts is None else spec.hosts
        argv += [f"-H={h}" for h in [*hosts, *spec.extra_hosts]]
        return argv + spec.args

    def start(self, target: Target, spec: DaemonSpec, workdir: str) -> DaemonHandle:
        target.check_available()
        target.prepare()  # a dockerd-N rootfs is built on first use (the target fixture does it visibly)
        handle = DaemonHandle(target=target, spec=spec, workdir=workdir, command=[])
        _check_socket_paths(handle)
        os.makedirs(workdir, exist_ok=True)
        text = spec.config_text()
        if spec.config_file_flag:
            with open(handle.config_path, "w") as fh:
                fh.write("{}\n" if text is None else text)
        handle.command = self.command(target, spec, handle)
        try:
            try:
                self._spawn(handle)
            except BackendStartError as first:
                if not namespace_step_failed(first.log_tail):
                    raise
                self._boot_again(handle, first)
        except BaseException:
            # the caller never gets this handle: stop the process, forwarders and ledger entry here and
            # leave only the files (the caller owns the workdir)
            self.teardown(handle, keep=True)
            raise
        return handle

    def _boot_again(self, handle: DaemonHandle, first: BackendStartError) -> None:
        """Boot again after the namespace wrapper (not the daemon) failed: once per CPU, with unshare pinned
        to it; every failure in one error if none boots.

        Linux (measured on 6.18) numbers mount namespaces from per-CPU batches, so a namespace made on one
        CPU can get a lower id than the caller's own (non-initial) mount namespace, and the kernel refuses
        to bind an "older" namespace's file there (``mnt_ns_loop``: ``unshare: mount /proc/N/ns/mnt on
        ... failed: Invalid argument``). The CPU that numbered the caller's namespace still numbers upward
        (or moves to a batch above all), so one of the CPUs gives a namespace that binds. The daemon never
        ran, so a retry tests nothing twice; it is written to stderr and into ``extras["boot_retry"]``.
        """
        where = _mount_line(os.path.dirname(_ns_file(handle.workdir, "mnt")))
        failures = [first.log_tail.strip()]
        note = (
            f"harness: {handle.target.name}: the namespace wrapper failed before the daemon ran; booting "
            f"again with unshare pinned to each CPU in turn. First attempt: {failures[0]}; the namespace "
            f"directory's mount: {where}"
        )
        sys.stderr.write(note + "\n")
        handle.extras["boot_retry"] = note
        last: BackendStartError = first
        for cpu in sorted(os.sched_getaffinity(0)):
            self.teardown(handle, keep=True)  # releases the namespace files: the next boot makes them anew
            handle.notify_listener = None  # closed by the teardown: the next boot opens its own
            try:
                self._spawn(handle, cpu)
            except BackendStartError as again:
                if not namespace_step_failed(again.log_tail):
                    raise
                failures.append(f"on CPU {cpu}: {again.log_tail.strip()}")
                last = again
                continue
            handle.extras["boot_retry"] = f"{note}; booted with unshare on CPU {cpu}"
            return
        raise BackendStartError(
            handle.target.name,
            handle.command,
            last.returncode,
            f"{last.log_tail}\n(the namespace wrapper failed on every attempt, the daemon never ran: "
            + " | ".join(failures)
            + f"; the namespace directory's mount: {where}; check that it is not shared "
            "(findmnt -o+PROPAGATION) and that no other process unmounts it)",
        ) from last

    def _activation_sockets(self, spec: DaemonSpec) -> list[socket.socket]:
        socks = []
        for path in spec.activation:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(path)
            os.chmod(path, 0o660)
            sock.listen(128)
            socks.append(sock)
        return socks

    def _spawn(self, handle: DaemonHandle, cpu: int | None = None) -> None:
        """Start the wrapper and the daemon; ``cpu``: run unshare pinned to that CPU (the daemon is not)."""
        spec = handle.spec
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": handle.workdir,
            "LANG": "C.UTF-8",
            **handle.target.env,
            **spec.env,
        }
        for inherited in ("PYTHONPATH", "HARNESS_LEAK_MARK"):  # the mark: the tests' process leak guard
            if os.environ.get(inherited):
                env.setdefault(inherited, os.environ[inherited])
        if spec.notify:
            if handle.notify_listener is None:
                handle.notify_listener = NotifyListener(os.path.join(handle.workdir, "notify.sock"))
            env["NOTIFY_SOCKET"] = handle.notify_listener.path
        socks = self._activation_sockets(spec)
        pass_fds = []
        remap = ""
        for i, sock in enumerate(socks):
            # the lowest *free* fd >= _FD_BASE (close-on-exec here; pass_fds makes it inheritable in the
            # child): dup2 onto a fixed number would silently close whatever this process had open there
            high = fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, _FD_BASE)
            pass_fds.append(high)
            remap += f"exec {3 + i}<&{high} {high}<&-\n"
            sock.close()
        if socks:
            remap += f"export LISTEN_FDS={len(socks)}; export LISTEN_PID=$$\n"
        ns_argv, ns_env = _namespace_command(handle)
        env.update(ns_env)
        script = _WRAPPER.format(setup=netns_setup_script(spec.netns_setup), remap=remap)
        if cpu is not None:  # the daemon gets the CPUs this process has again
            cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
            ns_argv = ["taskset", "--cpu-list", str(cpu), *ns_argv]
            script = f"taskset --pid --cpu-list {cpus} $$ >/dev/null || exit 125\n{script}"
        wrapper = [*ns_argv, "bash", "-c", script, "refd-wrapper"]
        stdout = open(handle.stdout_path, "ab")  # noqa: SIM115 - handed to the child
        stderr = open(handle.stderr_path, "ab")  # noqa: SIM115
        try:
            # a target's launcher (chroot into a rootfs) runs as root before the spec's wrapper (e.g. setpriv)
            private = private_accounts_launcher(handle.target, spec, handle.workdir)
            if remaps_users(spec):
                # the remapped root must traverse to <data-root>/<uid>.<gid>: dockerd refuses a data-root
                # whose ancestors lack o+x ("please fix by allowing 'o+x' permissions"), as /var/lib has
                os.chmod(handle.workdir, 0o711)
            if private:
                env[CALLER_ENV] = str(os.stat("/proc/self/ns/mnt").st_ino)  # it never mounts in ours
            handle.process = subprocess.Popen(
                [*wrapper, *private, *handle.target.launcher, *spec.wrapper, *handle.command],
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=env,
                cwd=handle.workdir,
                start_new_session=True,
                pass_fds=pass_fds,
            )
        finally:
            stdout.close()
            stderr.close()
            for fd in pass_fds:
                os.close(fd)
        LEDGER.record_daemon(handle.process.pid, handle.workdir)
        handle.netns_path = f"/proc/{handle.process.pid}/ns/net"
        self._find_endpoints(handle)
        if spec.wait:
            self.wait_ready(handle)

    def _find_endpoints(self, handle: DaemonHandle) -> None:
        spec = handle.spec
        endpoints: list[Endpoint] = []
        hosts = [*([f"unix://{handle.socket_path}"] if spec.hosts is None else spec.hosts), *spec.extra_hosts]
        if isinstance(spec.config, dict) and isinstance(spec.config.get("hosts"), list):
            hosts = hosts + [h for h in spec.config["hosts"] if isinstance(h, str)]
        for path in spec.activation:
            endpoints.append(Endpoint("unix", path))
        for host in hosts:
            if host.startswith("unix://"):
                endpoints.append(Endpoint("unix", host.removeprefix("unix://") or "/var/run/docker.sock"))
            elif (port := _tcp_port(host)) is not None:
                endpoints.append(self.forward(handle, port, spec.client_tls))
        handle.endpoints = endpoints
        handle.endpoint = endpoints[0] if endpoints else None

    def forward(self, handle: DaemonHandle, port: int, tls: TLSFiles | None = None) -> Endpoint:
        """A host-loopback endpoint for ``127.0.0.1:port`` inside the daemon's netns."""
        connector = handle.extras.get("connector")
        if connector is None:
            connector = handle.extras["connector"] = NetnsConnector(self._netns_of(handle))
        forwarders: dict[int, Forwarder] = handle.extras.setdefault("forwarders", {})
        if port not in forwarders:
            forwarders[port] = Forwarder(connector, port)
        return Endpoint("tcp", forwarders[port].address, tls)

    def _netns_of(self, handle: DaemonHandle) -> str:
        """The daemon's netns path; waits for unshare to have switched namespaces."""
        mine = os.stat("/proc/self/ns/net").st_ino
        path = handle.netns_path

        def switched() -> bool:
            try:
                return os.stat(path).st_ino != mine
            except OSError:
                return True  # gone: reported below

        wait_until(switched, 5)
        try:
            if os.stat(path).st_ino != mine:
                return path
        except OSError:
            pass
        if handle.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                handle.process.wait(timeout=1)
        if handle.returncode is not None:
            raise BackendStartError(
                handle.target.name, handle.command, handle.returncode, handle.log_excerpt()
            )
        # never forward into the host's own namespace: that would reach some other listener
        raise ReadinessTimeout(
            handle.target.name,
            5,
            f"entering the network namespace of pid {handle.pid}",
            handle.log_excerpt(),
            "unshare --net did not switch namespaces; check unshare",
        )

    def wait_ready(self, handle: DaemonHandle, timeout: float | None = None) -> None:
        timeout = handle.spec.timeout if timeout is None else timeout
        endpoint = handle.endpoint
        if endpoint is None:
            raise ReadinessTimeout(
                handle.target.name,
                0,
                "no endpoint to ping",
                handle.log_excerpt(),
                "give the daemon a unix or tcp host",
            )
        last_error: list[str] = [""]

        def ready() -> bool:
            try:
                return ping_once(endpoint) == 200
            except OSError as exc:
                last_error[0] = str(exc)
                return False

        exited = lambda: handle.returncode is not None  # noqa: E731
        start = time.monotonic()
        if wait_until(ready, timeout, abort=exited):
            handle.extras["netns_ino"] = _ns_inode(handle.pid)
            # every namespace this handle ever had: after a restart, live-restored shims stay in the old one
            handle.extras.setdefault("netns_inos", []).append(handle.extras["netns_ino"])
            LEDGER.record_daemon(handle.pid, handle.workdir)  # again: at spawn unshare had not switched netns
            return
        if handle.returncode is not None:
            raise BackendStartError(
                handle.target.name, handle.command, handle.returncode, handle.log_excerpt()
            )
        raise ReadinessTimeout(
            handle.target.name,
            time.monotonic() - start,
            f"GET /_ping on {endpoint.docker_host}",
            handle.log_excerpt(),
            f"last error: {last_error[0] or 'none'}; check the log for a stuck start-up",
        )

    def restart(self, handle: DaemonHandle) -> DaemonHandle:
        """Stop (SIGTERM) and boot again on the same data-root."""
        if handle.returncode is None:
            handle.stop()
        if handle.process is not None:
            LEDGER.forget_daemon(handle.process.pid)  # the record follows the new process
        self._close_forwarders(handle)
        forget_zombie_pidfiles(handle)
        self._spawn(handle)
        return handle

    def _close_forwarders(self, handle: DaemonHandle) -> None:
        for fwd in handle.extras.pop("forwarders", {}).values():
            fwd.close()
        connector = handle.extras.pop("connector", None)
        if connector is not None:
            connector.close()

    def teardown(self, handle: DaemonHandle, keep: bool = False) -> None:
        """Stop the daemon, kill whatever it left in its namespace, remove its files.

        A throwaway daemon is killed (SIGKILL): its shutdown is not under test, everything it started dies
        with its namespace and cgroup parent below, and its files go. One whose data-root is kept
        (``spec.graceful_teardown``, or ``keep`` for debugging) gets SIGTERM and up to 15 s to exit.
        """
        proc = handle.process
        if proc is not None:
            netns_ino = handle.extras.get("netns_ino") or _ns_inode(proc.pid)
            if proc.poll() is None:
                graceful = keep or handle.spec.graceful_teardown
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM if graceful else signal.SIGKILL)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            for ino in {netns_ino, *handle.extras.get("netns_inos", [])}:
                if ino:
                    kill_netns_members(ino)
            remove_cgroup_tree(cgroup_parent(handle))
            LEDGER.forget_daemon(proc.pid)
        release_namespaces(handle.workdir)
        self._close_forwarders(handle)
        if handle.notify_listener is not None:
            handle.notify_listener.close()
        if not keep:
            from ..daemon.fsutil import rmtree  # any depth: a container may have nested thousands

            rmtree(handle.workdir, ignore_errors=True)


def netns_setup_script(lines: list[str]) -> str:
    """A profile's set-up lines for the namespace wrapper: each must succeed, or the boot stops (exit 125)
    with the line on stderr."""
    import shlex

    out = ""
    for line in lines:
        message = shlex.quote(f"harness: netns-setup line failed: {line}")
        out += (
            f"( set -e; {line} ) || {{ rc=$?; printf '%s (exit %s)\\n' {message} \"$rc\" >&2; exit 125; }}\n"
        )
    return out


def forget_zombie_pidfiles(handle: DaemonHandle) -> list[str]:
    """Remove a killed dockerd's containerd pidfile when that containerd is a zombie; returns the files.

    dockerd 20.10's containerd dies with it (parent-death signal) and is reparented to PID 1, which on
    some machines reaps late; a restarted dockerd takes the zombie's pid for a live containerd and waits
    for its socket until it gives up. On a host the dead containerd is gone by then: so it is here.
    """
    removed: list[str] = []
    path = os.path.join(handle.exec_root, "containerd", "containerd.pid")
    try:
        with open(path) as fh:
            pid = int(fh.read().strip() or 0)
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rpartition(")")[2].split()[0]
    except (OSError, ValueError, IndexError):
        return removed
    if state == "Z":
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            removed.append(path)
    return removed


def _ns_file(workdir: str, kind: str = "net") -> str:
    return os.path.join(workdir, "ns", kind)


#: set for a target's launcher on a restart: the kept mount namespace it joins instead of preparing a root
JOIN_MOUNT_NS_ENV = "HARNESS_JOIN_MOUNT_NS"


def _keeps_mount_ns(handle: DaemonHandle) -> bool:
    """Whether the daemon's mount namespace outlives it: every dockerd target's does.

    A dockerd's sandbox netns files (``<exec-root>/netns``), its containers' overlay mounts and, in a
    rootfs target, its ``/run`` (containerd's shim sockets) exist only in that namespace: a restart in a
    fresh one cannot fully re-adopt its live-restored containers (no shim at all in a rootfs target, no
    embedded DNS for them with the host's dockerd). refd keeps a fresh namespace per boot.
    """
    return handle.target.kind == "dockerd"


def _namespace_command(handle: DaemonHandle) -> tuple[list[str], dict[str, str]]:
    """The namespace wrapper's argv and the environment it adds.

    The daemon's own network namespace is made on first boot and kept on a file (``unshare --net=FILE``,
    then ``nsenter --net=FILE``): a restarted daemon comes back in the same network namespace, as under a
    real supervisor, and live-restored containers keep their bridge, veths and published ports.

    A dockerd's mount namespace is kept on a file too (refd's is new per boot): a restarted dockerd
    enters it again and finds its containerd, the shims' sockets in ``/run/containerd/s``, the sandbox
    netns files and the containers' mounts, as on a host. A target with a launcher (the dockerd-N rootfs
    targets pivot_root into their rootfs) is not entered with nsenter, whose next program would have to
    exist in the rootfs: its launcher joins the namespace itself (``HARNESS_JOIN_MOUNT_NS``).
    """
    net = _ns_file(handle.workdir)
    mnt = _ns_file(handle.workdir, "mnt")
    keep_mnt = _keeps_mount_ns(handle)
    if _is_nsfs(net):
        if keep_mnt and _is_nsfs(mnt) and handle.target.launcher:
            return ["nsenter", f"--net={net}", "--"], {JOIN_MOUNT_NS_ENV: mnt}  # the launcher joins it
        if keep_mnt and _is_nsfs(mnt):
            return ["nsenter", f"--net={net}", f"--mount={mnt}", "--"], {}
        return ["nsenter", f"--net={net}", "--", "unshare", "--mount", "--propagation", "private", "--"], {}
    os.makedirs(os.path.dirname(net), exist_ok=True)
    for path in (net, mnt) if keep_mnt else (net,):
        with open(path, "w"):
            pass
    if not keep_mnt:
        return ["unshare", "--mount", f"--net={net}", "--propagation", "private", "--"], {}
    _private_mount(os.path.dirname(mnt))  # a mount namespace file must not sit on a shared mount
    return ["unshare", f"--mount={mnt}", f"--net={net}", "--propagation", "private", "--"], {}


#: what util-linux's unshare and nsenter print when a namespace step fails (the daemon never ran)
_WRAPPER_PREFIXES = ("unshare: ", "nsenter: ")


def namespace_step_failed(log_tail: str) -> bool:
    """Whether a boot failed in the namespace wrapper (``unshare: mount ... failed``), not in the daemon."""
    return any(line.startswith(_WRAPPER_PREFIXES) for line in log_tail.splitlines())


def _is_nsfs(path: str) -> bool:
    """Whether ``path`` is a namespace file (an nsfs bind mount), not the empty placeholder."""
    return _mount_fstype(path) == "nsfs"


def _mount_line(path: str) -> str:
    """``path``'s line of /proc/self/mountinfo (its propagation tags included), or why there is none."""
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as fh:
            found = [line.strip() for line in fh if line.split()[4] == real]
    except OSError as exc:
        return f"(mountinfo unreadable: {exc})"
    return found[-1] if found else f"(no mount at {real})"


def _propagation_tags(mount_line: str) -> list[str]:
    """The optional fields of a mountinfo line (``shared:N``, ``master:N``): empty for a private mount."""
    fields = mount_line.split(" - ", 1)[0].split()
    return [f for f in fields[6:] if f.startswith(("shared:", "master:", "propagate_from:", "unbindable"))]


def _mount_fstype(path: str) -> str:
    """The filesystem type mounted right at ``path`` ("" when ``path`` is no mount point)."""
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                fields = line.split()
                if fields[4] == real and " - " in line:
                    return line.split(" - ", 1)[1].split()[0]
    except OSError:
        pass
    return ""


_MS_BIND, _MS_PRIVATE = 4096, 1 << 18


def _private_mount(directory: str) -> None:
    """Bind ``directory`` onto itself with private propagation (as ``ip netns`` does for /run/netns)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    path = os.fsencode(directory)
    if _mount_fstype(directory) == "" and libc.mount(path, path, None, _MS_BIND, None) != 0:
        err = ctypes.get_errno()
        raise HarnessError(
            f"mount --bind {directory} {directory}: {os.strerror(err)}; the local backend needs root"
        )
    if libc.mount(None, path, None, _MS_PRIVATE, None) != 0:
        err = ctypes.get_errno()
        raise HarnessError(
            f"mount --make-private {directory}: {os.strerror(err)}; the local backend needs root"
        )
    line = _mount_line(directory)
    if _propagation_tags(line):  # unshare's bind of the namespace file would fail with EINVAL
        raise HarnessError(
            f"{directory} is still not a private mount after mount --make-private: {line}; "
            "something made it shared again (findmnt -o+PROPAGATION)"
        )


def release_namespaces(workdir: str) -> None:
    """Unmount the kept namespace files (each namespace goes once nothing else holds it)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for kind in ("mnt", "net"):
        path = _ns_file(workdir, kind)
        if os.path.exists(path) and _is_nsfs(path):
            libc.umount2(os.fsencode(path), 2)  # MNT_DETACH
    directory = os.path.join(workdir, "ns")
    if os.path.isdir(directory) and _mount_fstype(directory):
        libc.umount2(os.fsencode(directory), 2)


def _check_socket_paths(handle: DaemonHandle) -> None:
    """Refuse a workdir whose unix sockets cannot be bound (dockerd's containerd fails only after 15 s)."""
    longest = handle.socket_path
    if handle.target.kind == "dockerd":
        longest = os.path.join(handle.exec_root, "containerd", "containerd-debug.sock")
    if len(longest) > _SUN_PATH_MAX:
        raise HarnessError(
            f"workdir {handle.workdir} is too long for the daemon's unix sockets: {longest} "
            f"has {len(longest)} characters (at most {_SUN_PATH_MAX}); "
            "set a shorter HARNESS_WORKDIR"
        )


def cgroup_parent(handle: DaemonHandle) -> str:
    """The daemon's private cgroup parent, e.g. ``/harness-refd-abc123`` (named after its work dir)."""
    return "/" + os.path.basename(handle.workdir.rstrip("/"))


def remove_cgroup_tree(parent: str) -> int:
    """Kill what is left under ``parent`` in every hierarchy, remove its directories; returns how many."""
    name = parent.strip("/")
    if not name.startswith("harness-"):
        return 0  # only ever the harness's own parents
    removed = 0
    try:
        hierarchies = [os.path.join("/sys/fs/cgroup", h) for h in os.listdir("/sys/fs/cgroup")]
    except OSError:
        return 0
    hierarchies.append("/sys/fs/cgroup")  # a pure cgroup2 host mounts the hierarchy right there
    for base in hierarchies:
        top = os.path.join(base, name)
        if not os.path.isdir(top):
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            with contextlib.suppress(OSError), open(os.path.join(dirpath, "cgroup.procs")) as fh:
                for pid in fh.read().split():
                    with contextlib.suppress(OSError):
                        os.kill(int(pid), signal.SIGKILL)
            for _ in range(50):
                try:
                    os.rmdir(dirpath)
                    removed += 1
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)  # killed tasks take a moment to leave
    return removed


def _ns_inode(pid: int) -> int:
    try:
        ino = os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return 0
    return 0 if ino == os.stat("/proc/self/ns/net").st_ino else ino


def kill_netns_members(ino: int) -> int:
    """SIGKILL every process living in the netns with inode ``ino``; returns how many."""
    if not ino or ino == os.stat("/proc/self/ns/net").st_ino:
        return 0  # a stale or hand-written record must never sweep the host's own namespace
    killed = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino == ino:
                os.kill(int(entry), signal.SIGKILL)
                killed += 1
        except (OSError, ProcessLookupError):
            continue
    return killed
