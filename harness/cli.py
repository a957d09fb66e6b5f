"""``harness``: the command line of the harness.

- ``harness boot TARGET [--arg FLAG ...] [--backend local|container]``: boot a throwaway daemon (private roots
  and namespaces, or a container), print ``export DOCKER_HOST=...`` lines like ``docker-machine env``, keep it
  until interrupted, then tear it down.
- ``harness report DIR``, ``harness report merge RESULTS.json... [--reports DIR]``, ``harness report compare
  OLD NEW``: the conformance runner's ``report``, ``merge`` and ``compare`` (``python -m conformance``). The
  runner adds this command through the ``harness.commands`` entry point group: the harness never imports the
  runner (the runner uses the harness), so any installed package can add a ``harness`` subcommand this way.
- ``harness rootfs ...``: build, list or clean the cached dockerd rootfs trees.
- ``harness registry [--tls] [--auth USER:PASSWORD]``: a seeded registry on host loopback until interrupted;
  ``harness boot TARGET --registry`` boots the daemon with such a registry as its Docker Hub mirror.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
import threading
from typing import Any

__all__ = ["COMMANDS_GROUP", "main"]

#: entry points ``name = "module:function"``; ``function(argv) -> int`` runs ``harness name argv...``
COMMANDS_GROUP = "harness.commands"


def _added_commands() -> dict[str, Any]:
    """The subcommands installed packages add (the conformance runner's ``report``), by name."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=COMMANDS_GROUP)}


def _boot(opts: argparse.Namespace) -> int:
    from .backends import get_backend
    from .backends.base import DaemonSpec
    from .errors import HarnessError
    from .targets import resolve_target

    if opts.backend != "local":  # the container backend says in its log which engine and privileges it chose
        logging.basicConfig(level=logging.INFO, format="harness: %(message)s", stream=sys.stderr)
        logging.getLogger("testcontainers").setLevel(logging.WARNING)  # "Pulling image": it never pulls
    stop = threading.Event()
    registry: Any = None
    for signo in (signal.SIGINT, signal.SIGTERM):  # first: a signal during boot must still tear down
        signal.signal(signo, lambda *_: stop.set())
    workdir = ""
    try:
        backend = get_backend(opts.backend)
        target = resolve_target(opts.target)
        workdir = tempfile.mkdtemp(prefix=f"harness-{target.name}-")
        registry = _start_registry() if opts.registry else None
        args = list(opts.arg or []) + ([f"--registry-mirror={registry.url}"] if registry else [])
        handle = backend.start(target, DaemonSpec(args=args), workdir)
        if registry is not None:
            registry.attach(handle)
            print(f"# Docker Hub mirror {registry.url}, also reachable in the daemon's network namespace")
    except HarnessError as exc:
        print(f"harness boot: {exc}", file=sys.stderr)
        if registry is not None:
            registry.close()
        _close_engine(opts.backend)
        if workdir and not opts.keep:
            _remove_unmounted(workdir)  # the error above carries the log lines; --keep keeps the rest
        return 1
    assert handle.endpoint is not None
    for key, value in handle.endpoint.env().items():
        print(f"export {key}={value}")
    print(
        f"# {target.name} (pid {handle.pid}) in {handle.workdir}; Ctrl-C or SIGTERM tears it down",
        flush=True,
    )
    try:
        while not stop.wait(0.5):
            if handle.returncode is not None:
                print(f"harness boot: {target.name} exited with {handle.returncode}", file=sys.stderr)
                break
    finally:
        try:
            backend.teardown(handle, keep=opts.keep)
        finally:
            if registry is not None:
                registry.close()
            _close_engine(opts.backend)
    return 0


def _start_registry() -> Any:
    """A seeded registry for ``harness boot --registry`` (harness.registry)."""
    from .registry import Registry

    registry = Registry.start()
    try:
        registry.seed()
    except BaseException:
        registry.close()
        raise
    return registry


def _close_engine(backend: str) -> None:
    """The container backend's private engine goes with the last daemon of this process."""
    if backend == "container":
        from .container_engine import close_shared_engine

        close_shared_engine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness", description="Docker Engine conformance harness")
    sub = parser.add_subparsers(dest="command", required=True)
    boot = sub.add_parser("boot", help="boot a throwaway daemon and print DOCKER_HOST")
    boot.add_argument("target", help="refd, dockerd, dockerd-20.10, dockerd-26 or dockerd-28")
    boot.add_argument("--arg", action="append", help="extra daemon flag (repeatable), e.g. --arg=--debug")
    boot.add_argument("--keep", action="store_true", help="keep the work directory after teardown")
    boot.add_argument(
        "--backend",
        default="local",
        choices=("local", "container", "vm"),
        help="where it boots: a local process (default), a container or a VM (see docs/guide.md)",
    )
    boot.add_argument(
        "--registry",
        action="store_true",
        help="also run a seeded registry and make it the daemon's Docker Hub mirror (offline pulls)",
    )
    added = _added_commands()
    for name, ep in sorted(added.items()):
        sub.add_parser(name, help=f"from {ep.value.partition(':')[0]}: harness {name} --help", add_help=False)
    sub.add_parser("rootfs", help="build, list or clean the cached dockerd rootfs trees", add_help=False)
    sub.add_parser("registry", help="run a seeded image registry on host loopback", add_help=False)
    sub.add_parser(
        "serve", help="the fixture service: lease daemons over HTTP (harness.serve)", add_help=False
    )
    sub.add_parser("lease", help="lease a daemon from `harness serve`; prints export lines", add_help=False)
    sub.add_parser("release", help="tear a leased daemon down", add_help=False)
    sub.add_parser("leases", help="list the fixture service's leases", add_help=False)
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "serve":
        from .serve import serve_main

        return serve_main(args[1:])
    if args and args[0] in ("lease", "release", "leases"):
        from .serve import client_main

        return client_main(args[0], args[1:])
    if args and args[0] in added:
        return int(added[args[0]].load()(args[1:]) or 0)
    if args and args[0] == "rootfs":
        from .rootfs import main as rootfs_main

        return int(rootfs_main(args[1:]) or 0)
    if args and args[0] == "registry":
        from .registry import main as registry_main

        return int(registry_main(args[1:]) or 0)
    opts = parser.parse_args(args)
    return _boot(opts)


def _remove_unmounted(workdir: str) -> None:
    """Remove a failed boot's work directory, unless something is still mounted below it."""
    import shutil

    with open("/proc/self/mountinfo") as fh:
        if any(f" {workdir}/" in line or f" {workdir} " in line for line in fh):
            return
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
