"""Network sandboxes: a container's network namespace as a file under ``<exec-root>/netns``.

Like libnetwork, refd creates the namespace before the container's process exists, configures it
(veth, addresses, routes, the embedded DNS socket), and lets the process join it by path. The file
(a bind mount of the namespace) keeps the namespace alive across a refd restart, so live-restored
containers keep their network; removing the file releases it once nothing else holds it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Any

__all__ = ["create_netns", "create_userns", "delete_netns", "netns_path", "userns_path"]


def netns_path(exec_root: str, sandbox_id: str) -> str:
    """``<exec-root>/netns/<first 12 of the sandbox id>``, dockerd's SandboxKey layout."""
    return os.path.join(exec_root, "netns", sandbox_id[:12])


def create_netns(path: str) -> None:
    """A fresh network namespace bind-mounted on ``path``, with ``lo`` up."""
    from ..runtime import syscalls as sc  # here, not at import: its ctypes load was ~3 ms of each boot

    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with open(path, "w"):
        pass
    failure: list[BaseException] = []

    def run() -> None:
        try:
            sc.unshare(sc.CLONE_NEWNET)  # this thread only; it ends right after
            sc.mount(f"/proc/self/task/{threading.get_native_id()}/ns/net", path, None, sc.MS_BIND, None)
            from ..runtime.namespaces import bring_up_loopback

            bring_up_loopback()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name="refd-netns-create", daemon=True)
    thread.start()
    thread.join()
    if failure:
        with contextlib.suppress(OSError):
            sc.umount2(path, sc.MNT_DETACH)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise failure[0]


def delete_netns(path: str) -> None:
    """Unmount and remove a sandbox file; a missing one is fine."""
    from ..runtime import syscalls as sc

    with contextlib.suppress(OSError):
        sc.umount2(path, sc.MNT_DETACH)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def userns_path(exec_root: str, container_id: str) -> str:
    """``<exec-root>/userns/<container id>``: the user namespace of a container under --userns-remap."""
    return os.path.join(exec_root, "userns", container_id)


#: run as ``python -I -S -c``: a new user namespace, then (told to) a network namespace it owns
_HOLDER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
def step(flag, what):
    if libc.unshare(flag) != 0:
        sys.stderr.write(what + ": " + os.strerror(ctypes.get_errno()))
        sys.exit(1)
    sys.stdout.write(what + "\\n")
    sys.stdout.flush()
step(0x10000000, "user")
if sys.stdin.readline().strip() == "net":
    step(0x40000000, "net")
sys.stdin.readline()
"""


def create_userns(path: str, mapping: Any, netns: str = "") -> None:
    """A user namespace mapped by ``mapping`` (an ``idmap.IdMapping``) bind-mounted on ``path`` and, when
    ``netns`` is given, a network namespace it owns there (with ``lo`` up).

    The container joins both: root in it may then bind low ports, use raw sockets and set ``net.*``
    sysctls in its own network, as under dockerd, whose runtime makes the netns inside the container's
    user namespace. refd's threads cannot enter a user namespace, so a short helper process makes them.
    """
    import subprocess  # here, not at boot: only --userns-remap containers need the helper

    from ..runtime import syscalls as sc

    made: list[str] = []
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _HOLDER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None

    def expect(what: str) -> None:
        if proc.stdout is not None and proc.stdout.readline().strip() != what:
            proc.kill()
            err = proc.stderr.read() if proc.stderr is not None else ""
            raise OSError(f"cannot create the {what} namespace of a remapped container: {err.strip()}")

    try:
        expect("user")
        for which in ("uid", "gid"):
            with open(f"/proc/{proc.pid}/{which}_map", "w") as fh:
                fh.write(mapping.map_lines(which))
        proc.stdin.write("net\n" if netns else "-\n")
        proc.stdin.flush()
        if netns:
            expect("net")
        for kind, target in (("user", path), *((("net", netns),) if netns else ())):
            os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
            with open(target, "w"):
                pass
            made.append(target)
            sc.mount(f"/proc/{proc.pid}/ns/{kind}", target, None, sc.MS_BIND, None)
    except BaseException:
        for target in made:
            delete_netns(target)
        raise
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.write("done\n")
            proc.stdin.close()
        proc.wait()
    if netns:
        from .netlink import Netlink

        with Netlink(netns) as inside:
            inside.set_link("lo", up=True)
