"""Container endpoints: create, list, inspect, lifecycle, wait, remove, rename, pause, logs, attach.

Handlers validate and translate; ContainerManager owns state. Streams (logs, attach) use
dockerd's content types: ``application/vnd.docker.multiplexed-stream`` for non-TTY
containers from API 1.42, ``application/vnd.docker.raw-stream`` otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..containers.attach import DEFAULT_DETACH_KEYS, attach_when_running, detach_key_bytes, relay
from ..containers.changes import fill_sizes
from ..containers.health import check_health_filter
from ..containers.listing import LIST_FILTERS, listed
from ..containers.logs import container_logs
from ..containers.model import Container
from ..containers.signals import parse_signal
from ..errors import ApiError, conflict, invalid
from ..httpd import Request, Response
from ..logs.jsonfile import frame
from ..logs.reader import replay
from ..query import bool_value, parse_filters, parse_timestamp, uint32_value
from ..server import json_response, read_json, version_tuple

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..server import Router

__all__ = ["register"]


def _container(req: Request, daemon: Daemon) -> Container:
    return daemon.containers.get(req.match["name"])


# -- create / inspect / list -------------------------------------------------------------------------
async def create(req: Request, daemon: Daemon) -> Response:
    body = await read_json(req)
    if body is None:
        raise invalid("config cannot be empty in order to create a container")
    from ..bodytypes import CONTAINER_CREATE
    from ..gotypes import check

    check(body, CONTAINER_CREATE)  # Go's decode: a wrong type is a 400, not a crash further in
    healthcheck = body.get("Healthcheck") if isinstance(body, dict) else None
    if isinstance(healthcheck, dict) and version_tuple(req.api_version) < (1, 44):
        healthcheck["StartInterval"] = 0  # added in API 1.44: older clients cannot set it
    endpoints = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    mode = (body.get("HostConfig") or {}).get("NetworkMode") or "default"
    if mode == "default" and "default" in endpoints:  # moby's router: "default" is the bridge, from here on
        endpoints["bridge"] = endpoints.pop("default")
    if version_tuple(req.api_version) < (1, 44) and len(endpoints) > 1:  # several networks at create: 1.44
        raise invalid(f"Container cannot be created with multiple network endpoints: {', '.join(endpoints)}")
    from ..containers.create import migrate_mac_address
    from ..containers.mountparse import api_version_gates

    version = version_tuple(req.api_version)
    platform = _create_platform(req, version)
    _older_api_create(body, version)
    host_config = body.get("HostConfig")
    ro_non_recursive = api_version_gates(host_config, version) if isinstance(host_config, dict) else False
    mac_warnings = migrate_mac_address(body, version)
    c, warnings = daemon.containers.create(
        body, req.arg("name"), platform=platform, default_ro_non_recursive=ro_non_recursive
    )
    return json_response({"Id": c.id, "Warnings": [*warnings, *mac_warnings]}, 201)


def _create_platform(req: Request, version: tuple[int, ...]) -> tuple[str, str, str] | None:
    """``?platform=`` (API 1.41+), parsed as containerd's platforms.Parse; a bad one is a 400."""
    text = req.arg("platform")
    if not text or version < (1, 41):
        return None
    from ..builder.platforms import parse_platform

    try:
        return parse_platform(text)
    except ValueError as exc:
        raise invalid(str(exc)) from None


def _older_api_create(body: dict[str, Any], version: tuple[int, ...]) -> None:
    """What moby's postContainersCreate does for older API versions: an empty ``IpcMode`` is
    ``shareable`` before 1.40, ``ConsoleSize`` (1.42) and ``Annotations`` (1.43) are dropped."""
    host_config = body.get("HostConfig")
    if host_config is None and version < (1, 40):
        host_config = body["HostConfig"] = {}
    if version < (1, 40) and isinstance(host_config, dict) and not host_config.get("IpcMode"):
        host_config["IpcMode"] = "shareable"  # what older clients expect the default to be
    if version < (1, 42) and isinstance(host_config, dict):
        host_config["ConsoleSize"] = [0, 0]  # not respected by a Linux daemon before 1.42
    if version < (1, 43) and isinstance(host_config, dict):
        host_config.pop("Annotations", None)


async def inspect(req: Request, daemon: Daemon) -> Response:
    c = _container(req, daemon)
    daemon.containers.execs.prune_ended(c)
    size = bool_value(req, "size")
    if size:
        await fill_sizes(daemon, c)
    return json_response(c.inspect(size=size))


def list_containers_now(req: Request, daemon: Daemon) -> Response | None:
    """``GET /containers/json`` answered synchronously; None with ``size`` (that reads the disk)."""
    if not req.query and not daemon.containers.by_id:
        return json_response([])
    if bool_value(req, "size"):
        return None
    filters = parse_filters(req.arg("filters"), set(LIST_FILTERS))
    check_health_filter(filters.get("health") or [])
    return json_response(_for_version(req, daemon.containers.summaries(_listed(req, daemon, filters))))


def _for_version(req: Request, summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``HostConfig.Annotations`` in the list came with API 1.46."""
    if version_tuple(req.api_version) < (1, 46):
        for summary in summaries:
            summary["HostConfig"].pop("Annotations", None)
    return summaries


def _listed(req: Request, daemon: Daemon, filters: dict[str, list[str]]) -> list[Container]:
    from ..gotypes import atoi

    # dockerd: strconv.Atoi, its error a 500 (int() took '³' for a digit and crashed)
    limit = atoi(req.arg("limit")) if req.arg("limit") else -1
    return listed(daemon.containers.by_id.values(), filters, bool_value(req, "all"), limit)


async def list_containers(req: Request, daemon: Daemon) -> Response:
    filters = parse_filters(req.arg("filters"), set(LIST_FILTERS))
    check_health_filter(filters.get("health") or [])
    listed = _listed(req, daemon, filters)
    summaries = daemon.containers.summaries(listed)
    for c, summary in zip(listed, summaries, strict=True):
        if bool_value(req, "size"):
            await fill_sizes(daemon, c)
            if c.size_rw:
                summary["SizeRw"] = c.size_rw  # omitempty, as in dockerd's ContainerSummary
            if c.size_root_fs:
                summary["SizeRootFs"] = c.size_root_fs
    return json_response(_for_version(req, summaries))


# -- lifecycle ---------------------------------------------------------------------------------------
async def start(req: Request, daemon: Daemon) -> Response:
    c = _container(req, daemon)
    if req.has_body:
        body = await req.body()
        if body.strip() not in (b"", b"null", b"{}"):
            raise invalid(
                "starting container with non-empty request body was deprecated since API v1.22 and "
                "removed in v1.24"
            )
    if c.running:
        return Response(304)
    await daemon.containers.start(c)
    return Response(204)


def _stop_timeout(req: Request) -> float | None:
    """``t`` as dockerd parses it (strconv.Atoi, before the container is looked up); None: the default."""
    from ..gotypes import atoi

    return float(atoi(req.arg("t"))) if req.arg("t") else None


async def stop(req: Request, daemon: Daemon) -> Response:
    timeout = _stop_timeout(req)
    c = _container(req, daemon)
    signo = parse_signal(req.arg("signal"), 0) if req.arg("signal") else None
    stopped = await daemon.containers.stop(c, signo or None, timeout)
    return Response(204 if stopped else 304)


async def kill(req: Request, daemon: Daemon) -> Response:
    c = _container(req, daemon)
    name = req.match["name"]
    try:
        signo = parse_signal(req.arg("signal") or "SIGKILL")
    except ApiError as exc:  # dockerd 28: "cannot kill container: <ref>: invalid signal: X"
        raise invalid(f"cannot kill container: {name}: {exc.message}") from None
    if not c.running:
        raise conflict(f"cannot kill container: {name}: container {c.id} is not running")
    await daemon.containers.kill(c, signo)
    if signo == 9:
        event = daemon.containers.exit_events.get(c.id)
        if event is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), 10)
    return Response(204)


async def restart(req: Request, daemon: Daemon) -> Response:
    timeout = _stop_timeout(req)
    c = _container(req, daemon)
    signo = parse_signal(req.arg("signal"), 0) if req.arg("signal") else None
    await daemon.containers.restart(c, signo or None, timeout, ref=req.match["name"])
    return Response(204)


async def wait(req: Request, daemon: Daemon) -> Response:
    c = _container(req, daemon)
    condition = req.arg("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise invalid(f"invalid condition: {condition!r}")

    async def stream() -> AsyncIterator[bytes]:
        yield b""
        result = await daemon.containers.wait(c, condition)
        yield json.dumps(result, separators=(",", ":")).encode() + b"\n"

    return Response(200, headers=[("Content-Type", "application/json")], stream=stream())


async def remove(req: Request, daemon: Daemon) -> Response:
    c = _container(req, daemon)
    if bool_value(req, "link"):
        daemon.containers.remove_link(req.match["name"])
        return Response(204)
    await daemon.containers.remove(
        c, force=bool_value(req, "force"), volumes=bool_value(req, "v"), ref=req.match["name"]
    )
    return Response(204)


async def rename(req: Request, daemon: Daemon) -> Response:
    c = _container(req, daemon)
    name = req.arg("name")
    try:
        daemon.containers.rename(c, name)
    except ApiError as exc:
        if not exc.message.startswith("Invalid container name ("):
            raise
        # dockerd 28 reserves the name with its slash and wraps the refusal (moby daemon/rename.go)
        slashed = "/" + name.removeprefix("/")
        raise ApiError(
            exc.status,
            "Error when allocating new name: " + exc.message.replace(f"({name})", f"({slashed})", 1),
        ) from None
    return Response(204)


async def pause(req: Request, daemon: Daemon) -> Response:
    await daemon.containers.pause(_container(req, daemon))
    return Response(204)


async def unpause(req: Request, daemon: Daemon) -> Response:
    await daemon.containers.unpause(_container(req, daemon))
    return Response(204)


async def resize(req: Request, daemon: Daemon) -> Response:
    height, width = uint32_value(req, "h", "resize height"), uint32_value(req, "w", "resize width")
    c = _container(req, daemon)
    await daemon.containers.resize(c, height, width)
    return Response(200, b"", [("Content-Type", "text/plain; charset=utf-8")])


async def prune(req: Request, daemon: Daemon) -> Response:
    filters = parse_filters(req.arg("filters"), {"until", "label", "label!"})
    until: float | None = None
    if filters.get("until"):  # moby daemon/prune.go getUntilFromPruneFilters
        if len(filters["until"]) > 1:
            raise ApiError(500, "more than one until filter specified")
        until = parse_timestamp(filters["until"][0], time.time())
    deleted, reclaimed = await daemon.containers.prune(filters, until)
    return json_response({"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed})


# -- logs --------------------------------------------------------------------------------------------
def _rfc3339_fixed(entry_ts: str) -> str:
    main, _, frac = entry_ts.rstrip("Z").partition(".")
    return f"{main}.{(frac + '000000000')[:9]}Z"


async def logs(req: Request, daemon: Daemon) -> Response:
    stdout, stderr = bool_value(req, "stdout"), bool_value(req, "stderr")
    if not stdout and not stderr:
        raise invalid("Bad parameters: you must choose at least one stream")
    c = _container(req, daemon)
    now = time.time()
    since = parse_timestamp(req.arg("since"), now) or 0.0
    until = parse_timestamp(req.arg("until"), now) or 0.0
    tail_arg = req.arg("tail") or "all"
    tail = -1 if tail_arg == "all" else int(tail_arg) if tail_arg.lstrip("-").isdigit() else -1
    reader = container_logs(c, since, until, tail, bool_value(req, "follow"))
    timestamps = bool_value(req, "timestamps")
    multiplexed = not c.config.get("Tty")
    ctype = (
        "application/vnd.docker.multiplexed-stream"
        if multiplexed and version_tuple(req.api_version) >= (1, 42)
        else "application/vnd.docker.raw-stream"
    )

    def render(entry: dict[str, Any]) -> bytes | None:
        stream = entry.get("stream", "stdout")
        if (stream == "stdout" and not stdout) or (stream == "stderr" and not stderr):
            return None
        data = str(entry.get("log", "")).encode()
        if timestamps:
            data = _rfc3339_fixed(str(entry.get("time", ""))).encode() + b" " + data
        return frame(stream, data) if multiplexed else data

    async def stream() -> AsyncIterator[bytes]:
        reader.open()
        try:
            yield b""
            batch: list[bytes] = []  # what is on disk goes out in ~64 KiB writes, not one per line
            size = 0
            for entry in reader.backlog():
                piece = render(entry)
                if piece:
                    batch.append(piece)
                    size += len(piece)
                    if size >= 65536:
                        yield b"".join(batch)
                        batch, size = [], 0
            if batch:
                yield b"".join(batch)
            async for entry in reader.follow():
                piece = render(entry)
                if piece:
                    yield piece
        finally:
            reader.close()

    return Response(200, headers=[("Content-Type", ctype)], stream=stream())


# -- attach ------------------------------------------------------------------------------------------
def _attach_error(exc: ApiError) -> Response:
    """dockerd hijacks before it looks the container up: errors come as a raw HTTP answer on the socket."""
    from http import HTTPStatus

    async def hijack(r: Request) -> None:
        reason = HTTPStatus(exc.status).phrase
        r.writer.write(
            f"HTTP/1.1 {exc.status} {reason}\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n"
            f"{exc.message}\r\n".encode()
        )
        with contextlib.suppress(Exception):
            await r.writer.drain()
        r.writer.close()

    return Response(hijack=hijack)


async def attach(req: Request, daemon: Daemon) -> Response:
    keys_text = req.arg("detachKeys")
    try:
        detach_keys = detach_key_bytes(keys_text) if keys_text else DEFAULT_DETACH_KEYS
    except ValueError:
        return _attach_error(invalid(f"Invalid detach keys ({keys_text}) provided"))
    try:
        c = _container(req, daemon)
    except ApiError as exc:
        return _attach_error(exc)
    use_stdin, use_stdout, use_stderr = (
        bool_value(req, "stdin"),
        bool_value(req, "stdout"),
        bool_value(req, "stderr"),
    )
    want_logs, want_stream = bool_value(req, "logs"), bool_value(req, "stream")
    tty = bool(c.config.get("Tty"))
    upgrade = "upgrade" in req.headers
    ctype = "application/vnd.docker.raw-stream"
    if upgrade and not tty and version_tuple(req.api_version) >= (1, 42):
        ctype = "application/vnd.docker.multiplexed-stream"
    manager = daemon.containers

    async def hijack(r: Request) -> None:
        if upgrade:
            head = (
                f"HTTP/1.1 101 UPGRADED\r\nContent-Type: {ctype}\r\nConnection: Upgrade\r\n"
                "Upgrade: tcp\r\n\r\n"
            )
        else:
            head = "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n"
        r.writer.write(head.encode())
        await r.writer.drain()
        if want_logs and c.log_path:
            for stream, data in replay(c.log_path, use_stdout, use_stderr):
                r.writer.write(data if tty else frame(stream, data))
            await r.writer.drain()
        if not want_stream:
            r.writer.close()
            return
        manager.emit(c, "attach")
        request = {"op": "attach", "stdin": use_stdin, "stdout": use_stdout, "stderr": use_stderr}

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # moby copies stdin through the escape proxy only for TTY containers
            # moby: the container's stdin is closed with the client's only for StdinOnce without a TTY;
            # otherwise the end of the client's input ends the stream
            ends = tty or not c.config.get("StdinOnce")
            stdin = use_stdin and bool(c.config.get("OpenStdin"))
            keys = detach_keys if tty else None
            # moby closes attach streams in its exit handler, holding the container's lock until the
            # container is stopped and its networks released: a client that sees the stream end then
            # finds the container exited and can remove its networks (TestCreateWithMultiNetworks)
            handled = exited.wait if exited is not None else None
            if await relay(r.reader, r.writer, reader, writer, stdin, keys, ends, handled):
                manager.emit(c, "detach")

        # the exit this stream ends with: the running process's, or (registered before the start, which
        # keeps it) the next start's; a fast process's output can end before refd marks it running
        exited = (
            manager.exit_events.get(c.id)
            if c.running
            else manager.exit_events.setdefault(c.id, asyncio.Event())
        )
        try:
            await attach_when_running(manager, c, request, pump)
        finally:
            with contextlib.suppress(Exception):
                r.writer.close()

    return Response(hijack=hijack)


def register(router: Router) -> None:
    router.add("POST", "/containers/create", create)
    router.add("GET", "/containers/json", list_containers, list_containers_now)
    router.add("POST", "/containers/prune", prune)
    # a container's name may be a legacy link's, "parent/alias" (moby routes "/containers/{name:.*}")
    router.add("GET", "/containers/{name:.+}/json", inspect)
    router.add("POST", "/containers/{name}/start", start)
    router.add("POST", "/containers/{name}/stop", stop)
    router.add("POST", "/containers/{name}/kill", kill)
    router.add("POST", "/containers/{name}/restart", restart)
    router.add("POST", "/containers/{name}/wait", wait)
    router.add("DELETE", "/containers/{name:.+}", remove)
    router.add("POST", "/containers/{name}/rename", rename)
    router.add("POST", "/containers/{name}/pause", pause)
    router.add("POST", "/containers/{name}/unpause", unpause)
    router.add("POST", "/containers/{name}/resize", resize)
    router.add("GET", "/containers/{name}/logs", logs)
    router.add("POST", "/containers/{name}/attach", attach)
