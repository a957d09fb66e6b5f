"""Legacy container links (``--link name:alias``), as dockerd 28 still supports them.

At create each link is checked and stored as ``/<name>:/<container>/<alias>``. On the default bridge
a started container gets, for each link, an ``/etc/hosts`` line (address, alias, short id, name)
and the environment moby ``daemon/links`` builds (``ALIAS_PORT...``, ``ALIAS_NAME``,
``ALIAS_ENV_...``); the linked container must be running. On user-defined networks there are no
legacy links: a link is the endpoint's (``EndpointsConfig.<net>.Links``, ``network connect --link``), a
name the embedded DNS resolves for the linking container only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ..errors import ApiError, invalid

if TYPE_CHECKING:
    from ..containers.model import Container

__all__ = ["ContainerLookup", "endpoint_link", "link_env", "link_hosts", "linked", "normalise_links"]


class ContainerLookup(Protocol):
    """What links need of the containers they name: the owner of containers passes itself in."""

    def get(self, ref: str) -> Container:
        """By id, name or unique id prefix; dockerd's 404 (an ApiError) otherwise."""
        ...

    def by_name(self, name: str) -> Container | None:
        """By exact name (without the slash); None if no container has it."""
        ...


def _split(link: str) -> tuple[str, str]:
    name, _, alias = link.partition(":")
    return name, alias or name


def normalise_links(containers: ContainerLookup, links: list[str], own_name: str) -> list[str]:
    """``name[:alias]`` -> ``/<name>:/<own>/<alias>``; an unknown container is dockerd's 400."""
    out = []
    for link in links:
        if link.startswith("/") and ":/" in link:  # already normalised (a restored record)
            out.append(link)
            continue
        name, alias = _split(link)
        try:
            other = containers.get(name.lstrip("/"))
        except ApiError as exc:
            raise invalid(f"could not get container for {name}: {exc.message}") from None
        out.append(f"{other.name}:/{own_name.lstrip('/')}/{alias.lstrip('/')}")
    return out


def linked(containers: ContainerLookup, c: Container) -> list[tuple[Container, str]]:
    """(linked container, alias) pairs of ``c``'s links that still exist."""
    pairs = []
    for link in c.host_config.get("Links") or []:
        name, _, target = str(link).partition(":")
        other = containers.by_name(name.lstrip("/"))
        if other is not None:
            pairs.append((other, target.rsplit("/", 1)[-1]))
    return pairs


def check_running(containers: ContainerLookup, c: Container) -> None:
    for other, alias in linked(containers, c):
        if not other.running:
            raise ApiError(500, f"Cannot link to a non running container: {other.name} AS {c.name}/{alias}")


def _bridge_ip(c: Container) -> str:
    ep = (c.network_settings.get("Networks") or {}).get("bridge") or {}
    return str(ep.get("IPAddress") or "")


def link_hosts(containers: ContainerLookup, c: Container) -> list[str]:
    """``/etc/hosts`` lines for the links of a container on the default bridge."""
    if "bridge" not in (c.network_settings.get("Networks") or {}):
        return []
    lines = []
    for other, alias in linked(containers, c):
        ip = _bridge_ip(other)
        if ip:
            names = " ".join(dict.fromkeys([alias, other.id[:12], other.name.lstrip("/")]))
            lines.append(f"{ip}\t{names}")
            ep = (other.network_settings.get("Networks") or {}).get("bridge") or {}
            if ep.get("GlobalIPv6Address"):  # --ipv6: the linked container's IPv6 address too
                lines.append(f"{ep['GlobalIPv6Address']}\t{names}")
    return lines


def _port_key(key: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    return int(port), proto or "tcp"


def link_env(containers: ContainerLookup, c: Container) -> list[str]:
    """moby daemon/links Link.ToEnv for each link of a container on the default bridge."""
    if "bridge" not in (c.network_settings.get("Networks") or {}):
        return []
    env: list[str] = []
    for other, alias_name in linked(containers, c):
        ip = _bridge_ip(other)  # empty with --bridge=none: dockerd still gives the variables
        alias = alias_name.upper().replace("-", "_")
        ports = sorted(
            (_port_key(k) for k in (other.config.get("ExposedPorts") or {})),
            key=lambda p: (p[1] != "tcp", p[1], p[0]),
        )
        start: tuple[int, str] | None = None
        end: tuple[int, str] | None = None
        for i, (port, proto) in enumerate(ports):
            if i == 0:
                start = end = (port, proto)
                env.append(f"{alias}_PORT={proto}://{ip}:{port}")
            prefix = f"{alias}_PORT_{port}_{proto.upper()}"
            env += [
                f"{prefix}={proto}://{ip}:{port}",
                f"{prefix}_ADDR={ip}",
                f"{prefix}_PORT={port}",
                f"{prefix}_PROTO={proto}",
            ]
            assert start is not None and end is not None
            if port == end[0] + 1 and proto.lower() == start[1].lower():
                end = (port, proto)
                if i < len(ports) - 1:
                    continue
            if end != start:
                rng = f"{alias}_PORT_{start[0]}_{start[1].upper()}"
                env += [
                    f"{rng}_START={start[1]}://{ip}:{start[0]}",
                    f"{rng}_PORT_START={start[0]}",
                    f"{rng}_END={end[1]}://{ip}:{end[0]}",
                    f"{rng}_PORT_END={end[0]}",
                ]
            start = end = (port, proto)
        env.append(f"{alias}_NAME={c.name}/{alias_name}")
        for item in other.config.get("Env") or []:
            name, sep, value = str(item).partition("=")
            if sep and name not in ("HOME", "PATH"):
                env.append(f"{alias}_ENV_{name}={value}")
    return env


def endpoint_link(containers: ContainerLookup, links: list[str] | None, name: str) -> Container | None:
    """The container one of an endpoint's links (``name[:alias]``) calls ``name``, for the embedded DNS on
    a user-defined network; None when no link has that alias or its container is gone."""
    for link in links or []:
        target, alias = _split(str(link))
        if alias.lstrip("/").lower() == name:
            return containers.by_name(target.lstrip("/"))
    return None
