"""Network sandboxes: a container's network namespace as a file under ``<exec-root>/netns``.

Like libnetwork, refd creates the namespace before the container's process exists, configures it
(veth, addresses, routes, the embedded DNS socket), and lets the process join it by path. The file
(a bind mount of the namespace) keeps the namespace alive across a refd restart, so live-restored
containers keep their network; removing the file releases it once nothing else holds it.
"""

from __future__ import annotations

import contextlib
import os
import threading

__all__ = ["create_netns", "delete_netns", "netns_path"]


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
