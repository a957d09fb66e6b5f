"""A container's log for ``GET /containers/{id}/logs`` (moby ``daemon/logs.go`` ContainerLogs): dockerd's
refusals, then a reader that follows until the container has stopped for good."""

from __future__ import annotations

from ..errors import conflict, not_implemented
from ..logs.reader import LogReader
from .model import Container

__all__ = ["container_logs"]


def container_logs(
    c: Container, since: float = 0.0, until: float = 0.0, tail: int = -1, follow: bool = False
) -> LogReader:
    """The reader of ``c``'s log; 409 for a container being removed, 501 for the ``none`` driver."""
    if c.status in ("removing", "dead"):
        raise conflict("can not get logs from container which is dead or marked for removal")
    driver = c.host_config.get("LogConfig", {}).get("Type", "json-file")
    if driver == "none":
        raise not_implemented("configured logging driver does not support reading")
    return LogReader(
        c.log_path, since, until, tail, follow, stopped=lambda: not c.running and c.status != "restarting"
    )
