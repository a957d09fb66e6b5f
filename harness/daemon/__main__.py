"""``refd`` / ``python -m harness.daemon``: dockerd's command line, then serve."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .server import Router

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    from .config import ConfigError, load_config
    from .flags import FlagError, HelpRequested, VersionRequested, parse_args
    from .log import Logger, parse_level

    if argv is None:  # run as a program (not main([...]) from a test's own process)
        _name_process()
    args = sys.argv[1:] if argv is None else argv
    try:
        flags = parse_args(args)
    except (HelpRequested, VersionRequested) as exc:
        sys.stdout.write(exc.render())
        return 0
    except FlagError as exc:
        sys.stderr.write(exc.render() + "\n")
        return 1
    for notice in flags.notices:  # deprecated flags, as pflag says once the command line parsed
        sys.stdout.write(notice + "\n")
    try:
        config = load_config(flags)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    _remap_notice(str(config["userns-remap"] or ""))
    if config["validate"]:
        sys.stderr.write("configuration OK\n")
        return 0
    level = parse_level(config["log-level"] or "info")
    if config["debug"]:
        level = "debug"
    log = Logger(sys.stderr, level=level, fmt=config["log-format"] or "text")
    from .daemon import run

    return run(config, flags, log, _routes)


def _remap_notice(value: str) -> None:
    """dockerd resolves --userns-remap while it loads its configuration, before its logging is set up (and
    with --validate too): the line is logrus's default, text at info, whatever --log-level and --log-format
    say (dockerd 28.5 in the userns-remap profile)."""
    from .idmap import remap_notice
    from .log import format_text, timestamp

    notice = remap_notice(value)
    if notice is not None:
        sys.stderr.write(format_text(notice[0], notice[1], {}, timestamp()) + "\n")


def _routes(router: Router) -> None:
    """The Engine API's handlers, imported once refd serves (as before: boot time is a benchmark)."""
    from .api import register

    register(router)


def _name_process() -> None:
    """Be ``refd`` in ps, top, lsof and ``systemctl status`` (dockerd's process is named ``dockerd``).

    ``python -m harness.daemon`` would otherwise be ``python3`` there, so the tutorial's
    ``lsof -i -P -n | grep dockerd`` has no refd line to find under refd's own name.
    """
    try:
        with open("/proc/self/comm", "w") as fh:
            fh.write("refd")
    except OSError:
        pass


if __name__ == "__main__":
    status = main()
    # refd has cleaned up by now (containers, networks, pidfile): skip the interpreter's teardown
    # of every module, which took longer than the shutdown itself (dockerd's exit is immediate)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
