"""The containers of one daemon as records (moby ``container/store.go``, ``container/view.go``,
``daemon/names.go``): by id and by name in memory, one directory per container on disk.

Records live under ``<data-root>/containers/<id>/`` (``config.v2.json`` + ``hostconfig.json``, written
whole by :meth:`.Container.save`), the running state of each container under
``<exec-root>/containers/<id>/`` (its shim's files, :mod:`..shimstate`). Both survive refd: after a
kill -9 or with live-restore, :meth:`ContainerStore.load` reads the records back and
:meth:`ContainerStore.survived` says whether a container's shim is still there to reconnect to, or how
its process ended while refd was away.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import conflict, invalid, not_found
from ..gotime import now_rfc3339
from ..shimstate import read_exit, read_state_pid, shim_alive
from .model import Container
from .names import random_name, validate_name

if TYPE_CHECKING:
    import asyncio
else:
    from ..lazy import asyncio  # imported on first use: refd answers its first /_ping without it

__all__ = ["ContainerStore"]

#: what a container that was running when refd went away gets when nothing recorded its exit
_LOST_EXIT_CODE = 137


def _name_in_use(name: str, cid: str, prefix: str = "") -> str:
    return (
        f'{prefix}Conflict. The container name "/{name}" is already in use by container "{cid}". You have to '
        "remove (or rename) that container to be able to reuse that name."
    )


class ContainerStore:
    """Container records by id and name; lookups with dockerd's errors; per-container locks."""

    def __init__(self, data_root: str, exec_root: str) -> None:
        self.root = os.path.join(data_root, "containers")
        self.state_root = os.path.join(exec_root, "containers")
        self.by_id: dict[str, Container] = {}
        self.names: dict[str, str] = {}  # name without slash -> id
        self.locks: dict[str, asyncio.Lock] = {}

    # -- lookups -------------------------------------------------------------------------------------
    def get(self, ref: str) -> Container:
        """By full id, name (with or without '/'), or unique id prefix; dockerd's 404 otherwise."""
        if not ref:
            raise not_found("No such container: ")
        if ref in self.by_id:
            return self.by_id[ref]
        cid = self.names.get(ref.removeprefix("/"))
        if cid:
            return self.by_id[cid]
        linked = self.by_link_name(ref)
        if linked is not None:
            return linked
        matches = [cid for cid in self.by_id if cid.startswith(ref)]
        if len(matches) == 1:
            return self.by_id[matches[0]]
        if len(matches) > 1:
            raise invalid(f"multiple IDs found with provided prefix: {ref}")
        raise not_found(f"No such container: {ref}")

    def by_name(self, name: str) -> Container | None:
        """By exact name (without the slash)."""
        cid = self.names.get(name)
        return self.by_id.get(cid) if cid else None

    def by_link_name(self, ref: str) -> Container | None:
        """The container a legacy link's name (``parent/alias``) stands for, as dockerd reserves it."""
        parent_name, _, alias = ref.strip("/").rpartition("/")
        parent = self.by_name(parent_name) if parent_name and alias else None
        if parent is None:
            return None
        for link in parent.host_config.get("Links") or []:
            source, _, target = str(link).partition(":")
            if target == f"/{parent_name}/{alias}":
                return self.by_name(source.lstrip("/"))
        return None

    def link_names(self) -> dict[str, list[str]]:
        """Container id -> the legacy link names (``/parent/alias``) dockerd lists among its ``Names``."""
        names: dict[str, list[str]] = {}
        for parent in self.by_id.values():
            for link in parent.host_config.get("Links") or []:
                source, _, target = str(link).partition(":")
                child = self.by_name(source.lstrip("/"))
                if child is not None and target:
                    names.setdefault(child.id, []).append(target)
        return names

    def lock(self, cid: str) -> asyncio.Lock:
        """The lock a container's start, restart and update take (one at a time per container)."""
        return self.locks.setdefault(cid, asyncio.Lock())

    def state_dir(self, c: Container) -> str:
        """Where ``c``'s shim keeps its socket and records."""
        return os.path.join(self.state_root, c.id)

    def counts(self) -> dict[str, int]:
        """/info's container counts."""
        states = [c.status for c in self.by_id.values()]
        running = sum(1 for s in states if s in ("running", "restarting"))
        paused = states.count("paused")
        return {
            "total": len(states),
            "running": running,
            "paused": paused,
            "stopped": len(states) - running - paused,
        }

    def uses_image(self, image_id: str) -> list[str]:
        return [c.id for c in self.by_id.values() if c.image_id == image_id]

    def mount_image(self, image_id: str) -> list[str]:
        """The containers with an image mount of ``image_id``."""
        return [
            c.id
            for c in self.by_id.values()
            if any(
                m.get("Type") == "image" and (m.get("Spec") or {}).get("Source") == image_id for m in c.mounts
            )
        ]

    def volume_users(self, name: str) -> list[str]:
        return [
            c.id
            for c in self.by_id.values()
            if any(m.get("Name") == name and m.get("Type", "volume") == "volume" for m in c.mounts)
        ]

    # -- names ---------------------------------------------------------------------------------------
    def new_name(self, requested: str) -> str:
        """``requested`` checked and free (dockerd's 400/409), or a random free name if none was asked."""
        if not requested:
            return random_name(set(self.names))
        name = validate_name(requested)
        if name in self.names:
            raise conflict(_name_in_use(name, self.names[name]))
        return name

    def rename(self, c: Container, new_name: str) -> str:
        """Give ``c`` the name ``new_name`` and save it; returns the old name (without slash)."""
        if not new_name:
            raise invalid("Neither old nor new names may be empty")
        new = validate_name(new_name)
        old = c.name.removeprefix("/")
        if new == old:
            raise invalid("Renaming a container with the same name as its current name")
        if new in self.names:
            raise conflict(_name_in_use(new, self.names[new], "Error when allocating new name: "))
        self.names.pop(old, None)
        self.names[new] = c.id
        c.name = f"/{new}"
        c.save()
        self._rename_links(old, new)
        return old

    def _rename_links(self, old: str, new: str) -> None:
        """The legacy links that name a renamed container follow it, as dockerd's link index does: as a
        parent (``/old/alias`` becomes ``/new/alias``) and as the linked one (``/old:`` becomes ``/new:``)."""
        for c in self.by_id.values():
            links = [str(link) for link in c.host_config.get("Links") or []]
            renamed = []
            for link in links:
                source, _, target = link.partition(":")
                if source == f"/{old}":
                    source = f"/{new}"
                if target.startswith(f"/{old}/"):
                    target = f"/{new}/{target[len(old) + 2 :]}"
                renamed.append(f"{source}:{target}" if target else source)
            if renamed != links:
                c.host_config["Links"] = renamed
                c.save()

    # -- records -------------------------------------------------------------------------------------
    def add(self, c: Container) -> None:
        """A new container: its record on disk, then in the view."""
        c.save()
        self.by_id[c.id] = c
        self.names[c.name.removeprefix("/")] = c.id

    def delete(self, c: Container) -> None:
        """Forget ``c``: its record and its state directory, on disk and in the view."""
        shutil.rmtree(self.state_dir(c), ignore_errors=True)
        shutil.rmtree(c.root, ignore_errors=True)
        self.by_id.pop(c.id, None)
        self.names.pop(c.name.removeprefix("/"), None)

    def load(self, on_error: Callable[[str, Exception], None]) -> list[Container]:
        """Read every record under the root into the view; ``on_error(cid, exc)`` for one that cannot
        be read. Returns the containers that were running when refd last saw them."""
        try:
            entries = os.listdir(self.root)
        except FileNotFoundError:
            return []
        was_running = []
        for cid in entries:
            try:
                c = Container.load(os.path.join(self.root, cid))
            except (OSError, ValueError, KeyError) as exc:
                on_error(cid, exc)
                continue
            self.by_id[c.id] = c
            self.names[c.name.removeprefix("/")] = c.id
            if c.status in ("running", "paused", "restarting"):
                was_running.append(c)
        return was_running

    def survived(self, c: Container, live_restore: bool) -> bool:
        """Whether ``c`` (running when refd went away) is still supervised and kept (live-restore).

        If not, its process is killed if it outlived its shim's refd, and ``c`` is marked stopped with
        the exit its shim recorded (137 and now when nothing was recorded); the caller saves it.
        """
        state_dir = self.state_dir(c)
        alive = shim_alive(state_dir)
        if alive and live_restore:
            return True
        if alive:
            pid = read_state_pid(state_dir)
            if pid:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        code, finished = _LOST_EXIT_CODE, now_rfc3339()
        record = read_exit(state_dir) or {}
        with contextlib.suppress(ValueError, KeyError, TypeError):
            code, finished = int(record["exit_code"]), record["finished_at"]
        c.set_stopped(code, finished_at=finished)
        return False

    def exit_of(self, c: Container) -> dict[str, Any]:
        """How ``c``'s process ended, from its shim's record; 137 now when the shim died unrecorded."""
        return read_exit(self.state_dir(c)) or {
            "exit_code": _LOST_EXIT_CODE,
            "oom_killed": False,
            "finished_at": now_rfc3339(),
        }
