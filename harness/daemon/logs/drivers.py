"""The log drivers refd has (``json-file``, ``local``, ``none``) and a container's ``LogConfig`` checked
as dockerd checks it: the driver and its option keys (and json-file's values) at create, the local
driver's values when the container starts (moby ``daemon/logger/local`` New)."""

from __future__ import annotations

from typing import Any

from ..errors import invalid
from .jsonfile import LogOptionError, parse_log_options
from .local import check_local_option_keys, parse_local_options

__all__ = ["DRIVERS", "check_at_create", "check_at_start"]

DRIVERS = ("json-file", "none", "local")


def check_at_create(log_config: dict[str, Any]) -> None:
    """dockerd's 400s for an unknown driver or bad options, at create."""
    driver = log_config.get("Type")
    if driver not in DRIVERS:
        raise invalid(
            f"failed to create task for container: logger: no log driver named '{driver}' is registered"
        )
    opts = log_config.get("Config") or {}
    try:
        if driver == "json-file":
            parse_log_options(opts)
        elif driver == "local":  # dockerd checks the keys at create, the values when the logger starts
            check_local_option_keys(opts)
    except LogOptionError as exc:
        raise invalid(str(exc)) from None


def check_at_start(log_config: dict[str, Any]) -> None:
    """The local driver's option values; LogOptionError with dockerd's text (the start fails with it)."""
    if log_config.get("Type") == "local":
        parse_local_options(log_config.get("Config") or {})
