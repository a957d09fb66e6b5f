"""Exec instances (moby ``daemon/exec.go`` and ``daemon/exec/exec.go``): their records, their start
through the container's shim, and their state as the shim records it (``exec-<id>.json``).

A record is the dict ``GET /exec/{id}/json`` shows, plus private keys (``_request``: the create body,
``_started``) that inspect leaves out. Health probes are execs too (``health.py`` creates them here).
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
from typing import TYPE_CHECKING, Any

from ..errors import ApiError, conflict, invalid, not_found
from ..shimstate import read_exec
from .attach import detach_key_bytes
from .shimclient import ShimConnection

if TYPE_CHECKING:
    import asyncio
else:
    from ..lazy import asyncio  # imported on first use: refd answers its first /_ping without it

if TYPE_CHECKING:
    from .lifecycle import ContainerManager
    from .model import Container

__all__ = ["ExecStartError", "ExecStore", "exec_failure_code", "oci_exec_error"]


def exec_failure_code(inner: str) -> int:
    """The exit code dockerd gives an exec that never started: 127 not found, 126 cannot run."""
    return 127 if "executable file not found" in inner or "no such file" in inner else 126


def oci_exec_error(inner: str) -> str:
    """dockerd's wrapping of a runtime exec failure."""
    return f"OCI runtime exec failed: exec failed: unable to start container process: {inner}: unknown"


class ExecStartError(Exception):
    """The exec's process did not start; ``str()`` is dockerd's message for the client's stream."""


class ExecStore:
    """The exec records of one daemon's containers, by exec id."""

    def __init__(self, manager: ContainerManager) -> None:
        self.manager = manager
        self.records: dict[str, dict[str, Any]] = {}
        #: detached execs' connections to their shim, each waiting for its process's end
        self._watchers: set[asyncio.Future[None]] = set()

    # -- records -------------------------------------------------------------------------------------
    def get(self, exec_id: str) -> dict[str, Any]:
        record = self.records.get(exec_id)
        if record is None:
            raise not_found(f"No such exec instance: {exec_id}")
        return record

    def forget(self, exec_id: str) -> None:
        self.records.pop(exec_id, None)

    def create(self, c: Container, body: dict[str, Any], started: bool = False) -> dict[str, Any]:
        """A new exec of ``c`` from a create body (``Cmd``, ``Tty``, ``User``, ``Attach*``...)."""
        cmd = list(body["Cmd"])
        keys = str(body.get("DetachKeys") or "")
        exec_id = secrets.token_hex(32)
        record = {
            "ID": exec_id,
            "Running": False,
            "ExitCode": None,
            "ProcessConfig": {
                "tty": bool(body.get("Tty")),
                "entrypoint": cmd[0],
                "arguments": cmd[1:],
                "privileged": bool(body.get("Privileged")),
                **({"user": body["User"]} if body.get("User") else {}),  # omitempty in dockerd 28
            },
            "OpenStdin": bool(body.get("AttachStdin")),
            "OpenStderr": bool(body.get("AttachStderr")),
            "OpenStdout": bool(body.get("AttachStdout")),
            "CanRemove": False,
            "ContainerID": c.id,
            # ExecConfig.DetachKeys is a []byte in dockerd: inspect shows the keys' bytes base64-encoded
            "DetachKeys": base64.b64encode(detach_key_bytes(keys)).decode() if keys else "",
            "_detach_keys": keys,
            "Pid": 0,
            "_request": body,
            "_started": started,
        }
        self.records[exec_id] = record
        c.exec_ids.append(exec_id)
        return record

    def refresh(self, record: dict[str, Any]) -> None:
        """Running, Pid and ExitCode from the shim's record of the exec."""
        c = self.manager.by_id.get(record["ContainerID"])
        if c is None:
            return
        state = read_exec(self.manager.state_dir(c), record["ID"])
        if state is None:
            return
        record["Running"] = bool(state.get("running"))
        record["Pid"] = int(state.get("pid") or 0)
        if state.get("error"):  # the process never started: 127 not found, 126 cannot run, as dockerd sets
            state["exit_code"] = exec_failure_code(str(state["error"]))
        if not record["Running"] and state.get("exit_code") is not None:
            record["ExitCode"] = int(state["exit_code"])
            record["Pid"] = 0
        if record.get("_failed"):  # dockerd's exec start failed after the process ran: 126, not running
            record.update(Running=False, ExitCode=126, Pid=0)

    def prune_ended(self, c: Container) -> None:
        """Drop execs whose process has ended from the container's ExecIDs (dockerd does on exit;
        ``GET /exec/{id}/json`` still answers for them)."""
        for exec_id in list(c.exec_ids):
            record = self.records.get(exec_id)
            if record is None or not record.get("_started"):
                continue  # created but never started: dockerd keeps it listed
            self.refresh(record)
            if not record["Running"] and record.get("ExitCode") is not None:
                with contextlib.suppress(ValueError):
                    c.exec_ids.remove(exec_id)

    # -- starting ------------------------------------------------------------------------------------
    def started_already(self, record: dict[str, Any]) -> str | None:
        """dockerd's refusal of a second start, or None for an exec not started yet."""
        if not record["_started"]:
            return None
        self.refresh(record)
        state = "is already running" if record["Running"] else "has already run"
        return f"exec command {record['ID']} {state}"

    def running_container(self, record: dict[str, Any]) -> Container:
        c = self.manager.by_id.get(record["ContainerID"])
        if c is None or not c.running:
            raise conflict(f"container {record['ContainerID']} is not running")
        return c

    def _shim_request(
        self, c: Container, record: dict[str, Any], tty: bool, detach: bool, raw: bool | None = None
    ) -> dict[str, Any]:
        from .spec import exec_process_spec

        request = record["_request"]
        process = exec_process_spec(self.manager.daemon, c, request, tty)
        # the start's ConsoleSize, else the create's (moby ContainerExecStart): a TTY's first size
        size = record.get("_start_console_size") or request.get("ConsoleSize")
        if tty and size:
            process["console_size"] = [int(x) for x in size]
        record["_started"] = True
        return {
            "op": "exec",
            "id": record["ID"],
            "process": process,
            "tty": tty,
            "raw": tty if raw is None else raw,
            "stdin": bool(request.get("AttachStdin")) and not detach,
            "attach": not detach,
        }

    def _started(self, c: Container, record: dict[str, Any]) -> None:
        record["Running"] = True
        config = record["ProcessConfig"]
        cmdline = " ".join([config["entrypoint"], *config["arguments"]])
        self.manager.emit(c, f"exec_start: {cmdline}", execID=record["ID"])

    async def start_detached(self, c: Container, record: dict[str, Any], tty: bool) -> None:
        """Start the exec with nobody attached; a process that cannot start is dockerd's 400/500. The
        shim keeps the connection until the process has ended: then ``exec_die``, as for an attached one."""
        reader, writer = await ShimConnection.open(
            self.manager.state_dir(c), self._shim_request(c, record, tty, detach=True)
        )
        try:
            result = json.loads(await asyncio.wait_for(reader.readline(), 30) or b'{"error": "shim closed"}')
        except BaseException:
            writer.close()
            raise
        if "error" in result:
            writer.close()
            raise ApiError(500 if "not found" not in str(result["error"]) else 400, str(result["error"]))
        self._started(c, record)
        watcher = asyncio.ensure_future(self._watch_detached(c, record, reader, writer))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _watch_detached(
        self, c: Container, record: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while await reader.read(65536):
                pass
        except (OSError, ConnectionError):
            pass
        finally:
            writer.close()
        self.refresh(record)
        if record.get("ExitCode") is not None:
            self.manager.emit(c, "exec_die", execID=record["ID"], exitCode=str(record["ExitCode"]))

    def prepare(self, c: Container, record: dict[str, Any], tty: bool, raw: bool) -> dict[str, Any]:
        """The shim request of an attached start (taken before the client's stream is hijacked): the
        process on a terminal if ``tty``, its output relayed unframed if ``raw``."""
        return self._shim_request(c, record, tty, detach=False, raw=raw)

    async def start_attached(
        self, c: Container, record: dict[str, Any], shim_request: dict[str, Any]
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Start the exec and return its stream; ExecStartError with dockerd's message if it did not start."""
        writer: asyncio.StreamWriter | None = None
        try:
            reader, writer = await ShimConnection.open(self.manager.state_dir(c), shim_request)
            first = json.loads(await reader.readline() or b"{}")
        except (OSError, ValueError) as exc:
            first = {"error": str(exc)}
        if "error" in first:
            if writer is not None:
                writer.close()
            inner = str(first["error"])
            record.update(Running=False, ExitCode=exec_failure_code(inner), Pid=0)
            raise ExecStartError(oci_exec_error(inner))
        self._started(c, record)
        assert writer is not None
        return reader, writer

    async def resize(self, record: dict[str, Any], height: int, width: int) -> None:
        """The exec's pty to ``height`` x ``width``; dockerd's 400 for an exec without a TTY."""
        c = self.running_container(record)
        result = await ShimConnection.call(
            self.manager.state_dir(c),
            {"op": "resize", "target": record["ID"], "height": height, "width": width},
        )
        if "error" in result:
            raise invalid(str(result["error"]))

    def ended(self, c: Container, record: dict[str, Any]) -> None:
        """The attached stream is over: the exec's exit from the shim, and ``exec_die``."""
        self.refresh(record)
        self.manager.emit(c, "exec_die", execID=record["ID"], exitCode=str(record.get("ExitCode")))
