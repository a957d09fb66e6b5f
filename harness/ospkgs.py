"""OS packages the sessions need, installed when missing (root on apt systems) or named in an error.

``python -m harness.ospkgs docker.io busybox-static iptables`` prints what it installs;
elsewhere it exits 1 naming the packages to install by hand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

__all__ = ["PROBES", "ensure", "main", "missing"]

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
}


def _present(package: str) -> bool:
    probe = PROBES.get(package)
    if probe is not None:
        return os.path.exists(probe) or shutil.which(os.path.basename(probe)) is not None
    try:
        return subprocess.run(["dpkg", "-s", package], capture_output=True).returncode == 0
    except OSError:  # no dpkg: not a Debian system, so nothing we could check or install
        return False


def missing(packages: list[str]) -> list[str]:
    return [p for p in packages if not _present(p)]


def ensure(packages: list[str]) -> int:
    todo = missing(packages)
    if not todo:
        return 0
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        sys.stderr.write(
            f"missing OS packages: {' '.join(todo)}; install them (e.g. apt-get install "
            f"{' '.join(todo)}) and re-run\n"
        )
        return 1
    print(f"harness: installing OS packages: {' '.join(todo)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
    result = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *todo], env=env)
    if result.returncode != 0:
        sys.stderr.write(f"apt-get install {' '.join(todo)} failed (exit {result.returncode})\n")
        return 1
    still = missing(todo)
    if still:
        sys.stderr.write(f"apt-get install succeeded but these are still missing: {' '.join(still)}\n")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    return ensure(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
