"""``harness serve``: the fixture service. Leases throwaway daemons to test suites written in any language.

A small HTTP/JSON service on host loopback (default ``127.0.0.1:7079``; ``HARNESS_SERVE_URL`` tells clients
where it is):

- ``POST /leases`` ``{"target": "dockerd-28", "backend": "local", "args": [...], "config": {...},
  "tls": false, "ttl": 600}`` boots a daemon with the harness's backends and answers ``201`` with
  ``{"id", "target", "backend", "docker_host", "env": {"DOCKER_HOST", "DOCKER_TLS_VERIFY",
  "DOCKER_CERT_PATH"}, "cert_path", "pid", "workdir", "expires", "kernel"}``; ``tls: true`` mints a CA and
  certificates (``harness.tls``) and boots the daemon with ``--tlsverify`` on a TCP socket, ``cert_path``
  holding the client's ``ca.pem``/``cert.pem``/``key.pem``;
- ``GET /leases`` lists them, ``GET /leases/ID`` shows one, ``DELETE /leases/ID`` tears it down (``204``);
- a lease not released within its ``ttl`` seconds is torn down by the service; stopping the service
  (SIGINT/SIGTERM) tears every lease down.

A warm pool per (target, backend) (:mod:`harness.pool`) keeps ``pool_size`` default daemons booted (CLI
``--pool-size``, env ``HARNESS_SERVE_POOL_SIZE``, default 1; ``0`` turns pooling off): a lease with no
``args``, no ``config`` and no ``tls`` takes one (``"pooled": true``) and answers in milliseconds, and the
pool boots a replacement in the background. A pool starts with the first lease of its pair, or at start-up
for the targets in ``--warm`` (env ``HARNESS_SERVE_WARM``). Any other lease boots a fresh daemon: its flags
and ``daemon.json`` are fixed at boot (most keys cannot be reloaded), so a pooled default daemon cannot be
turned into it. ``GET /health`` shows each pool (``ready``, ``booting``, the last boot error).

Errors are JSON ``{"message": ...}``: ``400`` for a bad request (unknown target or backend), ``404`` for an
unknown lease, ``503`` when the daemon did not boot (the message carries its log excerpt).

The client side: ``harness lease TARGET [--backend B] [--arg FLAG] [--tls]`` prints ``export ...`` lines and
``export HARNESS_LEASE=ID``; ``harness release ID``; ``harness leases``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .pool import Booted, WarmPool

__all__ = ["DEFAULT_POOL_SIZE", "DEFAULT_URL", "Lease", "LeaseService", "client_main", "serve_main"]

DEFAULT_URL = "http://127.0.0.1:7079"
DEFAULT_TTL = 600.0


@dataclass
class Lease:
    id: str
    target: str
    backend: str
    handle: Any
    backend_obj: Any
    expires: float
    tls_dir: str = ""
    info: dict[str, Any] = field(default_factory=dict)


DEFAULT_POOL_SIZE = 1


class LeaseService:
    """Boots, lists and tears down leased daemons; thread-safe; the HTTP layer is :class:`_Handler`."""

    def __init__(
        self,
        default_backend: str = "local",
        max_ttl: float = 3600.0,
        pool_size: int = 0,
        warm: tuple[str, ...] = (),
    ) -> None:
        self.default_backend = default_backend
        self.max_ttl = max_ttl
        self.pool_size = pool_size
        self.pools: dict[tuple[str, str], WarmPool] = {}
        self.leases: dict[str, Lease] = {}
        self._releasing: set[str] = set()
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, daemon=True, name="lease-reaper")
        self._reaper.start()
        if warm:
            from .backends import get_backend
            from .targets import resolve_target

            backend = get_backend(default_backend)
            for name in warm:
                self._pool(resolve_target(name), backend)

    # -- pools ----------------------------------------------------------------------------------------
    def _pool(self, target: Any, backend: Any) -> WarmPool | None:
        """The pool of (target, backend), started on first use; None when pooling is off."""
        if self.pool_size <= 0:
            return None
        key = (target.name, backend.name)
        with self.lock:
            if self._stop.is_set():
                return None
            pool = self.pools.get(key)
            if pool is None:
                pool = self.pools[key] = WarmPool(
                    key,
                    self.pool_size,
                    lambda: self._boot(target, backend),
                    lambda booted: booted.backend.teardown(booted.handle),
                )
        return pool

    @staticmethod
    def _boot(target: Any, backend: Any, spec: Any = None) -> Booted:
        """Boot one daemon in a work directory of its own (removed again if it does not boot)."""
        from .backends.base import DaemonSpec

        workdir = tempfile.mkdtemp(prefix=f"harness-{target.name}-")
        try:
            handle = backend.start(target, spec if spec is not None else DaemonSpec(), workdir)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        return Booted(handle, backend)

    def pool_status(self) -> dict[str, Any]:
        with self.lock:
            pools = list(self.pools.values())
        return {f"{p.key[0]}/{p.key[1]}": p.status() for p in pools}

    # -- leases ---------------------------------------------------------------------------------------
    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        from .backends import get_backend
        from .backends.base import DaemonSpec
        from .errors import ConfigValueError, HarnessError
        from .targets import KNOWN_TARGETS, resolve_target

        target_name = body.get("target")
        if not isinstance(target_name, str) or target_name not in KNOWN_TARGETS:
            raise _BadRequest(f"unknown target {target_name!r}: choose from {', '.join(KNOWN_TARGETS)}")
        backend_name = body.get("backend") or self.default_backend
        try:
            backend = get_backend(str(backend_name))
        except ConfigValueError as exc:
            raise _BadRequest(str(exc)) from None
        args = body.get("args") or []
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise _BadRequest("args must be a list of strings (daemon flags)")
        config = body.get("config")
        if config is not None and not isinstance(config, dict):
            raise _BadRequest("config must be an object (written as daemon.json)")
        try:
            ttl = min(float(body.get("ttl") or DEFAULT_TTL), self.max_ttl)
        except (TypeError, ValueError):
            raise _BadRequest("ttl must be a number of seconds") from None
        lease_id = uuid.uuid4().hex[:12]
        target = resolve_target(target_name)
        pooled = None
        if not args and not config and not body.get("tls"):
            pool = self._pool(target, backend)
            pooled = pool.take() if pool is not None else None
        spec = DaemonSpec(args=list(args), config=config)
        tls_dir = ""
        if body.get("tls"):
            from .endpoints import TLSFiles
            from .tls import mint_tls_material

            tls_dir = tempfile.mkdtemp(prefix="harness-lease-tls-")
            material = mint_tls_material(tls_dir)
            spec.args += material.daemon_args(verify=True)
            spec.hosts = ["tcp://127.0.0.1:2376"]
            spec.client_tls = TLSFiles(
                ca=material.ca,
                cert=material.client_cert,
                key=material.client_key,
                cert_dir=material.client_dir,
            )
        if pooled is not None:
            handle, backend = pooled.handle, pooled.backend
        else:
            try:
                handle = self._boot(target, backend, spec).handle
            except HarnessError as exc:
                if tls_dir:
                    shutil.rmtree(tls_dir, ignore_errors=True)
                raise _Unavailable(str(exc)) from None
        lease = Lease(lease_id, target.name, backend.name, handle, backend, time.time() + ttl, tls_dir)
        env = handle.endpoint.env() if handle.endpoint is not None else {}
        lease.info = {
            "id": lease_id,
            "target": target.name,
            "backend": backend.name,
            "docker_host": env.get("DOCKER_HOST", ""),
            "env": env,
            "cert_path": env.get("DOCKER_CERT_PATH", ""),
            "pid": handle.pid,
            "workdir": handle.workdir,
            "kernel": handle.extras.get("kernel", os.uname().release),
            "expires": round(lease.expires, 3),
            "pooled": pooled is not None,
        }
        with self.lock:
            self.leases[lease_id] = lease
        return lease.info

    def get(self, lease_id: str) -> dict[str, Any]:
        with self.lock:
            lease = self.leases.get(lease_id)
        if lease is None:
            raise _NotFound(f"no lease {lease_id!r}")
        return {**lease.info, "alive": lease.handle.returncode is None}

    def list(self) -> list[dict[str, Any]]:
        with self.lock:
            ids = list(self.leases)
        return [self.get(i) for i in ids if i in self.leases]

    def release(self, lease_id: str) -> None:
        with self.lock:
            lease = self.leases.get(lease_id)
            if lease is None or lease_id in self._releasing:
                raise _NotFound(f"no lease {lease_id!r}")
            self._releasing.add(lease_id)
        try:
            self._teardown(lease)
        finally:  # listed until it is gone: a 404 means nothing of it is left
            with self.lock:
                self.leases.pop(lease_id, None)
                self._releasing.discard(lease_id)

    @staticmethod
    def _teardown(lease: Lease) -> None:
        try:
            lease.backend_obj.teardown(lease.handle)
        finally:
            if lease.tls_dir:
                shutil.rmtree(lease.tls_dir, ignore_errors=True)

    def _reap_loop(self) -> None:
        while not self._stop.wait(1.0):
            now = time.time()
            with self.lock:
                expired = [i for i, lease in self.leases.items() if lease.expires <= now]
            for lease_id in expired:
                sys.stderr.write(f"harness serve: lease {lease_id} expired; tearing it down\n")
                with contextlib.suppress(_NotFound):  # released meanwhile
                    self.release(lease_id)

    def close(self) -> None:
        """Tear every lease and every pooled daemon down (the service is stopping)."""
        self._stop.set()
        with self.lock:
            leases = list(self.leases.values())
            self.leases.clear()
            pools = list(self.pools.values())
            self.pools.clear()
        for pool in pools:
            pool.close()
        for lease in leases:
            try:
                self._teardown(lease)
            except Exception as exc:  # keep tearing the others down
                sys.stderr.write(f"harness serve: teardown of lease {lease.id} failed: {exc}\n")


class _BadRequest(Exception):
    status = 400


class _NotFound(Exception):
    status = 404


class _Unavailable(Exception):
    status = 503


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write("harness serve: " + str(self.address_string()) + " " + str(format % args) + "\n")

    def _send(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self, method: str) -> None:
        service = self.server.service
        path = self.path.split("?")[0].rstrip("/")
        try:
            if method == "GET" and path == "/health":
                self._send(
                    200, {"status": "ok", "leases": len(service.leases), "pools": service.pool_status()}
                )
            elif method == "GET" and path == "/leases":
                self._send(200, service.list())
            elif method == "POST" and path == "/leases":
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    raise _BadRequest("the body is not JSON") from None
                if not isinstance(body, dict):
                    raise _BadRequest("the body must be a JSON object")
                self._send(201, service.create(body))
            elif path.startswith("/leases/") and method == "GET":
                self._send(200, service.get(path.rsplit("/", 1)[1]))
            elif path.startswith("/leases/") and method == "DELETE":
                service.release(path.rsplit("/", 1)[1])
                self._send(204)
            else:
                self._send(404, {"message": f"no route for {method} {path}"})
        except (_BadRequest, _NotFound, _Unavailable) as exc:
            self._send(exc.status, {"message": str(exc)})

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: LeaseService) -> None:
        self.service = service
        super().__init__(address, _Handler)


def make_server(
    host: str = "127.0.0.1",
    port: int = 7079,
    backend: str = "local",
    pool_size: int = 0,
    warm: tuple[str, ...] = (),
) -> _Server:
    """The HTTP server (not yet serving); ``port=0`` picks a free one (``server.server_address``).

    ``pool_size`` > 0 keeps that many default daemons warm per (target, backend); ``warm`` names the
    targets (on ``backend``) whose pools fill at once instead of after their first lease."""
    return _Server((host, port), LeaseService(default_backend=backend, pool_size=pool_size, warm=warm))


def _pool_size(text: str, source: str) -> int:
    try:
        size = int(text)
    except ValueError:
        size = -1
    if size < 0:
        raise SystemExit(f"harness serve: {source} must be a whole number >= 0 (0: no pool), not {text!r}")
    return size


def _warm_targets(text: str, source: str) -> tuple[str, ...]:
    from .targets import KNOWN_TARGETS

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in KNOWN_TARGETS]
    if unknown:
        raise SystemExit(
            f"harness serve: {source} names unknown target(s) {', '.join(unknown)}: "
            f"choose from {', '.join(KNOWN_TARGETS)}"
        )
    return names


def serve_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="harness serve", description="lease throwaway Docker daemons over HTTP")
    p.add_argument(
        "--listen", default="127.0.0.1:7079", help="HOST:PORT (default 127.0.0.1:7079; port 0: any)"
    )
    p.add_argument("--backend", default="local", help="default backend of leases (local, container, vm)")
    p.add_argument(
        "--pool-size",
        default=None,
        help=f"default daemons kept booted per (target, backend) (env HARNESS_SERVE_POOL_SIZE; "
        f"default {DEFAULT_POOL_SIZE}; 0: no pool)",
    )
    p.add_argument(
        "--warm",
        default=None,
        help="comma-separated targets whose pools (on --backend) fill at start-up, e.g. refd,dockerd-28 "
        "(env HARNESS_SERVE_WARM; others fill after their first lease)",
    )
    args = p.parse_args(argv)
    if args.pool_size is not None:
        pool_size = _pool_size(args.pool_size, "--pool-size")
    elif os.environ.get("HARNESS_SERVE_POOL_SIZE"):
        pool_size = _pool_size(os.environ["HARNESS_SERVE_POOL_SIZE"], "HARNESS_SERVE_POOL_SIZE")
    else:
        pool_size = DEFAULT_POOL_SIZE
    if args.warm is not None:
        warm = _warm_targets(args.warm, "--warm")
    else:
        warm = _warm_targets(os.environ.get("HARNESS_SERVE_WARM", ""), "HARNESS_SERVE_WARM")
    if os.geteuid() == 0:
        from .cleanup import LEDGER

        LEDGER.reap()  # what a killed service (or test session) left, pooled daemons included
    host, _, port = args.listen.rpartition(":")
    server = make_server(host or "127.0.0.1", int(port), args.backend, pool_size, warm)
    stop = threading.Event()
    for signo in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signo, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="harness-serve")
    thread.start()
    bound = server.server_address
    print(f"export HARNESS_SERVE_URL=http://{bound[0]!s}:{bound[1]}", flush=True)
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.service.close()
        server.server_close()
    return 0


# -- the client -----------------------------------------------------------------------------------------


def _request(method: str, path: str, body: Any = None, url: str | None = None) -> tuple[int, Any]:
    base = (url or os.environ.get("HARNESS_SERVE_URL") or DEFAULT_URL).rstrip("/")
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=900) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        with exc:
            raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"message": raw.decode(errors="replace")}
    except urllib.error.URLError as exc:
        raise SystemExit(
            f"harness: the fixture service at {base} does not answer ({exc.reason}); start it with "
            "`harness serve` or set HARNESS_SERVE_URL"
        ) from None


def client_main(command: str, argv: list[str]) -> int:
    """``harness lease TARGET ...``, ``harness release ID``, ``harness leases``."""
    p = argparse.ArgumentParser(prog=f"harness {command}")
    p.add_argument("--url", default=None, help=f"the service (default $HARNESS_SERVE_URL or {DEFAULT_URL})")
    if command == "lease":
        p.add_argument("target")
        p.add_argument("--backend", default=None)
        p.add_argument(
            "--arg", action="append", default=[], help="daemon flag (repeatable), e.g. --arg=--debug"
        )
        p.add_argument(
            "--tls", action="store_true", help="a TCP socket with --tlsverify; prints DOCKER_CERT_PATH"
        )
        p.add_argument("--ttl", type=float, default=None, help="seconds before the service tears it down")
        p.add_argument("--json", action="store_true", help="print the lease as JSON")
    elif command == "release":
        p.add_argument("id")
    args = p.parse_args(argv)
    if command == "lease":
        body = {"target": args.target, "backend": args.backend, "args": args.arg, "tls": args.tls}
        if args.ttl:
            body["ttl"] = args.ttl
        status, reply = _request("POST", "/leases", body, args.url)
        if status != 201:
            print(f"harness lease: {reply.get('message', reply)}", file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps(reply, indent=1))
            return 0
        for key, value in reply["env"].items():
            print(f"export {key}={value}")
        print(f"export HARNESS_LEASE={reply['id']}")
        print(
            f"# {reply['target']} on {reply['backend']} (pid {reply['pid']}); harness release {reply['id']}"
        )
        return 0
    if command == "release":
        status, reply = _request("DELETE", f"/leases/{args.id}", None, args.url)
        if status != 204:
            print(f"harness release: {(reply or {}).get('message', status)}", file=sys.stderr)
            return 1
        return 0
    status, reply = _request("GET", "/leases", None, args.url)
    for lease in reply or []:
        print(f"{lease['id']}  {lease['target']:<14} {lease['backend']:<9} {lease['docker_host']}")
    return 0 if status == 200 else 1
