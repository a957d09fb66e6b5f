"""Exec: ``POST /containers/{id}/exec``, ``POST /exec/{id}/start`` (hijacked or detached), inspect, resize.

The process runs inside the container's namespaces through the container's shim, which
owns its stdio and records its exit code in ``exec-<id>.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from typing import TYPE_CHECKING, Any

from ..bodytypes import EXEC_OPTIONS, EXEC_START_OPTIONS
from ..containers.shimclient import ShimConnection
from ..errors import ApiError, conflict, invalid, not_found
from ..gotypes import check
from ..httpd import Request, Response
from ..logs.jsonfile import frame
from ..server import json_response, read_json, version_tuple
from .containers import DEFAULT_DETACH_KEYS, _relay, detach_key_bytes

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..server import Router

__all__ = ["register"]


def _exec(daemon: Daemon, exec_id: str) -> dict[str, Any]:
    record = daemon.containers.execs.get(exec_id)
    if record is None:
        raise not_found(f"No such exec instance: {exec_id}")
    return record


def _refresh(daemon: Daemon, record: dict[str, Any]) -> None:
    c = daemon.containers.by_id.get(record["ContainerID"])
    if c is None:
        return
    path = os.path.join(daemon.containers.state_dir(c), f"exec-{record['ID']}.json")
    try:
        with open(path) as fh:
            state = json.load(fh)
    except (OSError, ValueError):
        return
    record["Running"] = bool(state.get("running"))
    record["Pid"] = int(state.get("pid") or 0)
    if state.get("error"):  # the process never started: 127 not found, 126 cannot run, as dockerd sets
        inner = str(state["error"])
        state["exit_code"] = 127 if "executable file not found" in inner or "no such file" in inner else 126
    if not record["Running"] and state.get("exit_code") is not None:
        record["ExitCode"] = int(state["exit_code"])
        record["Pid"] = 0 if record["ExitCode"] is not None and not record["Running"] else record["Pid"]


def prune_ended(daemon: Daemon, c: Any) -> None:
    """Drop execs whose process has ended from the container's ExecIDs (dockerd does on exit;
    ``GET /exec/{id}/json`` still answers for them)."""
    for exec_id in list(c.exec_ids):
        record = daemon.containers.execs.get(exec_id)
        if record is None or not record.get("_started"):
            continue  # created but never started: dockerd keeps it listed
        _refresh(daemon, record)
        if not record["Running"] and record.get("ExitCode") is not None:
            with contextlib.suppress(ValueError):
                c.exec_ids.remove(exec_id)


async def create(req: Request, daemon: Daemon) -> Response:
    body = check(await read_json(req), EXEC_OPTIONS)
    if not body.get("Cmd"):
        raise invalid("No exec command specified")
    c = daemon.containers.get(req.match["name"])
    if c.status == "paused":
        raise conflict(f"Container {c.id} is paused, unpause the container before exec")
    if c.status == "restarting":
        raise conflict(f"Container {c.id} is restarting, wait until the container is running")
    if not c.running:
        raise conflict(f"container {c.id} is not running")
    if body.get("DetachKeys"):
        try:
            detach_key_bytes(str(body["DetachKeys"]))
        except ValueError:  # a plain error in dockerd 28: 500
            raise ApiError(500, f"Invalid escape keys ({body['DetachKeys']}) provided") from None
    exec_id = secrets.token_hex(32)
    cmd = list(body["Cmd"])
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
        "DetachKeys": body.get("DetachKeys") or "",
        "Pid": 0,
        "_request": body,
        "_started": False,
    }
    daemon.containers.execs[exec_id] = record
    c.exec_ids.append(exec_id)
    daemon.containers.emit(c, f"exec_create: {' '.join(cmd)}", execID=exec_id)
    return json_response({"Id": exec_id}, 201)


async def inspect(req: Request, daemon: Daemon) -> Response:
    record = _exec(daemon, req.match["name"])
    _refresh(daemon, record)
    return json_response({k: v for k, v in record.items() if not k.startswith("_")})


async def start(req: Request, daemon: Daemon) -> Response:
    body = check(await read_json(req), EXEC_START_OPTIONS)
    record = _exec(daemon, req.match["name"])
    if record["_started"]:
        _refresh(daemon, record)
        state = "is already running" if record["Running"] else "has already run"
        message = f"exec command {record['ID']} {state}"
        if body.get("Detach"):
            raise conflict(message)
        # dockerd hijacks the connection before it checks, so the refusal arrives in the stream
        tty = bool(record["ProcessConfig"]["tty"])
        return _stream_error(req, message, tty)
    c = daemon.containers.by_id.get(record["ContainerID"])
    if c is None or not c.running:
        raise conflict(f"container {record['ContainerID']} is not running")
    from ..containers.spec import exec_process_spec

    request = record["_request"]
    tty = bool(body.get("Tty", request.get("Tty")))
    process = exec_process_spec(daemon, c, request, tty)
    record["_started"] = True
    shim_request = {
        "op": "exec",
        "id": record["ID"],
        "process": process,
        "tty": tty,
        "stdin": bool(request.get("AttachStdin")) and not body.get("Detach"),
        "attach": not body.get("Detach"),
    }
    state_dir = daemon.containers.state_dir(c)
    cmdline = " ".join([record["ProcessConfig"]["entrypoint"], *record["ProcessConfig"]["arguments"]])
    if body.get("Detach"):
        result = await ShimConnection.call(state_dir, shim_request)
        if "error" in result:
            raise ApiError(500 if "not found" not in str(result["error"]) else 400, str(result["error"]))
        record["Running"] = True
        daemon.containers.emit(c, f"exec_start: {cmdline}", execID=record["ID"])
        return Response(200, b"", [("Content-Type", "text/plain; charset=utf-8")])

    async def hijack(r: Request) -> None:
        await _write_head(r, tty)
        try:
            reader, writer = await ShimConnection.open(state_dir, shim_request)
            first = json.loads(await reader.readline() or b"{}")
        except (OSError, ValueError) as exc:
            first = {"error": str(exc)}
            reader = writer = None  # type: ignore[assignment]
        if "error" in first:
            inner = str(first["error"])
            message = (
                f"OCI runtime exec failed: exec failed: unable to start container process: {inner}: unknown"
            )
            code = 127 if "executable file not found" in inner or "no such file" in inner else 126
            record.update(Running=False, ExitCode=code, Pid=0)
            text = f"{message}\r\n".encode()
            r.writer.write(text if tty else frame("stdout", text))  # dockerd writes it to the exec's stdout
            with contextlib.suppress(Exception):
                await r.writer.drain()
            r.writer.close()
            return
        record["Running"] = True
        daemon.containers.emit(c, f"exec_start: {cmdline}", execID=record["ID"])
        assert reader is not None and writer is not None
        try:
            keys = detach_key_bytes(record["DetachKeys"]) if record["DetachKeys"] else DEFAULT_DETACH_KEYS
            await _relay(r, reader, writer, bool(request.get("AttachStdin")), keys if tty else None)
        finally:
            _refresh(daemon, record)
            daemon.containers.emit(c, "exec_die", execID=record["ID"], exitCode=str(record.get("ExitCode")))
            with contextlib.suppress(Exception):
                r.writer.close()

    return Response(hijack=hijack)


async def _write_head(r: Request, tty: bool) -> None:
    """The hijacked response head dockerd writes for exec start, with the middleware headers."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in r.response_headers)
    if "upgrade" in r.headers:
        ctype = "application/vnd.docker.raw-stream"
        if not tty and version_tuple(r.api_version) >= (1, 42):
            ctype = "application/vnd.docker.multiplexed-stream"
        head = (
            f"HTTP/1.1 101 UPGRADED\r\nContent-Type: {ctype}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
            f"{extra}\r\n"
        )
    else:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n{extra}\r\n"
    r.writer.write(head.encode())
    await r.writer.drain()


def _stream_error(req: Request, message: str, tty: bool) -> Response:
    """The hijacked stream carrying ``message`` on stdout: how dockerd reports exec start errors."""

    async def hijack(r: Request) -> None:
        await _write_head(r, tty)
        text = f"{message}\r\n".encode()
        r.writer.write(text if tty else frame("stdout", text))
        with contextlib.suppress(Exception):
            await r.writer.drain()
        r.writer.close()

    return Response(hijack=hijack)


async def resize(req: Request, daemon: Daemon) -> Response:
    record = _exec(daemon, req.match["name"])
    c = daemon.containers.by_id.get(record["ContainerID"])
    if c is None or not c.running:
        raise conflict(f"container {record['ContainerID']} is not running")
    try:
        height, width = int(req.arg("h") or 0), int(req.arg("w") or 0)
    except ValueError:
        raise invalid(f'strconv.Atoi: parsing "{req.arg("h")}": invalid syntax') from None
    result = await ShimConnection.call(
        daemon.containers.state_dir(c),
        {"op": "resize", "target": record["ID"], "height": height, "width": width},
    )
    if "error" in result:
        raise invalid(str(result["error"]))
    return Response(200, b"", [("Content-Type", "text/plain; charset=utf-8")])


def register(router: Router) -> None:
    router.add("POST", "/containers/{name}/exec", create)
    router.add("POST", "/exec/{name}/start", start)
    router.add("GET", "/exec/{name}/json", inspect)
    router.add("POST", "/exec/{name}/resize", resize)
