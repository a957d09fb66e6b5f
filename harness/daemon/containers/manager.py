"""Container lifecycle in refd: create, start (through a shim), stop, kill, wait, remove, restore.

The manager is the single owner of container records; API handlers call it. Exits reach
it from a monitor task per running container (a ``wait`` on the shim socket), or from
``exit.json`` when refd was down at the time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import ApiError, conflict, invalid, not_found, system
from ..events import make_event
from ..gotime import now_rfc3339
from ..shimstate import LOG, SPEC, read_exit, read_state_pid, shim_alive
from .create import build_config, build_host_config, command_of, verify_host_config
from .execs import ExecStore
from .model import Container
from .names import random_name, validate_name
from .shimclient import ShimConnection
from .signals import parse_signal

if TYPE_CHECKING:
    from ..daemon import Daemon

__all__ = ["ContainerManager"]

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


class ContainerManager:
    """All containers of one daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.root = os.path.join(daemon.config["data-root"], "containers")
        self.state_root = os.path.join(daemon.config["exec-root"], "containers")
        self.by_id: dict[str, Container] = {}
        self.names: dict[str, str] = {}  # name without slash -> id
        self.monitors: dict[str, asyncio.Task[None]] = {}
        self.pending_attach: dict[str, list[PendingAttach]] = {}
        self.exit_events: dict[str, asyncio.Event] = {}
        self.removed_events: dict[str, asyncio.Event] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self.execs = ExecStore(self)
        self.background: set[asyncio.Future[Any]] = set()
        from .health import HealthChecks
        from .launcher import ShimLauncher

        self.health = HealthChecks(self)
        self.launcher = ShimLauncher(os.path.join(daemon.config["exec-root"], "shim-hosts"))

    # -- lookup ------------------------------------------------------------------------------------
    def get(self, ref: str) -> Container:
        """By full id, name (with or without '/'), or unique id prefix; dockerd's 404 otherwise."""
        if not ref:
            raise not_found("No such container: ")
        if ref in self.by_id:
            return self.by_id[ref]
        cid = self.names.get(ref.removeprefix("/"))
        if cid:
            return self.by_id[cid]
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

    def lock(self, cid: str) -> asyncio.Lock:
        return self.locks.setdefault(cid, asyncio.Lock())

    def state_dir(self, c: Container) -> str:
        return os.path.join(self.state_root, c.id)

    def counts(self) -> dict[str, int]:
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

    # -- events ------------------------------------------------------------------------------------
    def emit(self, c: Container, action: str, **extra: str) -> None:
        attrs = {"image": str(c.config.get("Image", "")), "name": c.name.removeprefix("/")}
        attrs.update({k: str(v) for k, v in (c.config.get("Labels") or {}).items()})
        attrs.update(extra)
        self.daemon.events.publish(make_event("container", action, c.id, attrs))
        self.health.on_event(c, action)  # health monitors follow start, die, pause, unpause, destroy

    # -- create --------------------------------------------------------------------------------------
    def _image(self, ref: str) -> Any:
        images = getattr(self.daemon, "images", None)
        if images is None:
            raise not_found(f"No such image: {ref}")
        return images.resolve(ref)

    @staticmethod
    def _image_config(image: Any) -> dict[str, Any]:
        doc = getattr(image, "config", {}) or {}
        if isinstance(doc, dict) and "rootfs" in doc:
            return dict(doc.get("config") or {})
        return dict(doc)

    def create(self, body: dict[str, Any], name: str, image: Any = None) -> tuple[Container, list[str]]:
        """``image``: the builder's step containers name theirs (a ``FROM scratch`` step has none)."""
        if not isinstance(body, dict):
            raise invalid("config cannot be empty in order to create a container")
        image_ref = body.get("Image") or ""
        if image is None:
            if not image_ref:
                raise invalid("config cannot be empty in order to create a container")
            image = self._image(image_ref)
        if name:
            name = validate_name(name)
            if name in self.names:
                raise conflict(
                    f'Conflict. The container name "/{name}" is already in use by container '
                    f'"{self.names[name]}". You have to remove (or rename) that container to be able to '
                    "reuse that name."
                )
        cid = secrets.token_hex(32)
        config = build_config(body, self._image_config(image), cid)
        host_config = build_host_config(
            body.get("HostConfig"), self.daemon.config.values, self.daemon.cgroup_version
        )
        verify_host_config(host_config)
        warnings = _discard_unsupported(host_config)
        mode = str(host_config.get("NetworkMode") or "")
        if mode.startswith("container:"):  # dockerd records the other container's full id
            host_config["NetworkMode"] = f"container:{self.get(mode.split(':', 1)[1]).id}"
        from .spec import capabilities

        capabilities(host_config)  # unknown CapAdd/CapDrop names are refused at create, as dockerd does
        self._check_log_config(host_config)
        path, args = command_of(config)
        name = name or random_name(set(self.names))
        if host_config.get("Links"):
            from ..network.links import normalise_links

            host_config["Links"] = normalise_links(self, list(host_config["Links"]), name)
        c = Container(
            id=cid,
            name=f"/{name}",
            created=now_rfc3339(),
            path=path,
            args=args,
            config=config,
            host_config=host_config,
            image_id=str(image.id),
            root=os.path.join(self.root, cid),
            driver=self.daemon.storage_driver,
        )
        c.network_settings = self._network_settings(c, body)
        c.mounts = self._mount_points(c)
        storage = getattr(getattr(self.daemon, "images", None), "layers", None)
        if storage is not None and hasattr(storage, "create_rw_layer"):
            storage.create_rw_layer(cid, image.top_chain)
            graph = getattr(storage, "graph_driver", None)
            if callable(graph):
                c.graph_driver = graph(cid)
            if config.get("WorkingDir") and hasattr(storage, "mount_rootfs"):
                from .workdir import setup_working_directory

                try:
                    setup_working_directory(storage, cid, str(config["WorkingDir"]))
                except BaseException:
                    storage.remove_rw_layer(cid)
                    raise
        c.save()
        self.by_id[cid] = c
        self.names[name] = cid
        self.emit(c, "create")
        return c, warnings

    def _mount_points(self, c: Container) -> list[dict[str, Any]]:
        """Inspect's ``Mounts``: binds, named volumes (created on demand) and anonymous volumes."""
        volumes = getattr(self.daemon, "volumes", None)
        points: list[dict[str, Any]] = []
        taken: set[str] = set()

        def volume_point(
            name: str, dest: str, mode: str, rw: bool, anonymous: bool = False
        ) -> dict[str, Any]:
            if volumes is None:
                raise invalid("volumes are not available")
            volume = volumes.create(name, anonymous=anonymous)
            return {
                "Type": "volume",
                "Name": volume.name,
                "Source": volumes.path(volume.name),
                "Destination": dest,
                "Driver": "local",
                "Mode": mode,
                "RW": rw,
                "Propagation": "",
            }

        for bind in c.host_config.get("Binds") or []:
            parts = bind.split(":")
            if len(parts) < 2 or not parts[0] or not parts[1]:
                raise invalid(f"invalid volume specification: '{bind}'")
            source, dest = parts[0], parts[1]
            mode = parts[2] if len(parts) > 2 else ""
            rw = "ro" not in mode.split(",")
            if source.startswith("/"):
                propagation = next(
                    (
                        o
                        for o in mode.split(",")
                        if o in ("rprivate", "private", "rshared", "shared", "rslave", "slave")
                    ),
                    "rprivate",
                )
                points.append(
                    {
                        "Type": "bind",
                        "Source": source,
                        "Destination": dest,
                        "Mode": mode,
                        "RW": rw,
                        "Propagation": propagation,
                    }
                )
            else:
                points.append(volume_point(source, dest, mode or "z", rw))
            taken.add(dest)
        for mount in c.host_config.get("Mounts") or []:
            if mount.get("Type", "volume") == "volume":
                point = volume_point(
                    mount.get("Source") or "",
                    mount["Target"],
                    "z",
                    not mount.get("ReadOnly"),
                    anonymous=not mount.get("Source"),
                )
                if (mount.get("VolumeOptions") or {}).get("NoCopy"):
                    point["NoCopy"] = True
                points.append(point)
                taken.add(mount["Target"])
            elif mount.get("Type") == "bind":
                points.append(
                    {
                        "Type": "bind",
                        "Source": mount.get("Source", ""),
                        "Destination": mount["Target"],
                        "Mode": "",
                        "RW": not mount.get("ReadOnly"),
                        "Propagation": (mount.get("BindOptions") or {}).get("Propagation") or "rprivate",
                    }
                )
                taken.add(mount["Target"])
            elif mount.get("Type") == "tmpfs":  # listed as dockerd lists it; mounted from HostConfig.Mounts
                points.append(
                    {
                        "Type": "tmpfs",
                        "Source": "",
                        "Destination": mount["Target"],
                        "Mode": "",
                        "RW": not mount.get("ReadOnly"),
                        "Propagation": "",
                    }
                )
                taken.add(mount["Target"])
        for dest in c.config.get("Volumes") or {}:
            if dest not in taken:
                points.append(volume_point("", dest, "", True, anonymous=True))
        return points

    def _copy_up(self, c: Container, rootfs: str) -> None:
        """Empty volumes get the image's content at their mount point on first use (unless NoCopy)."""
        volumes = getattr(self.daemon, "volumes", None)
        if volumes is None or not rootfs:
            return
        from ..runtime.users import secure_join

        for point in c.mounts:
            if point.get("Type") == "volume" and not point.get("NoCopy"):
                volumes.copy_up(point["Name"], secure_join(rootfs, point["Destination"]))

    def volume_users(self, name: str) -> list[str]:
        return [c.id for c in self.by_id.values() if any(m.get("Name") == name for m in c.mounts)]

    def _check_log_config(self, host_config: dict[str, Any]) -> None:
        log_config = host_config["LogConfig"]
        driver = log_config.get("Type")
        if driver not in ("json-file", "none", "local"):
            raise invalid(
                f"failed to create task for container: logger: no log driver named '{driver}' is registered"
            )
        if driver == "json-file":
            from ..logs.jsonfile import LogOptionError, parse_log_options

            try:
                parse_log_options(log_config.get("Config") or {})
            except LogOptionError as exc:
                raise invalid(str(exc)) from None
        elif driver == "local":  # dockerd checks the keys at create, the values when the logger starts
            from ..logs.jsonfile import LogOptionError
            from ..logs.local import check_local_option_keys

            try:
                check_local_option_keys(log_config.get("Config") or {})
            except LogOptionError as exc:
                raise invalid(str(exc)) from None

    def _network_settings(self, c: Container, body: dict[str, Any]) -> dict[str, Any]:
        mode = c.host_config.get("NetworkMode", "default")
        networks_manager = getattr(self.daemon, "networks", None)
        if networks_manager is not None:
            networks: dict[str, Any] = networks_manager.initial_networks(c.host_config, body)
        else:
            from ..network.manager import empty_endpoint

            name = "bridge" if mode in ("default", "bridge") else mode if mode in ("host", "none") else ""
            networks = {name: empty_endpoint()} if name else {}
        return {
            "Bridge": "",
            "SandboxID": "",
            "SandboxKey": "",
            "Ports": {},
            "HairpinMode": False,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None,
            "EndpointID": "",
            "Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": "",
            "IPPrefixLen": 0,
            "IPv6Gateway": "",
            "MacAddress": "",
            "Networks": networks,
        }

    # -- restore -------------------------------------------------------------------------------------
    def restore(self) -> None:
        """Load records; reconcile containers that were running with their shims (spec 7.3)."""
        try:
            entries = os.listdir(self.root)
        except FileNotFoundError:
            return
        for cid in entries:
            root = os.path.join(self.root, cid)
            try:
                c = Container.load(root)
            except (OSError, ValueError, KeyError) as exc:
                self.daemon.log.error(f"failed to load container {cid}: {exc}")
                continue
            self.by_id[c.id] = c
            self.names[c.name.removeprefix("/")] = c.id
            if c.status in ("running", "paused", "restarting"):
                self._reconcile(c)

    def _reconcile(self, c: Container) -> None:
        state_dir = self.state_dir(c)
        alive = shim_alive(state_dir)
        if alive and self.daemon.config["live-restore"]:
            networks = getattr(self.daemon, "networks", None)
            if networks is not None:
                networks.restore(c)  # its addresses stay taken
            volumes = getattr(self.daemon, "volumes", None)
            if volumes is not None:
                for name in self._volume_names(c):
                    volumes.active.setdefault(name, set()).add(c.id)  # still mounted for it
            return  # monitors are re-attached once the loop runs (attach_monitors)
        if alive:
            pid = read_state_pid(state_dir)
            if pid:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        code, finished = 137, now_rfc3339()
        record = read_exit(state_dir) or {}
        with contextlib.suppress(ValueError, KeyError, TypeError):
            code, finished = int(record["exit_code"]), record["finished_at"]
        c.set_stopped(code, finished_at=finished)
        self._release(c)
        c.save()

    def attach_monitors(self) -> None:
        for c in self.by_id.values():
            if c.status in ("running", "paused") and c.id not in self.monitors:
                services = getattr(self.daemon, "net_services", None)
                if services is not None:
                    with contextlib.suppress(Exception):
                        services.container_up(c)  # DNS and port proxies live in refd: back after a restart
                self.exit_events.setdefault(c.id, asyncio.Event())  # stop/wait after a live-restore need it
                self.monitors[c.id] = asyncio.ensure_future(self._monitor(c))

    # -- start ---------------------------------------------------------------------------------------
    def _prepare_files(self, c: Container) -> None:
        os.makedirs(c.root, mode=0o710, exist_ok=True)
        hostname = c.config.get("Hostname") or c.short_id
        with open(c.file("hostname"), "w") as fh:
            fh.write(hostname + "\n")
        self._write_hosts(c)
        from ..network.files import resolv_conf

        networks = getattr(self.daemon, "networks", None)
        internal_dns = networks is not None and networks.uses_embedded_dns(c)
        with open(c.file("resolv.conf"), "w") as fh:
            fh.write(resolv_conf(self._dns_settings(c), internal_dns))

    def _dns_settings(self, c: Container) -> dict[str, Any]:
        """The container's Dns/DnsSearch/DnsOptions, else the daemon's --dns/--dns-search/--dns-opt."""
        hc, cfg = dict(c.host_config), self.daemon.config
        for key, flag in (("Dns", "dns"), ("DnsSearch", "dns-search"), ("DnsOptions", "dns-opt")):
            if not hc.get(key) and cfg.get(flag):
                hc[key] = list(cfg[flag])
        return hc

    def _write_hosts(self, c: Container) -> None:
        from ..network.files import hosts_file
        from ..network.links import link_hosts

        links = link_hosts(self, c) if c.host_config.get("Links") else []
        with open(c.file("hosts"), "w") as fh:
            fh.write(hosts_file(c, links))

    def _process_spec(self, c: Container, rootfs: str) -> dict[str, Any]:
        from .spec import process_spec

        return process_spec(self.daemon, c, rootfs)

    async def start(self, c: Container) -> None:
        async with self.lock(c.id):
            if c.status == "paused":
                raise conflict("cannot start a paused container, try unpause instead")
            if c.running:
                return
            if c.status == "removing":
                raise conflict("container is marked for removal and cannot be started")
            await self._start_locked(c)

    async def _launch(self, c: Container) -> int:
        """Rootfs, files, shim, attached clients, then the process; returns its pid or raises."""
        storage = getattr(getattr(self.daemon, "images", None), "layers", None)
        rootfs = ""
        try:
            if storage is not None and hasattr(storage, "mount_rootfs"):
                rootfs = storage.mount_rootfs(c.id)
            self._mount_volumes(c)
            self._copy_up(c, rootfs)
            if c.host_config.get("Links"):
                from ..network.links import check_running

                check_running(self, c)
            netns = self._network_up(c)
            joined = self._network_peer(c)
            if joined is not None:  # --network container:X shares X's hostname and files
                c.config["Hostname"] = joined.config.get("Hostname") or joined.short_id
            self._prepare_files(c)
            spec = self._process_spec(c, rootfs)
            if netns:
                spec["namespaces"]["net"] = netns
            if c.host_config.get("Links"):
                from ..network.links import link_env

                linked_env = link_env(self, c)
                own = {e.split("=", 1)[0] for e in spec["env"]}
                spec["env"] = [e for e in linked_env if e.split("=", 1)[0] not in own] + spec["env"]
            if joined is not None:
                for key, name in (
                    ("hosts_path", "hosts"),
                    ("hostname_path", "hostname"),
                    ("resolv_conf_path", "resolv.conf"),
                ):
                    spec[key] = joined.file(name)
        except ApiError:
            raise
        except Exception as exc:
            raise system(f"failed to prepare container {c.id}: {exc}") from None
        log_config = c.host_config["LogConfig"]
        if log_config.get("Type") == "local":  # the local driver's values are checked when it starts
            from ..logs.jsonfile import LogOptionError
            from ..logs.local import parse_local_options

            try:
                parse_local_options(log_config.get("Config") or {})
            except LogOptionError as exc:
                message = f"failed to create task for container: failed to initialize logging driver: {exc}"
                c.set_start_error(message)
                c.save()
                raise ApiError(500, message) from None
        state_dir = self.state_dir(c)
        shutil.rmtree(state_dir, ignore_errors=True)
        os.makedirs(state_dir, mode=0o700)
        shim_spec = {
            "process": spec,
            "open_stdin": bool(c.config.get("OpenStdin")),
            "stdin_once": bool(c.config.get("StdinOnce")),
            "log": {"driver": log_config.get("Type"), "path": c.log_path, "opts": log_config.get("Config")},
            "oom_check": spec.get("cgroup", ""),
        }
        with open(os.path.join(state_dir, SPEC), "w") as fh:
            json.dump(shim_spec, fh)
        await self._spawn_shim(state_dir)
        for attach in self.pending_attach.pop(c.id, []):
            await attach(state_dir)
        result = await ShimConnection.call(state_dir, {"op": "start"})
        if "error" in result:
            message = _oci_error(str(result["error"]))
            code = 128
            if "executable file not found" in message or "no such file or directory" in message:
                code = 127
            elif "permission denied" in message:
                code = 126
            c.set_start_error(message, code)
            c.save()
            raise ApiError(400 if code in (126, 127) else 500, message)
        return int(result["pid"])

    async def _start_locked(self, c: Container) -> None:
        try:
            pid = await self._launch(c)
        except BaseException as exc:
            for attach in self.pending_attach.pop(c.id, []):
                await attach(None)  # the attached clients see their stream end, as with dockerd
            self._release(c)
            if isinstance(exc, ApiError) and c.host_config.get("AutoRemove") and c.id in self.by_id:
                await self.remove(c, force=True, volumes=True, auto=True)
            raise
        c.set_running(pid)
        c.has_been_manually_stopped = False
        c.save()
        self.exit_events.setdefault(c.id, asyncio.Event())  # waiters registered before start keep theirs
        self.emit(c, "start")
        self.monitors[c.id] = asyncio.ensure_future(self._monitor(c))

    async def _spawn_shim(self, state_dir: str) -> None:
        """A shim for ``state_dir`` (in a host, from the zygote, or a new interpreter); waits for ready."""
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        shim_log = open(os.path.join(state_dir, LOG), "ab")  # noqa: SIM115 - handed to the shim
        try:
            pid = await self.launcher.spawn(state_dir, write_fd, shim_log.fileno())
            if pid is None:
                env = {**os.environ, "REFD_SHIM_SYNC_FD": str(write_fd)}
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    *(["-S"] if sys.flags.no_site else []),
                    "-m",
                    "harness.daemon.shim",
                    state_dir,
                    pass_fds=(write_fd,),
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=shim_log,
                    start_new_session=True,
                )
                # reap the shim when it ends (the zygote reaps the shims it forks)
                self.background.add(reaper := asyncio.ensure_future(proc.wait()))
                reaper.add_done_callback(self.background.discard)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
            shim_log.close()
        try:
            line = await _read_line_async(read_fd)
        finally:
            os.close(read_fd)
        if not line:
            tail = ""
            with contextlib.suppress(OSError), open(os.path.join(state_dir, LOG)) as fh:
                tail = fh.read()[-2000:]
            raise system(f"container shim failed to start: {tail or 'no output'}")
        msg = json.loads(line)
        if "error" in msg:
            raise system(f"container shim failed: {msg['error']}")

    async def _monitor(self, c: Container) -> None:
        state_dir = self.state_dir(c)
        try:
            result = await ShimConnection.call(state_dir, {"op": "wait"}, timeout=None)
        except (OSError, ValueError, ConnectionError):
            result = read_exit(state_dir) or {
                "exit_code": 137,
                "oom_killed": False,
                "finished_at": now_rfc3339(),
            }
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
        policy = c.host_config.get("RestartPolicy") or {}
        name = policy.get("Name", "no")
        restart = False
        if not c.has_been_manually_stopped and c.id in self.by_id:
            if name == "always" or (name == "unless-stopped"):
                restart = True
            elif name == "on-failure" and c.state["ExitCode"] != 0:
                limit = int(policy.get("MaximumRetryCount") or 0)
                restart = not limit or c.restart_count < limit
        if restart and not getattr(self.daemon, "shutting_down", False):
            c.restart_count += 1
            c.state.update(Status="restarting", Restarting=True)
            c.save()
            delay = min(0.1 * (2 ** min(c.restart_count - 1, 10)), 60)
            await asyncio.sleep(delay)
            if c.id in self.by_id and c.status == "restarting" and not c.has_been_manually_stopped:
                try:
                    async with self.lock(c.id):
                        await self._start_locked(c)
                except ApiError as exc:
                    self.daemon.log.error(f"failed to restart container {c.id}: {exc.message}")
                    c.state.update(Status="exited", Restarting=False)
                    c.save()
            return
        if c.host_config.get("AutoRemove") and c.id in self.by_id:
            await self.remove(c, force=True, volumes=True, auto=True)

    def _network_up(self, c: Container) -> str | None:
        """The container's sandbox with its endpoints, ports and DNS; the netns path to join, if any."""
        networks = getattr(self.daemon, "networks", None)
        if networks is None:
            return None
        netns = networks.sandbox_up(c)
        if netns:
            services = getattr(self.daemon, "net_services", None)
            if services is not None:
                services.container_up(c)
        return netns  # type: ignore[no-any-return]

    def _network_peer(self, c: Container) -> Container | None:
        """The container whose network namespace ``c`` joins (``--network container:X``), running."""
        mode = str(c.host_config.get("NetworkMode") or "")
        if not mode.startswith("container:"):
            return None
        ref = mode.split(":", 1)[1]
        other = self.by_id.get(ref) or self.get(ref)
        if not other.running:
            raise conflict(
                "cannot join network namespace of a non running container: "
                f"container {other.name.removeprefix('/')} is {other.status}"
            )
        return other

    def network_changed(self, c: Container) -> None:
        """After connect/disconnect: a running container's /etc/hosts and DNS follow its networks."""
        if not c.running:
            return
        with contextlib.suppress(OSError):
            self._write_hosts(c)
        services = getattr(self.daemon, "net_services", None)
        if services is not None:
            services.container_up(c)

    def _network_down(self, c: Container) -> None:
        services = getattr(self.daemon, "net_services", None)
        if services is not None:
            with contextlib.suppress(Exception):
                services.container_down(c)
        networks = getattr(self.daemon, "networks", None)
        if networks is not None:
            try:
                networks.sandbox_down(c)
            except Exception as exc:  # never keep a dead container from being marked stopped
                self.daemon.log.warning(f"failed to release the network of container {c.id}: {exc}")

    def _volume_names(self, c: Container) -> list[str]:
        return [str(p["Name"]) for p in c.mounts if p.get("Type") == "volume" and p.get("Name")]

    def _mount_volumes(self, c: Container) -> None:
        """Volumes with mount options (tmpfs, bind, nfs...) are mounted for their first running user."""
        volumes = getattr(self.daemon, "volumes", None)
        if volumes is None:
            return
        done: list[str] = []
        try:
            for name in self._volume_names(c):
                volumes.mount(name, c.id)
                done.append(name)
        except BaseException:
            for name in done:
                volumes.unmount(name, c.id)
            raise

    def _release(self, c: Container) -> None:
        volumes = getattr(self.daemon, "volumes", None)
        if volumes is not None:
            for name in self._volume_names(c):
                with contextlib.suppress(Exception):
                    volumes.unmount(name, c.id)
        self._network_down(c)
        storage = getattr(getattr(self.daemon, "images", None), "layers", None)
        if storage is not None and hasattr(storage, "unmount_rootfs"):
            with contextlib.suppress(Exception):
                storage.unmount_rootfs(c.id)
        from ..runtime.cgroups import Cgroup
        from ..runtime.errors import CgroupError
        from .spec import cgroup_path

        try:
            cgroup = Cgroup(cgroup_path(self.daemon, c))
            if cgroup.exists():
                cgroup.delete()
        except (CgroupError, OSError, ValueError) as exc:
            self.daemon.log.warning(f"failed to remove cgroup of container {c.id}: {exc}")

    # -- stop / kill / wait --------------------------------------------------------------------------
    async def kill(self, c: Container, signo: int) -> None:
        if not c.running:
            raise conflict(f"container {c.id} is not running")
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

    async def wait(self, c: Container, condition: str = "not-running") -> dict[str, Any]:
        if condition not in ("not-running", "next-exit", "removed", ""):
            raise invalid(f"invalid condition: {condition!r}")
        if condition == "removed":
            event = self.removed_events.setdefault(c.id, asyncio.Event())
            await event.wait()
        elif c.running or condition == "next-exit":
            event = self.exit_events.setdefault(c.id, asyncio.Event())
            await event.wait()
        error = c.state.get("Error") or ""
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

    # -- remove / rename -----------------------------------------------------------------------------
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
        storage = getattr(getattr(self.daemon, "images", None), "layers", None)
        if storage is not None and hasattr(storage, "remove_rw_layer"):
            with contextlib.suppress(Exception):
                storage.remove_rw_layer(c.id)
        shutil.rmtree(self.state_dir(c), ignore_errors=True)
        shutil.rmtree(c.root, ignore_errors=True)
        self.by_id.pop(c.id, None)
        self.names.pop(c.name.removeprefix("/"), None)
        store = getattr(self.daemon, "volumes", None)
        if store is not None and (volumes or auto):  # rm -v and --rm take the anonymous volumes along
            for point in c.mounts:
                name = point.get("Name")
                if (
                    name
                    and name in store.volumes
                    and store.volumes[name].anonymous
                    and not self.volume_users(name)
                ):
                    with contextlib.suppress(ApiError):
                        store.remove(name)
        self.emit(c, "destroy")
        removed = self.removed_events.pop(c.id, None)
        if removed is not None:
            removed.set()
        exit_event = self.exit_events.pop(c.id, None)
        if exit_event is not None:
            exit_event.set()

    def rename(self, c: Container, new_name: str) -> None:
        if not new_name:
            raise invalid("Neither old nor new names may be empty")
        new = validate_name(new_name)
        old = c.name.removeprefix("/")
        if new == old:
            raise invalid("Renaming a container with the same name as its current name")
        if new in self.names:
            raise conflict(
                "Error when allocating new name: "
                f'Conflict. The container name "/{new}" is already in use by container '
                f'"{self.names[new]}". You have to remove (or rename) that container to be able to reuse '
                "that name."
            )
        self.names.pop(old, None)
        self.names[new] = c.id
        c.name = f"/{new}"
        c.save()
        self.emit(c, "rename", oldName=f"/{old}")

    # -- shutdown ------------------------------------------------------------------------------------
    async def shutdown(self, timeout: float) -> None:
        """Stop every running container in parallel (unless live-restore keeps them)."""
        if self.daemon.config["live-restore"] and self.by_id:
            return
        running = [c for c in self.by_id.values() if c.running]
        if not running:
            return
        self.daemon.log.debug(f"start clean shutdown of all containers with a {timeout:g} seconds timeout...")
        await asyncio.gather(*(self.stop(c) for c in running), return_exceptions=True)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _read_line_async(fd: int) -> bytes:
    """One line from a pipe without a thread: up to the newline, or all there is before EOF."""
    os.set_blocking(fd, False)
    loop = asyncio.get_running_loop()
    data = b""
    while not data.endswith(b"\n"):
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            readable: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _wake, readable)
            try:
                await readable
            finally:
                loop.remove_reader(fd)
            continue
        if not chunk:
            break
        data += chunk
    return data


def _oci_error(inner: str) -> str:
    """dockerd's wrapping of a runtime start failure."""
    return (
        "failed to create task for container: failed to create shim task: OCI runtime create failed: runc "
        f"create failed: unable to start container process: error during container init: {inner}: unknown"
    )
