"""BuildKit's control API on ``/grpc``: what the docker driver of buildx and compose calls (as dockerd).

Seen with real buildx 0.13 and compose 2.26 against dockerd 28.5 (``--debug``, the HTTP/2 frames
decoded): ``Control/ListWorkers`` and ``Control/Info`` (``buildx ls``), ``Control/DiskUsage``
(``buildx du``), ``Control/Prune`` (``buildx prune``), and a build as

1. ``Control/Status`` (the progress stream) beside ``Control/Solve`` with no frontend: a *gateway*
   build the client drives, naming its session and its exporters (``moby``: the image store,
   ``local``, ``tar``);
2. ``LLBBridge/Ping`` (the capabilities), ``LLBBridge/Solve`` with ``Frontend: dockerfile.v0`` and
   the build's options (``filename``, ``target``, ``build-arg:*``, ``no-cache``...): refd runs its
   Dockerfile frontend there and answers a result reference with the image config as metadata;
3. ``LLBBridge/Return`` with that result (or the client's error), which ends the gateway build;
   the Solve then exports it and answers the exporter response (``containerimage.digest``,
   ``image.name``...), and the Status stream ends.

Internal solves (``Internal: true``, no exporter: buildx probing capabilities) follow the same
path with an empty result. LLB definitions are not solved: refd has no LLB solver.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .grpc import INVALID_ARGUMENT, UNIMPLEMENTED, UNKNOWN, Call, GrpcError, Peer
from .messages import (
    APICap,
    BuildkitVersion,
    DiskUsageRequest,
    DiskUsageResponse,
    GatewayResult,
    GatewayReturnRequest,
    GatewaySolveRequest,
    GatewaySolveResponse,
    GCPolicy,
    InfoResponse,
    ListWorkersResponse,
    Platform,
    PongResponse,
    PruneRequest,
    Ref,
    SolveRequest,
    SolveResponse,
    StatusRequest,
    WorkerRecord,
)
from .progress import Progress
from .session import SessionError, SessionManager

if TYPE_CHECKING:
    from ..daemon import Daemon
    from .frontend import BuildResult

__all__ = ["Controller", "controller", "serve_control"]

BUILDKIT_PACKAGE = "github.com/moby/buildkit"
BUILDKIT_VERSION = "v0.0.0+refd"
_ENDED_KEPT = 32  # ended builds whose progress a late Status still gets
_SOLVE_WAIT = 3.0  # seconds a gateway call waits for its build's Solve (BuildKit's lookupForwarder)
#: the gateway API capabilities refd serves (a client asks before it uses one)
FRONTEND_CAPS = (
    "frontend.caps",
    "proto.refarray",
    "return",
    "returnmap",
    "solve.base",
    "gateway.solve.metadata",
)


class BuildFailed(Exception):
    """A build that failed; the message is what the client prints after ``failed to solve:``."""


@dataclass
class Build:
    """One build (a Solve's ``Ref``): its progress, the gateway's returned result, its end."""

    ref: str
    progress: Progress = field(default_factory=Progress)
    returned: asyncio.Future[BuildResult | None] | None = None
    results: dict[str, BuildResult] = field(default_factory=dict)
    session_id: str = ""
    frontend_attrs: dict[str, str] = field(default_factory=dict)
    solving: asyncio.Event = field(default_factory=asyncio.Event)  # set once Solve gave the session

    def returned_future(self) -> asyncio.Future[BuildResult | None]:
        if self.returned is None:
            self.returned = asyncio.get_running_loop().create_future()
        return self.returned


class Controller:
    """refd's BuildKit: the builds in flight, the client sessions, the build cache."""

    def __init__(self, daemon: Daemon) -> None:
        from .cache import build_cache

        self.daemon = daemon
        self.sessions = SessionManager()
        self.builds: dict[str, Build] = {}
        self.ended: dict[str, Progress] = {}  # the last builds' progress, for a Status that comes late
        self.cache = build_cache(daemon)
        self.lock = asyncio.Lock()  # one build at a time touches the cache's records

    def build(self, ref: str) -> Build:
        found = self.builds.get(ref)
        if found is None:
            found = self.builds[ref] = Build(ref)
        return found

    def end(self, build: Build) -> None:
        """The build is over: its progress closes and is kept (the last ``_ENDED_KEPT``) for a late Status."""
        build.progress.close()
        for res in build.results.values():
            res.release()
        self.builds.pop(build.ref, None)
        self.ended[build.ref] = build.progress
        while len(self.ended) > _ENDED_KEPT:
            del self.ended[next(iter(self.ended))]

    def handlers(self) -> dict[str, Any]:
        c, g = "/moby.buildkit.v1.Control/", "/moby.buildkit.v1.frontend.LLBBridge/"
        return {
            c + "ListWorkers": self.list_workers,
            c + "Info": self.info,
            c + "DiskUsage": self.disk_usage,
            c + "Prune": self.prune,
            c + "Solve": self.solve,
            c + "Status": self.status,
            g + "Ping": self.ping,
            g + "Solve": self.gateway_solve,
            g + "Return": self.gateway_return,
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export": self.discard,
            "/grpc.health.v1.Health/Check": self.health,
        }

    # -- the worker -----------------------------------------------------------------------------------
    def worker(self) -> WorkerRecord:
        from ..goformat import go_arch

        arch = go_arch()
        platforms = [Platform(Architecture=arch, OS="linux")]
        if arch == "amd64":
            platforms += [Platform(Architecture="amd64", OS="linux", Variant=v) for v in _amd64_levels()]
            platforms.append(Platform(Architecture="386", OS="linux"))
        return WorkerRecord(
            ID=self.daemon.engine_id,
            Labels={"org.mobyproject.buildkit.worker.moby.host-gateway-ip": self._gateway_ip()},
            platforms=platforms,
            GCPolicy=_gc_policies(self.daemon),
            BuildkitVersion=BuildkitVersion(package=BUILDKIT_PACKAGE, version=BUILDKIT_VERSION),
        )

    def _gateway_ip(self) -> str:
        net = self.daemon.networks.find("bridge") if self.daemon.networks is not None else None
        if net is not None and net.ipam_config and net.ipam_config[0].get("Gateway"):
            return str(net.ipam_config[0]["Gateway"])
        return "172.17.0.1"

    async def list_workers(self, call: Call) -> None:
        await call.recv()
        await call.send(ListWorkersResponse(record=[self.worker()]).encode())

    async def info(self, call: Call) -> None:
        await call.recv()
        version = BuildkitVersion(package=BUILDKIT_PACKAGE, version=BUILDKIT_VERSION)
        await call.send(InfoResponse(buildkitVersion=version).encode())

    async def discard(self, call: Call) -> None:
        while await call.recv() is not None:
            pass
        await call.send(b"")

    async def health(self, call: Call) -> None:
        await call.recv()
        await call.send(b"\x08\x01")  # SERVING

    # -- the cache ------------------------------------------------------------------------------------
    async def disk_usage(self, call: Call) -> None:
        req = DiskUsageRequest.decode(await call.recv() or b"")
        records = await self.cache.usage([f for f in req.filter if f])
        await call.send(DiskUsageResponse(record=records).encode())

    async def prune(self, call: Call) -> None:
        req = PruneRequest.decode(await call.recv() or b"")
        async with self.lock:
            removed = await self.cache.prune(
                [f for f in req.filter if f], bool(req.all), int(req.keepDuration), int(req.reservedSpace)
            )
        for record in removed:
            await call.send(record.encode())

    # -- builds ---------------------------------------------------------------------------------------
    async def status(self, call: Call) -> None:
        req = StatusRequest.decode(await call.recv() or b"")
        ref = str(req.Ref)
        # the client opens Status beside its Solve; delayed (a loaded machine), it may come after the Solve
        # ended: it gets the whole progress and ends (BuildKit's build history), not a stream never closed
        progress = self.ended.get(ref)
        if progress is None:
            progress = self.build(ref).progress
        async for message in progress.stream():
            await call.send(message.encode())

    async def solve(self, call: Call) -> None:
        from .exporter import export

        req = SolveRequest.decode(await call.recv() or b"")
        build = self.build(str(req.Ref))
        build.session_id = str(req.Session)
        build.solving.set()
        exporters = list(req.Exporters)
        if not exporters and req.ExporterDeprecated:
            from .messages import Exporter

            exporters = [Exporter(Type=req.ExporterDeprecated, Attrs=dict(req.ExporterAttrsDeprecated))]
        try:
            if req.Definition:
                raise GrpcError(
                    UNIMPLEMENTED, "refd does not solve LLB definitions: use the dockerfile.v0 frontend"
                )
            if req.Frontend:
                result: BuildResult | None = await self._run_frontend(
                    build, str(req.Frontend), dict(req.FrontendAttrs)
                )
            else:
                result = await build.returned_future()
            response = await export(self, build, result, exporters, req)
            await call.send(SolveResponse(ExporterResponse=response).encode())
        except BuildFailed as exc:
            raise GrpcError(UNKNOWN, str(exc)) from None
        except SessionError as exc:
            raise GrpcError(UNKNOWN, str(exc)) from None
        finally:
            self.end(build)

    async def _run_frontend(self, build: Build, frontend: str, attrs: dict[str, str]) -> BuildResult:
        from .frontend import run_dockerfile

        if frontend not in ("dockerfile.v0", "dockerfile"):
            raise GrpcError(INVALID_ARGUMENT, f"frontend {frontend} not found")
        session = await self.sessions.get(build.session_id)
        async with self.lock:
            return await run_dockerfile(self, build, session, attrs)

    # -- the gateway (LLBBridge) ------------------------------------------------------------------------
    async def _gateway_build(self, call: Call) -> Build:
        """The build a gateway call names, once its Solve has registered it: buildx's gateway calls can
        overtake its Control/Solve on a loaded machine, and BuildKit waits for the Solve up to 3 s
        (``lookupForwarder``) before it answers ``no such job``."""
        ids = call.metadata("buildkit-controlapi-buildid")
        if not ids:
            raise GrpcError(INVALID_ARGUMENT, "no such job ")
        known = ids[0] in self.builds
        build = self.build(ids[0])
        try:
            await asyncio.wait_for(build.solving.wait(), _SOLVE_WAIT)
        except TimeoutError:
            if not known and self.builds.get(ids[0]) is build and not build.solving.is_set():
                self.builds.pop(ids[0], None)  # made only for this wait: nothing else holds it
            raise GrpcError(INVALID_ARGUMENT, "no such job " + ids[0]) from None
        return build

    async def ping(self, call: Call) -> None:
        await call.recv()
        caps = [APICap(ID=name, Enabled=True) for name in FRONTEND_CAPS]
        await call.send(PongResponse(FrontendAPICaps=caps, Workers=[self.worker()]).encode())

    async def gateway_solve(self, call: Call) -> None:
        req = GatewaySolveRequest.decode(await call.recv() or b"")
        build = await self._gateway_build(call)
        if req.Definition or not req.Frontend:
            raise GrpcError(
                UNIMPLEMENTED, "refd does not solve LLB definitions: use the dockerfile.v0 frontend"
            )
        try:
            result = await self._run_frontend(build, str(req.Frontend), dict(req.FrontendOpt))
        except BuildFailed as exc:
            raise GrpcError(UNKNOWN, str(exc)) from None
        except SessionError as exc:
            raise GrpcError(UNKNOWN, str(exc)) from None
        ref_id = os.urandom(13).hex()[:25]
        build.results[ref_id] = result
        answer = GatewayResult(ref=Ref(id=ref_id), metadata=result.metadata())
        await call.send(GatewaySolveResponse(result=answer).encode())

    async def gateway_return(self, call: Call) -> None:
        req = GatewayReturnRequest.decode(await call.recv() or b"")
        build = await self._gateway_build(call)
        future = build.returned_future()
        if req.error is not None and req.error.code:
            if not future.done():
                future.set_exception(BuildFailed(str(req.error.message)))
        else:
            result = req.result
            ref_id = str(result.ref.id) if result is not None and result.ref is not None else ""
            found = build.results.get(ref_id) if ref_id else None
            if ref_id and found is None:
                raise GrpcError(INVALID_ARGUMENT, f"no such ref {ref_id}")
            if found is not None and result is not None:
                found.returned_metadata = {k: bytes(v) for k, v in result.metadata.items()}
            if not future.done():
                future.set_result(found)
        await call.send(b"")


def _amd64_levels() -> list[str]:
    """The x86-64 microarchitecture levels this CPU runs (BuildKit lists them as variants)."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:
        return []
    have = set(flags)
    levels = [
        ("v2", {"cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"}),
        ("v3", {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}),
        ("v4", {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}),
    ]
    out = []
    for name, needed in levels:
        if not needed <= have:
            break
        out.append(name)
    return out


def _gc_policies(daemon: Daemon) -> list[GCPolicy]:
    """dockerd's default build-cache GC policies, sized from the data root's filesystem."""
    root = str(daemon.config["data-root"] or "/")
    try:
        st = os.statvfs(root)
        disk = st.f_blocks * st.f_frsize
    except OSError:
        disk = 0
    gb = 1_000_000_000

    def share(percent: int) -> int:
        return (disk * percent // 100) // gb * gb

    reserved, max_used, min_free = share(10), share(80), share(20)
    day = 24 * 3600 * 1_000_000_000
    return [
        GCPolicy(
            keepDuration=2 * day,
            filters=["type==source.local,type==exec.cachemount,type==source.git.checkout"],
            maxUsedSpace=512 * 1024 * 1024,
        ),
        GCPolicy(keepDuration=60 * day, reservedSpace=reserved, maxUsedSpace=max_used, minFreeSpace=min_free),
        GCPolicy(reservedSpace=reserved, maxUsedSpace=max_used, minFreeSpace=min_free),
        GCPolicy(all=True, reservedSpace=reserved, maxUsedSpace=max_used, minFreeSpace=min_free),
    ]


def controller(daemon: Daemon) -> Controller:
    """The daemon's BuildKit controller, made on first use."""
    found = daemon.__dict__.get("_buildkit")
    if found is None:
        found = daemon.__dict__["_buildkit"] = Controller(daemon)
    return found


async def serve_control(daemon: Daemon, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Serve the control API on a hijacked connection until the client closes it."""
    ctl = controller(daemon)
    peer = Peer(reader, writer, client_side=False, handlers=ctl.handlers())
    await peer.start()
    await peer.serve()
