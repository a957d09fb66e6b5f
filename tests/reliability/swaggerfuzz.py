"""Requests for every Engine API operation, generated with hypothesis from moby's swagger.

``operations(spec)`` lists the swagger's operations; ``request_strategy(op, pool)`` draws requests for one:
path parameters from a pool of real names and ids mixed with hostile text, query parameters of the declared
type or deliberately not, JSON bodies drawn from the body's schema (valid, mutated with wrong types at any
depth, junk values, broken JSON, wrong content types) and raw bytes or small hostile tars for binary bodies.

Safety: requests never name host paths or outside hosts. Bodies lose the keys that reach the host
(binds, mounts, devices, cgroup parents, privileges); URLs and registry names are pinned to a closed
loopback port; the daemon under test runs in its own network namespace (only ``lo``) anyway.

``send(address, request)`` speaks HTTP/1.1 over a unix socket with a header deadline and reads at most a
bounded body, so a streaming endpoint (logs, events, stats) does not count as a hang once its headers came.
"""

from __future__ import annotations

import io
import json
import socket
import tarfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from hypothesis import strategies as st

__all__ = [
    "Answer",
    "FuzzRequest",
    "Operation",
    "Pool",
    "operations",
    "request_strategy",
    "schema_strategy",
    "send",
]

#: keys dropped from generated bodies: each can make a daemon touch host paths or gain host privileges
HOST_KEYS = frozenset(
    {
        "Binds",
        "Mounts",
        "Devices",
        "DeviceRequests",
        "DeviceCgroupRules",
        "CgroupParent",
        "Cgroup",
        "VolumesFrom",
        "Privileged",
        "CapAdd",
        "SecurityOpt",
        "PidMode",
        "IpcMode",
        "UTSMode",
        "UsernsMode",
        "CgroupnsMode",
        "NetworkMode",
        "Sysctls",
        "Runtime",
        "LogConfig",
        "ReadonlyPaths",
        "MaskedPaths",
        "Tmpfs",
        "VolumeDriver",
        "Init",
        "Links",
    }
)
#: query parameters naming a URL or a registry: pinned to a loopback port nothing listens on
REMOTE_PARAMS = frozenset({"fromImage", "fromSrc", "remote", "term"})
#: operations whose path parameter is a reference a daemon resolves against a registry
REMOTE_PATHS = frozenset({"/distribution/{name}/json", "/images/{name}/push", "/plugins/{name}/upgrade"})
_CLOSED = "127.0.0.1:9"
_WRONG_BODY_TYPES = [
    "text/plain",
    "application/x-www-form-urlencoded",
    "application/xml",
    "",
    "application/json;",
]

_HOSTILE_TEXT = [
    "",
    " ",
    "..",
    "../../../../etc/passwd",
    "%2e%2e%2f",
    "a" * 300,
    "a/b",
    "-",
    "*",
    "\u00e9\u4e2d",
    "x:y",
    "x@sha256:" + "0" * 64,
    "0" * 64,
    "sha256:",
    "1.2.3",
    "null",
    '{"a":1}',
]


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    params: tuple[Mapping[str, Any], ...]
    body_schema: Mapping[str, Any] | None
    body_binary: bool
    consumes: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.method} {self.template}"


@dataclass
class Pool:
    """Names and ids the daemon really has, so requests reach past the 404s."""

    containers: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    execs: list[str] = field(default_factory=list)

    def for_template(self, template: str) -> list[str]:
        head = template.strip("/").split("/", 1)[0]
        return {
            "containers": self.containers,
            "images": self.images,
            "volumes": self.volumes,
            "networks": self.networks,
            "exec": self.execs,
        }.get(head, [])


@dataclass(frozen=True)
class FuzzRequest:
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def describe(self) -> str:
        body = self.body[:200]
        return f"{self.method} {self.target} headers={dict(self.headers)} body={body!r}"


def operations(spec: Mapping[str, Any]) -> list[Operation]:
    """Every (method, path) of the swagger, in its order."""
    out = []
    for template, item in spec["paths"].items():
        shared = item.get("parameters", [])
        for method, op in item.items():
            if method == "parameters":
                continue
            params = [_deref(p, spec) for p in (*shared, *op.get("parameters", []))]
            body = next((p for p in params if p.get("in") == "body"), None)
            schema = _deref(body["schema"], spec) if body and "schema" in body else None
            binary = bool(schema and schema.get("type") == "string")
            out.append(
                Operation(
                    method.upper(),
                    template,
                    tuple(p for p in params if p.get("in") != "body"),
                    None if binary else schema,
                    binary or (body is not None and schema is None),
                    tuple(op.get("consumes") or spec.get("consumes") or ()),
                )
            )
    return out


def _deref(node: Mapping[str, Any], spec: Mapping[str, Any]) -> Mapping[str, Any]:
    seen = 0
    while "$ref" in node and seen < 20:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = spec["definitions"][name]
        seen += 1
    return node


# -- values --------------------------------------------------------------------------------------------

_short_text = st.text(max_size=24)
_ints = st.one_of(
    st.integers(min_value=-(2**8), max_value=2**16),
    st.sampled_from([-1, 0, 1, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30]),
)
_wrong: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    _ints,
    st.floats(allow_nan=False, allow_infinity=False),
    _short_text,
    st.lists(st.integers(), max_size=2),
    st.dictionaries(_short_text, st.integers(), max_size=2),
)


def schema_strategy(
    schema: Mapping[str, Any], spec: Mapping[str, Any], depth: int = 0, mutate: bool = False
) -> st.SearchStrategy[Any]:
    """Values for a swagger schema; ``mutate`` puts a wrong type at any node now and then."""
    base = _schema_strategy(schema, spec, depth, mutate)
    if mutate:
        return st.one_of(base, base, base, _wrong)
    return base


def _schema_strategy(
    schema: Mapping[str, Any], spec: Mapping[str, Any], depth: int, mutate: bool
) -> st.SearchStrategy[Any]:
    schema = _deref(schema, spec)
    if "allOf" in schema:
        merged: dict[str, Any] = {"type": "object", "properties": {}}
        for part in schema["allOf"]:
            part = _deref(part, spec)
            merged["properties"].update(part.get("properties", {}))
        schema = merged
    if "enum" in schema:
        values = [v for v in schema["enum"] if v is not None] or [""]
        return st.one_of(st.sampled_from(values), _short_text) if mutate else st.sampled_from(values)
    kind = schema.get("type")
    if depth > 5:
        return st.none() if kind in ("object", "array", None) else _leaf(kind)
    if kind == "object" or "properties" in schema:
        props = {
            name: schema_strategy(sub, spec, depth + 1, mutate)
            for name, sub in schema.get("properties", {}).items()
            if name not in HOST_KEYS
        }
        extra = schema.get("additionalProperties")
        if not props and isinstance(extra, dict):
            return st.dictionaries(_short_text, schema_strategy(extra, spec, depth + 1, mutate), max_size=3)
        if not props:
            return st.dictionaries(_short_text, _short_text, max_size=2)
        return st.fixed_dictionaries({}, optional=props)
    if kind == "array":
        items = schema.get("items", {})
        return st.lists(schema_strategy(items, spec, depth + 1, mutate), max_size=3)
    return _leaf(kind, schema)


def _leaf(kind: str | None, schema: Mapping[str, Any] | None = None) -> st.SearchStrategy[Any]:
    if kind == "integer":
        return _ints
    if kind == "number":
        return st.one_of(_ints, st.floats(allow_nan=False, allow_infinity=False))
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        return st.one_of(_short_text, st.sampled_from(_HOSTILE_TEXT))
    return _wrong


def _query_value(param: Mapping[str, Any]) -> st.SearchStrategy[str]:
    kind = param.get("type")
    if param["name"] == "filters":
        return st.one_of(
            st.dictionaries(
                st.sampled_from(["label", "name", "id", "status", "dangling", "before", "until", "x"]),
                st.one_of(st.lists(_short_text, max_size=2), st.dictionaries(_short_text, st.booleans())),
                max_size=2,
            ).map(lambda v: json.dumps(v)),
            _short_text,
            st.just("{"),
            st.just('{"label":"a"}'),
        )
    if "enum" in param:
        return st.one_of(st.sampled_from([str(v) for v in param["enum"]]), _short_text)
    if kind == "boolean":
        return st.sampled_from(["1", "0", "true", "false", "True", "yes", "", "2", "-1", "x"])
    if kind == "integer":
        return st.one_of(_ints.map(str), _short_text, st.sampled_from(["", "1e3", "0x10", " 1"]))
    return st.one_of(_short_text, st.sampled_from(_HOSTILE_TEXT))


def _remote(text: str) -> str:
    return f"{_CLOSED}/{quote(text.lower(), safe='')[:40] or 'x'}"


@st.composite
def _query(draw: st.DrawFn, op: Operation) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for param in op.params:
        if param.get("in") != "query":
            continue
        if not draw(st.booleans()):
            continue
        name = param["name"]
        if name in REMOTE_PARAMS:
            value = draw(st.sampled_from(["-", "", _remote(draw(_short_text))])) if name == "fromSrc" else ""
            value = value or _remote(draw(_short_text))
            pairs.append((name, value))
            continue
        if name == "t" and op.method == "POST":  # a stop timeout is a wait the client asked for
            # (a negative one waits forever and none the default 10 s, in dockerd too: not drawn)
            pairs.append((name, draw(st.sampled_from(["0", "1", "x", "1.5", "+1", "99999999999999999999"]))))
            continue
        for _ in range(draw(st.integers(1, 2)) if param.get("type") == "array" else 1):
            pairs.append((name, draw(_query_value(param))))
    if op.template == "/images/search" and not any(k == "term" for k, _ in pairs):
        pairs.append(("term", _remote(draw(_short_text))))  # no term searches Docker Hub
    if draw(st.integers(0, 9)) == 0:  # an unknown parameter and, rarely, a long query
        pairs.append((draw(_short_text) or "x", draw(st.sampled_from(["1", "x" * 4000]))))
    return pairs


def _tar(entries: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


_binary_bodies = st.one_of(
    st.binary(max_size=2048),
    st.just(b""),
    st.just(_tar([("file", b"data")])),
    st.just(_tar([("../../escape", b"x")])),
    st.just(_tar([("manifest.json", b"[{}]")])),
    st.just(_tar([("manifest.json", b'[{"Config":"../x","Layers":["/etc/passwd"]}]')])),
    st.just(_tar([("manifest.json", b"not json"), ("repositories", b"{}")])),
    st.just(b"\x1f\x8b\x08\x00" + b"\x00" * 20),  # a gzip header and nothing valid after it
)


@st.composite
def _json_body(draw: st.DrawFn, op: Operation, spec: Mapping[str, Any]) -> tuple[bytes, str]:
    assert op.body_schema is not None
    kind = draw(st.integers(0, 3) if op.template == "/auth" else st.integers(0, 9))
    if kind <= 3:
        value = draw(schema_strategy(op.body_schema, spec))
    elif kind <= 6:
        value = draw(schema_strategy(op.body_schema, spec, mutate=True))
    elif kind == 7:
        value = draw(_wrong)
    else:
        raw = draw(
            st.one_of(
                st.binary(max_size=64),
                st.sampled_from([b"{", b"[", b'{"a":', b"nul", b"{}{}", b"{} x", b'{"a":NaN}', b"\xff\xfe"]),
            )
        )
        ctype = draw(st.sampled_from(["application/json", *_WRONG_BODY_TYPES]))
        return raw, ctype
    if op.template in ("/containers/create", "/containers/{id}/exec") and isinstance(value, dict):
        value.pop("Privileged", None)
    if op.template == "/auth" and isinstance(value, dict):  # a login goes to the named registry
        value["serveraddress"] = _CLOSED
    ctype = draw(st.sampled_from(["application/json"] * 6 + _WRONG_BODY_TYPES))
    return json.dumps(value).encode(), ctype


@st.composite
def request_strategy(draw: st.DrawFn, op: Operation, spec: Mapping[str, Any], pool: Pool) -> FuzzRequest:
    path = op.template
    for param in op.params:
        if param.get("in") != "path":
            continue
        known = pool.for_template(op.template)
        made_up = st.one_of(_short_text, st.sampled_from(_HOSTILE_TEXT))
        value = draw(st.one_of(st.sampled_from(known), made_up) if known else made_up)
        if op.template in REMOTE_PATHS and value not in known:
            value = _remote(value)
        path = path.replace("{" + param["name"] + "}", quote(value, safe="") or "%20")
    query = draw(_query(op))
    target = "/v1.51" + path if draw(st.integers(0, 3)) else path
    if query:
        target += "?" + urlencode(query)
    headers: list[tuple[str, str]] = []
    body = b""
    if any(p.get("in") == "header" and p["name"] == "X-Registry-Auth" for p in op.params) and draw(
        st.booleans()
    ):
        headers.append(
            ("X-Registry-Auth", draw(st.sampled_from(["", "e30=", "!!!", "eyJ1c2VybmFtZSI6MX0="])))
        )
    if op.body_schema is not None and (op.template == "/auth" or draw(st.integers(0, 4))):
        body, ctype = draw(_json_body(op, spec))
        if ctype:
            headers.append(("Content-Type", ctype))
    elif op.body_binary and draw(st.integers(0, 4)):
        body = draw(_binary_bodies)
        headers.append(("Content-Type", draw(st.sampled_from(["application/x-tar", "application/json", ""]))))
    return FuzzRequest(op.method, target, tuple(headers), body)


# -- the wire ------------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int | None  # None: no status line (closed, reset or timed out)
    elapsed: float
    error: str = ""
    body: bytes = b""


def send(address: str, req: FuzzRequest, header_timeout: float = 20.0, max_body: int = 1 << 16) -> Answer:
    """One request on a fresh unix-socket connection; the status once the head arrived."""
    start = time.monotonic()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(header_timeout)
    try:
        sock.connect(address)
        head = [f"{req.method} {req.target} HTTP/1.1", "Host: docker", "Connection: close"]
        head += [f"{k}: {v}" for k, v in req.headers]
        if req.body or req.method in ("POST", "PUT"):
            head.append(f"Content-Length: {len(req.body)}")
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("utf-8") + req.body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        if not data.startswith(b"HTTP/1."):
            return Answer(None, time.monotonic() - start, f"no status line: {data[:80]!r}")
        status = int(data.split(b" ", 2)[1])
        _head_part, _, rest = data.partition(b"\r\n\r\n")
        sock.settimeout(0.5)  # a stream need not end: take what comes quickly and hang up
        body = rest
        try:
            while len(body) < max_body:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
        except (TimeoutError, OSError):
            pass
        return Answer(status, time.monotonic() - start, body=body[:max_body])
    except TimeoutError:
        return Answer(None, time.monotonic() - start, "timed out waiting for the response head")
    except OSError as exc:
        return Answer(None, time.monotonic() - start, f"{type(exc).__name__}: {exc}")
    finally:
        sock.close()
