"""The Go structs dockerd 28.5 decodes request bodies into (moby ``api/types``), for ``gotypes.check``."""

from __future__ import annotations

from ..gotypes import List, Map, Struct

__all__ = [
    "CONNECT_OPTIONS",
    "DISCONNECT_OPTIONS",
    "EXEC_OPTIONS",
    "EXEC_START_OPTIONS",
    "NETWORK_CREATE",
    "VOLUME_CREATE",
]

_STRINGS = List("string")
_LABELS = Map("string")
_CONSOLE = List("uint", "[2]uint")

EXEC_OPTIONS = Struct(
    "container.ExecOptions",
    {
        "User": "string",
        "Privileged": "bool",
        "Tty": "bool",
        "ConsoleSize": _CONSOLE,
        "AttachStdin": "bool",
        "AttachStderr": "bool",
        "AttachStdout": "bool",
        "Detach": "bool",
        "DetachKeys": "string",
        "Env": _STRINGS,
        "WorkingDir": "string",
        "Cmd": _STRINGS,
    },
)
EXEC_START_OPTIONS = Struct(
    "container.ExecStartOptions", {"Detach": "bool", "Tty": "bool", "ConsoleSize": _CONSOLE}
)
VOLUME_CREATE = Struct(
    "volume.CreateOptions",
    {"Driver": "string", "DriverOpts": _LABELS, "Labels": _LABELS, "Name": "string"},
)
_IPAM_CONFIG = Struct(
    "network.IPAMConfig",
    {"Subnet": "string", "IPRange": "string", "Gateway": "string", "AuxiliaryAddresses": _LABELS},
)
_IPAM = Struct("network.IPAM", {"Driver": "string", "Options": _LABELS, "Config": List(_IPAM_CONFIG)})
NETWORK_CREATE = Struct(
    "network.CreateRequest",
    {
        "Name": "string",
        "Driver": "string",
        "Scope": "string",
        "EnableIPv4": "bool",
        "EnableIPv6": "bool",
        "IPAM": _IPAM,
        "Internal": "bool",
        "Attachable": "bool",
        "Ingress": "bool",
        "ConfigOnly": "bool",
        "ConfigFrom": Struct("network.ConfigReference", {"Network": "string"}),
        "Options": _LABELS,
        "Labels": _LABELS,
        "CheckDuplicate": "bool",
    },
)
_ENDPOINT = Struct(
    "network.EndpointSettings",
    {
        "IPAMConfig": Struct(
            "network.EndpointIPAMConfig",
            {"IPv4Address": "string", "IPv6Address": "string", "LinkLocalIPs": _STRINGS},
        ),
        "Links": _STRINGS,
        "Aliases": _STRINGS,
        "DriverOpts": _LABELS,
        "GwPriority": "int",
        "MacAddress": "string",
        "NetworkID": "string",
        "EndpointID": "string",
        "Gateway": "string",
        "IPAddress": "string",
        "IPPrefixLen": "int",
        "IPv6Gateway": "string",
        "GlobalIPv6Address": "string",
        "GlobalIPv6PrefixLen": "int",
        "DNSNames": _STRINGS,
    },
)
CONNECT_OPTIONS = Struct("network.ConnectOptions", {"Container": "string", "EndpointConfig": _ENDPOINT})
DISCONNECT_OPTIONS = Struct("network.DisconnectOptions", {"Container": "string", "Force": "bool"})
