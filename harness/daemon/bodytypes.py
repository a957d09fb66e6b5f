"""The Go structs dockerd 28.5 decodes request bodies into (moby ``api/types``), for ``gotypes.check``."""

from __future__ import annotations

from .gotypes import List, Map, Struct

__all__ = [
    "CONNECT_OPTIONS",
    "CONTAINER_CREATE",
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

_INT64 = "int64"
_HEALTH = Struct(
    "container.HealthConfig",
    {
        "Test": _STRINGS,
        "Interval": "time.Duration",
        "Timeout": "time.Duration",
        "StartPeriod": "time.Duration",
        "StartInterval": "time.Duration",
        "Retries": "int",
    },
)
_EMPTY = Map(Struct("struct {}"), "")
_PORT_BINDING = Struct("nat.PortBinding", {"HostIp": "string", "HostPort": "string"})
_MOUNT = Struct(
    "mount.Mount",
    {
        "Type": "mount.Type",
        "Source": "string",
        "Target": "string",
        "ReadOnly": "bool",
        "Consistency": "mount.Consistency",
    },
)
_HOST_CONFIG = Struct(
    "container.HostConfig",
    {
        "Binds": _STRINGS,
        "ContainerIDFile": "string",
        "LogConfig": Struct("container.LogConfig", {"Type": "string", "Config": _LABELS}),
        "NetworkMode": "container.NetworkMode",
        "PortBindings": Map(List(_PORT_BINDING), "nat.PortMap"),
        "RestartPolicy": Struct(
            "container.RestartPolicy", {"Name": "container.RestartPolicyMode", "MaximumRetryCount": "int"}
        ),
        "AutoRemove": "bool",
        "VolumeDriver": "string",
        "VolumesFrom": _STRINGS,
        "ConsoleSize": _CONSOLE,
        "Annotations": _LABELS,
        "CapAdd": "strslice",
        "CapDrop": "strslice",
        "CgroupnsMode": "container.CgroupnsMode",
        "Dns": _STRINGS,
        "DnsOptions": _STRINGS,
        "DnsSearch": _STRINGS,
        "ExtraHosts": _STRINGS,
        "GroupAdd": _STRINGS,
        "IpcMode": "container.IpcMode",
        "Cgroup": "container.CgroupSpec",
        "Links": _STRINGS,
        "OomScoreAdj": "int",
        "PidMode": "container.PidMode",
        "Privileged": "bool",
        "PublishAllPorts": "bool",
        "ReadonlyRootfs": "bool",
        "SecurityOpt": _STRINGS,
        "StorageOpt": _LABELS,
        "Tmpfs": _LABELS,
        "UTSMode": "container.UTSMode",
        "UsernsMode": "container.UsernsMode",
        "ShmSize": _INT64,
        "Sysctls": _LABELS,
        "Runtime": "string",
        "Isolation": "container.Isolation",
        "CpuShares": _INT64,
        "Memory": _INT64,
        "NanoCpus": _INT64,
        "CgroupParent": "string",
        "BlkioWeight": "uint16",
        "CpuPeriod": _INT64,
        "CpuQuota": _INT64,
        "CpuRealtimePeriod": _INT64,
        "CpuRealtimeRuntime": _INT64,
        "CpusetCpus": "string",
        "CpusetMems": "string",
        "DeviceCgroupRules": _STRINGS,
        "MemoryReservation": _INT64,
        "MemorySwap": _INT64,
        "MemorySwappiness": _INT64,
        "OomKillDisable": "bool",
        "PidsLimit": _INT64,
        "CpuCount": _INT64,
        "CpuPercent": _INT64,
        "IOMaximumIOps": "uint64",
        "IOMaximumBandwidth": "uint64",
        "Mounts": List(_MOUNT),
        "MaskedPaths": _STRINGS,
        "ReadonlyPaths": _STRINGS,
        "Init": "bool",
    },
)
#: container.CreateRequest: Config embedded, HostConfig and NetworkingConfig beside it (Go prints ".Field")
CONTAINER_CREATE = Struct(
    "container.CreateRequest",
    {
        "Hostname": "string",
        "Domainname": "string",
        "User": "string",
        "AttachStdin": "bool",
        "AttachStdout": "bool",
        "AttachStderr": "bool",
        "ExposedPorts": _EMPTY,
        "Tty": "bool",
        "OpenStdin": "bool",
        "StdinOnce": "bool",
        "Env": _STRINGS,
        "Cmd": "strslice",
        "Healthcheck": _HEALTH,
        "ArgsEscaped": "bool",
        "Image": "string",
        "Volumes": _EMPTY,
        "WorkingDir": "string",
        "Entrypoint": "strslice",
        "NetworkDisabled": "bool",
        "MacAddress": "string",
        "OnBuild": _STRINGS,
        "Labels": _LABELS,
        "StopSignal": "string",
        "StopTimeout": "int",
        "Shell": "strslice",
        "HostConfig": _HOST_CONFIG,
        "NetworkingConfig": Struct("network.NetworkingConfig", {"EndpointsConfig": Map(_ENDPOINT)}),
    },
    prefix="",
)
