"""The container record and the JSON shapes dockerd shows for it (inspect, list).

One record per container, persisted as ``config.v2.json`` + ``hostconfig.json`` under
``<data-root>/containers/<id>/`` like dockerd, written atomically so kill -9 never leaves a
half-written file.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..fsutil import fsync_path
from ..gotime import now_rfc3339

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

__all__ = ["ZERO_TIME", "Container", "human_duration", "parse_rfc3339", "sync_records"]

ZERO_TIME = "0001-01-01T00:00:00Z"


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch for an RFC3339(Nano) UTC string; 0 for Go's zero time."""
    if not text or text.startswith("0001-"):
        return 0.0
    main, _, frac = text.rstrip("Z").partition(".")
    import calendar

    secs = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    return secs + (float("0." + frac) if frac else 0.0)


def human_duration(seconds: float) -> str:
    """go-units HumanDuration, as used in ``docker ps`` STATUS."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def _initial_state() -> dict[str, Any]:
    return {
        "Status": "created",
        "Running": False,
        "Paused": False,
        "Restarting": False,
        "OOMKilled": False,
        "Dead": False,
        "Pid": 0,
        "ExitCode": 0,
        "Error": "",
        "StartedAt": ZERO_TIME,
        "FinishedAt": ZERO_TIME,
    }


@dataclass
class Container:
    """Everything refd knows about one container."""

    id: str
    name: str  # with the leading slash, as dockerd stores it
    created: str
    path: str
    args: list[str]
    config: dict[str, Any]
    host_config: dict[str, Any]
    image_id: str
    root: str  # <data-root>/containers/<id>
    driver: str = "overlay2"
    state: dict[str, Any] = field(default_factory=_initial_state)
    restart_count: int = 0
    exec_ids: list[str] = field(default_factory=list)
    graph_driver: dict[str, Any] = field(default_factory=dict)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    network_settings: dict[str, Any] = field(default_factory=dict)
    #: network name -> the MAC address the container asked for there (its endpoint shows it only while up)
    desired_macs: dict[str, str] = field(default_factory=dict)
    has_been_started: bool = False
    has_been_manually_stopped: bool = False
    #: its next exit is the last whatever its restart policy (moby's ExitOnNext; not persisted)
    exit_on_next: bool = False
    #: stopped by a restart request: its exit is not the end of an auto-removed container (not persisted)
    has_been_manually_restarted: bool = False
    #: the host directory its /dev/shm comes from while it runs ("" for a private one or none)
    shm_path: str = ""
    size_rw: int | None = None  # filled by the API when a client asks for ?size=1
    size_root_fs: int | None = None

    # -- paths -------------------------------------------------------------------------------------
    @property
    def log_path(self) -> str:
        """The file refd's log readers use: json-file's, or the local driver's (none for ``none``)."""
        driver = self.host_config.get("LogConfig", {}).get("Type", "json-file")
        if driver == "local":
            return os.path.join(self.root, "local-logs", "container.log")
        if driver != "json-file":
            return ""
        return os.path.join(self.root, f"{self.id}-json.log")

    def file(self, name: str) -> str:
        return os.path.join(self.root, name)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    # -- state helpers -----------------------------------------------------------------------------
    @property
    def status(self) -> str:
        return str(self.state["Status"])

    @property
    def running(self) -> bool:
        return bool(self.state["Running"])

    def set_running(self, pid: int) -> None:
        self.state.update(
            Status="running",
            Running=True,
            Paused=False,
            Restarting=False,
            OOMKilled=False,
            Dead=False,
            Pid=pid,
            ExitCode=0,
            Error="",
            StartedAt=now_rfc3339(),
        )
        self.has_been_started = True

    def set_stopped(
        self, exit_code: int, oom_killed: bool = False, error: str = "", finished_at: str | None = None
    ) -> None:
        self.state.update(
            Status="exited",
            Running=False,
            Paused=False,
            Restarting=False,
            Pid=0,
            ExitCode=exit_code,
            OOMKilled=oom_killed,
            Error=error,
            FinishedAt=finished_at or now_rfc3339(),
        )

    def set_start_error(self, message: str, exit_code: int = 128) -> None:
        """A failed start leaves the container 'created' (never started) or 'exited' with the error."""
        self.state.update(Error=message, ExitCode=exit_code, Running=False, Pid=0)
        if self.has_been_started:
            self.state.update(Status="exited", FinishedAt=now_rfc3339())

    # -- API shapes --------------------------------------------------------------------------------
    def human_status(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        status = self.status
        if status == "created":
            return "Created"
        if status in ("running", "paused"):
            up = f"Up {human_duration(now - parse_rfc3339(self.state['StartedAt']))}"
            if status == "paused":
                return up + " (Paused)"  # dockerd shows no health while paused
            health = self.state.get("Health")
            if isinstance(health, dict):
                status_text = health.get("Status") or "unhealthy"
                up += " (health: starting)" if status_text == "starting" else f" ({status_text})"
            return up
        if status == "restarting":
            return (
                f"Restarting ({self.state['ExitCode']}) "
                f"{human_duration(now - parse_rfc3339(self.state['FinishedAt']))} ago"
            )
        if status == "removing":
            return "Removal In Progress"
        if status == "dead":
            return "Dead"
        finished = parse_rfc3339(self.state["FinishedAt"])
        if not finished:
            return f"Exited ({self.state['ExitCode']})"
        return f"Exited ({self.state['ExitCode']}) {human_duration(now - finished)} ago"

    def command_string(self) -> str:
        """``Path`` and ``Args`` as ``docker ps`` shows them: arguments with spaces in single quotes."""
        if not self.args:
            return self.path
        return self.path + " " + " ".join(f"'{a}'" if " " in a else a for a in self.args)

    def inspect(self, size: bool = False) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "Id": self.id,
            "Created": self.created,
            "Path": self.path,
            "Args": list(self.args),
            "State": dict(self.state),
            "Image": self.image_id,
            "ResolvConfPath": self.file("resolv.conf") if self.has_been_started else "",
            "HostnamePath": self.file("hostname") if self.has_been_started else "",
            "HostsPath": self.file("hosts") if self.has_been_started else "",
            # dockerd shows a LogPath only for json-file
            "LogPath": self.log_path if self.has_been_started and self.log_path.endswith("-json.log") else "",
            "Name": self.name,
            "RestartCount": self.restart_count,
            "Driver": self.driver,
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": list(self.exec_ids) or None,
            "HostConfig": self.host_config,
            "GraphDriver": self.graph_driver or {"Data": None, "Name": self.driver},
        }
        if size:
            doc["SizeRw"] = self.size_rw or 0
            doc["SizeRootFs"] = self.size_root_fs or 0
        doc.update(Mounts=self.public_mounts(), Config=self.config, NetworkSettings=self.network_settings)
        return doc

    @property
    def image_name(self) -> str:
        """The image as the container was created from it (its name, else its ID): ``docker ps``'s IMAGE."""
        return str(self.config.get("Image") or self.image_id)

    def summary(self, image_name: str) -> dict[str, Any]:
        labels = self.config.get("Labels") or {}
        networks = self.network_settings.get("Networks") or {}
        return {
            "Id": self.id,
            "Names": [self.name],
            "Image": image_name,
            "ImageID": self.image_id,
            "Command": self.command_string(),
            "Created": int(parse_rfc3339(self.created)),
            "Ports": _port_summary(self.network_settings.get("Ports") or {}),
            "Labels": labels,
            "State": self.status,
            "Status": self.human_status(),
            "HostConfig": self._summary_host_config(),
            "NetworkSettings": {"Networks": networks},
            "Mounts": self.public_mounts(),
        }

    def _summary_host_config(self) -> dict[str, Any]:
        """The list's ``HostConfig``: the network mode, and the annotations when there are (omitempty)."""
        out: dict[str, Any] = {"NetworkMode": self.host_config.get("NetworkMode", "default")}
        if self.host_config.get("Annotations"):
            out["Annotations"] = dict(self.host_config["Annotations"])
        return out

    def public_mounts(self) -> list[dict[str, Any]]:
        """The mount points as inspect and ``docker ps`` show them (what refd keeps besides stays out)."""
        from .mountparse import public_view

        return [public_view(m) for m in self.mounts]

    # -- persistence -------------------------------------------------------------------------------
    def to_record(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "Name": self.name,
            "Created": self.created,
            "Path": self.path,
            "Args": self.args,
            "Config": self.config,
            "Image": self.image_id,
            "Driver": self.driver,
            "State": self.state,
            "RestartCount": self.restart_count,
            "ExecIDs": self.exec_ids,
            "GraphDriver": self.graph_driver,
            "MountPoints": self.mounts,
            "NetworkSettings": self.network_settings,
            "DesiredMacAddresses": self.desired_macs,
            "HasBeenStartedBefore": self.has_been_started,
            "HasBeenManuallyStopped": self.has_been_manually_stopped,
            "ShmPath": self.shm_path,
        }

    def save(self) -> None:
        os.makedirs(self.root, mode=0o710, exist_ok=True)
        _atomic_json(self.file("config.v2.json"), self.to_record(), 0o600)
        _atomic_json(self.file("hostconfig.json"), self.host_config, 0o644)

    @classmethod
    def load(cls, root: str) -> Container:
        with open(os.path.join(root, "config.v2.json")) as fh:
            rec = json.load(fh)
        with open(os.path.join(root, "hostconfig.json")) as fh:
            host_config = json.load(fh)
        return cls(
            id=rec["ID"],
            name=rec["Name"],
            created=rec["Created"],
            path=rec["Path"],
            args=rec["Args"],
            config=rec["Config"],
            host_config=host_config,
            image_id=rec["Image"],
            root=root,
            driver=rec.get("Driver", "overlay2"),
            state=rec["State"],
            restart_count=rec.get("RestartCount", 0),
            exec_ids=[],
            graph_driver=rec.get("GraphDriver") or {},
            mounts=rec.get("MountPoints") or [],
            network_settings=rec.get("NetworkSettings") or {},
            desired_macs=dict(rec.get("DesiredMacAddresses") or {}),
            has_been_started=rec.get("HasBeenStartedBefore", False),
            has_been_manually_stopped=rec.get("HasBeenManuallyStopped", False),
            shm_path=str(rec.get("ShmPath") or ""),
        )


def _atomic_json(path: str, data: Any, mode: int) -> None:
    """Temp file + rename: a kill -9 never leaves a torn record. The fsync runs on a worker thread.

    A container is saved at create, start and exit; on the event loop each fsync cost 0.4 ms on
    an idle disk and 5-10 ms on a busy one, stalling every other request (dockerd syncs in its
    own goroutines). :func:`sync_records` waits for the queue (refd's shutdown).
    """
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, separators=(",", ":"))
    except OSError:
        with contextlib.suppress(OSError):  # no half-written temp file left behind (a full disk)
            os.unlink(tmp)
        raise
    os.replace(tmp, path)
    global _SYNCER
    if _SYNCER is None:
        from concurrent.futures import ThreadPoolExecutor  # on the first save: not at boot

        _SYNCER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="refd-fsync")
    _SYNCER.submit(fsync_path, path)


_SYNCER: ThreadPoolExecutor | None = None


def sync_records() -> None:
    """Wait until every saved record has been fsynced."""
    global _SYNCER
    if _SYNCER is not None:
        _SYNCER.shutdown(wait=True)
        _SYNCER = None


def _port_summary(ports: dict[str, Any]) -> list[dict[str, Any]]:
    from ..network.ports import port_summary

    return port_summary(ports)
