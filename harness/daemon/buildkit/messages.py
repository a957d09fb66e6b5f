"""The BuildKit messages refd serves or sends, declared field by field (the numbers are the wire contract).

Written from the field names and numbers BuildKit's API uses (``moby.buildkit.v1`` Control,
``moby.buildkit.v1.frontend`` LLBBridge, ``moby.buildkit.v1.types``, ``moby.buildkit.v1.apicaps``,
the session services ``moby.filesync.v1``, ``moby.buildkit.secrets.v1``, ``moby.sshforward.v1``,
and fsutil's ``Packet``/``Stat``), limited to what the docker driver of buildx and compose use.
Fields refd never reads or writes are left out: the decoder skips them. LLB definitions travel as
opaque bytes: refd never builds or solves LLB.
"""

from __future__ import annotations

from ..protowire import Field, Message

__all__ = [
    "APICap",
    "BuildkitVersion",
    "BytesMessage",
    "CacheOptions",
    "CacheOptionsEntry",
    "CheckAgentRequest",
    "CredentialsRequest",
    "CredentialsResponse",
    "DiskUsageRequest",
    "DiskUsageResponse",
    "Exporter",
    "GCPolicy",
    "GatewayResult",
    "GatewayReturnRequest",
    "GatewaySolveRequest",
    "GatewaySolveResponse",
    "GetSecretRequest",
    "GetSecretResponse",
    "InfoResponse",
    "ListWorkersResponse",
    "Packet",
    "Platform",
    "PongResponse",
    "PruneRequest",
    "Ref",
    "RpcStatus",
    "SolveRequest",
    "SolveResponse",
    "Stat",
    "StatusRequest",
    "StatusResponse",
    "Timestamp",
    "UsageRecord",
    "Vertex",
    "VertexLog",
    "VertexStatus",
    "VertexWarning",
    "WorkerRecord",
]


class Timestamp(Message):  # google.protobuf.Timestamp
    FIELDS = (Field(1, "seconds", "int64"), Field(2, "nanos", "int32"))

    @classmethod
    def from_ns(cls, ns: int) -> Timestamp:
        return cls(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000)

    def ns(self) -> int:
        return int(self.seconds) * 1_000_000_000 + int(self.nanos)


class RpcStatus(Message):  # google.rpc.Status
    FIELDS = (Field(1, "code", "int32"), Field(2, "message", "string"))


class Platform(Message):  # pb.Platform
    FIELDS = (
        Field(1, "Architecture", "string"),
        Field(2, "OS", "string"),
        Field(3, "Variant", "string"),
        Field(4, "OSVersion", "string"),
    )


# -- moby.buildkit.v1.types ------------------------------------------------------------------------------
class GCPolicy(Message):
    FIELDS = (
        Field(1, "all", "bool"),
        Field(2, "keepDuration", "int64"),
        Field(3, "reservedSpace", "int64"),
        Field(4, "filters", "string", repeated=True),
        Field(5, "maxUsedSpace", "int64"),
        Field(6, "minFreeSpace", "int64"),
    )


class BuildkitVersion(Message):
    FIELDS = (
        Field(1, "package", "string"),
        Field(2, "version", "string"),
        Field(3, "revision", "string"),
    )


class WorkerRecord(Message):
    FIELDS = (
        Field(1, "ID", "string"),
        Field(2, "Labels", map_value="string"),
        Field(3, "platforms", message=Platform, repeated=True),
        Field(4, "GCPolicy", message=GCPolicy, repeated=True),
        Field(5, "BuildkitVersion", message=BuildkitVersion),
    )


class APICap(Message):  # moby.buildkit.v1.apicaps
    FIELDS = (
        Field(1, "ID", "string"),
        Field(2, "Enabled", "bool"),
        Field(3, "Deprecated", "bool"),
        Field(4, "DisabledReason", "string"),
        Field(5, "DisabledReasonMsg", "string"),
    )


# -- moby.buildkit.v1 Control ----------------------------------------------------------------------------
class ListWorkersResponse(Message):
    FIELDS = (Field(1, "record", message=WorkerRecord, repeated=True),)


class InfoResponse(Message):
    FIELDS = (Field(1, "buildkitVersion", message=BuildkitVersion),)


class DiskUsageRequest(Message):
    FIELDS = (Field(1, "filter", "string", repeated=True),)


class UsageRecord(Message):
    FIELDS = (
        Field(1, "ID", "string"),
        Field(2, "Mutable", "bool"),
        Field(3, "InUse", "bool"),
        Field(4, "Size", "int64"),
        Field(6, "CreatedAt", message=Timestamp),
        Field(7, "LastUsedAt", message=Timestamp),
        Field(8, "UsageCount", "int64"),
        Field(9, "Description", "string"),
        Field(10, "RecordType", "string"),
        Field(11, "Shared", "bool"),
        Field(12, "Parents", "string", repeated=True),
    )


class DiskUsageResponse(Message):
    FIELDS = (Field(1, "record", message=UsageRecord, repeated=True),)


class PruneRequest(Message):
    FIELDS = (
        Field(1, "filter", "string", repeated=True),
        Field(2, "all", "bool"),
        Field(3, "keepDuration", "int64"),
        Field(4, "reservedSpace", "int64"),
        Field(5, "maxUsedSpace", "int64"),
        Field(6, "minFreeSpace", "int64"),
    )


class CacheOptionsEntry(Message):
    FIELDS = (Field(1, "Type", "string"), Field(2, "Attrs", map_value="string"))


class CacheOptions(Message):
    FIELDS = (
        Field(4, "Exports", message=CacheOptionsEntry, repeated=True),
        Field(5, "Imports", message=CacheOptionsEntry, repeated=True),
    )


class Exporter(Message):
    FIELDS = (Field(1, "Type", "string"), Field(2, "Attrs", map_value="string"))


class SolveRequest(Message):
    FIELDS = (
        Field(1, "Ref", "string"),
        Field(2, "Definition", "bytes"),  # pb.Definition, kept opaque
        Field(3, "ExporterDeprecated", "string"),
        Field(4, "ExporterAttrsDeprecated", map_value="string"),
        Field(5, "Session", "string"),
        Field(6, "Frontend", "string"),
        Field(7, "FrontendAttrs", map_value="string"),
        Field(8, "Cache", message=CacheOptions),
        Field(9, "Entitlements", "string", repeated=True),
        Field(11, "Internal", "bool"),
        Field(13, "Exporters", message=Exporter, repeated=True),
        Field(14, "EnableSessionExporter", "bool"),
    )


class SolveResponse(Message):
    FIELDS = (Field(1, "ExporterResponse", map_value="string"),)


class StatusRequest(Message):
    FIELDS = (Field(1, "Ref", "string"),)


class Vertex(Message):
    FIELDS = (
        Field(1, "digest", "string"),
        Field(2, "inputs", "string", repeated=True),
        Field(3, "name", "string"),
        Field(4, "cached", "bool"),
        Field(5, "started", message=Timestamp),
        Field(6, "completed", message=Timestamp),
        Field(7, "error", "string"),
    )


class VertexStatus(Message):
    FIELDS = (
        Field(1, "ID", "string"),
        Field(2, "vertex", "string"),
        Field(3, "name", "string"),
        Field(4, "current", "int64"),
        Field(5, "total", "int64"),
        Field(6, "timestamp", message=Timestamp),
        Field(7, "started", message=Timestamp),
        Field(8, "completed", message=Timestamp),
    )


class VertexLog(Message):
    FIELDS = (
        Field(1, "vertex", "string"),
        Field(2, "timestamp", message=Timestamp),
        Field(3, "stream", "int64"),
        Field(4, "msg", "bytes"),
    )


class VertexWarning(Message):
    FIELDS = (
        Field(1, "vertex", "string"),
        Field(2, "level", "int64"),
        Field(3, "short", "bytes"),
        Field(4, "detail", "bytes", repeated=True),
        Field(5, "url", "string"),
    )


class StatusResponse(Message):
    FIELDS = (
        Field(1, "vertexes", message=Vertex, repeated=True),
        Field(2, "statuses", message=VertexStatus, repeated=True),
        Field(3, "logs", message=VertexLog, repeated=True),
        Field(4, "warnings", message=VertexWarning, repeated=True),
    )


class BytesMessage(Message):
    FIELDS = (Field(1, "data", "bytes"),)


# -- moby.buildkit.v1.frontend LLBBridge -----------------------------------------------------------------
class PongResponse(Message):
    FIELDS = (
        Field(1, "FrontendAPICaps", message=APICap, repeated=True),
        Field(2, "LLBCaps", message=APICap, repeated=True),
        Field(3, "Workers", message=WorkerRecord, repeated=True),
    )


class Ref(Message):
    FIELDS = (Field(1, "id", "string"), Field(2, "def_", "bytes"))


class RefMap(Message):
    FIELDS = (Field(1, "refs", map_value=Ref),)


class GatewayResult(Message):
    FIELDS = (
        Field(1, "refDeprecated", "string"),
        Field(3, "ref", message=Ref),
        Field(4, "refs", message=RefMap),
        Field(10, "metadata", map_value="bytes"),
    )


class GatewaySolveRequest(Message):
    FIELDS = (
        Field(1, "Definition", "bytes"),
        Field(2, "Frontend", "string"),
        Field(3, "FrontendOpt", map_value="string"),
        Field(5, "allowResultReturn", "bool"),
        Field(6, "allowResultArrayRef", "bool"),
        Field(10, "Final", "bool"),
        Field(12, "CacheImports", message=CacheOptionsEntry, repeated=True),
        Field(14, "Evaluate", "bool"),
    )


class GatewaySolveResponse(Message):
    FIELDS = (Field(1, "ref", "string"), Field(3, "result", message=GatewayResult))


class GatewayReturnRequest(Message):
    FIELDS = (Field(1, "result", message=GatewayResult), Field(2, "error", message=RpcStatus))


# -- session services ----------------------------------------------------------------------------------
class Stat(Message):  # fsutil.types.Stat: mode is Go's os.FileMode
    FIELDS = (
        Field(1, "path", "string"),
        Field(2, "mode", "uint32"),
        Field(3, "uid", "uint32"),
        Field(4, "gid", "uint32"),
        Field(5, "size", "int64"),
        Field(6, "modTime", "int64"),
        Field(7, "linkname", "string"),
        Field(8, "devmajor", "int64"),
        Field(9, "devminor", "int64"),
        Field(10, "xattrs", map_value="bytes"),
    )


class Packet(Message):  # fsutil.types.Packet
    STAT, REQ, DATA, FIN, ERR = 0, 1, 2, 3, 4
    FIELDS = (
        Field(1, "type", "enum"),
        Field(2, "stat", message=Stat),
        Field(3, "ID", "uint32"),
        Field(4, "data", "bytes"),
    )


class GetSecretRequest(Message):
    FIELDS = (Field(1, "ID", "string"), Field(2, "annotations", map_value="string"))


class GetSecretResponse(Message):
    FIELDS = (Field(1, "data", "bytes"),)


class CheckAgentRequest(Message):
    FIELDS = (Field(1, "ID", "string"),)


class CredentialsRequest(Message):
    FIELDS = (Field(1, "Host", "string"),)


class CredentialsResponse(Message):
    FIELDS = (Field(1, "Username", "string"), Field(2, "Secret", "string"))
