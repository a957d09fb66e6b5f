"""Container lifecycle in refd (moby ``daemon/create.go``, ``start.go``, ``stop.go``, ``kill.go``,
``wait.go``, ``pause.go``, ``delete.go``, ``rename.go``, ``monitor.go``): create, start (through a shim),
stop, kill, wait, pause, remove, rename; exits, restart policies, restore after a refd restart.

:class:`ContainerManager` is ``daemon.containers``, what the API handlers and the builder call. It holds
the pieces it coordinates: the records (:class:`.store.ContainerStore`), the mounts
(:class:`.mounts.MountWiring`), the network (:class:`.networking.NetworkWiring`), the execs, the
health monitors and the shim launcher. Exits reach it from a monitor task per running container (a
``wait`` on the shim socket), or from ``exit.json`` when refd was down at the time.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import ApiError, conflict, invalid, not_found, system
from ..events import make_event
from ..gotime import now_rfc3339
from .attach import background
from .create import build_config, build_host_config, command_of, validate_request, verify_host_config
from .execs import ExecStore
from .model import Container
from .mounts import MountWiring
from .networking import NetworkWiring
from .restartpolicy import restart_delay, should_restart
from .shimclient import ShimConnection
from .signals import parse_signal
from .store import ContainerStore

if TYPE_CHECKING:
    import asyncio
else:
    from ..lazy import asyncio  # imported on first use: refd answers its first /_ping without it

if TYPE_CHECKING:
    from ..daemon import Daemon

__all__ = ["ContainerManager", "PendingAttach"]

#: a client waiting for a created container's start: called with its shim's state dir (None: it failed)
PendingAttach = Callable[[str | None], Awaitable[None]]


def _discard_unsupported(host_config: dict[str, Any]) -> list[str]:
    """dockerd's verifyPlatformContainerResources for a missing pids controller: warn and drop the limit
    (refd's start failed with 'cgroup controller "pids" is not available' instead)."""
    from .update import sysinfo

    pids = host_config.get("PidsLimit")
    if pids is None or sysinfo().pids_limit:
        return []
    host_config["PidsLimit"] = None
    if pids > 0:
        return [
            "Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. "
            "PIDs limit discarded."
        ]
    return []


def _image_config(image: Any) -> dict[str, Any]:
    """The ``config`` of an image's document (or the document itself, a builder step's config)."""
    doc = getattr(image, "config", {}) or {}
    if isinstance(doc, dict) and "rootfs" in doc:
        return dict(doc.get("config") or {})
    return dict(doc)


def _check_platform(image: Any, ref: str, platform: tuple[str, str, str]) -> None:
    """moby's GetImage with a platform: an image for another one is not found (404), as dockerd says."""
    from ..builder.platforms import format_platform, image_platform, platform_matches

    if not platform_matches(image, platform):
        raise not_found(
            f"image with reference {ref} was found but its platform "
            f"({format_platform(image_platform(image))}) "
            f"does not match the specified platform ({format_platform(platform)})"
        )


def _proc_status(pid: int) -> tuple[str, int] | None:
    """(state letter, caught-signal mask) of a process, None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            fields = dict(line.split(":", 1) for line in fh if ":" in line)
    except OSError:
        return None
    return fields.get("State", "").strip()[:1], int(fields.get("SigCgt", "0").strip() or "0", 16)


async def _settled(pid: int, limit: float = 0.25) -> None:
    """Wait (at most ``limit`` seconds) until a container's just-exec'd process has set a signal handler or
    gone to sleep. PID 1 of a PID namespace never gets a signal it does not handle, and refd answers a
    start sooner after the execve than runc and containerd do: a SIGTERM sent right after ``docker run -d``
    reached busybox top before it handled the signal, and top ran on (moby TestKillContainer)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while loop.time() < deadline:
        status = _proc_status(pid)
        if status is None or status[1] or status[0] not in ("R", ""):
            return
        await asyncio.sleep(0.002)


class ContainerManager:
    """All containers of one daemon, and what happens to them."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.store = ContainerStore(daemon.config["data-root"], daemon.config["exec-root"])
        self.mounts = MountWiring(daemon)
        self.network = NetworkWiring(daemon, self.store)
        self.by_id = self.store.by_id  # the store's own dicts: read by the network and image services
        self.names = self.store.names
        self.monitors: dict[str, asyncio.Task[None]] = {}
        self.pending_attach: dict[str, list[PendingAttach]] = {}
        self.exit_events: dict[str, asyncio.Event] = {}
        self.removed_events: dict[str, asyncio.Event] = {}
        self.execs = ExecStore(self)
        from .health import HealthChecks
        from .launcher import ShimLauncher

        self.health = HealthChecks(self)
        self.launcher = ShimLauncher(os.path.join(daemon.config["exec-root"], "shim-hosts"))

    # -- the store's lookups, as the other services call them -------------------------------------------
    def get(self, ref: str) -> Container:
        return self.store.get(ref)

    def by_name(self, name: str) -> Container | None:
        return self.store.by_name(name)

    def lock(self, cid: str) -> asyncio.Lock:
        return self.store.lock(cid)

    def summaries(self, listed: list[Container]) -> list[dict[str, Any]]:
        """``docker ps`` entries of ``listed``, a linked container's link names among its ``Names``."""
        linking = any(c.host_config.get("Links") for c in self.by_id.values())
        links = self.store.link_names() if linking else {}
        out = []
        for c in listed:
            summary = c.summary(c.image_name)
            summary["Names"] += sorted(links.get(c.id, ()))
            out.append(summary)
        return out

    def state_dir(self, c: Container) -> str:
        return self.store.state_dir(c)

    def counts(self) -> dict[str, int]:
        return self.store.counts()

    def uses_image(self, image_id: str) -> list[str]:
        return self.store.uses_image(image_id)

    def volume_users(self, name: str) -> list[str]:
        return self.store.volume_users(name)

    def mount_image(self, image_id: str) -> list[str]:
        return self.store.mount_image(image_id)

    # -- events ------------------------------------------------------------------------------------------
    def emit(self, c: Container, action: str, **extra: str) -> None:
        attrs = {"image": str(c.config.get("Image", "")), "name": c.name.removeprefix("/")}
        attrs.update({k: str(v) for k, v in (c.config.get("Labels") or {}).items()})
        attrs.update(extra)
        self.daemon.events.publish(make_event("container", action, c.id, attrs))
        self.health.on_event(c, action)  # health monitors follow start, die, pause, unpause, destroy

    # -- create ------------------------------------------------------------------------------------------
    def _image(self, ref: str) -> Any:
        images = getattr(self.daemon, "images", None)
        if images is None:
            raise not_found(f"No such image: {ref}")
        return images.resolve(ref)

    def create(
        self,
        body: dict[str, Any],
        name: str,
        image: Any = None,
        platform: tuple[str, str, str] | None = None,
        default_ro_non_recursive: bool = False,
    ) -> tuple[Container, list[str]]:
        """``image``: the builder's step containers name theirs (a ``FROM scratch`` step has none);
        ``platform``: the one the request asked for (``?platform=``), which the image must be for;
        ``default_ro_non_recursive``: read-only binds of a client before API 1.44 stay non-recursive."""
        if not isinstance(body, dict):
            raise invalid("config cannot be empty in order to create a container")
        validate_request(body)
        if image is None:
            image_ref = body.get("Image") or ""
            if not image_ref:
                raise invalid("config cannot be empty in order to create a container")
            image = self._image(image_ref)
            if platform is not None:
                _check_platform(image, image_ref, platform)
        if name:
            name = self.store.new_name(name)
        cid = secrets.token_hex(32)
        config = build_config(body, _image_config(image), cid)
        host_config = build_host_config(
            body.get("HostConfig"), self.daemon.config.values, self.daemon.cgroup_version
        )
        warnings = self._verify(host_config)
        path, args = command_of(config)
        name = name or self.store.new_name("")
        self.network.normalise_links(host_config, name)
        c = Container(
            id=cid,
            name=f"/{name}",
            created=now_rfc3339(),
            path=path,
            args=args,
            config=config,
            host_config=host_config,
            image_id=str(image.id),
            root=os.path.join(self.store.root, cid),
            driver=self.daemon.storage_driver,
        )
        c.network_settings = self.network.initial_settings(c, body)
        self._desired_macs(c)
        c.mounts = self.mounts.mount_points(c, default_ro_non_recursive)
        self.mounts.create_layer(c, image)
        try:
            self.mounts.populate(c)
        except BaseException:
            self.mounts.remove_layer(c)
            raise
        self.store.add(c)
        self.emit(c, "create")
        return c, warnings

    def _adapt_shared_namespaces(self, host_config: dict[str, Any]) -> None:
        """moby adaptContainerSettings: ``PidMode``/``IpcMode`` ``container:X`` are recorded with X's ID,
        and (generateSecurityOpt, unless a ``label`` option, host modes or ``Privileged`` say otherwise)
        an X that does not exist is a 400."""
        modes = {key: str(host_config.get(key) or "") for key in ("PidMode", "IpcMode")}
        for key, mode in modes.items():
            if mode.startswith("container:"):
                with contextlib.suppress(ApiError):
                    host_config[key] = f"container:{self.store.get(mode.split(':', 1)[1]).id}"
        labelled = any(str(o).split("=")[0] == "label" for o in host_config.get("SecurityOpt") or [])
        if labelled or "host" in modes.values() or host_config.get("Privileged"):
            return
        for key in ("IpcMode", "PidMode"):
            mode = str(host_config.get(key) or "")
            if mode.startswith("container:"):
                try:
                    self.store.get(mode.split(":", 1)[1])
                except ApiError as exc:
                    raise invalid(exc.message) from None

    @staticmethod
    def _desired_macs(c: Container) -> None:
        """The MAC addresses asked for at create, kept for every start; the main network's is also
        ``Config.MacAddress``, as dockerd shows it."""
        networks = c.network_settings.get("Networks") or {}
        c.desired_macs = {name: ep["MacAddress"] for name, ep in networks.items() if ep.get("MacAddress")}
        main = next(iter(networks), "")
        if main and c.desired_macs.get(main):
            config = dict(c.config)
            c.config.clear()
            for key, value in config.items():
                c.config[key] = value
                if key == "Entrypoint":  # Go's field order: ... Entrypoint, NetworkDisabled, MacAddress
                    c.config["MacAddress"] = c.desired_macs[main]
            c.config.setdefault("MacAddress", c.desired_macs[main])

    def _verify_userns(self, hc: dict[str, Any]) -> None:
        """moby verifyPlatformContainerSettings, --userns-remap: what a remapped container may not share."""
        if getattr(self.daemon, "idmap", None) is None or (hc.get("UsernsMode") or "") == "host":
            return
        if hc.get("Privileged"):
            raise invalid(
                "privileged mode is incompatible with user namespaces.  You must run the container in the "
                "host namespace when running privileged mode"
            )
        if (hc.get("NetworkMode") or "") == "host":
            raise invalid("cannot share the host's network namespace when user namespaces are enabled")
        if (hc.get("PidMode") or "") == "host":
            raise invalid("cannot share the host PID namespace when user namespaces are enabled")

    def _verify(self, host_config: dict[str, Any]) -> list[str]:
        """What dockerd refuses at create (400s), and the warnings for settings it drops."""
        from ..logs.drivers import check_at_create
        from .mounts import validate_mounts
        from .security import security_options
        from .spec import capabilities

        verify_host_config(host_config)
        self._adapt_shared_namespaces(host_config)
        security_options(host_config)  # a malformed SecurityOpt is refused at create, as dockerd does
        warnings = validate_mounts(host_config)
        warnings += _discard_unsupported(host_config)
        warnings += self.network.create_warnings(host_config)
        self._verify_userns(host_config)
        self.network.resolve_mode(host_config)
        capabilities(host_config)  # unknown CapAdd/CapDrop names are refused at create, as dockerd does
        check_at_create(host_config["LogConfig"])
        return warnings

    # -- restore -----------------------------------------------------------------------------------------
    def restore(self) -> None:
        """Load records; reconcile containers that were running with their shims (spec 7.3)."""

        def unreadable(cid: str, exc: Exception) -> None:
            self.daemon.log.error(f"failed to load container {cid}: {exc}")

        live_restore = bool(self.daemon.config["live-restore"])
        for c in self.store.load(unreadable):
            if self.store.survived(c, live_restore):
                self.network.restore(c)  # its addresses stay taken
                self.mounts.restore(c)  # its volumes are still mounted for it
                continue  # monitors are re-attached once the loop runs (attach_monitors)
            self._release(c)
            c.save()

    async def autostart(self) -> None:
        """moby daemon.restore: containers whose restart policy says so start again with the daemon, with
        a new restart count."""
        from .restartpolicy import restarts_at_boot

        for c in list(self.by_id.values()):
            if c.status != "exited" or not c.has_been_started:
                continue
            policy = c.host_config.get("RestartPolicy")
            if not restarts_at_boot(policy, int(c.state.get("ExitCode") or 0), c.has_been_manually_stopped):
                continue
            try:
                async with self.lock(c.id):
                    c.restart_count = 0
                    c.exit_on_next = False
                    await self._start_locked(c)
            except ApiError as exc:
                self.daemon.log.error(f"failed to start container {c.id}: {exc.message}")

    def attach_monitors(self) -> None:
        for c in self.by_id.values():
            if c.status in ("running", "paused") and c.id not in self.monitors:
                self.network.services_up(c)
                self.exit_events.setdefault(c.id, asyncio.Event())  # stop/wait after a live-restore need it
                self.monitors[c.id] = asyncio.ensure_future(self._monitor(c))

    # -- start -------------------------------------------------------------------------------------------
    async def start(self, c: Container) -> None:
        async with self.lock(c.id):
            if c.status == "paused":
                raise conflict("cannot start a paused container, try unpause instead")
            if c.running:
                return
            if c.status == "removing":
                raise conflict("container is marked for removal and cannot be started")
            # a start by a client resets the restart manager (moby's ResetRestartManager(true))
            c.exit_on_next = False
            c.restart_count = 0
            await self._start_locked(c)

    def _process_spec(self, c: Container) -> dict[str, Any]:
        """Rootfs, volumes, network and files up; the process spec to run in them."""
        from ..runtime.users import UserLookupError, lookup_additional_groups, lookup_user
        from .ipc import setup_ipc
        from .spec import process_spec

        try:
            rootfs = self.mounts.mount(c)
            sources = self.mounts.sources(c)
            propagation = self.mounts.rootfs_propagation(c, sources)
            joined = self.network.up(c)
            ipc = setup_ipc(c, self.store)
            spec = process_spec(self.daemon, c, rootfs, sources)
            spec["rootfs_propagation"] = propagation
            ipc.apply(spec)
            # moby's createSpec (WithUser, getUser) resolves the user and GroupAdd in the container's files
            # before the task exists: an unknown one is its plain error, a 500, not the runtime's
            try:
                if spec["user"]:
                    lookup_user(rootfs, spec["user"])
                lookup_additional_groups(rootfs, spec["additional_gids"])
            except UserLookupError as exc:
                raise system(str(exc)) from None
            self.network.apply(c, spec, joined)
        except ApiError:
            raise
        except Exception as exc:
            raise system(f"failed to prepare container {c.id}: {exc}") from None
        return spec

    def _check_logger(self, c: Container) -> None:
        """The local driver's option values are checked when it starts, as dockerd's logger does."""
        from ..logs.drivers import check_at_start
        from ..logs.jsonfile import LogOptionError

        try:
            check_at_start(c.host_config["LogConfig"])
        except LogOptionError as exc:
            message = f"failed to create task for container: failed to initialize logging driver: {exc}"
            c.set_start_error(message)
            c.save()
            raise ApiError(500, message) from None

    async def _launch(self, c: Container) -> int:
        """Rootfs, files, shim, attached clients, then the process; returns its pid or raises."""
        from .launcher import runtime_start_error

        spec = self._process_spec(c)
        self._check_logger(c)
        log_config = c.host_config["LogConfig"]
        state_dir = self.state_dir(c)
        await self.launcher.launch(
            state_dir,
            {
                "process": spec,
                "open_stdin": bool(c.config.get("OpenStdin")),
                "stdin_once": bool(c.config.get("StdinOnce")),
                "log": {
                    "driver": log_config.get("Type"),
                    "path": c.log_path,
                    "opts": log_config.get("Config"),
                },
                "oom_check": spec.get("cgroup", ""),
            },
        )
        try:
            for attach in self.pending_attach.pop(c.id, []):
                await attach(state_dir)
            result = await ShimConnection.call(state_dir, {"op": "start"})
        except BaseException:  # the shim must not wait for a start that will not come (its host lives on)
            background(self._abandon(state_dir))
            raise
        if "error" in result:
            message, code = runtime_start_error(str(result["error"]))
            c.set_start_error(message, code)
            c.save()
            raise ApiError(400 if code in (126, 127) else 500, message)
        pid = int(result["pid"])
        await _settled(pid)
        return pid

    async def _abandon(self, state_dir: str) -> None:
        """Tell a shim whose container will not be started after all to end (best effort: a shim never
        started also ends once its state dir is removed or made anew)."""
        with contextlib.suppress(OSError, ValueError, ConnectionError, asyncio.TimeoutError):
            await ShimConnection.call(state_dir, {"op": "abandon"}, timeout=5)

    async def _start_locked(self, c: Container) -> None:
        try:
            pid = await self._launch(c)
        except BaseException as exc:
            for attach in self.pending_attach.pop(c.id, []):
                await attach(None)  # the attached clients see their stream end, as with dockerd
            self._release(c)
            if isinstance(exc, ApiError) and c.state.get("Error") != exc.message:
                c.set_start_error(exc.message)  # moby containerStart: every failed start is kept in State
                c.save()
            if isinstance(exc, ApiError) and c.host_config.get("AutoRemove") and c.id in self.by_id:
                await self.remove(c, force=True, volumes=True, auto=True)
            raise
        c.set_running(pid)
        c.has_been_manually_stopped = False
        c.has_been_manually_restarted = False
        c.save()
        self.exit_events.setdefault(c.id, asyncio.Event())  # waiters registered before start keep theirs
        self.emit(c, "start")
        self.monitors[c.id] = asyncio.ensure_future(self._monitor(c))

    # -- exit --------------------------------------------------------------------------------------------
    async def _monitor(self, c: Container) -> None:
        try:
            result = await ShimConnection.call(self.state_dir(c), {"op": "wait"}, timeout=None)
        except (OSError, ValueError, ConnectionError):
            result = self.store.exit_of(c)
        await self._on_exit(c, result)

    async def _on_exit(self, c: Container, result: dict[str, Any]) -> None:
        self.monitors.pop(c.id, None)
        c.set_stopped(
            int(result.get("exit_code", 137)),
            bool(result.get("oom_killed")),
            finished_at=result.get("finished_at"),
        )
        if c.state["OOMKilled"]:
            self.emit(c, "oom")
        self._release(c)
        try:
            c.save()
        except OSError as exc:  # a full or read-only data-root: the exit still counts, waiters still wake
            self.daemon.log.error(f"failed to save container state: {exc.strerror or exc}", container=c.id)
        self.emit(c, "die", exitCode=str(c.state["ExitCode"]), execDuration="0")
        event = self.exit_events.pop(c.id, None)
        if event is not None:
            event.set()
        await self._after_exit(c)

    async def _after_exit(self, c: Container) -> None:
        """The restart policy, or ``--rm``."""
        restart = c.id in self.by_id and should_restart(
            c.host_config.get("RestartPolicy"),
            c.state["ExitCode"],
            c.restart_count,
            c.has_been_manually_stopped,
            c.exit_on_next,
        )
        if restart and not getattr(self.daemon, "shutting_down", False):
            await self._restart(c)
            return
        if c.host_config.get("AutoRemove") and c.id in self.by_id and not c.has_been_manually_restarted:
            await self.remove(c, force=True, volumes=True, auto=True)

    async def _restart(self, c: Container) -> None:
        c.restart_count += 1
        c.state.update(Status="restarting", Restarting=True)
        c.save()
        await asyncio.sleep(restart_delay(c.restart_count))
        if c.id in self.by_id and c.status == "restarting" and not c.exit_on_next:
            try:
                async with self.lock(c.id):
                    await self._start_locked(c)
            except ApiError as exc:
                self.daemon.log.error(f"failed to restart container {c.id}: {exc.message}")
                c.state.update(Status="exited", Restarting=False)
                c.save()

    def _release(self, c: Container) -> None:
        """What a container that stopped running holds: volumes, network, rootfs, cgroup."""
        from .ipc import release_shm

        self.mounts.unmount_volumes(c)
        release_shm(c)
        self.network.down(c)
        self.mounts.unmount_rootfs(c)
        from ..runtime.errors import CgroupError

        try:
            cgroup = self._cgroup_of(c)
            if cgroup.exists():
                cgroup.delete()
        except (CgroupError, OSError, ValueError) as exc:
            self.daemon.log.warning(f"failed to remove cgroup of container {c.id}: {exc}")

    def network_changed(self, c: Container) -> None:
        """After connect/disconnect: a running container's /etc/hosts and DNS follow its networks."""
        self.network.changed(c)

    # -- stop / kill / wait ------------------------------------------------------------------------------
    async def kill(self, c: Container, signo: int) -> None:
        """moby killWithSignal: the client stopped it (``unless-stopped`` will not restart it), and SIGKILL
        or its stop signal (any signal when it has none) makes its next exit the last."""
        if not c.running:
            raise conflict(f"container {c.id} is not running")
        stop_signal = c.config.get("StopSignal")
        if not stop_signal or signo == signal.SIGKILL or parse_signal(stop_signal) == signo:
            c.exit_on_next = True
        if not getattr(self.daemon, "shutting_down", False):
            c.has_been_manually_stopped = True
            c.save()
        try:
            result = await ShimConnection.call(self.state_dir(c), {"op": "kill", "signal": signo})
        except (ConnectionError, FileNotFoundError):
            # the process exited and its shim is finishing (its exit not handled yet): nothing left to
            # signal, as containerd's "process already finished" (a restart of a fast-exiting container
            # answered 500 'connection reset by peer' 1 time in 3)
            result = {}
        if "error" in result and c.running:
            raise system(f"cannot kill container: {c.id}: {result['error']}")
        self.emit(c, "kill", signal=str(signo))

    async def stop(self, c: Container, signo: int | None = None, timeout: float | None = None) -> bool:
        """Stop with the stop signal, then SIGKILL after the timeout; False if it was not running."""
        if not c.running:
            return False
        c.has_been_manually_stopped = True
        c.save()
        if signo is None:
            signo = parse_signal(c.config.get("StopSignal") or "SIGTERM")
        if timeout is None:
            timeout = c.config.get("StopTimeout")
            timeout = 10 if timeout is None else timeout
        event = self.exit_events.setdefault(c.id, asyncio.Event())
        if c.status == "paused":
            await self.unpause(c)
        with contextlib.suppress(ApiError):
            await self.kill(c, signo)
        try:
            if timeout < 0:
                await event.wait()
            else:
                await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            self.daemon.log.info(
                f"Container failed to exit within {timeout:g}s of signal {signo} - using the force",
                container=c.id,
            )
            with contextlib.suppress(ApiError):
                await self.kill(c, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), 30)
        self.emit(c, "stop")
        return True

    async def restart(
        self, c: Container, signo: int | None = None, timeout: float | None = None, ref: str = ""
    ) -> None:
        """moby containerRestart: stop (an auto-removed container is kept for the start), start, the
        ``restart`` event. Run to the end even when the client goes away; an error is dockerd's untyped
        ``Cannot restart container <ref>: ...`` (a 500), ``ref`` as the client named it."""

        async def stop_start() -> None:
            if c.running:
                c.has_been_manually_restarted = True
                await self.stop(c, signo, timeout)
            await self.start(c)
            self.emit(c, "restart")

        try:
            await asyncio.shield(asyncio.ensure_future(stop_start()))
        except ApiError as exc:
            raise system(f"Cannot restart container {ref or c.id}: {exc.message}") from None

    async def wait(self, c: Container, condition: str = "not-running") -> dict[str, Any]:
        if condition not in ("not-running", "next-exit", "removed", ""):
            raise invalid(f"invalid condition: {condition!r}")
        removed = False
        if condition == "removed":
            event = self.removed_events.setdefault(c.id, asyncio.Event())
            await event.wait()
            removed = True  # moby SetRemoved clears the state's error before it wakes the waiters
        elif c.running or condition == "next-exit":
            event = self.exit_events.setdefault(c.id, asyncio.Event())
            await event.wait()
        error = "" if removed else c.state.get("Error") or ""
        # dockerd 28 omits Error when there is none (20.10 sent null)
        return {"StatusCode": c.state["ExitCode"], **({"Error": {"Message": error}} if error else {})}

    async def pause(self, c: Container) -> None:
        if not c.running:
            raise conflict(f"container {c.id} is not running")
        if c.status == "paused":
            raise conflict(f"Container {c.id} is already paused")
        self._cgroup_of(c).freeze()
        c.state.update(Status="paused", Paused=True)
        c.save()
        self.emit(c, "pause")

    async def unpause(self, c: Container) -> None:
        if c.status != "paused":
            raise conflict(f"Container {c.id} is not paused")
        self._cgroup_of(c).thaw()
        c.state.update(Status="running", Paused=False)
        c.save()
        self.emit(c, "unpause")

    async def resize(self, c: Container, height: int, width: int) -> None:
        """The container's pty to ``height`` x ``width``."""
        if not c.running:
            raise conflict(f"container {c.id} is not running")
        await ShimConnection.call(self.state_dir(c), {"op": "resize", "height": height, "width": width})

    def _cgroup_of(self, c: Container) -> Any:
        from ..runtime.cgroups import Cgroup
        from .spec import cgroup_path

        return Cgroup(cgroup_path(self.daemon, c))

    # -- remove / rename ---------------------------------------------------------------------------------
    async def remove(
        self, c: Container, force: bool = False, volumes: bool = False, auto: bool = False, ref: str = ""
    ) -> None:
        """Remove ``c``; ``ref`` is the name or id the client used (dockerd's messages quote it)."""
        ref = ref or c.name.removeprefix("/")
        if c.status == "removing" and not auto:
            raise conflict(f"removal of container {ref} is already in progress")
        if c.status == "paused" and not force:
            raise conflict(f'cannot remove container "{ref}": container is paused and must be unpaused first')
        if c.running and not force:
            raise conflict(
                f'cannot remove container "{ref}": container is {c.status}: stop the container before '
                "removing or force remove"
            )
        if c.running:
            c.has_been_manually_stopped = True
            event = self.exit_events.setdefault(c.id, asyncio.Event())
            with contextlib.suppress(ApiError):
                await self.kill(c, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), 30)
        c.state["Status"] = "removing"
        self.mounts.remove_layer(c)
        self.store.delete(c)
        if volumes or auto:  # rm -v and --rm take the anonymous volumes along
            self.mounts.remove_anonymous_volumes(c, self.store.volume_users)
        self.emit(c, "destroy")
        removed = self.removed_events.pop(c.id, None)
        if removed is not None:
            removed.set()
        exit_event = self.exit_events.pop(c.id, None)
        if exit_event is not None:
            exit_event.set()

    def rename(self, c: Container, new_name: str) -> None:
        old = self.store.rename(c, new_name)
        try:
            self.network.check_rename(c)  # moby rename.go: the name is back if the sandbox refuses
        except ApiError:
            self.store.rename(c, old)
            raise
        self.emit(c, "rename", oldName=f"/{old}")

    def remove_link(self, ref: str) -> None:
        """``DELETE /containers/<parent>/<alias>?link=1`` (moby daemon/delete.go rmLink): the parent loses
        the link (its ``/etc/hosts`` line too, when it runs); the linked container is untouched."""
        name = "/" + ref.lstrip("/")
        parent_name, _, _ = name.rpartition("/")
        if not parent_name:
            raise ApiError(500, "Conflict, cannot remove the default link name of the container")
        parent = self.store.by_name(parent_name.lstrip("/"))
        if parent is None:
            raise ApiError(500, f"Cannot get parent {parent_name} for link name {name}")
        self.network.remove_link(parent, name)

    async def prune(self, filters: dict[str, list[str]], until: float | None) -> tuple[list[str], int]:
        """Remove the stopped containers the filters pick; their ids and the bytes their read-write layers
        held (moby ContainersPrune: the layer's size taken before the removal), and a ``prune`` event."""
        from .changes import container_sizes
        from .listing import prunable

        deleted, reclaimed = [], 0
        for c in prunable(list(self.by_id.values()), filters, until):
            try:
                size_rw = (await asyncio.to_thread(container_sizes, self.daemon, c))[0]
            except OSError as exc:  # dockerd logs it and prunes the container all the same
                self.daemon.log.warning(f"failed to determine size of container {c.id}: {exc}")
                size_rw = 0
            await self.remove(c, force=False)
            deleted.append(c.id)
            reclaimed += max(size_rw, 0)
        self.daemon.events.publish(make_event("container", "prune", "", {"reclaimed": str(reclaimed)}))
        return deleted, reclaimed

    # -- shutdown ----------------------------------------------------------------------------------------
    async def shutdown(self, timeout: float) -> None:
        """Stop every running container in parallel (unless live-restore keeps them)."""
        if self.daemon.config["live-restore"] and self.by_id:
            return
        running = [c for c in self.by_id.values() if c.running]
        if not running:
            return
        self.daemon.log.debug(f"start clean shutdown of all containers with a {timeout:g} seconds timeout...")
        await asyncio.gather(*(self.stop(c) for c in running), return_exceptions=True)
