"""OS packages the sessions need, installed when missing (root on apt systems) or named in an error.

``python -m harness.ospkgs --for tests`` installs what a session needs (``SETS``); ``python -m harness.ospkgs
docker.io busybox-static`` names packages. It prints what it installs; a package that cannot be had stops the
session (exit 1) with an error naming it and how to install it by hand: a run never shrinks silently for want
of a package. apt waits for another apt or dpkg to finish (``DPkg::Lock::Timeout``) instead of failing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

__all__ = ["PROBES", "SETS", "ensure", "main", "missing"]

#: what the main job (``nox -s conformance``) needs for its default run: all three default targets, the
#: systemd box, the schema checks
CONFORMANCE = (
    "docker.io",  # the dockerd target; the container backend's and the systemd box's engine
    "debootstrap",  # the dockerd-N targets' and the systemd box's Debian roots (harness.rootfs)
    "debian-archive-keyring",  # debootstrap and harness.debpkg verify Debian's archive with it
    "busybox-static",  # the test image (harness.images)
    "iptables",
    "util-linux",  # unshare, nsenter, setpriv
    "iproute2",
    "systemd",  # systemd-socket-activate for the fd:// scenarios
    "curl",
    "openssl",
    "docker-registry",  # the registry fixtures and the pull benchmark (harness/registry.py)
    "procps",  # ps: `docker top` runs it on the host, for refd and for Debian's dockerd alike
)
SETS: dict[str, tuple[str, ...]] = {
    "conformance": CONFORMANCE,
    "bench": (*CONFORMANCE, "wrk"),  # wrk: the TCP load figures (bench/clients.py)
    # the project's own tests exercise everything the main job uses, and a few tools of their own
    "tests": (
        *CONFORMANCE,
        "gpg",  # tests/harness/test_debpkg.py signs a small Debian archive ...
        "gpg-agent",  # ... with a key it makes, which takes the agent (only a Recommends of gpg)
        "file",  # tests/harness/test_images.py tells a static busybox from a dynamic one
        "shellcheck",  # tests/conformance/test_workflow.py checks the CI scripts
        "chromium",  # parity.html in a headless browser (tests/conformance/test_parity_html_browser.py)
    ),
    "vm": ("qemu-system-x86", "xz-utils", "zstd"),
    "fresh": ("debootstrap", "debian-archive-keyring", "util-linux", "git"),
}

#: package -> a path whose presence shows the package's job is done on this machine
PROBES = {
    "docker.io": "/usr/sbin/dockerd",
    "busybox-static": "/bin/busybox",
    "iptables": "/usr/sbin/iptables",
    "util-linux": "/usr/bin/unshare",
    "iproute2": "/usr/sbin/ip",
    "curl": "/usr/bin/curl",
    "systemd": "/usr/bin/systemd-socket-activate",
    "openssl": "/usr/bin/openssl",
    "docker-registry": "/usr/bin/docker-registry",
    "chromium": "/usr/bin/chromium",
    "gpg": "/usr/bin/gpg",
    "gpg-agent": "/usr/bin/gpg-agent",
    "debootstrap": "/usr/sbin/debootstrap",
    "debian-archive-keyring": "/usr/share/keyrings/debian-archive-keyring.gpg",
    "file": "/usr/bin/file",
    "shellcheck": "/usr/bin/shellcheck",
    "git": "/usr/bin/git",
    "procps": "/usr/bin/ps",
    "qemu-system-x86": "/usr/bin/qemu-system-x86_64",
    "xz-utils": "/usr/bin/xz",
    "zstd": "/usr/bin/zstd",
    "wrk": "/usr/bin/wrk",
}
#: where a root login looks for commands (a probe's tool may live in another of them, as ``which`` finds it)
_ROOT_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
#: seconds apt waits for another apt/dpkg (another session, unattended-upgrades) to release its lock
LOCK_TIMEOUT = 600


def _present(package: str, root: str = "/") -> bool:
    probe = PROBES.get(package)
    if root != "/":  # another machine's tree (the newcomer check's fresh root): its files only
        if probe is not None:
            dirs = [os.path.dirname(probe), *_ROOT_PATH]
            return any(
                os.path.lexists(os.path.join(root, d.lstrip("/"), os.path.basename(probe))) for d in dirs
            )
        admin = ["--admindir", os.path.join(root, "var/lib/dpkg")]
    elif probe is not None:
        return os.path.exists(probe) or shutil.which(os.path.basename(probe)) is not None
    else:
        admin = []
    try:
        return subprocess.run(["dpkg", *admin, "-s", package], capture_output=True).returncode == 0
    except OSError:  # no dpkg: not a Debian system, so nothing we could check or install
        return False


def missing(packages: list[str], root: str = "/") -> list[str]:
    """The ``packages`` this machine lacks (``root``: the machine whose root directory that is)."""
    return [p for p in packages if not _present(p, root)]


def ensure(packages: list[str]) -> int:
    todo = missing(packages)
    if not todo:
        return 0
    by_hand = f"apt-get install {' '.join(todo)}"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        sys.stderr.write(f"missing OS packages: {' '.join(todo)}; install them (e.g. {by_hand}) and re-run\n")
        return 1
    print(f"harness: installing OS packages: {' '.join(todo)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = [f"-oDPkg::Lock::Timeout={LOCK_TIMEOUT}"]
    update = subprocess.run(["apt-get", *lock, "update", "-qq"], check=False, env=env)
    result = subprocess.run(
        ["apt-get", *lock, "install", "-y", "-qq", "--no-install-recommends", *todo], env=env
    )
    if result.returncode != 0:
        why = "" if update.returncode == 0 else f" (apt-get update had failed too: exit {update.returncode})"
        sys.stderr.write(
            f"apt-get install {' '.join(todo)} failed (exit {result.returncode}){why}: the session needs "
            f"them; see apt's message above, fix the machine's apt sources or network, and re-run\n"
        )
        return 1
    still = missing(todo)
    if still:
        sys.stderr.write(f"apt-get install succeeded but these are still missing: {' '.join(still)}\n")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.ospkgs", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--for",
        dest="sets",
        action="append",
        default=[],
        choices=sorted(SETS),
        help="a session's packages (repeatable)",
    )
    p.add_argument("packages", nargs="*", help="more packages by name")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    wanted: list[str] = []
    for name in [*(pkg for s in args.sets for pkg in SETS[s]), *args.packages]:
        if name not in wanted:
            wanted.append(name)
    return ensure(wanted)


if __name__ == "__main__":
    sys.exit(main())
