"""The vm backend: each daemon in a throwaway qemu VM booting a chosen Debian kernel (the kernel matrix).

- **Kernel**: Debian's ``linux-image-amd64`` of ``HARNESS_VM_KERNEL`` (``--kernel``: bookworm 6.1 by default,
  trixie 6.12, sid), fetched with a private apt config and cached by ``harness.vmimages``, with a small
  initramfs (the host's static busybox and the modules booting and dockerd need).
- **Root filesystem**: the target's cached debootstrap rootfs (the container backend's choice: a ``dockerd-N``
  target's own, the ``container-python`` one for refd and ``dockerd``), shared read-only over virtio-9p and
  made writable in the guest with an overlay on tmpfs, so it is never written. The daemon's work directory is
  shared read-write at its own path (``daemon.json``, pidfile, TLS files and logs are where the harness
  expects them), with tmpfs over its ``root/`` and ``exec/`` (data-root and exec-root: overlay2 cannot live
  on 9p);
  refd runs on the rootfs's Python from the project tree, shared read-only.
- **Endpoints**: qemu user networking (no tap device, nothing on the host's network) with ``hostfwd`` on
  host loopback. The daemon listens on a unix socket inside the guest (``/run/docker-harness.sock``) and a
  small perl relay in the guest (perl-base is in every Debian rootfs) carries guest TCP ports to it; the host
  reaches them at ``127.0.0.1:<ephemeral port>``. A unix socket cannot cross the VM boundary (a socket file on
  a 9p share connects nothing), and a daemon TCP listener on a non-loopback address would change what dockerd
  does (its insecure-binding warnings and delays), hence the relay. ``forward(port)`` adds a relay and a
  ``hostfwd_add`` (qemu monitor) for a daemon's own TCP listener at run time.
- **Control**: a virtio-serial port (``harness.ctl``) between the harness and the guest's init: the guest says
  ``up <kernel release>``, ``started <pid>``, ``exit <code>``; the harness sends ``signal N``, ``start``,
  ``relay PORT DEST``. So ``reload()`` (SIGHUP), ``stop()``, ``kill()`` and ``restart()`` reach the daemon in
  the guest; closing the port powers the VM off.
- **Logs**: the daemon's stderr/stdout go to the shared work directory (``handle.logs()`` as with the other
  backends); the serial console (kernel, initramfs and guest-init messages) is captured in
  ``<workdir>/console.log`` and is shown in start-up errors.

``handle.pid`` is the qemu process on this host (signalling it stops the VM); the daemon's own pid in the
guest is ``handle.extras["guest_pid"]``. Acceleration: ``HARNESS_VM_ACCEL=kvm|tcg|auto`` (auto: KVM when
``/dev/kvm`` opens, else TCG).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import IO, Any

from ..cleanup import LEDGER
from ..endpoints import Endpoint, TLSFiles
from ..errors import BackendStartError, HarnessError, ReadinessTimeout, TargetUnavailable
from ..targets import Target
from .base import DaemonHandle, DaemonSpec, refuse_netns_setup
from .local import LocalBackend, _check_socket_paths, _tcp_port

__all__ = ["GUEST_SOCKET", "VMBackend", "VMDaemonProcess", "guest_kernel", "selected_kernel", "vm_available"]

GUEST_SOCKET = "/run/docker-harness.sock"
#: the daemon's cgroup in the guest (cgroup v2), like systemd's docker.service
GUEST_CGROUP = "harness-daemon.service"
GUEST_IP = "10.0.2.15"
RELAY_BASE = 40000
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_LAST_KERNEL: list[str] = []
log = logging.getLogger("harness.backends.vm")

#: PID 1 in the initramfs (busybox), run from the work share: root overlay, mounts, then switch_root
GUEST_INIT = r"""
W=/harness/work/vm
. $W/boot.env
export WORKDIR
say() { echo "harness vm init: $*" > /dev/console; }
fail() { say "$*"; poweroff -f; }
mkdir -p /lower /upper /newroot
O=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o $O,ro,cache=loose harness.rootfs /lower || fail "no rootfs share"
mount -t tmpfs -o mode=755 tmpfs /upper || fail "no tmpfs"
mkdir -p /upper/u /upper/w
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w /newroot || fail "no overlay"
R=/newroot
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $R/dev/pts
mount -t tmpfs tmpfs $R/dev/shm
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup || say "no cgroup2"
mount -t tmpfs -o mode=755 tmpfs $R/run
mount -t tmpfs -o mode=1777 tmpfs $R/tmp
while read -r tag path mode; do
  mkdir -p "$R$path"
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,$mode "$tag" "$R$path" || say "cannot mount $tag"
done < $W/shares
mkdir -p "$R$WORKDIR/root" "$R$WORKDIR/exec"
mount -t tmpfs -o mode=711 tmpfs "$R$WORKDIR/root"
mount -t tmpfs -o mode=700 tmpfs "$R$WORKDIR/exec"
mkdir -p $R/.harness
cp /bin/busybox $R/.harness/busybox
exec switch_root $R /.harness/busybox sh "$WORKDIR/vm/ctl.sh"
"""

#: PID 1 after switch_root: network, the control loop, the daemon and the relays
GUEST_CTL = r"""
B=/.harness/busybox
export PATH=__PATH__
. "$WORKDIR/vm/boot.env"
$B hostname "$GUEST_HOSTNAME"
$B ip link set lo up
$B ip link set eth0 up
$B ip addr add __IP__/24 dev eth0
$B ip route add default via 10.0.2.2
echo "nameserver 10.0.2.3" > /etc/resolv.conf
# the daemon gets a cgroup of its own, as under systemd (docker.service): in the root cgroup, which has no
# memory.swap.max, dockerd and refd would both report that swap limits are unsupported
C=/sys/fs/cgroup
for c in $($B cat $C/cgroup.controllers 2>/dev/null); do
  echo "+$c" > $C/cgroup.subtree_control
done 2>/dev/null
$B mkdir -p $C/__CGROUP__ || echo "harness vm: no daemon cgroup" > /dev/console
port=
for p in /sys/class/virtio-ports/*; do
  [ "$($B cat $p/name 2>/dev/null)" = harness.ctl ] && port=/dev/${p##*/}
done
[ -n "$port" ] || { echo "harness vm: no control port" > /dev/console; $B poweroff -f; }
exec 3<>$port
start_daemon() {
  (
    $B sh "$WORKDIR/vm/daemon.sh" 3>&- </dev/null &
    d=$!
    echo $d > /.harness/daemon.pid
    echo "started $d" >&3
    wait $d
    echo "exit $?" >&3
  ) &
}
echo "up $($B uname -r)" >&3
while read -r cmd arg dest <&3; do
  case "$cmd" in
    start) start_daemon ;;
    signal) $B kill -"$arg" "$($B cat /.harness/daemon.pid)" 2>/dev/null ;;
    relay) perl "$WORKDIR/vm/relay.pl" "$arg" "$dest" </dev/null >/dev/console 2>&1 & ;;
    clock) perl "$WORKDIR/vm/clock.pl" "$arg" $dest </dev/null >/dev/console 2>&1 ;;
    isdir) if [ -d "$arg" ]; then echo "isdir 0 $arg" >&3; else echo "isdir 1 $arg" >&3; fi ;;
    poweroff) break ;;
  esac
done
$B sync
$B poweroff -f
"""

#: a TCP relay in the guest: listen on GUEST_IP:PORT, carry each connection to a unix path or host:port
RELAY_PERL = r"""use strict; use Socket; use IO::Socket::INET; use IO::Socket::UNIX; use IO::Select;
my ($port, $dest) = @ARGV;
$SIG{CHLD} = 'IGNORE';
my $srv = IO::Socket::INET->new(LocalAddr => "__IP__", LocalPort => $port, Listen => 128, ReuseAddr => 1)
  or die "harness relay: listen $port: $!\n";
if (open(my $ctl, ">&=", 3)) { syswrite($ctl, "listening $port\n"); close $ctl; }  # the harness waits for it
while (1) {
  my $c = $srv->accept or next;
  my $pid = fork;
  if (!defined $pid || $pid) { close $c; next; }
  close $srv;
  my $u = $dest =~ m{^/} ? IO::Socket::UNIX->new(Peer => $dest, Type => SOCK_STREAM)
                         : IO::Socket::INET->new(PeerAddr => $dest);
  exit 0 unless $u;
  my $sel = IO::Select->new($c, $u);
  my %open = ($c => 1, $u => 1);
  while (%open) {
    for my $fh ($sel->can_read) {
      my $to = $fh == $c ? $u : $c;
      my $n = sysread($fh, my $buf, 65536);
      if (!$n) { $sel->remove($fh); delete $open{$fh}; shutdown($to, 1); next; }
      my $off = 0;
      while ($off < $n) {
        my $w = syswrite($to, $buf, $n - $off, $off); exit 0 unless defined $w; $off += $w;
      }
    }
  }
  exit 0;
}
"""


#: the guest's clock from the host's: ``set S NS`` (absolute) or ``add S NS`` (relative), then its reply
#: ``clock MODE S.NS`` on the control port (perl-base has no Time::HiRes: clock_gettime/settime by syscall)
CLOCK_PERL = r"""use strict;
my ($mode, $s, $ns) = @ARGV;
my $now = pack("qq", 0, 0);
if ($mode eq "add") {
  syscall(228, 0, $now) == 0 or die "harness clock: clock_gettime: $!\n";
  my ($gs, $gns) = unpack("qq", $now);
  $ns += $gns; $s += $gs + int($ns / 1000000000); $ns %= 1000000000;
}
syscall(227, 0, pack("qq", $s, $ns)) == 0 or die "harness clock: clock_settime: $!\n";
syscall(228, 0, $now);
my ($gs, $gns) = unpack("qq", $now);
if (open(my $ctl, ">&=", 3)) { syswrite($ctl, sprintf("clock %s %d.%09d\n", $mode, $gs, $gns)); close $ctl; }
"""


def selected_kernel() -> str:
    """``HARNESS_VM_KERNEL`` (set from ``--kernel`` by the plugin), else bookworm."""
    from ..vmimages import DEFAULT_KERNEL

    return os.environ.get("HARNESS_VM_KERNEL") or DEFAULT_KERNEL


def guest_kernel() -> str:
    """The kernel release the last VM of this process reported (``""`` before any booted)."""
    return _LAST_KERNEL[-1] if _LAST_KERNEL else ""


def _qemu() -> str | None:
    return shutil.which("qemu-system-x86_64")


def vm_available() -> str:
    """``""`` when VMs can boot here, else what is missing."""
    if _qemu() is None:
        return "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
    if os.geteuid() != 0:
        return "the vm backend needs root (9p passthrough shares of root-owned rootfs trees)"
    if not os.path.exists("/bin/busybox") and shutil.which("busybox") is None:
        return "busybox is not installed (apt-get install busybox-static)"
    return ""


def _accel(kernel: Any = None) -> str:
    """``HARNESS_VM_ACCEL`` (kvm or tcg); auto: KVM when ``/dev/kvm`` opens *and* a KVM guest prints on its
    console and runs the initramfs within seconds (a nested KVM may accept a VM and never run it), else
    TCG. Probed once per host kernel and qemu, remembered in the vm cache."""
    choice = os.environ.get("HARNESS_VM_ACCEL", "auto").strip().lower()
    if choice in ("kvm", "tcg"):
        return choice
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return "tcg"
    os.close(fd)
    if kernel is None:
        return "kvm"
    import json
    import platform
    import tempfile

    from ..vmimages import vm_cache

    qemu = _qemu() or "qemu-system-x86_64"
    key = f"{platform.release()} {os.stat(qemu).st_mtime_ns}"
    memo = os.path.join(vm_cache(), "accel.json")
    with contextlib.suppress(OSError, ValueError):
        with open(memo) as fh:
            data = json.load(fh)
        if data.get("key") == key and data.get("accel") in ("kvm", "tcg"):
            return str(data["accel"])
    with tempfile.TemporaryDirectory(prefix="harness-kvm-probe-") as tmp:
        console = os.path.join(tmp, "console")
        argv = [
            qemu, "-accel", "kvm", "-cpu", "host", "-m", "256", "-nodefaults", "-no-user-config",
            "-display", "none", "-no-reboot", "-kernel", kernel.vmlinuz,
            "-append", "console=ttyS0 earlyprintk=ttyS0 panic=-1", "-serial", f"file:{console}",
        ]  # fmt: skip
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            ok = wait_for(lambda: "harness initramfs" in _read(console), 15)
        finally:
            proc.kill()
            proc.wait(timeout=10)
    accel = "kvm" if ok else "tcg"
    with contextlib.suppress(OSError):
        os.makedirs(os.path.dirname(memo), exist_ok=True)
        with open(memo, "w") as fh:
            json.dump({"key": key, "accel": accel}, fh)
    if not ok:
        log.warning(
            "vm backend: /dev/kvm opens but a KVM guest did not reach its initramfs in 15 s (nested KVM?): "
            "using TCG (slower); HARNESS_VM_ACCEL=kvm forces KVM"
        )
    return accel


def _read(path: str) -> str:
    try:
        with open(path, errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def wait_for(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return bool(check())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _VM:
    """One qemu process and its control channel."""

    def __init__(self, qemu: subprocess.Popen[bytes], ctl: socket.socket, monitor: str, console: str) -> None:
        self.qemu = qemu
        self.ctl = ctl
        self.monitor = monitor
        self.console = console
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.relays = 0
        self.ask = threading.Lock()  # one question (isdir PATH) at a time on the control port
        self._reader = threading.Thread(target=self._read, daemon=True, name="vm-ctl")
        self._reader.start()

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                data = self.ctl.recv(4096)
            except OSError:
                data = b""
            if not data:
                with self.cond:
                    self.lines.append("closed")
                    self.cond.notify_all()
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                with self.cond:
                    self.lines.append(line.decode(errors="replace").strip())
                    self.cond.notify_all()

    def send(self, line: str) -> None:
        with contextlib.suppress(OSError):
            self.ctl.sendall(line.encode() + b"\n")

    def wait_for(self, prefix: str, start: int, timeout: float) -> tuple[int, str] | None:
        """The first line at or after index ``start`` beginning with ``prefix`` (or "closed")."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(start, len(self.lines)):
                    if self.lines[i].startswith(prefix) or self.lines[i] == "closed":
                        return i, self.lines[i]
                left = deadline - time.monotonic()
                if left <= 0 or self.qemu.poll() is not None:
                    return None
                self.cond.wait(min(left, 0.2))

    def hmp(self, command: str) -> str:
        """One qemu monitor command; its reply."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(self.monitor)
            out = b""
            while not out.endswith(b"(qemu) "):
                out += s.recv(4096)
            s.sendall(command.encode() + b"\n")
            out = b""
            while not out.endswith(b"(qemu) "):
                chunk = s.recv(4096)
                if not chunk:
                    break
                out += chunk
        return out.decode(errors="replace")

    def console_tail(self, lines: int = 25) -> str:
        try:
            with open(self.console, errors="replace") as fh:
                return "\n".join(fh.read().splitlines()[-lines:])
        except OSError:
            return ""

    def close(self) -> None:
        """Power off (closing the port does), then make sure qemu is gone."""
        with contextlib.suppress(OSError):
            self.ctl.shutdown(socket.SHUT_RDWR)
        self.ctl.close()
        try:
            self.qemu.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.qemu.terminate()
            try:
                self.qemu.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.qemu.kill()
                self.qemu.wait(timeout=10)


class VMDaemonProcess(subprocess.Popen[bytes]):
    """A ``Popen`` look-alike for the daemon in the guest: ``pid`` is qemu's, signals go over the control
    port.

    The exit code is the daemon's (``-N`` when killed by signal N, as for a local process); when the VM itself
    is gone it reads ``-SIGKILL``.
    """

    def __init__(self, vm: _VM, index: int, guest_pid: int, args: list[str]) -> None:
        self._child_created = False
        self.args = args
        self.pid = vm.qemu.pid
        self.returncode: Any = None
        self.stdin = self.stdout = self.stderr = None
        self.vm = vm
        self.index = index
        self.guest_pid = guest_pid

    def poll(self) -> int | None:
        if self.returncode is not None:
            return int(self.returncode)
        found = self.vm.wait_for("exit ", self.index, 0)
        if found is not None:
            _, line = found
            if line == "closed":
                self.returncode = -signal.SIGKILL
            else:
                code = int(line.split()[1])
                self.returncode = -(code - 128) if code > 128 else code
        elif self.vm.qemu.poll() is not None:
            self.returncode = -signal.SIGKILL
        return None if self.returncode is None else int(self.returncode)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            self.vm.wait_for(
                "exit ", self.index, 0.2 if deadline is None else max(0.0, deadline - time.monotonic())
            )
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            self.vm.send(f"signal {int(sig)}")

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class VMHandle(DaemonHandle):
    """A DaemonHandle whose signals go to the daemon in the guest (``pid`` is qemu's on this host)."""

    def reach(self, host: str, port: int) -> tuple[str, int]:
        """A host-loopback port relayed to ``host:port`` in the guest (made once per address)."""
        reached: dict[str, int] = self.extras.setdefault("reached", {})
        dest = f"{host}:{port}"
        if dest not in reached:
            reached[dest] = VMBackend()._relay(self, dest)
        return "127.0.0.1", reached[dest]

    def is_dir(self, path: str) -> bool:
        """Asks the guest's init (``isdir PATH`` on the control port): data-root and exec-root are guest
        tmpfs that this host cannot see."""
        vm: _VM = self.extras["vm"]
        if any(c.isspace() for c in path):
            raise HarnessError(f"{path!r}: the vm control port takes paths without white space")
        with vm.ask:
            start = len(vm.lines)
            vm.send(f"isdir {path}")
            found = vm.wait_for("isdir ", start, 30)
        if found is None or found[1] == "closed":
            raise HarnessError(f"{self.target.name}: the VM's init did not answer 'isdir {path}' in 30 s")
        return found[1].split()[1] == "0"

    def processes(self) -> list[str]:
        """Not seen from this host: the daemon's processes live in the guest, which ends with the VM."""
        raise HarnessError(
            f"{self.target.name}: the vm backend cannot list the daemon's processes from this host (they "
            "live in the guest); run this scenario with --backend local or --backend container"
        )

    def signal(self, signo: int) -> None:
        if isinstance(self.process, VMDaemonProcess):
            self.process.send_signal(signo)
        else:
            super().signal(signo)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)


class VMBackend(LocalBackend):
    """Boots each daemon in its own qemu VM; implements the Backend protocol."""

    name = "vm"

    def __init__(self, kernel: str | None = None, out: IO[str] | None = None) -> None:
        self.kernel = kernel
        self.out = sys.stderr if out is None else out

    def command(self, target: Target, spec: DaemonSpec, handle: DaemonHandle) -> list[str]:
        from ..container_images import IMAGE_PYTHON

        argv = super().command(target, spec, handle)
        if spec.hosts is None:
            argv = [
                f"-H=unix://{GUEST_SOCKET}" if a == f"-H=unix://{handle.socket_path}" else a for a in argv
            ]
        if target.is_refd:
            argv[0] = IMAGE_PYTHON
        return argv

    def start(self, target: Target, spec: DaemonSpec, workdir: str) -> DaemonHandle:
        from ..container_images import ensure_rootfs
        from ..vmimages import ensure_kernel

        if target.kind == "external":
            raise TargetUnavailable(
                target.name, "it already runs somewhere: the vm backend has nothing to boot", ""
            )
        missing = vm_available()
        if missing:
            raise TargetUnavailable(target.name, f"the vm backend cannot boot here: {missing}", "")
        target.check_available()
        kernel = ensure_kernel(self.kernel or selected_kernel(), self.out)
        rootfs = ensure_rootfs(target, self.out)
        handle = VMHandle(target=target, spec=spec, workdir=workdir, command=[])
        handle.extras.update(kernel=kernel.release, kernel_path=kernel.path, rootfs=rootfs.root)
        _check_socket_paths(handle)
        os.makedirs(os.path.join(workdir, "vm"), exist_ok=True)
        text = spec.config_text()
        if spec.config_file_flag:
            with open(handle.config_path, "w") as fh:
                fh.write("{}\n" if text is None else text)
        handle.command = self.command(target, spec, handle)
        try:
            self._boot(handle, kernel)
            self._spawn(handle)
        except BaseException:
            self.teardown(handle, keep=True)
            raise
        return handle

    # -- the VM -----------------------------------------------------------------------------------------

    def _shares(self, handle: DaemonHandle) -> list[tuple[str, str, str]]:
        """(host path, guest path, ro|rw) besides the rootfs and the work share's own mount."""
        from ..chroot_exec import bind_candidates
        from .container import ContainerBackend

        shares = [
            (handle.workdir, handle.workdir, "rw"),
            (handle.extras["kernel_path"] + "/modules", "/lib/modules", "ro"),
        ]
        covered = [handle.workdir]
        for path in bind_candidates([*handle.spec.wrapper, *handle.command], handle.workdir, covered):
            shares.append((path, path, "rw"))
        if handle.target.is_refd:
            host, inside = ContainerBackend._project_mount(handle.target)
            shares.append((host, inside, "ro"))
        return shares

    def _write_guest_files(self, handle: DaemonHandle) -> list[tuple[str, str, str]]:
        vmdir = os.path.join(handle.workdir, "vm")
        shares = self._shares(handle)
        with open(os.path.join(vmdir, "boot.env"), "w") as fh:
            fh.write(
                f"WORKDIR={shlex.quote(handle.workdir)}\nGUEST_HOSTNAME={shlex.quote(socket.gethostname())}\n"
            )
        with open(os.path.join(vmdir, "shares"), "w") as fh:
            for i, (_host, guest, mode) in enumerate(shares):
                fh.write(f"harness.s{i} {guest} {mode}\n")
        with open(os.path.join(vmdir, "init.sh"), "w") as fh:
            fh.write(GUEST_INIT)
        with open(os.path.join(vmdir, "ctl.sh"), "w") as fh:
            fh.write(
                GUEST_CTL.replace("__PATH__", GUEST_PATH)
                .replace("__IP__", GUEST_IP)
                .replace("__CGROUP__", GUEST_CGROUP)
            )
        with open(os.path.join(vmdir, "relay.pl"), "w") as fh:
            fh.write(RELAY_PERL.replace("__IP__", GUEST_IP))
        with open(os.path.join(vmdir, "clock.pl"), "w") as fh:
            fh.write(CLOCK_PERL)
        self._write_daemon_script(handle)
        return shares

    def _write_daemon_script(self, handle: DaemonHandle) -> None:
        from .container import ContainerBackend

        env = {
            "PATH": GUEST_PATH,
            "HOME": handle.workdir,
            "LANG": "C.UTF-8",
            **handle.target.env,
            **handle.spec.env,
        }
        if handle.target.is_refd:
            env["PYTHONPATH"] = ContainerBackend._project_mount(handle.target)[1]
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        words = ["env", "-i", *(f"{k}={v}" for k, v in env.items()), *handle.spec.wrapper, *handle.command]
        script = (
            f"echo $$ > /sys/fs/cgroup/{GUEST_CGROUP}/cgroup.procs 2>/dev/null\n"
            f"cd {shlex.quote(handle.workdir)} || exit 125\n"
            f"exec >>{shlex.quote(handle.stdout_path)} 2>>{shlex.quote(handle.stderr_path)}\n"
            f"exec {' '.join(shlex.quote(w) for w in words)}\n"
        )
        with open(os.path.join(handle.workdir, "vm", "daemon.sh"), "w") as fh:
            fh.write(script)

    def _qemu_argv(self, handle: DaemonHandle, kernel: Any, shares: list[tuple[str, str, str]]) -> list[str]:
        vmdir = os.path.join(handle.workdir, "vm")
        accel = _accel(kernel)
        handle.extras["accel"] = accel
        argv = [
            _qemu() or "qemu-system-x86_64",
            "-name",
            f"harness-{os.path.basename(handle.workdir)}",
            "-machine",
            "pc",
            "-accel",
            accel if accel == "kvm" else "tcg,thread=multi",
            "-cpu",
            "host" if accel == "kvm" else "max",
            "-smp",
            os.environ.get("HARNESS_VM_CPUS", "2"),
            "-m",
            os.environ.get("HARNESS_VM_MEMORY", "2048"),
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-vga",
            "none",
            "-no-reboot",
            "-kernel",
            kernel.vmlinuz,
            "-initrd",
            kernel.initrd,
            "-append",
            "console=ttyS0 panic=-1 loglevel=4 rdinit=/init systemd.unified_cgroup_hierarchy=1",
            "-serial",
            f"file:{os.path.join(handle.workdir, 'console.log')}",
            "-netdev",
            "user,id=n0",
            "-device",
            "virtio-net-pci,netdev=n0",
            "-device",
            "virtio-serial-pci",
            "-chardev",
            f"socket,id=ctl,path={vmdir}/ctl.sock,server=on,wait=on",
            "-device",
            "virtserialport,chardev=ctl,name=harness.ctl",
            "-monitor",
            f"unix:{vmdir}/monitor.sock,server=on,wait=off",
        ]
        all_shares = [
            ("harness.work", handle.workdir, "rw"),
            ("harness.rootfs", handle.extras["rootfs"], "ro"),
            *((f"harness.s{i}", host, mode) for i, (host, _g, mode) in enumerate(shares)),
        ]
        for tag, host, mode in all_shares:
            opts = f"local,path={host},mount_tag={tag},security_model=passthrough,multidevs=remap"
            argv += ["-virtfs", opts + (",readonly=on" if mode == "ro" else "")]
        return argv

    def _boot(self, handle: DaemonHandle, kernel: Any) -> None:
        shares = self._write_guest_files(handle)
        argv = self._qemu_argv(handle, kernel, shares)
        handle.extras["qemu_argv"] = argv
        ctl_path = os.path.join(handle.workdir, "vm", "ctl.sock")
        started = time.monotonic()
        qlog = open(os.path.join(handle.workdir, "vm", "qemu.log"), "ab")  # noqa: SIM115 - handed to qemu
        try:
            qemu = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=qlog, stderr=qlog, start_new_session=True
            )
        finally:
            qlog.close()
        LEDGER.record_daemon(qemu.pid, handle.workdir)
        try:
            ctl = self._connect(handle, qemu, ctl_path, argv)
        except BaseException:  # a start error, or Ctrl-C while qemu waits (wait=on) for this connection
            with contextlib.suppress(ProcessLookupError):
                os.killpg(qemu.pid, signal.SIGKILL)
            qemu.wait(timeout=10)
            LEDGER.forget_daemon(qemu.pid)
            raise
        vm = _VM(
            qemu,
            ctl,
            os.path.join(handle.workdir, "vm", "monitor.sock"),
            os.path.join(handle.workdir, "console.log"),
        )
        handle.extras["vm"] = vm
        timeout = float(os.environ.get("HARNESS_VM_BOOT_TIMEOUT", "120"))
        found = vm.wait_for("up ", 0, timeout)
        if found is None or found[1] == "closed":
            raise ReadinessTimeout(
                handle.target.name,
                time.monotonic() - started,
                f"the VM's init to report on the control port ({handle.extras['accel']})",
                vm.console_tail() or self._qemu_log(handle),
                f"the console log is {vm.console}; set HARNESS_VM_ACCEL=tcg if KVM guests hang here",
            )
        handle.extras["boot_seconds"] = round(time.monotonic() - started, 3)
        release = found[1].split()[1]
        handle.extras["kernel"] = release
        _LAST_KERNEL.append(release)
        self._sync_clock(handle, vm)
        handle.extras["relay"] = self._relay(handle, GUEST_SOCKET)

    def _connect(
        self, handle: DaemonHandle, qemu: subprocess.Popen[bytes], path: str, argv: list[str]
    ) -> socket.socket:
        """The control port's socket, once qemu listens on it (qemu starts the guest on this connection)."""
        ctl = socket.socket(socket.AF_UNIX)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    ctl.connect(path)
                    return ctl
                except OSError:
                    if qemu.poll() is not None or time.monotonic() > deadline:
                        raise BackendStartError(
                            handle.target.name, argv, qemu.poll(), self._qemu_log(handle)
                        ) from None
                    time.sleep(0.02)
        except BaseException:
            ctl.close()
            raise

    @staticmethod
    def _sync_clock(handle: DaemonHandle, vm: _VM) -> None:
        """Set the guest's clock to this host's, to a few milliseconds.

        The guest boots from the emulated RTC, whole seconds, so it starts up to a second behind: events
        a scenario asks for ``since`` a host timestamp were then missing. Set it, then add the time the
        setting took (perl's start under TCG), measured here; ``extras["clock_offset"]`` is what is left.
        """
        lag = 0
        for mode in ("set", "add"):
            value = time.time_ns() if mode == "set" else lag
            start = len(vm.lines)
            vm.send(f"clock {mode} {value // 10**9} {value % 10**9}")
            found = vm.wait_for(f"clock {mode} ", start, 60)
            received = time.time_ns()
            if found is None or found[1] == "closed":
                log.warning("vm backend: the guest did not set its clock (%s): %s", mode, vm.console_tail(5))
                return
            guest = int(float(found[1].split()[2]) * 10**9)
            lag = max(received - guest, 0)  # how far behind the guest still is (never set it back)
        handle.extras["clock_offset"] = round((guest - received) / 10**9, 3)

    @staticmethod
    def _qemu_log(handle: DaemonHandle) -> str:
        try:
            with open(os.path.join(handle.workdir, "vm", "qemu.log"), errors="replace") as fh:
                return fh.read()[-3000:]
        except OSError:
            return ""

    def _relay(self, handle: DaemonHandle, dest: str) -> int:
        """A guest relay to ``dest`` (unix path or host:port) and a host loopback port forwarded to it."""
        vm: _VM = handle.extras["vm"]
        guest_port = RELAY_BASE + vm.relays
        vm.relays += 1
        start = len(vm.lines)
        vm.send(f"relay {guest_port} {dest}")
        for _ in range(5):
            host_port = _free_port()
            reply = vm.hmp(f"hostfwd_add n0 tcp:127.0.0.1:{host_port}-{GUEST_IP}:{guest_port}")
            if "could not" not in reply.lower() and "error" not in reply.lower():
                break
        else:
            raise HarnessError(f"{handle.target.name}: qemu refused a host port forward: {reply.strip()}")
        # a connection before the relay listens is reset by the guest: wait for the relay's word
        found = vm.wait_for(f"listening {guest_port}", start, 60)
        if found is None or found[1] == "closed":
            raise HarnessError(
                f"{handle.target.name}: the guest relay to {dest} (guest port {guest_port}) did not start "
                f"listening in 60 s; the VM console says:\n{vm.console_tail(10)}"
            )
        return host_port

    def _spawn(self, handle: DaemonHandle, cpu: int | None = None) -> None:
        """(``cpu`` pins the local backend's unshare; there is none here.)"""
        vm: _VM = handle.extras["vm"]
        refuse_netns_setup(handle, self.name)
        start = len(vm.lines)
        vm.send("start")
        found = vm.wait_for("started ", start, 30)
        if found is None or found[1] == "closed":
            raise BackendStartError(handle.target.name, handle.command, None, vm.console_tail())
        index, line = found
        handle.extras["guest_pid"] = int(line.split()[1])
        handle.process = VMDaemonProcess(vm, index, handle.extras["guest_pid"], handle.command)
        self._find_endpoints(handle)
        if handle.spec.wait:
            try:
                self.wait_ready(handle)
            except BackendStartError as exc:
                raise BackendStartError(
                    exc.target, exc.command, exc.returncode, (handle.log_excerpt() or vm.console_tail())
                ) from None

    def _find_endpoints(self, handle: DaemonHandle) -> None:
        spec = handle.spec
        endpoints: list[Endpoint] = []
        hosts = [*(spec.hosts or []), *spec.extra_hosts]
        if isinstance(spec.config, dict) and isinstance(spec.config.get("hosts"), list):
            hosts += [h for h in spec.config["hosts"] if isinstance(h, str)]
        if spec.hosts is None:
            endpoints.append(Endpoint("tcp", f"127.0.0.1:{handle.extras['relay']}", None))
        for host in hosts:
            if host.startswith("unix://"):
                path = host.removeprefix("unix://") or "/var/run/docker.sock"
                relays: dict[str, int] = handle.extras.setdefault("unix_relays", {})
                if path not in relays:
                    relays[path] = self._relay(handle, path)
                endpoints.append(Endpoint("tcp", f"127.0.0.1:{relays[path]}", None))
            elif (port := _tcp_port(host)) is not None:
                endpoints.append(self.forward(handle, port, spec.client_tls))
        handle.endpoints = endpoints
        handle.endpoint = endpoints[0] if endpoints else None

    def forward(self, handle: DaemonHandle, port: int, tls: TLSFiles | None = None) -> Endpoint:
        """A host-loopback endpoint for the daemon's TCP port ``port`` in the guest."""
        forwards: dict[int, int] = handle.extras.setdefault("forwards", {})
        if port not in forwards:
            forwards[port] = self._relay(handle, f"127.0.0.1:{port}")
        return Endpoint("tcp", f"127.0.0.1:{forwards[port]}", tls)

    def wait_ready(self, handle: DaemonHandle, timeout: float | None = None) -> None:
        # the local backend's readiness, minus its namespace bookkeeping (the daemon is not on this host)
        from ..wait import ping_once, wait_until

        timeout = handle.spec.timeout if timeout is None else timeout
        if handle.extras.get("accel") == "tcg":  # emulated CPUs: dockerd-28 takes 60-90 s to answer
            timeout *= float(os.environ.get("HARNESS_VM_TCG_SLOWDOWN", "4"))
        endpoint = handle.endpoint
        if endpoint is None:
            raise ReadinessTimeout(handle.target.name, 0, "no endpoint to ping", handle.log_excerpt(), "")
        last: list[str] = [""]

        def ready() -> bool:
            try:
                return ping_once(endpoint) == 200
            except OSError as exc:
                last[0] = str(exc)
                return False

        started = time.monotonic()
        if wait_until(ready, timeout, abort=lambda: handle.returncode is not None):
            handle.extras["ready_seconds"] = round(time.monotonic() - started, 3)
            return
        if handle.returncode is not None:
            raise BackendStartError(
                handle.target.name, handle.command, handle.returncode, handle.log_excerpt()
            )
        raise ReadinessTimeout(
            handle.target.name,
            time.monotonic() - started,
            f"GET /_ping on {endpoint.docker_host} (relayed into the VM)",
            handle.log_excerpt() or handle.extras["vm"].console_tail(),
            f"last error: {last[0] or 'none'}; the VM console is {handle.extras['vm'].console}",
        )

    # -- lifecycle --------------------------------------------------------------------------------------

    def restart(self, handle: DaemonHandle) -> DaemonHandle:
        """Stop (SIGTERM) and start the daemon again in the same VM (same data-root, /run, network)."""
        if handle.returncode is None:
            handle.stop()
        self._write_daemon_script(handle)
        self._spawn(handle)
        return handle

    def teardown(self, handle: DaemonHandle, keep: bool = False) -> None:
        """Stop the daemon, power the VM off (kill qemu if it lingers), remove the work directory."""
        vm: _VM | None = handle.extras.get("vm")
        proc = handle.process
        if vm is not None and vm.qemu.poll() is not None:  # the console goes with the work directory: say it
            log.warning(
                "vm backend: the VM of %s (%s) had stopped by itself (qemu exit %s) before teardown; its "
                "console ended with:\n%s",
                handle.target.name,
                handle.extras.get("kernel", "?"),
                vm.qemu.returncode,
                vm.console_tail(40),
            )
        try:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=5)
        finally:
            if vm is not None:
                vm.close()
                LEDGER.forget_daemon(vm.qemu.pid)
            if not keep:
                shutil.rmtree(handle.workdir, ignore_errors=True)
