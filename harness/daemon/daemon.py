"""refd's lifecycle: start-up in dockerd's order, signal handling, reload and clean shutdown.

Order (spec 3.5): Starting up, root check, umask, roots, pidfile, TLS, listeners bound,
daemon init, ``Daemon has completed initialization``, SIGHUP trap, serving
(``API listen on``), ``READY=1``. Shutdown (spec 7): close the API, ``STOPPING=1``,
stop containers within the shutdown timeout, ``Daemon shutdown complete``, pidfile gone.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import ENGINE_VERSION, REFD_VERSION, notify, pidfile
from .config import DaemonConfig, verify_daemon_settings
from .events import EventBus
from .flags import FLAGS, ParsedFlags
from .hosts import normalize_hosts
from .httpd import handle_connection
from .listeners import Listener, ListenerError, bind_listeners, close_listener, serve_listener, tcp_warnings
from .log import Logger
from .tlsconf import TLSError, TLSSettings, resolve_tls, server_context

if TYPE_CHECKING:
    import asyncio
else:
    from .lazy import asyncio  # imported on first use: refd answers its first /_ping without it

if TYPE_CHECKING:
    from .bootloop import Handover
    from .images.service import ImageService
    from .server import Router

__all__ = ["Daemon", "StartupError", "run"]

_SIGNAL_NAMES = {signal.SIGTERM: "terminated", signal.SIGINT: "interrupt", signal.SIGQUIT: "quit"}


def random_uuid() -> str:
    """``str(uuid.uuid4())`` without importing uuid, which imports platform: boot time is a benchmark."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


class StartupError(Exception):
    """Start-up failed; the message is printed bare on stderr and refd exits 1."""


class Daemon:
    """Runtime state shared by the API handlers."""

    def __init__(self, config: DaemonConfig, flags: ParsedFlags, log: Logger) -> None:
        self.config = config
        self.flags = flags
        self.log = log
        self.events = EventBus()
        self.build_time = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(0))
        self.name = os.uname().nodename
        self.engine_id = ""
        self.idmap: Any = None  # --userns-remap: an idmap.IdMapping
        self.storage_driver = config["storage-driver"] or "overlay2"
        self.cgroup_version = "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"
        self.tls: TLSSettings = resolve_tls(config.values, set(config.flags_set) | set(config.file_keys))
        self.hosts: list[str] = []
        self.listeners: list[Listener] = []
        self._interrupts = 0
        self.shutting_down = False
        from .containers.lifecycle import ContainerManager

        self.containers = ContainerManager(self)
        self._images: ImageService | None = None  # created in prepare(), before refd serves
        self.networks: Any = None  # network.manager.NetworkManager, created in prepare()
        self.net_services: Any = None
        self.firewall: Any = None
        self.volumes: Any = None  # volumes.VolumeStore, created in prepare()

    @property
    def images(self) -> ImageService:
        """The image service. prepare() creates it before refd serves, so handlers use it as is; before
        that it is an AttributeError, so ``getattr(daemon, "images", None)`` tells whether it exists yet."""
        if self._images is None:
            raise AttributeError("the image service is created by Daemon.prepare()")
        return self._images

    # -- facts for /info ---------------------------------------------------------------------------
    def container_counts(self) -> dict[str, int]:
        return self.containers.counts()

    def image_count(self) -> int:
        return self._images.images.count() if self._images is not None else 0

    def driver_status(self) -> list[list[str]] | None:
        if self._images is not None:
            return self._images.driver_status()
        if self.storage_driver == "overlay2":
            return [
                ["Backing Filesystem", "extfs"],
                ["Supports d_type", "true"],
                ["Using metacopy", "false"],
                ["Native Overlay Diff", "true"],
                ["userxattr", "false"],
            ]
        return []

    def open_fds(self) -> int:
        try:
            return len(os.listdir("/proc/self/fd"))
        except OSError:
            return 0

    def task_count(self) -> int:
        if "asyncio" not in sys.modules:
            return 1  # the boot loop (bootloop.py) serves: one thread of control, no tasks yet
        try:
            return len(sys.modules["asyncio"].all_tasks())
        except RuntimeError:
            return 0

    def insecure_registries(self) -> list[str]:
        return ["127.0.0.0/8", *self.config["insecure-registry"]]

    def info_warnings(self) -> list[str]:
        """dockerd 28's /info warnings for TCP listeners without TLS or without client verification."""
        notice = (
            "\n         Access to the remote API is equivalent to root access on the host. Refer\n"
            "         to the 'Docker daemon attack surface' section in the documentation for\n"
            "         more information: https://docs.docker.com/go/attack-surface/\n"
            "In future versions this will be a hard failure preventing the daemon from starting! Learn more "
            "at: https://docs.docker.com/go/api-security/"
        )
        warnings = []
        for host in self.hosts:
            if not host.startswith("tcp://"):
                continue
            addr = host.removeprefix("tcp://")
            if not self.tls.enabled:
                warnings.append(
                    f"[DEPRECATION NOTICE]: API is accessible on http://{addr} without encryption.{notice}"
                )
            elif not self.tls.verify:
                warnings.append(
                    f"[DEPRECATION NOTICE]: API is accessible on https://{addr} without TLS client "
                    f"verification.{notice}"
                )
        return warnings

    def shutdown_timeout(self) -> float:
        """dockerd's Daemon.ShutdownTimeout: the largest of shutdown-timeout and each StopTimeout + 5 s."""
        timeout = float(self.config["shutdown-timeout"])
        if timeout < 0:
            return -1
        for c in self.containers.by_id.values():
            stop = c.config.get("StopTimeout")
            stop = 10 if stop is None else stop
            if stop < 0:
                return -1
            timeout = max(timeout, stop + 5)
        return timeout

    def public_config(self) -> dict[str, Any]:
        """The running configuration keyed as daemon.json keys (for the reload log line)."""
        return {
            f.file_key: self.config.values.get(f.name)
            for f in FLAGS
            if f.name not in ("config-file", "validate")
        }

    # -- start-up ---------------------------------------------------------------------------------
    def _ensure_engine_id(self) -> None:
        path = os.path.join(self.config["data-root"], "engine-id")
        try:
            with open(path) as fh:
                self.engine_id = fh.read().strip()
        except FileNotFoundError:
            pass
        if not self.engine_id:
            self.engine_id = random_uuid()
            tmp = f"{path}.tmp"
            with open(tmp, "w") as fh:
                fh.write(self.engine_id)
            os.replace(tmp, path)

    def _setup_remap(self) -> None:
        """``--userns-remap``: the remapped user and its ranges; state under ``<data-root>/<uid>.<gid>``."""
        from .idmap import DEFAULT_USER, RemapError, remapped_root, setup_remap

        value = str(self.config["userns-remap"])
        name = DEFAULT_USER if value == "default" else value.partition(":")[0]
        self.log.info(f"User namespaces: ID ranges will be mapped to subuid/subgid ranges of: {name}")
        try:
            self.idmap = setup_remap(value)
            self.config.values["data-root"] = remapped_root(self.config["data-root"], self.idmap)
            self.containers.store.root = os.path.join(self.config["data-root"], "containers")
        except RemapError as exc:
            raise StartupError(f"failed to start daemon: {exc}") from None
        except OSError as exc:
            raise StartupError(f"failed to start daemon: Can't create ID mappings: {exc}") from None

    def _check_registry_config(self) -> None:
        """registry.NewService: invalid mirrors or insecure registries stop the start-up."""
        from .distribution.errors import DistributionError
        from .distribution.service import ServiceConfig

        try:
            ServiceConfig.from_daemon_config(self.config)
        except DistributionError as exc:
            pidfile.remove(self.config["pidfile"])
            raise StartupError(f"failed to start daemon: {exc.message}") from None

    def _init_images(self) -> None:
        from .events import make_event
        from .images.service import ImageService
        from .images.storage_driver import StorageInitError

        try:
            self._images = ImageService(
                self.config["data-root"],
                self.config["storage-driver"] or "",
                self.log,
                events=lambda action, actor, attrs: self.events.publish(
                    make_event("image", action, actor, attrs)
                ),
                engine_version=ENGINE_VERSION,
            )
        except StorageInitError as exc:
            pidfile.remove(self.config["pidfile"])
            raise StartupError(f"failed to start daemon: {exc}") from None
        self.storage_driver = self.images.driver_name
        if self.idmap is not None:
            driver = self.images.layers.driver
            driver.id_map, driver.id_unmap = self.idmap.to_host, self.idmap.to_container
            driver.remapped_root = self.idmap.root
            driver.own(driver.home, traverse_only=True)
            with contextlib.suppress(FileNotFoundError):
                driver.own(os.path.join(driver.home, "dir"), traverse_only=True)  # vfs
        self.images.in_use_by = self.containers.uses_image
        self.images.mounted_in = self.containers.mount_image
        self.images.container_running = lambda cid: (
            getattr(self.containers.by_id.get(cid), "status", "") in ("running", "paused", "restarting")
        )

    def _init_networks(self) -> None:
        from .network.manager import NetworkError, NetworkManager
        from .network.services import NetServices

        self.firewall = None
        if self.config["iptables"]:  # (its subprocess import too: not without iptables)
            from .network.firewall import Firewall

            self.firewall = Firewall(self.config, self.log)
        self.networks = NetworkManager(self)
        self.net_services = NetServices(self)
        try:
            self.networks.init()
        except NetworkError as exc:
            pidfile.remove(self.config["pidfile"])
            raise StartupError(f"failed to start daemon: {exc}") from None

    def _shutdown_networks(self) -> None:
        keep = bool(self.config["live-restore"]) and any(c.running for c in self.containers.by_id.values())
        self.net_services.shutdown()
        self.networks.shutdown(keep_running=keep)
        if self.firewall is not None and not keep:
            self.firewall.teardown()

    def prepare(self) -> None:
        """Everything before serving; raises StartupError with dockerd's message."""
        cfg = self.config
        os.umask(0o022)
        for path, mode in ((cfg["data-root"], 0o710), (cfg["exec-root"], 0o700)):
            try:
                os.makedirs(path, mode=mode, exist_ok=True)
            except OSError as exc:
                raise StartupError(f"failed to create {path}: {exc.strerror}") from None
        if cfg["userns-remap"]:
            self._setup_remap()
        try:
            pidfile.write(cfg["pidfile"])
        except pidfile.PidfileError as exc:
            raise StartupError(str(exc)) from None
        except OSError as exc:
            raise StartupError(f"failed to start daemon: {exc}") from None
        ssl_ctx = None
        try:
            self.hosts = normalize_hosts(list(cfg["host"]), self.tls.enabled)
            if self.tls.enabled:
                ssl_ctx = server_context(self.tls)
            self.listeners = bind_listeners(self.hosts, cfg["group"], ssl_ctx, self.log)
        except TLSError as exc:
            pidfile.remove(cfg["pidfile"])
            raise StartupError(str(exc)) from None
        except (ListenerError, ValueError) as exc:
            pidfile.remove(cfg["pidfile"])
            raise StartupError(f"failed to load listeners: {exc}") from None
        tcp_warnings(self.hosts, self.tls.enabled and self.tls.verify, self.tls.explicit, self.log)
        self._ensure_engine_id()
        problem = verify_daemon_settings(self.config.values)
        if problem:
            pidfile.remove(cfg["pidfile"])
            raise StartupError(f"failed to start daemon: {problem}")
        self._check_registry_config()
        self._init_images()
        from .volumes import VolumeStore

        self.volumes = VolumeStore(self.config["data-root"])
        self.volumes.owner = self.idmap.root if self.idmap is not None else None
        self.volumes.users = self.containers.volume_users
        self._init_networks()
        self.log.info("Loading containers: start.")
        self.containers.restore()
        self.log.info("Loading containers: done.")
        for warning in self.info_warnings():  # dockerd 28 logs /info's warnings once, here
            self.log.warning(warning)
        self.log.info(
            "Docker daemon",
            commit="refd",
            **{
                "containerd-snapshotter": False,
                "storage-driver": self.storage_driver,
                "version": ENGINE_VERSION,
            },
        )
        self.log.info("Daemon has completed initialization")

    # -- serving ----------------------------------------------------------------------------------
    def serve_all(self, routes: Callable[[Router], None]) -> int:
        """Serve until shutdown; ``routes`` fills the router (the entry point passes the API's
        ``register``: the daemon knows its services, not the HTTP handlers above them).

        Without TLS listeners or containers to restore, the boot loop serves first (:mod:`.bootloop`, no
        asyncio), until a request or a signal needs the asyncio loop, which then adopts its connections."""
        from .server import Router

        router = Router(self)
        routes(router)
        if self.firewall is not None:
            self.firewall.settle()  # iptables-restore ran meanwhile; a failure is logged before serving
        handover = None
        if not self.containers.by_id and all(listener.tls is None for listener in self.listeners):
            from .bootloop import BootLoop

            boot = BootLoop([listener.sock for listener in self.listeners], router.fast)
            boot.catch_signals()
            for listener in self.listeners:
                self.log.info(f"API listen on {listener.display}")
            notify.notify("READY=1")
            handover = boot.run()
        import asyncio

        return asyncio.run(self.serve(router, handover))

    async def serve(self, router: Router, handover: Handover | None = None) -> int:
        """The asyncio loop's part of :meth:`serve_all`: from the start, or from the boot loop's
        ``handover`` (its connections adopted, its signals handled as if they came now)."""
        from .httpproto import HttpProtocol

        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await handle_connection(reader, writer, router)

        def protocol() -> HttpProtocol:
            return HttpProtocol(router, router.fast)

        def on_signal(signo: int) -> None:
            if signo == signal.SIGQUIT:
                # dockerd 28's trap leaves SIGQUIT to Go's runtime: a stack dump on stderr, then exit 2
                import faulthandler

                sys.stderr.write("SIGQUIT: quit\n\n")
                sys.stderr.flush()
                faulthandler.dump_traceback(all_threads=True)
                os._exit(2)
            self.log.info(f"Processing signal '{_SIGNAL_NAMES.get(signal.Signals(signo), str(signo))}'")
            self._interrupts += 1
            if self._interrupts == 1:
                stop.set()
            elif self._interrupts > 3:
                self.log.info("Forcing docker daemon shutdown without cleanup; 3 interrupts received")
                os._exit(128 + signo)

        def on_hup() -> None:
            from .reload import reload_config

            reload_config(self, self.flags)

        for signo in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            loop.add_signal_handler(signo, on_signal, signo)
        loop.add_signal_handler(signal.SIGHUP, on_hup)
        servers = []
        for listener in self.listeners:
            server = await serve_listener(listener, on_connect, self.log, protocol)
            if server is not None:
                servers.append(server)
            if handover is None:
                self.log.info(f"API listen on {listener.display}")
        for adopted in handover.connections if handover is not None else ():
            await loop.connect_accepted_socket(
                functools.partial(HttpProtocol, router, router.fast, adopted=adopted), adopted.sock
            )
        self.containers.attach_monitors()
        await self.containers.autostart()
        if handover is None:
            notify.notify("READY=1")
        self.containers.launcher.start()  # the shim zygote warms up in its own process meanwhile
        for caught in handover.signals if handover is not None else ():  # the boot loop's, in their order
            on_hup() if caught == signal.SIGHUP else on_signal(caught)
        await stop.wait()
        self.shutting_down = True
        for server in servers:
            server.close()
        for listener in self.listeners:
            close_listener(listener)
        notify.notify("STOPPING=1")
        timeout = self.shutdown_timeout()
        self.log.debug(
            f"daemon configured with a {self.config['shutdown-timeout']} seconds minimum shutdown timeout"
        )
        try:
            await asyncio.wait_for(self.containers.shutdown(timeout), None if timeout < 0 else timeout + 1)
            self.log.debug("Clean shutdown succeeded")
        except TimeoutError:
            self.log.error("Force shutdown daemon")
        self.containers.launcher.close()
        if self.networks is not None:
            self._shutdown_networks()
        from .containers.model import sync_records

        sync_records()  # the container records saved last are on disk before refd says it is done
        self.log.info("Daemon shutdown complete")
        pidfile.remove(self.config["pidfile"])
        return 0


def run(config: DaemonConfig, flags: ParsedFlags, log: Logger, routes: Callable[[Router], None]) -> int:
    """Start refd and block until shutdown; returns the process exit status."""
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    log.info("Starting up")
    for warning in config.warnings:
        log.warning(warning)
    if os.geteuid() != 0:
        sys.stderr.write(
            "dockerd needs to be started with root privileges. To run dockerd in rootless mode as an "
            "unprivileged user, see https://docs.docker.com/go/rootless/\n"
        )
        return 1
    daemon = Daemon(config, flags, log)
    try:
        daemon.prepare()
    except StartupError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    except OSError as exc:  # an unwritable or full data-root/exec-root: one line, as dockerd, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        sys.stderr.write(f"failed to start daemon: {where}{(exc.strerror or str(exc)).lower()}\n")
        return 1
    log.debug("refd", version=REFD_VERSION)
    return daemon.serve_all(routes)
