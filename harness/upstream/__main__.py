"""``python -m harness.upstream build|list|clean|run``: moby's integration test binaries in the harness cache,
and one package (or some of its tests) run against one target."""

from __future__ import annotations

import argparse
import shutil
import sys

from ..errors import HarnessError
from .build import PACKAGES, cache_dir, cached_builds, ensure_build


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m harness.upstream",
        description="Build (once, then cached) and list moby's integration test binaries, the upstream-moby "
        "conformance area's tests, from Debian's docker.io source package.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the test binaries unless cached (minutes the first time)")
    b.add_argument("--version", default=None, help="docker.io version (default: dockerd-28's, else sid's)")
    b.add_argument("--rebuild", action="store_true", help="build again even when cached")
    r = sub.add_parser("run", help="boot a target and run one package (or only the tests named) against it")
    r.add_argument("target", help="refd, dockerd, dockerd-28, ...")
    r.add_argument("package", help="network/bridge, container, ...")
    r.add_argument("tests", nargs="*", help="top-level tests to run (default: all of the package's)")
    r.add_argument("--timeout", type=float, default=300.0, help="seconds a test may run (default 300)")
    r.add_argument("--log", default=None, help="write the test binary's output to this file")
    r.add_argument("--keep", action="store_true", help="keep the daemon's work directory")
    sub.add_parser("list", help="show the cached builds")
    sub.add_parser("clean", help="remove every cached build and unfinished work directory")
    args = p.parse_args(argv)
    try:
        if args.command == "build":
            got = ensure_build(version=args.version, rebuild=args.rebuild)
            print(f"moby {got.version} (Go {got.go_version}): {len(got.packages())} packages in {got.path}")
            return 0
        if args.command == "run":
            return _run(args)
        if args.command == "list":
            print(f"cache: {cache_dir()} (packages: {', '.join(PACKAGES)})")
            for entry in cached_builds():
                meta = entry.meta()
                skipped = sum(len(v["own_daemon"]) for v in meta["packages"].values())
                print(
                    f"  {entry.path.name}: built {meta['built']} in {meta['build_seconds']}s, "
                    f"{len(meta['packages'])} packages, {skipped} tests start their own dockerd (skipped)"
                )
            return 0
        shutil.rmtree(cache_dir(), ignore_errors=True)
        print(f"removed {cache_dir()}")
        return 0
    except HarnessError as exc:
        sys.stderr.write(f"harness.upstream: error: {exc}\n")
        return 1


def _run(args: argparse.Namespace) -> int:
    """Each result on a line (``passed``, ``failed: <reason>``); 1 when a test failed or the run had a
    problem."""
    from .single import run_tests

    log = open(args.log, "w", encoding="utf-8") if args.log else None  # noqa: SIM115 - closed below
    try:
        results, problems = run_tests(
            args.target, args.package, args.tests, test_timeout=args.timeout, log=log, keep=args.keep
        )
    finally:
        if log is not None:
            log.close()
    for test in results:
        reason = f": {test.reason}" if test.reason else ""
        print(f"{args.target}  {args.package}/{test.name}  {test.outcome}{reason} ({test.duration:.1f}s)")
        if test.outcome == "failed" and "/" not in test.name:
            print("".join(f"    | {line.rstrip()}\n" for line in test.output), end="")
    for problem in problems:
        print(f"problem: {problem}")
    return 1 if problems or any(t.outcome == "failed" for t in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
