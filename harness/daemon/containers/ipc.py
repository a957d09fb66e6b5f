"""A container's IPC mode at start: its IPC namespace and where its /dev/shm comes from.

moby ``daemon/container_operations_unix.go`` setupIPCDirs and ``oci_linux.go``'s IPC namespace:

- ``private`` (the default): a new IPC namespace and a tmpfs /dev/shm of the container's own;
- ``none``: a new IPC namespace and no /dev/shm at all;
- ``shareable``: a new IPC namespace; /dev/shm is a tmpfs the daemon mounts at
  ``<container root>/mounts/shm`` (so it is visible to the daemon, and to containers that join it);
- ``host``: the host's IPC namespace and its /dev/shm;
- ``container:<name|id>``: the IPC namespace and /dev/shm of a running shareable (or host) donor; any
  other donor is refused at start with dockerd's words.

A /dev/shm mount the user asked for (a bind or tmpfs at /dev/shm) wins over all of this.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ApiError, conflict, invalid, system
from ..runtime import syscalls as sc

if TYPE_CHECKING:
    from .model import Container
    from .store import ContainerStore

__all__ = ["IpcSetup", "release_shm", "setup_ipc", "shm_path"]

_SHM = "/dev/shm"


def shm_path(c: Container) -> str:
    """Where a shareable container's /dev/shm tmpfs is mounted (dockerd's ShmResourcePath)."""
    return os.path.join(c.root, "mounts", "shm")


def _user_shm(c: Container) -> bool:
    """The user mounts something at /dev/shm (dockerd's HasMountFor)."""
    hc = c.host_config
    targets = [str(p.get("Destination") or "") for p in c.mounts]
    targets += [str(m.get("Target") or "") for m in hc.get("Mounts") or []]
    targets += list(hc.get("Tmpfs") or {})
    return any(os.path.normpath(t) == _SHM for t in targets if t)


class IpcSetup:
    """What the runtime needs: the IPC namespace mode, whether to mount a private /dev/shm tmpfs, and the
    host directory to bind at /dev/shm instead ("" for none)."""

    def __init__(self, namespace: str, private_shm: bool, shm_source: str) -> None:
        self.namespace = namespace
        self.private_shm = private_shm
        self.shm_source = shm_source

    def apply(self, spec: dict[str, Any]) -> None:
        """Into a ``process_spec``: the namespace, the private tmpfs or not, the bind of the shared one."""
        spec["namespaces"]["ipc"] = self.namespace
        spec["private_shm"] = self.private_shm
        if self.shm_source:
            options = ["rbind", "rw", "rprivate"]
            spec["mounts"] = [
                *spec["mounts"],
                {"destination": _SHM, "type": "bind", "source": self.shm_source, "options": options},
            ]


def namespace_donor(
    store: ContainerStore,
    ref: str,
    namespace: str,
    missing: Callable[[str], ApiError],
    busy: Callable[[str], ApiError],
) -> Container:
    """moby getIPCContainer / getPIDContainer: the container whose ``namespace`` another joins exists (else
    ``missing``), runs and is not restarting (else ``busy``); each caller's status codes are moby's."""
    try:
        donor = store.get(ref)
    except ApiError as exc:
        raise missing(f"failed to join {namespace} namespace: {exc.message}") from None
    if donor.state.get("Restarting"):
        raise busy(
            f"failed to join {namespace} namespace: Container {ref} is restarting, "
            "wait until the container is running"
        )
    if not donor.running:
        raise busy(f"failed to join {namespace} namespace: container {ref} is not running")
    return donor


def _donor(store: ContainerStore, ref: str) -> Container:
    """getIPCContainer's errors: a missing donor is a 400, one not running a 409."""
    return namespace_donor(store, ref, "IPC", invalid, conflict)


def setup_ipc(c: Container, store: ContainerStore) -> IpcSetup:
    """Prepare ``c``'s IPC for a start (mounting a shareable container's /dev/shm); ApiError as dockerd."""
    mode = str(c.host_config.get("IpcMode") or "private")
    user_shm = _user_shm(c)
    if mode.startswith("container:"):
        ref = mode.split(":", 1)[1]
        donor = _donor(store, ref)
        source = donor.shm_path
        if not source or not os.path.isdir(source):
            raise invalid(
                f"failed to join IPC namespace: container {ref}: non-shareable IPC "
                "(hint: use IpcMode:shareable for the donor container)"
            )
        c.shm_path = source
        return IpcSetup(f"/proc/{donor.state['Pid']}/ns/ipc", False, "" if user_shm else source)
    if mode == "host":
        if not os.path.exists(_SHM):
            raise system("/dev/shm is not mounted, but must be for --ipc=host")
        c.shm_path = _SHM
        return IpcSetup("host", False, "" if user_shm else _SHM)
    c.shm_path = ""
    if mode == "none":
        return IpcSetup("new", False, "")
    if mode == "shareable" and not user_shm:
        path = shm_path(c)
        _mount_shm(path, int(c.host_config.get("ShmSize") or 67108864))
        c.shm_path = path
        return IpcSetup("new", False, path)
    return IpcSetup("new", not user_shm, "")


def _mount_shm(path: str, size: int) -> None:
    os.makedirs(path, mode=0o700, exist_ok=True)
    if os.path.ismount(path):
        return
    try:
        sc.mount("shm", path, "tmpfs", sc.MS_NOEXEC | sc.MS_NOSUID | sc.MS_NODEV, f"mode=1777,size={size}")
    except OSError as exc:
        raise system(f"mounting shm tmpfs: {os.strerror(exc.errno or 0).lower()}") from None


def release_shm(c: Container) -> None:
    """A stopped shareable container's /dev/shm goes (dockerd's UnmountIpcMount); its directory stays
    until the container is removed."""
    c.shm_path = ""
    path = shm_path(c)
    if os.path.ismount(path):
        with contextlib.suppress(OSError):
            sc.umount2(path, sc.MNT_DETACH)
