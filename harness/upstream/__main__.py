"""``python -m harness.upstream build|list|clean``: moby's integration test binaries in the harness cache."""

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
    sub.add_parser("list", help="show the cached builds")
    sub.add_parser("clean", help="remove every cached build and unfinished work directory")
    args = p.parse_args(argv)
    try:
        if args.command == "build":
            got = ensure_build(version=args.version, rebuild=args.rebuild)
            print(f"moby {got.version} (Go {got.go_version}): {len(got.packages())} packages in {got.path}")
            return 0
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


if __name__ == "__main__":
    raise SystemExit(main())
