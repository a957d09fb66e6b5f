"""The worker the control API describes, and the tar output's shape."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from harness.daemon.buildkit import control
from harness.daemon.buildkit.exporter import _write_tar
from harness.daemon.buildkit.messages import ListWorkersResponse


def _daemon(tmp_path: Path) -> Any:
    net = SimpleNamespace(ipam_config=[{"Subnet": "10.99.0.0/16", "Gateway": "10.99.0.1"}])
    return SimpleNamespace(
        engine_id="5a5358fb-d25d-43d2-a7be-07aba10a1f2f",
        config={"data-root": str(tmp_path)},
        networks=SimpleNamespace(find=lambda name: net if name == "bridge" else None),
        images=None,
        log=SimpleNamespace(warning=print),
    )


def test_worker_record(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(control, "_amd64_levels", lambda: ["v2"])
    monkeypatch.setattr("harness.daemon.buildkit.cache.BuildCache._load", lambda self: None)
    ctl = control.Controller(_daemon(tmp_path))
    worker = ListWorkersResponse.decode(ListWorkersResponse(record=[ctl.worker()]).encode()).record[0]
    assert worker.ID == "5a5358fb-d25d-43d2-a7be-07aba10a1f2f"
    assert worker.Labels == {"org.mobyproject.buildkit.worker.moby.host-gateway-ip": "10.99.0.1"}
    platforms = [(p.OS, p.Architecture, p.Variant) for p in worker.platforms]
    from harness.daemon.goformat import go_arch

    if go_arch() == "amd64":
        assert platforms == [("linux", "amd64", ""), ("linux", "amd64", "v2"), ("linux", "386", "")]
    assert worker.BuildkitVersion.package == "github.com/moby/buildkit"
    policies = worker.GCPolicy
    assert policies[0].filters == ["type==source.local,type==exec.cachemount,type==source.git.checkout"]
    assert policies[-1].all and policies[1].keepDuration == 60 * 24 * 3600 * 10**9


def test_tar_output(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "out").mkdir(parents=True)
    (root / "out" / "f").write_text("x")
    os.symlink("f", root / "out" / "l")
    buf = io.BytesIO()
    _write_tar(str(root), buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        members = [(m.name, m.type) for m in tar.getmembers()]
    assert members == [("out", tarfile.DIRTYPE), ("out/f", tarfile.REGTYPE), ("out/l", tarfile.SYMTYPE)]


def test_status_after_the_solve_ended_replays_and_ends(tmp_path: Path, monkeypatch: Any) -> None:
    """A Status the client's load delayed past its Solve gets the build's progress and its end.

    buildx (buildkit client/solve.go) cancels its Status stream 3 s after the Solve returned: a Status
    that waits for a build already over failed the build with 'failed to receive status: ... Canceled'.
    """
    import asyncio
    import socket

    from harness.daemon.buildkit.grpc import GrpcError, Peer
    from harness.daemon.buildkit.messages import SolveRequest, StatusRequest, StatusResponse

    monkeypatch.setattr("harness.daemon.buildkit.cache.BuildCache._load", lambda self: None)

    async def main() -> None:
        ctl = control.Controller(_daemon(tmp_path))
        ctl.build("ref1").progress.step("[internal] load build definition from Dockerfile").start()
        a, b = socket.socketpair()
        sr, sw = await asyncio.open_connection(sock=a)
        cr, cw = await asyncio.open_connection(sock=b)
        server = Peer(sr, sw, client_side=False, handlers=ctl.handlers())
        client = Peer(cr, cw, client_side=True)
        await server.start()
        await client.start()
        tasks = [asyncio.ensure_future(server.serve()), asyncio.ensure_future(client.serve())]
        try:
            try:
                await client.unary(
                    "/moby.buildkit.v1.Control/Solve", SolveRequest(Ref="ref1", Frontend="nope").encode()
                )
            except GrpcError as exc:
                assert "frontend nope not found" in exc.message
            assert "ref1" not in ctl.builds
            call = await client.open("/moby.buildkit.v1.Control/Status")
            await call.send(StatusRequest(Ref="ref1").encode())
            await call.finish()
            names = []
            while (msg := await asyncio.wait_for(call.recv(), 30)) is not None:  # a hang guard only
                names += [v.name for v in StatusResponse.decode(msg).vertexes]
            assert names == ["[internal] load build definition from Dockerfile"] * 2
            assert "ref1" not in ctl.builds  # the late Status left no build behind
        finally:
            await client.close()
            await server.close()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


def test_a_gateway_call_before_its_solve_waits_for_its_session(tmp_path: Path, monkeypatch: Any) -> None:
    """buildx's LLBBridge/Solve can reach refd before its Control/Solve on a loaded machine: it waits for the
    Solve's session (as BuildKit does, up to 3 s) rather than running the frontend with no session ('no
    session id in the request'); a build id no Solve ever registers is 'no such job' and leaves nothing."""
    import asyncio
    import socket

    from harness.daemon.buildkit.grpc import GrpcError, Peer
    from harness.daemon.buildkit.messages import (
        GatewayReturnRequest,
        GatewaySolveRequest,
        RpcStatus,
        SolveRequest,
    )

    monkeypatch.setattr("harness.daemon.buildkit.cache.BuildCache._load", lambda self: None)
    monkeypatch.setattr(control, "_SOLVE_WAIT", 0.5)
    ran_with: list[str] = []

    async def frontend(self: Any, build: Any, frontend: str, attrs: dict[str, str]) -> Any:
        ran_with.append(build.session_id)
        raise control.BuildFailed("stop here")

    monkeypatch.setattr(control.Controller, "_run_frontend", frontend)

    async def main() -> None:
        ctl = control.Controller(_daemon(tmp_path))
        a, b = socket.socketpair()
        sr, sw = await asyncio.open_connection(sock=a)
        cr, cw = await asyncio.open_connection(sock=b)
        server = Peer(sr, sw, client_side=False, handlers=ctl.handlers())
        client = Peer(cr, cw, client_side=True)
        await server.start()
        await client.start()
        tasks = [asyncio.ensure_future(server.serve()), asyncio.ensure_future(client.serve())]
        bridge = "/moby.buildkit.v1.frontend.LLBBridge/"
        request = GatewaySolveRequest(Frontend="dockerfile.v0").encode()
        ref1 = [("buildkit-controlapi-buildid", "ref1")]
        try:
            gateway = asyncio.ensure_future(client.unary(bridge + "Solve", request, ref1))
            await asyncio.sleep(0)  # lets the gateway call go first; what is tested is its wait for the Solve
            solving = SolveRequest(Ref="ref1", Session="s1").encode()
            solve = asyncio.ensure_future(client.unary("/moby.buildkit.v1.Control/Solve", solving))
            try:
                await asyncio.wait_for(gateway, 30)  # a hang guard only
                raise AssertionError("the frontend's failure was not answered")
            except GrpcError as exc:
                assert "stop here" in exc.message
            assert ran_with == ["s1"]
            failed = GatewayReturnRequest(error=RpcStatus(code=2, message="stop here")).encode()
            await client.unary(bridge + "Return", failed, ref1)
            try:
                await asyncio.wait_for(solve, 30)  # a hang guard only
                raise AssertionError("the returned failure did not end the Solve")
            except GrpcError as exc:
                assert "stop here" in exc.message
            try:
                await client.unary(bridge + "Solve", request, [("buildkit-controlapi-buildid", "nosuch")])
                raise AssertionError("a gateway call for a build no Solve registers was answered")
            except GrpcError as exc:
                assert exc.message == "no such job nosuch"
            assert ctl.builds == {}
        finally:
            await client.close()
            await server.close()
            for t in tasks:
                t.cancel()

    asyncio.run(main())
