"""systemd as PID 1 in a container, with the daemon under test installed as a service: a *box*.

A box is a throwaway Debian machine for the scenarios that need a real systemd (``systemctl start/stop/edit``,
``journalctl -u``, socket activation by a ``.socket`` unit) and for the tutorial's steps that are run verbatim
as root on "a fresh Debian machine" (``/etc/docker/daemon.json``, ``/var/run/docker.sock``, ``~/certs``). It
runs on the container backend's engine (``harness.container_engine.shared_engine``) from a cached debootstrap
rootfs made like the dockerd-N targets' (``harness.rootfs``) with ``systemd`` added:

============  ==========  ==============  ============================================================
rootfs        systemd     cgroups         daemons
============  ==========  ==============  ============================================================
bookworm      252         legacy/hybrid   Debian's docker.io 20.10 (``dockerd``, ``dockerd-20.10``);
                                          refd on Python 3.11 (default for ``refd``)
trixie        257         unified         docker.io 26.1 (``dockerd-26``)
sid           262         unified         docker.io 28.5 (``dockerd-28``)
============  ==========  ==============  ============================================================

``HARNESS_SYSTEMD_BOX=sid`` (or ``trixie``) puts refd in that box instead (Python 3.14 / 3.13).

Cgroups. The host mounts cgroup v1 hybrid (v1 controllers, an empty cgroup2 at ``/sys/fs/cgroup/unified``).
Every box has a private cgroup namespace, so whatever systemd sees as the root is the box's own cgroup.

- *legacy* (systemd 252, which still runs on v1): the engine mounts each v1 hierarchy read-only; the box's
  entry script remounts them read-write (``remount,bind,rw``: the superblock is the host's) and systemd
  mounts the unified hierarchy itself. The daemon inside gets real v1 controllers.
- *unified* (systemd 258 and later run only on cgroup v2): the entry script replaces ``/sys/fs/cgroup`` with
  a cgroup2 mount, whose root is the box's own cgroup. It has **no controllers** (every one is bound to a v1
  hierarchy on this host), which systemd accepts; dockerd then warns ``No memory limit support`` and the
  like, and limits cannot be set on its containers.

The box has network ``none`` (its own namespace: dockerd's docker0 and iptables rules stay in it), a tmpfs
``/run``, ``/run/lock`` and ``/tmp``, a host directory at ``/var/lib/docker`` (overlay2 cannot stack on the
container's own overlay root), the harness's pinned docker CLI (``harness.dockercli``; it needs only libc)
at ``/usr/local/bin/docker`` and,
read-only at its own path, the project tree: refd's ``refd.service``/``refd.socket`` are installed from
``harness/daemon/systemd/`` as their header says, with ``/usr/local/bin/refd`` a two-line launcher running
refd from that tree on the box's ``python3``. A refd box masks Debian's docker and containerd units through
systemd's command line (``systemd.mask=``), so refd owns ``/var/lib/docker`` alone.

Teardown removes the container (the engine kills everything in it and removes its cgroups) and the host
directory. The container carries the container backend's owner labels, so an engine reached by a later
session drops a box whose session died.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import stat
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, NamedTuple

import pytest

from .errors import BackendStartError, HarnessError, TargetUnavailable
from .rootfs import BASE_PACKAGES, Recipe, RootfsEntry, build, cache_root, locate
from .targets import Target
from .wait import wait_until

__all__ = [
    "BOX_ENV",
    "BOX_RECIPES",
    "BoxResult",
    "Flavour",
    "SystemdBox",
    "box_entry",
    "box_suite",
    "systemd_box",
]

BOX_ENV = "HARNESS_SYSTEMD_BOX"
#: what a box holds besides the dockerd packages: systemd as init, Python for refd, the tutorial's tools
BOX_PACKAGES = (*BASE_PACKAGES, "python3", "systemd", "systemd-sysv", "curl", "openssl", "lsof", "sudo")
BOX_RECIPES: dict[str, Recipe] = {
    suite: Recipe(f"systemd-{suite}", suite, BOX_PACKAGES) for suite in ("bookworm", "trixie", "sid")
}
#: bookworm's systemd 252 still runs on cgroup v1; trixie's 257 and sid's 262 are given a cgroup2 mount
CGROUP_MODE = {"bookworm": "legacy", "trixie": "unified", "sid": "unified"}
#: which box each dockerd target's own docker.io comes from ("dockerd": the host's release, else this)
TARGET_SUITE = {
    "dockerd": "bookworm",
    "dockerd-20.10": "bookworm",
    "dockerd-26": "trixie",
    "dockerd-28": "sid",
}
HOSTNAME = "docker-host"
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: the box's own command: what ``privileged`` would have given (see container_engine), the cgroup tree
#: systemd needs, then systemd as PID 1 (``exec``: same pid)
_ENTRY = """mount -t proc proc /proc || echo "box: /proc keeps the engine's masks" >&2
mount -o remount,rw /sys || echo "box: /sys stays read-only" >&2
{cgroups}
exec "$@"
"""
_LEGACY = """mount -o remount,rw /sys/fs/cgroup || echo "box: /sys/fs/cgroup stays read-only" >&2
for d in /sys/fs/cgroup/*; do
  mountpoint -q "$d" && { mount -o remount,bind,rw "$d" || echo "box: $d stays read-only" >&2; }
done"""
_UNIFIED = """umount -R /sys/fs/cgroup || echo "box: cannot unmount the v1 cgroup tree" >&2
mount -t cgroup2 -o rw,nsdelegate cgroup2 /sys/fs/cgroup || echo "box: no cgroup2 mount" >&2"""


def box_entry(mode: str) -> str:
    """The shell script the box starts with (``mode``: ``legacy`` or ``unified``)."""
    return _ENTRY.format(cgroups=_LEGACY if mode == "legacy" else _UNIFIED)


@dataclass(frozen=True)
class Flavour:
    """How the daemon under test is installed in a box: what the tutorial's ``docker`` words become."""

    daemon: str  # the command an admin types: dockerd | refd
    unit: str  # the service: docker | refd
    socket_unit: str
    socket: str  # the socket unit's ListenStream
    binary: str  # where the package put the daemon

    @property
    def cli_env(self) -> dict[str, str]:
        """The environment a docker CLI in the box needs to reach the service's socket."""
        return {} if self.socket == "/run/docker.sock" else {"DOCKER_HOST": f"unix://{self.socket}"}

    @property
    def tutorial_socket(self) -> str:
        """The service's socket as the tutorial spells dockerd's (``/var/run`` is ``/run``)."""
        return "/var/run/docker.sock" if self.socket == "/run/docker.sock" else self.socket

    def subst(self, text: str) -> str:
        """The tutorial's words for this daemon (identity for dockerd)."""
        if self.daemon == "dockerd":
            return text
        text = text.replace("/var/run/docker.sock", "\0SOCK\0")  # dockerd's default, refd's too: kept
        text = re.sub(r"\bdocker\.service\b", f"{self.unit}.service", text)
        text = re.sub(r"\bdocker\.socket\b", self.socket_unit, text)
        text = re.sub(r"\bdockerd\b", self.daemon, text)
        text = re.sub(r"(systemctl (?:[\w.@-]+ )+)docker\b(?![.\w-])", rf"\g<1>{self.unit}", text)
        text = re.sub(r"(journalctl -u )docker\b", rf"\g<1>{self.unit}", text)
        return text.replace("\0SOCK\0", "/var/run/docker.sock")

    def neutral(self, text: str) -> str:
        """``text`` with this flavour's names replaced by placeholders, to compare daemons' outputs."""
        for word, mark in (
            (self.binary, "<daemon-binary>"),
            (f"{self.unit}.service", "<unit>.service"),
            (self.socket_unit, "<unit>.socket"),
        ):
            text = text.replace(word, mark)
        # /run/docker.sock is the unit's; /var/run/docker.sock is what the tutorial and -H default say
        text = re.sub(rf"(?<!/var){re.escape(self.socket)}", "<unit-socket>", text)
        text = re.sub(rf"\b{re.escape(self.daemon)}\b", "<daemon>", text)
        return text


DOCKER = Flavour("dockerd", "docker", "docker.socket", "/run/docker.sock", "/usr/sbin/dockerd")
REFD = Flavour("refd", "refd", "refd.socket", "/run/refd.sock", "/usr/local/bin/refd")


class BoxResult(NamedTuple):
    """What a command in the box did: its exit status and its output (``err`` is ``""`` with a tty)."""

    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def box_suite(target: Target) -> str:
    """The Debian suite of ``target``'s box."""
    if target.kind == "external":
        raise TargetUnavailable(target.name, "it already runs somewhere: there is nothing to install", "")
    if target.is_refd:
        suite = os.environ.get(BOX_ENV, "").strip() or "bookworm"
        if suite not in BOX_RECIPES:
            raise HarnessError(f"{BOX_ENV}={suite!r}: choose one of {', '.join(BOX_RECIPES)}")
        return suite
    if target.name == "dockerd":  # the host's own docker.io: the box is of the host's release
        return _host_suite()
    found = TARGET_SUITE.get(target.name)
    if found is None:
        raise TargetUnavailable(target.name, "no systemd box holds this dockerd", "use a dockerd-N target")
    return found


def _host_suite(os_release: str = "/etc/os-release") -> str:
    """This machine's Debian release (``VERSION_CODENAME``) when a box recipe has it, else bookworm."""
    try:
        with open(os_release) as fh:
            fields = dict(line.rstrip("\n").split("=", 1) for line in fh if "=" in line)
    except OSError:
        return TARGET_SUITE["dockerd"]
    codename = fields.get("VERSION_CODENAME", "").strip('"')
    return codename if codename in BOX_RECIPES else TARGET_SUITE["dockerd"]


def box_rootfs(suite: str) -> RootfsEntry:
    """The cache entry of ``suite``'s box recipe (built or not)."""
    recipe = BOX_RECIPES[suite]
    like = locate("dockerd-28")  # same arch and docker gid as every other entry
    path = os.path.join(cache_root(), f"{recipe.suite}-{recipe.digest(like.arch, like.docker_gid)}")
    return RootfsEntry(recipe, path, like.arch, like.docker_gid)


def prepare(target: Target, out: IO[str] | None = sys.stderr) -> tuple[Any, str]:
    """Build the box's rootfs (about a minute, once) and import it into the engine: (engine, image tag)."""
    from .container_engine import shared_engine
    from .container_images import _flock, ensure_image

    entry = box_rootfs(box_suite(target))
    if not entry.is_built():
        with _flock(entry.lock_path, False, out, "another session is building it"):
            if not entry.is_built():
                build(entry, out=out)
    engine = shared_engine(out)
    return engine, ensure_image(engine.client, entry, out)


class SystemdBox:
    """A booted box: ``sh()`` runs a command in it as root; ``close()`` removes it."""

    def __init__(self, target: Target, suite: str, flavour: Flavour, workdir: str) -> None:
        self.target = target
        self.suite = suite
        self.flavour = flavour
        self.workdir = workdir
        self.container: Any = None
        self.pid = 0  # systemd's pid on this host
        self.project = ""  # the project tree's path inside the box (refd)
        self.cgroups: list[str] = []  # the box's own cgroup directories on this host

    # -- boot ----------------------------------------------------------------------------------------------

    @classmethod
    def boot(cls, target: Target, out: IO[str] | None = sys.stderr, timeout: float = 120) -> SystemdBox:
        suite = box_suite(target)
        engine, image = prepare(target, out)
        workdir = tempfile.mkdtemp(prefix=f"harness-box-{target.name}-", dir="/tmp")
        box = cls(target, suite, REFD if target.is_refd else DOCKER, workdir)
        try:
            box._start(engine, image)
            box._wait_booted(timeout)
            # as Debian's installer does: the host's own name resolves (the engine's /etc/hosts lacks it)
            box.sh(f"echo '127.0.1.1\t{HOSTNAME}' >> /etc/hosts")
            if target.is_refd:
                box._install_refd()
            box.wait_active(box.flavour.unit, timeout)
        except BaseException:
            box.close()
            raise
        return box

    def _start(self, engine: Any, image: str) -> None:
        from .backends.container import ContainerBackend
        from .container_engine import owner_labels, security_settings

        security = security_settings(engine, image, ContainerBackend.PROBE_KWARGS)
        varlib = os.path.join(self.workdir, "var-lib-docker")
        os.makedirs(varlib)
        mounts = [_bind(varlib, "/var/lib/docker", False)]
        from .dockercli import DockerCLIError, resolve, selected

        try:  # the harness's pinned CLI, as every scenario's (trixie's and sid's docker.io have none)
            docker_cli = resolve(selected()).path
        except DockerCLIError as exc:
            raise HarnessError(f"the systemd box needs a docker CLI: {exc}") from None
        mounts.append(_bind(os.path.realpath(docker_cli), "/usr/local/bin/docker", True))
        init = ["/sbin/init"]
        if self.target.is_refd:
            host, self.project = ContainerBackend._project_mount(self.target)
            mounts.append(_bind(host, self.project, True))
            init += [f"systemd.mask={u}" for u in ("docker.service", "docker.socket", "containerd.service")]
        kwargs = dict(security.kwargs)
        kwargs.pop("privileged", None)  # the entry script needs no more than the near-privileged set
        self.container = engine.client.containers.create(
            image,
            ["/bin/sh", "-c", box_entry(CGROUP_MODE[self.suite]), "box-entry", *init],
            name=os.path.basename(self.workdir),
            hostname=HOSTNAME,
            environment={"container": "docker", "PATH": IMAGE_PATH, "LANG": "C.UTF-8"},
            network_mode="none",
            cgroupns="private",
            tmpfs={"/run": "", "/run/lock": "", "/tmp": ""},
            stop_signal="SIGRTMIN+3",
            mounts=mounts,
            labels=owner_labels(self.workdir, self.target.name),
            **kwargs,
        )
        self.container.start()
        self.container.reload()
        self.pid = int(self.container.attrs["State"].get("Pid") or 0)
        self.cgroups = _cgroup_dirs(self.pid)

    def _wait_booted(self, timeout: float) -> None:
        # systemctl talks to PID 1 over /run/systemd/private (before it exists: "offline", "Failed to
        # connect")
        res = self.sh(
            "for _ in $(seq 300); do [ -S /run/systemd/private ] && break; sleep 0.05; done; "
            "systemctl is-system-running --wait",
            timeout=timeout,
        )
        state = res.out.strip()
        if state not in ("running", "degraded"):
            raise BackendStartError(
                self.target.name,
                ["/sbin/init"],
                res.code,
                f"systemd in the {self.suite} box did not finish booting ({state or res.err.strip()}):\n"
                + self.logs(),
            )

    def _install_refd(self) -> None:
        """As refd.service's header says, with the launcher ``pip install`` would have made."""
        launcher = (
            "#!/bin/sh\n"
            f"export PYTHONPATH={shlex.quote(self.project)} PYTHONDONTWRITEBYTECODE=1\n"
            'exec /usr/bin/python3 -m harness.daemon "$@"\n'
        )
        self.write(REFD.binary, launcher, 0o755)
        units = os.path.join(self.project, "harness", "daemon", "systemd")
        # `sudo refd` as `sudo dockerd`: trixie's and sid's sudo secure_path dropped /usr/local
        # ("/usr/sbin:/usr/bin:/sbin:/bin"), so refd goes where a distribution package would put it too
        res = self.sh(
            f"ln -s {REFD.binary} /usr/sbin/refd && "
            f"cp {units}/refd.service {units}/refd.socket /etc/systemd/system/ && systemctl daemon-reload "
            "&& systemctl enable --now refd.socket refd.service"
        )
        if res.code != 0:
            raise BackendStartError(self.target.name, ["systemctl", "enable"], res.code, res.text)

    # -- commands ------------------------------------------------------------------------------------------

    def sh(
        self,
        script: str,
        *,
        env: dict[str, str] | None = None,
        tty: bool = False,
        timeout: float = 120,
        workdir: str = "/root",
    ) -> BoxResult:
        """Run ``script`` with bash as root in the box (killed after ``timeout`` seconds: exit 124)."""
        argv = ["timeout", "-k", "5", str(max(1, round(timeout))), "/bin/bash", "-c", script]
        result = self.container.exec_run(argv, environment=env or {}, tty=tty, demux=not tty, workdir=workdir)
        if tty:
            return BoxResult(int(result.exit_code), _text(result.output), "")
        out, err = result.output
        return BoxResult(int(result.exit_code), _text(out), _text(err))

    def write(self, path: str, text: str | bytes, mode: int = 0o644) -> None:
        """Create ``path`` in the box (parents included) holding ``text``."""
        data = text.encode() if isinstance(text, str) else text
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            tar.addfile(info, io.BytesIO(data))
        if not self.container.put_archive("/", buf.getvalue()):
            raise HarnessError(f"could not write {path} into the box")

    def read(self, path: str) -> str:
        """A file of the box, read through ``/proc/<pid>/root`` ("" when absent)."""
        try:
            with open(f"/proc/{self.pid}/root{path}", errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""

    def file_state(self, path: str) -> str:
        """``stat -c '%F %a %U %G' path`` of a box file, read through ``/proc/<pid>/root`` ("" when absent).

        Read from the host, not by a command in the box, whose output an engine can lose (an exec's stdout
        came back empty once, bookworm-1, while the file was there: the ping after it worked).
        """
        try:
            st = os.lstat(f"/proc/{self.pid}/root{path}")
        except OSError:
            return ""
        kinds = (
            (stat.S_ISSOCK, "socket"),
            (stat.S_ISDIR, "directory"),
            (stat.S_ISLNK, "symbolic link"),
            (stat.S_ISFIFO, "fifo"),
            (stat.S_ISREG, "regular file" if st.st_size else "regular empty file"),
        )
        kind = next((name for test, name in kinds if test(st.st_mode)), "weird file")
        return f"{kind} {stat.S_IMODE(st.st_mode):o} {self._name(st.st_uid, '/etc/passwd')} " + self._name(
            st.st_gid, "/etc/group"
        )

    def _name(self, number: int, table: str) -> str:
        """The box's name for a uid or gid (``table``: its /etc/passwd or /etc/group), as stat prints it."""
        for line in self.read(table).splitlines():
            fields = line.split(":")
            if len(fields) > 2 and fields[2] == str(number):
                return fields[0]
        return "UNKNOWN"

    def journal_cursor(self) -> str:
        """The journal's current position (for :meth:`journal` ``after=``)."""
        res = self.sh("journalctl -q -n 0 --show-cursor --no-pager")
        match = re.search(r"cursor: (\S+)", res.out)
        return match.group(1) if match else ""

    def journal(self, unit: str | None = None, after: str = "") -> str:
        """The messages (``-o cat``) of ``unit`` (default: the daemon's), after a cursor if given."""
        cmd = f"journalctl --no-pager -o cat -u {shlex.quote(unit or self.flavour.unit)}"
        if after:
            cmd += f" --after-cursor={shlex.quote(after)}"
        return self.sh(cmd).out

    def show(self, unit: str, *props: str) -> dict[str, str]:
        """``systemctl show -p ...`` as a dict."""
        cmd = f"systemctl show {shlex.quote(unit)} " + " ".join(f"-p {p}" for p in props)
        for _ in range(3):
            res = self.sh(cmd)
            found = dict(line.split("=", 1) for line in res.out.splitlines() if "=" in line)
            if res.code == 0 and found:
                return found
            time.sleep(0.5)
        raise HarnessError(f"{cmd} in the box exited {res.code}: {res.text.strip() or '(no output)'}")

    def wait_active(self, unit: str, timeout: float = 60) -> str:
        """Wait until ``unit`` is active (or failed); its final ActiveState."""
        states = [""]

        def settled() -> bool:
            states[0] = self.sh(f"systemctl is-active {shlex.quote(unit)}").out.strip()
            return states[0] in ("active", "failed")

        wait_until(settled, timeout, interval=0.2)
        return states[0]

    def wait_until(self, script: str, timeout: float = 30, interval: float = 0.3) -> bool:
        """Run ``script`` until it exits 0; False after ``timeout`` seconds."""
        return wait_until(
            lambda: self.sh(script, timeout=max(5, timeout)).code == 0, timeout, interval=interval
        )

    def neutral(self, text: str) -> str:
        """Output made comparable across daemons and boxes: names, host name, pids and times replaced."""
        text = self.flavour.neutral(text)
        text = text.replace(HOSTNAME, "<host>")
        text = re.sub(r"\[\d+\]", "[<pid>]", text)
        text = re.sub(
            r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2}| UTC)?", "<time>", text
        )
        return text

    @property
    def netns_path(self) -> str:
        return f"/proc/{self.pid}/ns/net"

    def logs(self) -> str:
        """What the box's entry script and systemd wrote to the container's output."""
        with contextlib.suppress(Exception):
            return str(self.container.logs(tail=40).decode(errors="replace"))
        return ""

    def close(self) -> None:
        """Remove the container (everything in it dies with it) and the host directory."""
        try:
            if self.container is not None:
                try:
                    self.container.remove(force=True, v=True)
                except Exception as exc:  # the engine is gone: a later session's reaper removes it
                    from .container_engine import log

                    log.warning("systemd box: could not remove %s: %s", self.container.short_id, exc)
                self.container = None
            _remove_empty(self.cgroups)
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _cgroup_dirs(pid: int) -> list[str]:
    """The directories of ``pid``'s cgroups in every hierarchy mounted under /sys/fs/cgroup (host view)."""
    found = []
    try:
        with open(f"/proc/{pid}/cgroup") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if path in ("", "/"):
            continue  # never the root of a hierarchy
        names = [controllers, *controllers.split(",")] if controllers else ["unified", ""]
        for name in names:
            base = os.path.join("/sys/fs/cgroup", name.removeprefix("name="))
            if os.path.isdir(base) and (name or os.path.exists(os.path.join(base, "cgroup.controllers"))):
                found.append(base.rstrip("/") + path)
                break
    return found


def _remove_empty(dirs: list[str]) -> None:
    """Remove what the engine left of the box's cgroups: empty directories only, deepest first.

    systemd makes sub-cgroups (init.scope, system.slice, ...) in the box's own cgroup; when the engine
    removes the container while their last tasks are still leaving, the removal can fail and leave them.
    """
    for top in dirs:
        if not os.path.isdir(top):
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            for _ in range(25):
                try:
                    os.rmdir(dirpath)
                    break
                except FileNotFoundError:
                    break
                except OSError:  # still has tasks for a moment, or (never ours to kill) someone else's
                    time.sleep(0.02)


def _bind(source: str, target: str, read_only: bool) -> dict[str, Any]:
    return {
        "Type": "bind",
        "Source": source,
        "Target": target,
        "ReadOnly": read_only,
        "BindOptions": {"NonRecursive": True},
    }


def _text(data: bytes | None) -> str:
    return (data or b"").decode(errors="replace")


@pytest.fixture
def systemd_box(target: Target, request: pytest.FixtureRequest) -> Iterator[SystemdBox]:
    """A fresh box (systemd as PID 1) with ``target`` installed as a service; removed afterwards.

    Skips on ``external``; the first use builds the box's rootfs (about a minute) and imports it.
    """
    if target.kind == "external":
        pytest.skip("external: the daemon already runs somewhere; there is no machine to install it on")
    capman = request.config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
        prepare(target)
    box = SystemdBox.boot(target, out=None)
    try:
        yield box
    finally:
        box.close()


# -- command line ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.systemd_box build [SUITE...]`` or ``shell TARGET``: prepare, or look around."""
    import argparse
    import subprocess

    from .targets import resolve_target

    p = argparse.ArgumentParser(prog="python -m harness.systemd_box", description=main.__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the box rootfs of these Debian suites (default: all)")
    b.add_argument("suites", nargs="*", default=list(BOX_RECIPES))
    s = sub.add_parser("shell", help="boot a box with TARGET installed and open a root shell in it")
    s.add_argument("target")
    args = p.parse_args(argv)
    try:
        if args.command == "build":
            for suite in args.suites:
                if suite not in BOX_RECIPES:
                    raise HarnessError(f"no box for {suite!r}: choose from {', '.join(BOX_RECIPES)}")
                entry = box_rootfs(suite)
                if not entry.is_built():
                    build(entry)
                print(f"{suite}: {entry.root}")
            return 0
        box = SystemdBox.boot(resolve_target(args.target))
    except HarnessError as exc:
        sys.stderr.write(f"harness.systemd_box: {exc}\n")
        return 1
    try:
        from .container_engine import shared_engine

        print(
            f"box {box.container.short_id} ({box.suite}, {box.flavour.unit}.service); "
            "exit the shell to remove it"
        )
        env = {**os.environ, "DOCKER_HOST": shared_engine().docker_host}
        return subprocess.call(["docker", "exec", "-it", box.container.id, "bash", "-l"], env=env)
    finally:
        box.close()


if __name__ == "__main__":
    raise SystemExit(main())
