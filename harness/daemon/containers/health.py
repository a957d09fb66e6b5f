"""Container health checks, as moby ``daemon/health.go`` and ``container/health.go`` run them.

``Config.Healthcheck`` (from the image, merged field by field with the request at create) names a probe:
``["CMD", argv...]``, ``["CMD-SHELL", "command"]`` (run with ``Config.Shell`` or ``/bin/sh -c``) or
``["NONE"]``. While the container runs (and is not paused) a monitor task runs the probe as an exec in
the container (the shim's exec machinery, so ``exec_create``/``exec_start``/``exec_die`` events come
with it) every ``Interval`` (``StartInterval`` while starting within ``StartPeriod``), each probe
limited to ``Timeout``. ``State.Health`` keeps the status (``starting``, ``healthy``,
``unhealthy``), the failing streak and the last five results, output cut to 4096 bytes plus ``...``.
A status change is a ``health_status: <status>`` event. Stopping or pausing the container stops the
monitor and marks it ``unhealthy``, as dockerd does; a start resets it to ``starting``.

The manager calls :meth:`HealthChecks.on_event` from ``emit`` (start, die, pause, unpause, destroy),
so the lifecycle code needs no other hook.
"""

from __future__ import annotations

import contextlib
import json
import struct
import time
from typing import TYPE_CHECKING, Any

from ..errors import invalid
from ..gotime import go_duration, now_rfc3339
from ..shimstate import read_exec
from .execs import exec_failure_code
from .model import parse_rfc3339
from .shimclient import ShimConnection

if TYPE_CHECKING:
    import asyncio
else:
    from ..lazy import asyncio  # imported on first use: refd answers its first /_ping without it

if TYPE_CHECKING:
    from .lifecycle import ContainerManager
    from .model import Container

__all__ = [
    "HEALTH_STATUSES",
    "HealthChecks",
    "LimitedBuffer",
    "check_health_filter",
    "health_status",
    "merge_healthcheck",
    "normalise_healthcheck",
    "validate_healthcheck",
]

MAX_OUTPUT = 4096
MAX_LOG_ENTRIES = 5
DEFAULT_INTERVAL_NS = 30_000_000_000
DEFAULT_TIMEOUT_NS = 30_000_000_000
DEFAULT_START_INTERVAL_NS = 5_000_000_000
DEFAULT_RETRIES = 3
MINIMUM_DURATION_NS = 1_000_000  # container.MinimumDuration (1ms)
START_TIMEOUT = 30.0  # dockerd gives a wedged exec start 30s, not counted in the probe's timeout
HEALTH_STATUSES = ("none", "starting", "healthy", "unhealthy")
_FIELDS = ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries")
_DURATIONS = ("Interval", "Timeout", "StartPeriod", "StartInterval")


# -- configuration ---------------------------------------------------------------------------------
def _number(hc: dict[str, Any], key: str) -> int:
    value = hc.get(key) or 0
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def validate_healthcheck(hc: Any) -> None:
    """dockerd's validateHealthCheck on the request's Healthcheck (before the image's is merged in)."""
    if not isinstance(hc, dict):
        return
    minimum = go_duration(MINIMUM_DURATION_NS)
    for key in ("Interval", "Timeout"):
        value = _number(hc, key)
        if value and value < MINIMUM_DURATION_NS:
            raise invalid(f"{key} in Healthcheck cannot be less than {minimum}")
    if _number(hc, "Retries") < 0:
        raise invalid("Retries in Healthcheck cannot be negative")
    for key in ("StartPeriod", "StartInterval"):
        value = _number(hc, key)
        if value and value < MINIMUM_DURATION_NS:
            raise invalid(f"{key} in Healthcheck cannot be less than {minimum}")


def normalise_healthcheck(hc: dict[str, Any]) -> dict[str, Any]:
    """The HealthConfig as Go marshals it: every field is omitempty."""
    out: dict[str, Any] = {}
    for key in _FIELDS:
        value = hc.get(key)
        if key == "Test":
            if value:
                out[key] = [str(v) for v in value]
        elif _number(hc, key):
            out[key] = _number(hc, key)
    return out


def merge_healthcheck(request: dict[str, Any], image_config: dict[str, Any]) -> dict[str, Any] | None:
    """moby daemon/commit.go merge: the image's healthcheck fills what the request's leaves empty.

    Returns None when neither has one; a request's empty ``{}`` stays (dockerd shows it as ``{}``).
    """
    user = request.get("Healthcheck")
    image = image_config.get("Healthcheck")
    if not isinstance(user, dict):
        user = None
    if not isinstance(image, dict):
        image = None
    if image is None:
        return None if user is None else normalise_healthcheck(user)
    if user is None:
        return normalise_healthcheck(image)
    merged = dict(user)
    if not merged.get("Test"):
        merged["Test"] = image.get("Test")
    for key in (*_DURATIONS, "Retries"):
        if not _number(merged, key):
            merged[key] = image.get(key) or 0
    return normalise_healthcheck(merged)


def probe_command(c: Container) -> list[str] | None:
    """The probe's argv (getProbe): None for no healthcheck, ``NONE`` or an unknown type."""
    hc = c.config.get("Healthcheck") or {}
    test = list(hc.get("Test") or [])
    if not test or test[0] not in ("CMD", "CMD-SHELL"):
        return None
    cmd = [str(a) for a in test[1:]]
    if test[0] == "CMD-SHELL":
        cmd = [*(c.config.get("Shell") or ["/bin/sh", "-c"]), *cmd]
    return cmd


def health_status(c: Container) -> str:
    """The status the ``health`` list filter matches: ``none`` without a health state."""
    health = c.state.get("Health")
    if not isinstance(health, dict):
        return "none"
    return str(health.get("Status") or "unhealthy")  # an unset status reads as unhealthy (Health.Status)


def check_health_filter(values: list[str]) -> None:
    """dockerd validates every ``health=`` value before listing anything."""
    for value in values:
        if value not in HEALTH_STATUSES:
            raise invalid(
                f"invalid filter 'health={value}': invalid value for health ({value}): must be one of "
                + ", ".join(HEALTH_STATUSES)
            )


class LimitedBuffer:
    """Probe output: the first 4096 bytes, then ``...`` if more was written (dockerd's limitedBuffer)."""

    def __init__(self, limit: int = MAX_OUTPUT) -> None:
        self.limit = limit
        self.data = bytearray()
        self.truncated = False

    def write(self, chunk: bytes) -> None:
        keep = min(self.limit - len(self.data), len(chunk))
        if keep > 0:
            self.data += chunk[:keep]
        if keep < len(chunk):
            self.truncated = True

    def text(self) -> str:
        out = self.data.decode("utf-8", errors="replace")  # Go's JSON encoder replaces invalid UTF-8
        return out + "..." if self.truncated else out


class ProbeError(Exception):
    """A probe that could not run; ``str()`` is what dockerd records as the result's output."""


# -- the monitor -----------------------------------------------------------------------------------
class HealthChecks:
    """The health monitors of one daemon's containers (one task per running container with a probe)."""

    def __init__(self, manager: ContainerManager) -> None:
        self.manager = manager
        self.monitors: dict[str, asyncio.Task[None]] = {}
        self.probe_execs: dict[str, list[str]] = {}  # container id -> recent probe exec ids

    # -- lifecycle hooks ---------------------------------------------------------------------------
    def on_event(self, c: Container, action: str) -> None:
        """Follow the container's lifecycle events (called by ContainerManager.emit)."""
        if action == "start":
            self.init(c)
        elif action in ("die", "pause"):
            self.stop(c)
        elif action == "unpause":
            self.update(c)
        elif action == "destroy":
            self.stop(c)
            for exec_id in self.probe_execs.pop(c.id, []):
                self.manager.execs.forget(exec_id)

    def init(self, c: Container) -> None:
        """A (re)started or restored container: status ``starting``, streak 0, the log kept."""
        if probe_command(c) is None:
            return
        self.stop(c, mark=False)
        health = c.state.get("Health")
        if isinstance(health, dict):
            health.update(Status="starting", FailingStreak=0)
            health.setdefault("Log", [])
        else:
            c.state["Health"] = {"Status": "starting", "FailingStreak": 0, "Log": []}
        self.update(c)

    def update(self, c: Container) -> None:
        """Run the monitor exactly when the container runs, is not paused and has a probe."""
        health = c.state.get("Health")
        if not isinstance(health, dict):
            return
        want = c.running and c.status != "paused" and probe_command(c) is not None
        if not want:
            self.stop(c)
        elif c.id not in self.monitors:
            self.monitors[c.id] = asyncio.ensure_future(self._monitor(c))

    def stop(self, c: Container, mark: bool = True) -> None:
        """Stop the monitor (and a probe in flight); dockerd then reports ``unhealthy``."""
        task = self.monitors.pop(c.id, None)
        if task is None:
            return
        task.cancel()
        health = c.state.get("Health")
        if mark and isinstance(health, dict) and health.get("Status") != "unhealthy":
            health["Status"] = "unhealthy"
            if c.id in self.manager.by_id:
                with contextlib.suppress(OSError):
                    c.save()

    # -- the loop ----------------------------------------------------------------------------------
    async def _monitor(self, c: Container) -> None:
        hc = c.config.get("Healthcheck") or {}
        interval = (_number(hc, "Interval") or DEFAULT_INTERVAL_NS) / 1e9
        start_interval = (_number(hc, "StartInterval") or DEFAULT_START_INTERVAL_NS) / 1e9
        start_period = _number(hc, "StartPeriod") / 1e9
        started = parse_rfc3339(str(c.state.get("StartedAt") or ""))

        def next_interval() -> float:
            if time.time() - started >= start_period:
                return interval
            return start_interval if health_status(c) == "starting" else interval

        log = self.manager.daemon.log
        me = asyncio.current_task()
        while True:
            await asyncio.sleep(next_interval())
            if self.monitors.get(c.id) is not me:
                # stopped, but the cancel was lost: Python 3.11's wait_for returns a result that was ready
                # when the cancel came (the probe's output ended as the container died), so the task lives on
                return
            log.debug(f"Running health check for container {c.id} ...")
            begun, begun_text = time.time(), now_rfc3339()
            try:
                result = await self._probe(c)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure to run the probe is a failed check, not a crash
                log.warning(f"Health check for container {c.id} error: {exc}")
                result = {"End": now_rfc3339(), "ExitCode": -1, "Output": str(exc)}
            else:
                log.debug(f"Health check for container {c.id} done (exitCode={result['ExitCode']})")
            self._record(c, {"Start": begun_text, **result}, begun, start_period, started)

    def _record(
        self, c: Container, result: dict[str, Any], begun: float, start_period: float, started: float
    ) -> None:
        """handleProbeResult: the log, the failing streak, the status and its event."""
        health = c.state.get("Health")
        if not isinstance(health, dict) or c.id not in self.monitors:
            return  # the monitor was stopped while this probe ran: its result is dropped
        hc = c.config.get("Healthcheck") or {}
        retries = _number(hc, "Retries") or DEFAULT_RETRIES
        old = health_status(c)
        entry = {k: result[k] for k in ("Start", "End", "ExitCode", "Output")}
        health["Log"] = [*(health.get("Log") or []), entry][-MAX_LOG_ENTRIES:]
        if entry["ExitCode"] == 0:
            health.update(FailingStreak=0, Status="healthy")
        elif not (old == "starting" and begun - started < start_period):
            health["FailingStreak"] = int(health.get("FailingStreak") or 0) + 1
            if health["FailingStreak"] >= retries:
                health["Status"] = "unhealthy"
        new = health_status(c)
        if new != old:
            self.manager.emit(c, f"health_status: {new}")

    # -- one probe ---------------------------------------------------------------------------------
    async def _probe(self, c: Container) -> dict[str, Any]:
        """Run the probe once as an exec in the container; its End, ExitCode and Output."""
        from .spec import exec_process_spec

        cmd = probe_command(c)
        if not cmd:
            raise ProbeError(f"healthcheck for container {c.id} has no command to run")
        manager = self.manager
        body = {"Cmd": cmd, "User": c.config.get("User") or "", "AttachStdout": True, "AttachStderr": True}
        record = manager.execs.create(c, body, started=True)
        exec_id = record["ID"]
        recent = self.probe_execs.setdefault(c.id, [])
        recent.append(exec_id)
        for old in recent[:-MAX_LOG_ENTRIES]:
            manager.execs.forget(old)
        del recent[:-MAX_LOG_ENTRIES]
        line = f"{cmd[0]} {' '.join(cmd[1:])}"  # dockerd: Entrypoint + " " + Args (a trailing space if none)
        manager.emit(c, f"exec_create: {line}", execID=exec_id)
        manager.emit(c, f"exec_start: {line}", execID=exec_id)
        state_dir = manager.state_dir(c)
        request = {
            "Cmd": cmd,
            "User": c.config.get("User") or "",
            "WorkingDir": c.config.get("WorkingDir") or "",
        }
        shim_request = {
            "op": "exec",
            "id": exec_id,
            "process": exec_process_spec(manager.daemon, c, request, False),
            "tty": False,
            "stdin": False,
            "attach": True,
        }
        output = LimitedBuffer()
        writer: asyncio.StreamWriter | None = None
        try:
            try:
                reader, writer = await ShimConnection.open(state_dir, shim_request)
                first = json.loads(await asyncio.wait_for(reader.readline(), START_TIMEOUT) or b"{}")
            except TimeoutError:
                raise ProbeError(f"timed out starting health check for container {c.id}") from None
            except (OSError, ValueError) as exc:
                raise ProbeError(f"container {c.id} is not running: {exc}") from None
            if "error" in first:
                inner = str(first["error"])
                record.update(Running=False, ExitCode=exec_failure_code(inner), Pid=0)
                raise ProbeError(
                    f"OCI runtime exec failed: exec failed: unable to start container process: {inner}"
                )
            record.update(Running=True, Pid=int(first.get("pid") or 0))
            hc = c.config.get("Healthcheck") or {}
            timeout_ns = _number(hc, "Timeout") or DEFAULT_TIMEOUT_NS
            reading = asyncio.ensure_future(_read_frames(reader, output))
            try:
                await asyncio.wait_for(asyncio.shield(reading), timeout_ns / 1e9)
            except TimeoutError:
                manager.daemon.log.debug(f"Health check for container {c.id} taking too long")
                await self._kill(state_dir, exec_id)
                # wait for the probe to die (they must not pile up), not for an orphan holding its stdout
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(reading), 2)
                reading.cancel()
                self._finish(c, record, timed_out=True)
                out = output.text()
                message = f"Health check exceeded timeout ({go_duration(timeout_ns)})"
                return {
                    "End": now_rfc3339(),
                    "ExitCode": -1,
                    "Output": f"{message}: {out}" if out else message,
                }
            except asyncio.CancelledError:
                await self._kill(state_dir, exec_id)
                reading.cancel()
                raise
            self._finish(c, record)
            if record["ExitCode"] is None:
                raise ProbeError(f"healthcheck for container {c.id} has no exit code")
            return {"End": now_rfc3339(), "ExitCode": int(record["ExitCode"]), "Output": output.text()}
        finally:
            if writer is not None:
                writer.close()
            with contextlib.suppress(ValueError):
                c.exec_ids.remove(exec_id)  # dockerd drops ended execs from the container's ExecIDs

    async def _kill(self, state_dir: str, exec_id: str) -> None:
        with contextlib.suppress(OSError, ValueError, ConnectionError, TimeoutError):
            await ShimConnection.call(state_dir, {"op": "kill", "signal": 9, "target": exec_id}, timeout=5)

    def _finish(self, c: Container, record: dict[str, Any], timed_out: bool = False) -> None:
        """The exec's exit from the shim's record; the ``exec_die`` event."""
        raw = (read_exec(self.manager.state_dir(c), record["ID"]) or {}).get("exit_code")
        code: int | None = None
        with contextlib.suppress(ValueError, TypeError):
            code = None if raw is None else int(raw)
        # a probe cancelled on timeout ends with dockerd's default exit code for a failed exec: 126
        record.update(Running=False, Pid=0, ExitCode=126 if timed_out else code)
        if code is not None and c.id in self.manager.by_id:  # never an event after the container's destroy
            self.manager.emit(c, "exec_die", execID=record["ID"], exitCode=str(code))


async def _read_frames(reader: asyncio.StreamReader, out: LimitedBuffer) -> None:
    """Demultiplex the shim's stdout/stderr frames into one buffer until the exec ends."""
    pending = b""
    while chunk := await reader.read(65536):
        pending += chunk
        while len(pending) >= 8:
            size = struct.unpack(">I", pending[4:8])[0]
            if len(pending) < 8 + size:
                break
            out.write(pending[8 : 8 + size])
            pending = pending[8 + size :]
