"""Which containers a list or a prune picks (moby ``daemon/list.go``, ``daemon/prune.go``): the
``filters`` dockerd knows, its 400s for bad values, the default of running containers only, ``limit``."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import invalid
from .health import health_status
from .model import Container, parse_rfc3339

__all__ = ["LIST_FILTERS", "STATUSES", "listed", "matches", "prunable"]

LIST_FILTERS = frozenset(
    {
        "ancestor",
        "before",
        "expose",
        "exited",
        "health",
        "id",
        "isolation",
        "is-task",
        "label",
        "name",
        "network",
        "publish",
        "since",
        "status",
        "volume",
    }
)
STATUSES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")


def _status(c: Container, values: list[str]) -> bool:
    for value in values:
        if value not in STATUSES:
            raise invalid(
                f"invalid filter 'status={value}': invalid value for state ({value}): must be one of "
                + ", ".join(STATUSES)
            )
    return c.status in values


def _labels(c: Container, values: list[str]) -> bool:
    labels = c.config.get("Labels") or {}
    for value in values:
        key, sep, wanted = value.partition("=")
        if key not in labels or (sep and labels[key] != wanted):
            return False
    return True


def _exited(c: Container, values: list[str]) -> bool:
    for value in values:
        if not value.lstrip("-").isdigit():
            raise invalid(
                f"invalid filter 'exited={value}': strconv.Atoi: parsing \"{value}\": invalid syntax"
            )
    return c.status == "exited" and str(c.state["ExitCode"]) in values


def _ancestor(c: Container, values: list[str]) -> bool:
    image = c.image_name
    return any(v in (image, c.image_id) or c.image_id.startswith("sha256:" + v) for v in values)


#: filter -> whether ``c`` passes it with these values (filters not listed here match everything)
_FILTERS = {
    "status": _status,
    "id": lambda c, values: any(c.id.startswith(v) for v in values),
    "name": lambda c, values: any(re.search(v, c.name) for v in values),
    "label": _labels,
    "exited": _exited,
    "health": lambda c, values: health_status(c) in values,
    "ancestor": _ancestor,
}


def matches(c: Container, filters: dict[str, list[str]]) -> bool:
    """Whether ``c`` passes every filter with values (dockerd's 400 for a bad status or exit code)."""
    for key, values in filters.items():
        check = _FILTERS.get(key)
        if values and check is not None and not check(c, values):
            return False
    return True


def listed(
    containers: Iterable[Container], filters: dict[str, list[str]], show_all: bool, limit: int
) -> list[Container]:
    """``GET /containers/json``: newest first; running ones only unless ``all``, a status or a limit."""
    items = sorted(containers, key=lambda c: c.created, reverse=True)
    if not show_all and limit <= 0 and "status" not in filters:
        items = [c for c in items if c.status in ("running", "paused", "restarting")]
    items = [c for c in items if matches(c, filters)]
    return items[:limit] if limit > 0 else items


def prunable(
    containers: Iterable[Container], filters: dict[str, list[str]], until: float | None
) -> list[Container]:
    """``POST /containers/prune``: stopped containers created before ``until``, by ``label``/``label!``."""
    picked = []
    for c in containers:
        if c.status not in ("exited", "created", "dead"):
            continue
        if until is not None and parse_rfc3339(c.created) > until:
            continue
        if not matches(c, {"label": filters.get("label") or []}):
            continue
        if filters.get("label!") and matches(c, {"label": filters["label!"]}):
            continue
        picked.append(c)
    return picked
