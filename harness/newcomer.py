"""The newcomer check: the README's two commands, verbatim, as root on a fresh Debian machine of a suite.

CI's machine has what a newcomer's lacks (a Python built by hand, a docker CLI, debootstrap, warm caches), so
only a fresh machine proves the install steps complete. ``python -m harness.newcomer run bookworm`` (``nox -s
fresh -- bookworm``) makes one and runs the README there:

1. **A fresh root**: ``debootstrap --variant=minbase`` of the suite plus ``python3`` and ``ca-certificates``
   (what a newcomer's minimal install has), built once with the harness's own rootfs code and cached
   (``harness.rootfs``, recipe ``newcomer-<suite>``), then copied for each run into
   ``$HARNESS_CACHE/newcomer/run-<suite>-<pid>/root``, so every run starts from the pristine tree. The copy
   gets the suite's ``-updates`` and ``-security`` sources as the installer writes them, the host's DNS
   settings, CA certificates (a TLS-intercepting proxy's included) and apt proxy, and a ``policy-rc.d`` that
   stops package scripts from starting services (``docker.io``'s dockerd would otherwise start in the host's
   network namespace, which the fresh machine shares with this one).
2. **The project**: ``git archive HEAD`` unpacked in ``/root/harness`` (what is committed, nothing else).
3. **A machine, not a chroot**: the commands run in private mount and PID namespaces (``unshare --mount
   --propagation private --pid --fork``): the root bound onto itself, a fresh ``/proc``, ``/sys`` (with the
   cgroup hierarchies) and ``/dev`` bound recursively, tmpfs on ``/run`` and ``/tmp``, the host's
   ``/lib/modules`` read-only, and then **pivot_root**, never chroot: under a chroot the namespace's root
   mount stays the host's ``/``, so a process that joins the namespace (``docker exec``, a health check) lands
   in the host's files (one deleted a host's ``/etc/group`` that way). The network namespace is the host's,
   so the mirror and PyPI are reached as the host reaches them; every daemon the commands boot has its own
   (the harness's rule). When the run ends, or is interrupted, the namespaces die with their last process and
   every mount with them.
4. **Verdicts**: one line per command (exit status, wall time, its last summary line), the logs and the
   commands' ``reports/`` copied to ``reports/newcomer/<suite>/``, and a check that the host is as it was
   (``/etc``, the host's mounts, network links and iptables rules).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .debpkg import cache_base, debian_mirror, host_apt_proxy
from .errors import HarnessError
from .rootfs import Recipe, build, entry_for
from .wait import wait_until

__all__ = [
    "SUITES",
    "HostState",
    "NewcomerError",
    "Verdict",
    "base_recipe",
    "clean_env",
    "main",
    "pristine_root",
    "readme_commands",
    "run",
    "run_in_root",
]

SUITES = ("bookworm", "trixie")
#: a newcomer's minimal Debian: minbase plus these
NEWCOMER_PACKAGES = ("python3", "ca-certificates")
#: the environment passed from the host when set: proxies and the CA bundle a TLS-intercepting proxy needs
PASS_ENV = (
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "CURL_CA_BUNDLE",
)
INSIDE = "/root/newcomer"  # the run's files inside the root
PROJECT = "/root/harness"
POLICY_RC_D = """#!/bin/sh
# harness newcomer check: package scripts start no services here (this root shares the host's network
# namespace; a packaged dockerd would make docker0 and iptables rules there). The harness boots its own.
exit 101
"""


class NewcomerError(HarnessError):
    """The newcomer check could not be set up; the message says what failed and how to fix it."""


def _log(out: IO[str] | None, text: str) -> None:
    if out is not None:
        out.write(f"harness newcomer: {text}\n")
        out.flush()


# -- the README ------------------------------------------------------------------------------------------


def readme_commands(text: str) -> list[str]:
    """The command lines of the README's first ``sh`` block (its two commands), verbatim."""
    m = re.search(r"^```sh\n(.*?)^```", text, re.M | re.S)
    if not m:
        raise NewcomerError(
            "README.md has no ```sh block: the newcomer check runs the commands it opens with"
        )
    lines = [ln for ln in m.group(1).splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise NewcomerError("README.md's first ```sh block holds no command")
    return lines


# -- the fresh root --------------------------------------------------------------------------------------


def base_recipe(suite: str) -> Recipe:
    """The rootfs recipe of a newcomer's ``suite`` machine."""
    if suite not in SUITES:
        raise NewcomerError(f"no newcomer check for {suite!r}: choose from {', '.join(SUITES)}")
    return Recipe(f"newcomer-{suite}", suite, NEWCOMER_PACKAGES, dockerd=False)


def _sources(suite: str, mirror: str) -> str:
    """The sources.list Debian's installer writes: the suite, its updates and its security archive."""
    security = re.sub(r"/debian$", "/debian-security", mirror) if mirror.endswith("/debian") else ""
    lines = [f"deb {mirror} {suite} main", f"deb {mirror} {suite}-updates main"]
    if security:
        lines.append(f"deb {security} {suite}-security main")
    return "\n".join(lines) + "\n"


def _copy_host_files(root: Path) -> None:
    """DNS, CA certificates (a TLS-intercepting proxy's too) and apt's proxy: how this network is reached."""
    etc = root / "etc"
    with contextlib.suppress(FileNotFoundError):
        (etc / "resolv.conf").unlink()
    shutil.copyfile("/etc/resolv.conf", etc / "resolv.conf")
    hosts = etc / "hosts"
    if not hosts.exists() or "localhost" not in hosts.read_text():
        hosts.write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    local = Path("/usr/local/share/ca-certificates")
    if local.is_dir():
        dest = root / "usr/local/share/ca-certificates"
        dest.mkdir(parents=True, exist_ok=True)
        for crt in local.iterdir():
            if crt.is_file():
                shutil.copyfile(crt, dest / crt.name)
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if bundle.is_file():
        (etc / "ssl/certs").mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            (etc / "ssl/certs/ca-certificates.crt").unlink()
        shutil.copyfile(bundle, etc / "ssl/certs/ca-certificates.crt")
    proxy = host_apt_proxy()
    if proxy:
        (etc / "apt/apt.conf.d/00harness-proxy").write_text("\n".join(proxy) + "\n")


def _git_archive(repo: Path, dest: Path) -> str:
    """Unpack ``git archive HEAD`` of ``repo`` into ``dest``; returns the commit."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise NewcomerError(f"{repo} is not a git checkout (git rev-parse HEAD failed: {exc})") from None
    dest.mkdir(parents=True)
    archive = subprocess.Popen(
        ["git", "-C", str(repo), "archive", "--format=tar", "HEAD"], stdout=subprocess.PIPE
    )
    untar = subprocess.run(
        ["tar", "-x", "-C", str(dest)], stdin=archive.stdout, capture_output=True, text=True
    )
    assert archive.stdout is not None
    archive.stdout.close()
    if archive.wait() != 0 or untar.returncode != 0:
        raise NewcomerError(f"git archive HEAD | tar -x -C {dest} failed: {untar.stderr.strip()}")
    return commit


def pristine_root(suite: str, out: IO[str] | None = None) -> Path:
    """The suite's newcomer root as built (once, then cached): never run in, only copied."""
    entry = entry_for(base_recipe(suite))
    if not entry.is_built():
        with _flock(entry.lock_path):
            if not entry.is_built():
                _log(
                    out, f"building the fresh {suite} machine (minbase + {' '.join(NEWCOMER_PACKAGES)}), once"
                )
                build(entry, out=out)
    return Path(entry.root)


def prepare_root(suite: str, work: Path, repo: Path, out: IO[str] | None) -> tuple[Path, str]:
    """A fresh copy of the suite's newcomer root in ``work/root`` with the project in it: (root, commit)."""
    pristine = pristine_root(suite, out)
    root = work / "root"
    _log(out, f"copying the pristine {suite} root {pristine} to {root}")
    res = subprocess.run(
        ["cp", "-a", "--reflink=auto", str(pristine), str(root)], capture_output=True, text=True
    )
    if res.returncode != 0:
        raise NewcomerError(f"cp -a {pristine} {root} failed: {res.stderr.strip()}")
    (root / "etc/apt/sources.list").write_text(_sources(suite, debian_mirror()))
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text(POLICY_RC_D)
    policy.chmod(0o755)
    _copy_host_files(root)
    commit = _git_archive(repo, root / PROJECT.lstrip("/"))
    return root, commit


@contextlib.contextmanager
def _flock(path: str) -> Iterator[None]:
    import fcntl

    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def clean_env(host: dict[str, str] | None = None, root: Path | None = None) -> dict[str, str]:
    """A root login's environment, plus the host's proxy and CA settings (when their files exist inside)."""
    host = dict(os.environ if host is None else host)
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "USER": "root",
        "LOGNAME": "root",
        "SHELL": "/bin/bash",
        "TERM": "dumb",
    }
    for name in PASS_ENV:
        value = host.get(name)
        if not value:
            continue
        if value.startswith("/") and root is not None and not (root / value.lstrip("/")).exists():
            continue  # a path only the host has
        env[name] = value
    return env


# -- inside: the launcher ------------------------------------------------------------------------------


def _enter(
    root: str, results: str, commands: list[str], env: dict[str, str], cwd: str, tag: str, host_mnt_ns: int
) -> int:
    """PID 1 of the fresh machine's PID namespace: mount, pivot_root, run each command, reap orphans."""
    from .chroot_exec import (
        MS_BIND,
        MS_NODEV,
        MS_NOEXEC,
        MS_NOSUID,
        MS_RDONLY,
        MS_REC,
        MS_REMOUNT,
        enter_root,
    )
    from .chroot_exec import mount as do_mount

    if os.stat("/proc/self/ns/mnt").st_ino == host_mnt_ns:
        sys.stderr.write(
            "harness newcomer: refusing to mount in the host's mount namespace (run it via `run`)\n"
        )
        return 125
    do_mount(root, root, None, MS_BIND | MS_REC)  # / must be a mount point (pivot_root, unshare)
    do_mount("proc", f"{root}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)  # this PID namespace's
    do_mount("/sys", f"{root}/sys", None, MS_BIND | MS_REC)  # with the cgroup hierarchies
    do_mount("/dev", f"{root}/dev", None, MS_BIND | MS_REC)
    do_mount("tmpfs", f"{root}/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    os.makedirs(f"{root}/run/lock", exist_ok=True)
    do_mount("tmpfs", f"{root}/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    if os.path.isdir("/lib/modules"):
        os.makedirs(f"{root}/lib/modules", exist_ok=True)
        do_mount("/lib/modules", f"{root}/lib/modules", None, MS_BIND)
        do_mount(None, f"{root}/lib/modules", None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    enter_root(root)
    signals = _Forwarder()
    done: list[dict[str, Any]] = []
    for i, command in enumerate(commands, 1):
        log_path = f"{INSIDE}/{i}.log"
        print(f"[{tag} {i}] $ {command}", flush=True)
        started = time.monotonic()
        code = _run_one(command, env, cwd, log_path, f"[{tag} {i}] ", signals)
        done.append({"command": command, "exit": code, "seconds": round(time.monotonic() - started, 1)})
        with open(results, "w") as fh:
            json.dump(done, fh, indent=1)
        if signals.stopped:
            break
    return 0


class _Forwarder:
    """SIGINT/SIGTERM/SIGHUP become SIGINT to the running command's process group (a second: SIGKILL)."""

    def __init__(self) -> None:
        self.pgid = 0
        self.stopped = 0
        for signo in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signo, self._handle)

    def _handle(self, _signo: int, _frame: object) -> None:
        self.stopped += 1
        if self.pgid:  # SIGINT first: pytest and nox clean up after a KeyboardInterrupt
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGINT if self.stopped == 1 else signal.SIGKILL)


def _run_one(command: str, env: dict[str, str], cwd: str, log_path: str, prefix: str, sig: _Forwarder) -> int:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the command: its own session and process group, stdin from /dev/null
        try:
            os.setsid()
            os.chdir(cwd)
            null = os.open("/dev/null", os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(write_fd, 1)
            os.dup2(write_fd, 2)
            os.close(read_fd)
            for signo in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(signo, signal.SIG_DFL)
            os.execve("/bin/sh", ["/bin/sh", "-c", command], env)
        finally:
            os._exit(127)
    os.close(write_fd)
    sig.pgid = pid
    copier = threading.Thread(target=_copy_output, args=(read_fd, log_path, prefix), daemon=True)
    copier.start()
    code = 255
    while True:  # PID 1 reaps every orphan: a zombie daemon would look alive to whoever waits for it
        try:
            reaped, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if reaped == pid:
            code = os.waitstatus_to_exitcode(status)
            break
    sig.pgid = 0
    copier.join(timeout=5)  # a daemon the command left running may hold the pipe open: not waited for
    return code if code >= 0 else 128 - code


def _copy_output(fd: int, log_path: str, prefix: str) -> None:
    with open(fd, "rb", closefd=True) as src, open(log_path, "wb") as log:
        for line in src:
            log.write(line)
            log.flush()
            sys.stdout.write(prefix + line.decode(errors="replace"))
            sys.stdout.flush()


# -- the host before and after ----------------------------------------------------------------------------


#: the user database's backups: useradd/userdel on the host (other sessions' tests) rewrite them even when
#: the database ends as it began; a change to the database itself still counts
_ETC_BACKUPS = frozenset(f"/etc/{n}-" for n in ("passwd", "group", "shadow", "gshadow", "subuid", "subgid"))


def _etc_state(top: str = "/etc") -> dict[str, str]:
    state: dict[str, str] = {}
    for dirpath, dirs, files in os.walk(top):
        dirs.sort()
        for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
            path = os.path.join(dirpath, name)
            if path in _ETC_BACKUPS:
                continue
            try:
                st = os.lstat(path)
                if os.path.islink(path):
                    state[path] = "-> " + os.readlink(path)
                elif os.path.isfile(path):
                    with open(path, "rb") as fh:
                        state[path] = f"{st.st_mode:o} {hashlib.sha256(fh.read()).hexdigest()[:16]}"
            except OSError as exc:
                state[path] = f"unreadable ({exc.strerror})"
    return state


def _tool_lines(cmd: list[str]) -> list[str]:
    tool = shutil.which(cmd[0])
    if tool is None:
        return []
    try:
        text = subprocess.run([tool, *cmd[1:]], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    lines = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        lines.append(re.sub(r" \[\d+:\d+\]$", "", line))  # chain counters move by themselves
    return sorted(lines)


#: namespaces other harness sessions keep on files (``ns/net``, ``ns/mnt``): theirs, not this run's
_OTHER_SESSIONS = re.compile(r"^/(tmp|run)/harness-[^/]+/ns(/|$)")


def _mounts(everything: bool = False) -> list[str]:
    """The host's mounts as ``point fstype source``, without other harness sessions' namespace files."""
    found = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            fields = line.split()
            sep = fields.index("-")
            if everything or not _OTHER_SESSIONS.match(fields[4]):
                found.append(f"{fields[4]} {fields[sep + 1]} {fields[sep + 2]}")
    return sorted(found)


@dataclass
class HostState:
    """What a run must leave as it was: /etc, the host's mount table, network links and iptables rules."""

    etc: dict[str, str] = field(default_factory=dict)
    mounts: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)

    @classmethod
    def take(cls) -> HostState:
        return cls(
            etc=_etc_state(),
            mounts=_mounts(),
            links=sorted(os.listdir("/sys/class/net")),
            rules=_tool_lines(["iptables-save"]) + _tool_lines(["ip6tables-save"]),
        )

    def diff(self, after: HostState) -> list[str]:
        """Every difference in /etc, links and iptables rules, one line each (empty: untouched)."""
        lines = []
        for path in sorted(set(self.etc) | set(after.etc)):
            old, new = self.etc.get(path), after.etc.get(path)
            if old != new:
                what = "added" if old is None else "removed" if new is None else "changed"
                lines.append(f"{path} {what}")
        for name, old_list, new_list in (
            ("link", self.links, after.links),
            ("iptables", self.rules, after.rules),
        ):
            lines += [f"{name} added: {x}" for x in sorted(set(new_list) - set(old_list))]
            lines += [f"{name} removed: {x}" for x in sorted(set(old_list) - set(new_list))]
        return lines

    def mounts_elsewhere(self, after: HostState) -> list[str]:
        """Host mounts that came or went outside the run's root: other sessions' (the run's own mounts are
        in its private namespace; one that leaked would sit under its root, which ``run`` refuses)."""
        return [f"+ {m}" for m in sorted(set(after.mounts) - set(self.mounts))] + [
            f"- {m}" for m in sorted(set(self.mounts) - set(after.mounts))
        ]


# -- a run ----------------------------------------------------------------------------------------------


@dataclass
class Verdict:
    suite: str
    command: str
    exit: int | None
    seconds: float
    summary: str

    @property
    def passed(self) -> bool:
        return self.exit == 0

    def line(self) -> str:
        state = "PASS" if self.passed else "FAIL"
        how = "did not run" if self.exit is None else f"exit {self.exit} after {self.seconds:.0f} s"
        return f"newcomer {self.suite}: {state} ({how}): {self.command}" + (
            f"\n    {self.summary}" if self.summary else ""
        )


_SUMMARY = re.compile(
    r"(=+ .*\b(passed|failed|error|errors)\b.* in [\d.]+s.*=+)"
    r"|(^conformance: .*)"
    r"|(Session \S+ (was successful|failed))"
)


def summary_of(log: str) -> str:
    """The lines a reader wants from a command's log: pytest's last summary and nox's verdict."""
    picked = [m.group(0).strip("= ") for line in log.splitlines() if (m := _SUMMARY.search(line))]
    return " | ".join(picked[-3:])


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    return [m for m in _mounts(everything=True) if (m.split()[0] + "/").startswith(prefix)]


def run_in_root(
    root: Path, commands: list[str], env: dict[str, str], cwd: str, tag: str, out: IO[str] = sys.stderr
) -> list[dict[str, Any]]:
    """Run ``commands`` one after the other as root in ``root`` made a machine (private mount and PID
    namespaces, pivot_root); their output is copied to ``out``-side stdout prefixed ``[tag N]`` and to
    ``root/root/newcomer/N.log``. Returns ``{"command", "exit", "seconds"}`` per command that ran."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise NewcomerError("unshare is not installed: apt-get install util-linux")
    inside = root / INSIDE.lstrip("/")
    inside.mkdir(parents=True, exist_ok=True)
    spec = {
        "root": str(root),
        "results": f"{INSIDE}/results.json",
        "commands": commands,
        "env": env,
        "cwd": cwd,
        "tag": tag,
        "host_mnt_ns": os.stat("/proc/self/ns/mnt").st_ino,
    }
    spec_path = inside / "spec.json"
    spec_path.write_text(json.dumps(spec))
    cmd = [
        unshare, "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child",
        sys.executable, "-m", "harness.newcomer", "enter", str(spec_path),
    ]  # fmt: skip
    _supervise(cmd, Path(__file__).resolve().parent.parent, out)
    results = inside / "results.json"
    done = json.loads(results.read_text()) if results.is_file() else []
    return [d for d in done if isinstance(d, dict)]


def run(
    suite: str,
    repo: Path,
    report_dir: Path,
    *,
    keep: bool = False,
    commands: list[str] | None = None,
    out: IO[str] = sys.stderr,
) -> tuple[list[Verdict], list[str]]:
    """The README's commands in a fresh ``suite`` root: their verdicts and the host's differences."""
    if os.geteuid() != 0:
        raise NewcomerError(
            "the newcomer check needs root (debootstrap, mount and PID namespaces, pivot_root)"
        )
    commands = commands or readme_commands((repo / "README.md").read_text())
    before = HostState.take()
    work = Path(cache_base()) / "newcomer" / f"run-{suite}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    report_dir.mkdir(parents=True, exist_ok=True)
    verdicts: list[Verdict] = []
    try:
        root, commit = prepare_root(suite, work, repo, out)
        _log(
            out,
            f"{suite}: the README's {len(commands)} commands, as root in {root} (commit {commit[:12]})",
        )
        done = run_in_root(root, commands, clean_env(root=root), PROJECT, suite, out)
        for i, command in enumerate(commands):
            log_path = root / INSIDE.lstrip("/") / f"{i + 1}.log"
            log = log_path.read_text(errors="replace") if log_path.is_file() else ""
            if log_path.is_file():
                shutil.copyfile(log_path, report_dir / f"{i + 1}.log")
            got = done[i] if i < len(done) else {}
            verdicts.append(
                Verdict(suite, command, got.get("exit"), float(got.get("seconds", 0)), summary_of(log))
            )
        inner_reports = root / PROJECT.lstrip("/") / "reports"
        if inner_reports.is_dir():
            shutil.copytree(inner_reports, report_dir / "reports", dirs_exist_ok=True)
        (report_dir / "commit").write_text(commit + "\n")
    finally:
        _remove_work(work, keep, out)
    after = HostState.take()
    changed = before.diff(after)
    elsewhere = before.mounts_elsewhere(after)
    if elsewhere:
        _log(
            out,
            f"{len(elsewhere)} host mount(s) came or went outside the run's root (other sessions'); "
            f"listed in {report_dir / 'verdicts.json'}",
        )
    (report_dir / "verdicts.json").write_text(
        json.dumps(
            {
                "suite": suite,
                "verdicts": [v.__dict__ for v in verdicts],
                "host_changes": changed,
                "host_mounts_elsewhere": elsewhere,
            },
            indent=1,
        )
        + "\n"
    )
    return verdicts, changed


def _supervise(cmd: list[str], cwd: Path, out: IO[str]) -> None:
    """Run the namespaced launcher; on SIGINT/SIGTERM ask it to stop, then kill the namespace after 60 s."""
    proc = subprocess.Popen(cmd, cwd=cwd, start_new_session=True, preexec_fn=_die_with_parent)
    stopping = False

    def stop(signo: int, _frame: object) -> None:
        nonlocal stopping
        _log(out, f"signal {signo}: stopping the fresh machine (its commands get SIGTERM, then SIGKILL)")
        stopping = True
        with contextlib.suppress(ProcessLookupError):
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            for child in children:  # the namespace's PID 1, which forwards to the command
                os.kill(int(child), signal.SIGTERM)

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        while True:
            try:
                proc.wait(timeout=60 if stopping else None)
                break
            except subprocess.TimeoutExpired:
                _log(out, "the fresh machine did not stop in 60 s: killing its PID namespace")
                proc.kill()  # --kill-child: the namespace's PID 1 gets SIGKILL, and with it everything inside
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if stopping:
        raise KeyboardInterrupt


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the supervisor dies (unshare --kill-child passes it on)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _remove_work(work: Path, keep: bool, out: IO[str]) -> None:
    """Remove the run's tree, never across a mount (there should be none: they died with the namespace)."""
    wait_until(lambda: not _mounts_under(work), 5)  # the namespace's last process may still be exiting
    left = _mounts_under(work)
    if left:
        raise NewcomerError(
            f"mounts under {work} are still there after the run (a leak into the host's namespace): "
            + "; ".join(left)
            + f"; unmount them (umount -R) and remove {work}"
        )
    if keep:
        _log(out, f"kept the fresh root in {work / 'root'} (remove it with rm -rf --one-file-system {work})")
        return
    subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=False)


# -- command line ---------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m harness.newcomer",
        description="Run the README's two commands as root in a fresh Debian root (the newcomer check).",
    )
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="build a fresh root per suite and run the README's commands in it")
    r.add_argument(
        "suites", nargs="*", default=["bookworm"], help=f"of {', '.join(SUITES)} (default: bookworm)"
    )
    r.add_argument("--repo", default=".", help="the git checkout whose HEAD is archived (default: .)")
    r.add_argument("--reports", default="reports/newcomer", help="where logs and reports go, per suite")
    r.add_argument("--keep", action="store_true", help="keep the fresh root after the run (to look inside)")
    r.add_argument(
        "--command",
        action="append",
        dest="commands",
        help="run this instead of the README's commands (repeatable; to look around a fresh machine)",
    )
    e = sub.add_parser("enter", help=argparse.SUPPRESS)
    e.add_argument("spec")
    args = p.parse_args(argv)
    if args.command == "enter":
        spec = json.loads(Path(args.spec).read_text())
        return _enter(
            spec["root"],
            spec["results"],
            spec["commands"],
            spec["env"],
            spec["cwd"],
            spec["tag"],
            spec["host_mnt_ns"],
        )
    repo = Path(args.repo).resolve()
    for suite in args.suites:
        if suite not in SUITES:
            p.error(f"no newcomer check for {suite!r}: choose from {', '.join(SUITES)}")
    failed = False
    lines: list[str] = []
    for suite in args.suites:
        started = time.monotonic()
        try:
            verdicts, changed = run(
                suite, repo, Path(args.reports) / suite, keep=args.keep, commands=args.commands
            )
        except HarnessError as exc:
            lines.append(f"newcomer {suite}: FAIL (the check could not run): {exc}")
            failed = True
            continue
        lines += [v.line() for v in verdicts]
        failed |= not verdicts or not all(v.passed for v in verdicts)
        if changed:
            failed = True
            lines.append(f"newcomer {suite}: FAIL: the host changed during the run:")
            lines += [f"    {c}" for c in changed[:50]]
        else:
            lines.append(
                f"newcomer {suite}: host unchanged (/etc, network links, iptables rules; no mount left)"
            )
        lines.append(
            f"newcomer {suite}: {time.monotonic() - started:.0f} s in all; logs: {Path(args.reports) / suite}"
        )
    print("\n".join(lines), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
