"""Scenarios sharing one daemon stay independent: the daemon's state is put back after each, and checked.

Scenarios that do not depend on how their daemon was booted share the session's daemon per target
(``docker_daemon``). Before such a scenario the guard records what the daemon holds (containers, images,
networks, volumes); after it, and after the scenario's own cleanup, it removes whatever the scenario added and
looks again. What a scenario left behind, or removed, is a *finding* kept in its results record
(``left_behind``) and shown in the reports: a scenario whose verdict depends on the one before it shows up
here, and in a run with ``--shuffle``. A scenario that must change daemon-wide state (its config, a reload,
its sockets, a shutdown) boots its own daemon with ``daemon_factory`` instead.

Events need no restoring: scenarios read ``/events`` from their own start (``since``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DaemonState", "check_and_restore", "snapshot"]

#: the API version every target serves (dockerd 20.10's)
_V = "/v1.41"


@dataclass(frozen=True)
class DaemonState:
    """What a daemon holds, by kind: ``{"container": {id: name}, "image": ..., ...}``."""

    items: dict[str, dict[str, str]]

    def added_since(self, before: DaemonState) -> dict[str, dict[str, str]]:
        return {
            k: {i: n for i, n in v.items() if i not in before.items.get(k, {})} for k, v in self.items.items()
        }

    def removed_since(self, before: DaemonState) -> dict[str, dict[str, str]]:
        return {
            k: {i: n for i, n in v.items() if i not in self.items.get(k, {})} for k, v in before.items.items()
        }


def _get(client: Any, path: str) -> Any:
    resp = client.get(_V + path, timeout=30)
    resp.raise_for_status()
    return resp.json()


def snapshot(client: Any) -> DaemonState:
    """The daemon's containers, images, networks and volumes (ids, with a name for the reports)."""
    containers = {
        c["Id"]: (c.get("Names") or [""])[0].lstrip("/") for c in _get(client, "/containers/json?all=1")
    }
    images = {
        i["Id"]: ",".join(i.get("RepoTags") or []) or "<untagged>" for i in _get(client, "/images/json?all=1")
    }
    networks = {n["Id"]: n.get("Name", "") for n in _get(client, "/networks")}
    volumes = {v["Name"]: v["Name"] for v in (_get(client, "/volumes").get("Volumes") or [])}
    return DaemonState({"container": containers, "image": images, "network": networks, "volume": volumes})


_REMOVE = (  # containers first: they hold images, networks and volumes
    ("container", "/containers/{}?force=1&v=1"),
    ("network", "/networks/{}"),
    ("volume", "/volumes/{}?force=1"),
    ("image", "/images/{}?force=1&noprune=0"),
)


def _describe(kind: str, ident: str, name: str) -> str:
    short = ident.removeprefix("sha256:")[:12]
    return f"{kind} {name} ({short})" if name and name != ident else f"{kind} {short}"


def check_and_restore(client: Any, before: DaemonState) -> list[str]:
    """Remove what was added since ``before``; the findings: what was left behind, removed, or could not be
    put back (an empty list: the daemon holds exactly what it held before)."""
    after = snapshot(client)
    added = after.added_since(before)
    findings = [f"left {_describe(k, i, n)}" for k, found in added.items() for i, n in sorted(found.items())]
    findings += [
        f"removed {_describe(k, i, n)}"
        for k, gone in after.removed_since(before).items()
        for i, n in gone.items()
    ]
    if not any(added.values()):
        return findings
    for kind, path in _REMOVE:
        pending = list(added.get(kind, {}))
        for _ in range(3):  # an image with child images goes once its children have gone
            pending = [
                i for i in pending if client.delete(_V + path.format(i), timeout=60).status_code >= 300
            ]
            if not pending:
                break
    still = snapshot(client).added_since(before)
    findings += [
        f"could not remove {_describe(k, i, n)}"
        for k, found in still.items()
        for i, n in sorted(found.items())
    ]
    return findings
