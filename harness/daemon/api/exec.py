"""Exec: ``POST /containers/{id}/exec``, ``POST /exec/{id}/start`` (hijacked or detached), inspect, resize.

The process runs inside the container's namespaces through the container's shim
(:mod:`..containers.execs`); these handlers parse, call and answer, and own the hijacked stream.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from ..bodytypes import EXEC_OPTIONS, EXEC_START_OPTIONS
from ..containers.attach import DEFAULT_DETACH_KEYS, detach_key_bytes, relay
from ..containers.execs import ExecStartError
from ..errors import ApiError, conflict, invalid
from ..gotypes import check
from ..httpd import Request, Response
from ..logs.jsonfile import frame
from ..query import uint32_value
from ..server import json_response, read_json, version_tuple

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..server import Router

__all__ = ["register"]


async def create(req: Request, daemon: Daemon) -> Response:
    body = check(await read_json(req), EXEC_OPTIONS)
    if not body.get("Cmd"):
        raise invalid("No exec command specified")
    if version_tuple(req.api_version) < (1, 42):
        body.pop("ConsoleSize", None)  # not supported by API versions before 1.42
    c = daemon.containers.get(req.match["name"])
    if c.status == "paused":
        raise conflict(f"Container {c.id} is paused, unpause the container before exec")
    if c.status == "restarting":
        raise conflict(f"Container {c.id} is restarting, wait until the container is running")
    if not c.running:
        raise conflict(f"container {c.id} is not running")
    if body.get("User"):
        from ..containers.spec import check_exec_user

        check_exec_user(daemon, c, str(body["User"]))
    if body.get("DetachKeys"):
        try:
            detach_key_bytes(str(body["DetachKeys"]))
        except ValueError:  # a plain error in dockerd 28: 500
            raise ApiError(500, f"Invalid escape keys ({body['DetachKeys']}) provided") from None
    record = daemon.containers.execs.create(c, body)
    daemon.containers.emit(c, f"exec_create: {' '.join(body['Cmd'])}", execID=record["ID"])
    return json_response({"Id": record["ID"]}, 201)


async def inspect(req: Request, daemon: Daemon) -> Response:
    execs = daemon.containers.execs
    record = execs.get(req.match["name"])
    execs.refresh(record)
    return json_response({k: v for k, v in record.items() if not k.startswith("_")})


async def start(req: Request, daemon: Daemon) -> Response:
    body = check(await read_json(req), EXEC_START_OPTIONS)
    execs = daemon.containers.execs
    record = execs.get(req.match["name"])
    refusal = execs.started_already(record)
    if refusal is not None:
        if body.get("Detach"):
            raise conflict(refusal)
        # dockerd hijacks the connection before it checks, so the refusal arrives in the stream
        return _stream_error(refusal, bool(record["ProcessConfig"]["tty"]))
    c = execs.running_container(record)
    # the process gets a terminal when the exec was created with one; the start's own Tty (false when the
    # body leaves it out) only says whether the hijacked stream is raw or multiplexed frames (moby
    # api/server/router/container/exec.go). A Go client starting a detached exec sends Tty false.
    process_tty = bool(record["_request"].get("Tty"))
    tty = bool(body.get("Tty"))
    if body.get("ConsoleSize") and tty and version_tuple(req.api_version) >= (1, 42):
        record["_start_console_size"] = body["ConsoleSize"]
    if body.get("Detach"):
        await execs.start_detached(c, record, process_tty)
        return Response(200, b"", [("Content-Type", "text/plain; charset=utf-8")])
    shim_request = execs.prepare(c, record, process_tty, raw=tty)
    use_stdin = bool(record["_request"].get("AttachStdin"))

    async def hijack(r: Request) -> None:
        await _write_head(r, tty)
        try:
            reader, writer = await execs.start_attached(c, record, shim_request)
        except ExecStartError as exc:
            await _write_error(r, str(exc), tty)
            return
        try:
            text = record.get("_detach_keys") or ""
            keys = detach_key_bytes(text) if text else DEFAULT_DETACH_KEYS
            detached = await relay(  # an exec's stdin is closed with the client's, but not a terminal's
                r.reader, r.writer, reader, writer, use_stdin, keys if process_tty else None, process_tty
            )
            if detached:  # dockerd 28's exec start takes its wrapped EscapeError for a failure and says so;
                record["_failed"] = True  # recorded as ended with 126, its process left running
                await _write_error(r, "exec attach failed: error on attach stdin: read escape sequence", tty)
        finally:
            execs.ended(c, record)
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


async def _write_error(r: Request, message: str, tty: bool) -> None:
    """``message`` on the exec's stdout, then the end of the stream: how dockerd reports start errors."""
    text = f"{message}\r\n".encode()
    r.writer.write(text if tty else frame("stdout", text))
    with contextlib.suppress(Exception):
        await r.writer.drain()
    r.writer.close()


def _stream_error(message: str, tty: bool) -> Response:
    """The hijacked stream carrying ``message`` on stdout."""

    async def hijack(r: Request) -> None:
        await _write_head(r, tty)
        await _write_error(r, message, tty)

    return Response(hijack=hijack)


async def resize(req: Request, daemon: Daemon) -> Response:
    height, width = uint32_value(req, "h", "resize height"), uint32_value(req, "w", "resize width")
    execs = daemon.containers.execs
    record = execs.get(req.match["name"])
    execs.running_container(record)
    await execs.resize(record, height, width)
    return Response(200, b"", [("Content-Type", "text/plain; charset=utf-8")])


def register(router: Router) -> None:
    router.add("POST", "/containers/{name}/exec", create)
    router.add("POST", "/exec/{name}/start", start)
    router.add("GET", "/exec/{name}/json", inspect)
    router.add("POST", "/exec/{name}/resize", resize)
