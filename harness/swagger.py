"""Schema conformance: check JSON response bodies against the Engine API swagger of the negotiated version.

The swagger is moby's own ``api/swagger.yaml`` as Debian ships it in ``golang-github-docker-docker-dev``
(``/usr/share/gocode/src/github.com/docker/docker/api/swagger.yaml``), one per Debian suite and so per dockerd
version: bookworm 20.10 (API 1.41), trixie 26.1 (API 1.45), sid 28.x (API 1.51). Nothing is copied into
the repository: the first use downloads the .deb with a *private* apt configuration (its own sources list,
lists and cache directories; the host's apt sources and packages are never touched) from the host's Debian
mirror (or ``HARNESS_DEBIAN_MIRROR``), extracts the swagger and caches it under
``$HARNESS_CACHE/swagger/<suite>/`` (default ``~/.cache/docker-conformance-harness/swagger/``) as YAML and as
pre-parsed JSON. ``HARNESS_SWAGGER_DIR`` points at a directory of swagger files (``*.yaml``/``*.json``) to use
instead, offline.

A response is checked against the swagger whose API version is the smallest one at or above the request's
version (the ``/v1.NN`` prefix of its path, else the daemon's ``Api-Version`` header), else the newest. It is
checked only when its body is JSON (``Content-Type: application/json``), the swagger knows the operation
(method + path template) and documents a schema for its status; everything else is counted as skipped with the
reason. Validation follows swagger 2.0: ``$ref``, ``allOf``, ``type`` (``null`` only where
``x-nullable: true``), ``enum``, ``required``, ``properties``, ``additionalProperties``, ``items`` and the
numeric, length and pattern limits, with one allowance for the Go the swagger describes: null is accepted
for an array or a map, which Go's encoding/json writes for a nil slice or map and moby's swagger never marks
``x-nullable`` (``go_nulls=False`` turns that off). A body holding several JSON documents (``/events``,
``/containers/{id}/stats``) is a stream: each document is checked against the schema.

``python -m harness.swagger fetch`` downloads ahead of time; ``list`` shows the cache; ``check`` validates
one body from a file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .debpkg import LISTS_MAX_AGE, DebPkgError, PrivateApt, locked
from .errors import HarnessError
from .results import Finding, merge_findings

__all__ = [
    "MODES",
    "PACKAGE",
    "SOURCES",
    "SWAGGER_MEMBER",
    "Check",
    "Finding",
    "SchemaUnavailable",
    "Spec",
    "SwaggerSource",
    "SwaggerStore",
    "api_version_of",
    "cache_root",
    "fetch",
    "main",
    "merge_findings",
    "parse_mode",
    "validate",
]

MODES = ("strict", "report", "off")
PACKAGE = "golang-github-docker-docker-dev"
SWAGGER_MEMBER = "usr/share/gocode/src/github.com/docker/docker/api/swagger.yaml"
META_SCHEMA = "harness.swagger/1"
_VERSION_PREFIX = re.compile(r"^/v(\d+\.\d+)(?=/|$)")
_JSON_TYPES = {"application/json"}
_MAX_FINDINGS_PER_BODY = 50


class SchemaUnavailable(HarnessError):
    """A swagger could not be fetched or read; the message says what failed and how to fix it."""


def parse_mode(value: str, source: str = "--schema") -> str:
    mode = value.strip().lower()
    if mode not in MODES:
        raise ValueError(f"{source}: {value!r} is not one of {', '.join(MODES)}")
    return mode


# -- where swaggers come from


@dataclass(frozen=True)
class SwaggerSource:
    """A Debian suite whose ``golang-github-docker-docker-dev`` carries the swagger of ``api`` (nominal)."""

    suite: str
    api: str
    dockerd: str


#: ascending API versions; sid's is whatever sid ships today (1.51 for 28.5)
SOURCES: tuple[SwaggerSource, ...] = (
    SwaggerSource("bookworm", "1.41", "20.10"),
    SwaggerSource("trixie", "1.45", "26.1"),
    SwaggerSource("sid", "1.51", "28.5"),
)


def cache_root() -> Path:
    """``$HARNESS_CACHE/swagger``, else ``${XDG_CACHE_HOME:-~/.cache}/docker-conformance-harness/swagger``."""
    base = os.environ.get("HARNESS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "docker-conformance-harness"
    )
    return Path(base) / "swagger"


def _version_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return ()


def _log(out: IO[str] | None, text: str) -> None:
    if out is not None:
        out.write(f"harness swagger: {text}\n")
        out.flush()


def _extract(deb: Path, dest: Path) -> None:
    try:
        proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    except OSError as exc:
        raise SchemaUnavailable(f"cannot run dpkg-deb to unpack {deb.name}: {exc}") from None
    assert proc.stdout is not None
    found = False
    with proc, tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for member in tar:
            if member.name.lstrip("./") == SWAGGER_MEMBER and member.isfile():
                src = tar.extractfile(member)
                assert src is not None
                dest.write_bytes(src.read())
                found = True
                break
        if found:
            proc.stdout.read()  # drain, so dpkg-deb does not die of SIGPIPE
    if not found:
        raise SchemaUnavailable(f"{deb.name} holds no /{SWAGGER_MEMBER}")


def _read_yaml(path: Path) -> Any:
    try:
        import yaml
    except ImportError:  # pragma: no cover - a dependency of the project
        raise SchemaUnavailable("PyYAML is not installed: pip install PyYAML") from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open("rb") as fh:
        return yaml.load(fh, Loader=loader)  # a safe loader (C or Python)


def fetch(
    source: SwaggerSource, *, refresh: bool = False, mirror: str | None = None, out: IO[str] | None = None
) -> Path:
    """The cached directory for ``source`` (``swagger.json`` + ``swagger.yaml`` + ``meta.json``), fetching it
    when absent (or when ``refresh``)."""
    root = cache_root()
    entry = root / source.suite
    if not refresh and (entry / "meta.json").is_file():
        return entry
    with locked(root / f"{source.suite}.lock", out, f"fetching the {source.suite} swagger"):
        if not refresh and (entry / "meta.json").is_file():  # fetched by the session we waited for
            return entry
        tmp = root / f".fetch-{source.suite}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "out").mkdir(parents=True)
        try:
            try:
                with PrivateApt(source.suite, mirror, out) as apt:
                    apt.update(0 if refresh else LISTS_MAX_AGE)
                    version = apt.candidate(PACKAGE)
                    deb = apt.download([(PACKAGE, version)])[0]
                    mirror, notes = apt.mirror, apt.notes
                    yaml_path = tmp / "out" / "swagger.yaml"
                    _extract(deb, yaml_path)
                    deb.unlink()  # the swagger is what is kept
            except DebPkgError as exc:
                raise SchemaUnavailable(
                    f"the {source.suite} swagger ({PACKAGE}) cannot be fetched: {exc}\n"
                    "Without network, put swagger files (moby's api/swagger.yaml) in a directory and point "
                    "HARNESS_SWAGGER_DIR at it; --schema off skips the checks"
                ) from None
            spec = _read_yaml(yaml_path)
            api = str(spec.get("info", {}).get("version", "")) if isinstance(spec, dict) else ""
            if not api:
                raise SchemaUnavailable(
                    f"{PACKAGE} {version} ({source.suite}): the swagger has no info.version"
                )
            (tmp / "out" / "swagger.json").write_text(json.dumps(spec, default=str))
            meta = {
                "schema": META_SCHEMA,
                "suite": source.suite,
                "package": PACKAGE,
                "package_version": version,
                "api_version": api,
                "mirror": mirror,
                "notes": notes,
                "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            (tmp / "out" / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
            if entry.exists():
                shutil.rmtree(entry)
            os.rename(tmp / "out", entry)
            _log(out, f"{source.suite}: API {api} from {PACKAGE} {version} cached in {entry}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return entry


# -- the spec


def _ref_target(doc: Mapping[str, Any], ref: str) -> Mapping[str, Any]:
    if not ref.startswith("#/"):
        raise KeyError(f"only local $refs are supported, got {ref!r}")
    node: Any = doc
    for token in ref[2:].split("/"):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    if not isinstance(node, Mapping):
        raise KeyError(f"$ref {ref!r} is not a schema object")
    return node


@dataclass(frozen=True)
class _Route:
    method: str
    template: str
    strict: re.Pattern[str]
    loose: re.Pattern[str]
    literals: int
    operation: Mapping[str, Any]


def _route_patterns(template: str) -> tuple[re.Pattern[str], re.Pattern[str], int]:
    strict, loose, literals = [], [], 0
    for seg in template.strip("/").split("/"):
        if re.fullmatch(r"\{[^}]+\}", seg):
            strict.append("[^/]+")
            loose.append(".+")
        else:
            literals += 1
            strict.append(re.escape(seg))
            loose.append(re.escape(seg))
    return (
        re.compile("/" + "/".join(strict)),
        re.compile("/" + "/".join(loose)),
        literals,
    )


class Spec:
    """One swagger document: operations by (method, path template) and schema validation."""

    def __init__(
        self, doc: Mapping[str, Any], label: str = "", meta: Mapping[str, Any] | None = None
    ) -> None:
        if not isinstance(doc, Mapping) or "paths" not in doc:
            raise SchemaUnavailable(f"{label or 'swagger'}: not a swagger document (no 'paths')")
        self.doc = doc
        self.meta = dict(meta or {})
        self.api_version = str(doc.get("info", {}).get("version", "") or self.meta.get("api_version", ""))
        self.label = label or f"API {self.api_version}"
        self.produces = list(doc.get("produces") or ["application/json"])
        routes = []
        for template, ops in (doc.get("paths") or {}).items():
            if not isinstance(ops, Mapping):
                continue
            strict, loose, literals = _route_patterns(str(template))
            for method, op in ops.items():
                if isinstance(op, Mapping) and method.lower() in (
                    "get",
                    "put",
                    "post",
                    "delete",
                    "head",
                    "patch",
                ):
                    routes.append(_Route(method.upper(), str(template), strict, loose, literals, op))
        # most literal segments first, so /images/json wins over /images/{name}/json
        self._routes = sorted(routes, key=lambda r: (-r.literals, r.template))

    def describe(self) -> dict[str, str]:
        return {
            "api_version": self.api_version,
            "source": self.label,
            "suite": str(self.meta.get("suite", "")),
            "package_version": str(self.meta.get("package_version", "")),
        }

    def route(self, method: str, path: str) -> _Route | None:
        """The operation serving ``method path`` (path without the version prefix or query), or None."""
        method = method.upper()
        for attr in ("strict", "loose"):
            for r in self._routes:
                if r.method == method and getattr(r, attr).fullmatch(path):
                    return r
        return None

    def response_schema(self, route: _Route, status: int) -> tuple[Mapping[str, Any] | None, str]:
        """``(schema, "")`` for ``status``, or ``(None, why)`` when the swagger documents no body to check."""
        responses = {str(k): v for k, v in (route.operation.get("responses") or {}).items()}
        response = responses.get(str(status))
        if response is None and status >= 400 and "ErrorResponse" in (self.doc.get("definitions") or {}):
            return {"$ref": "#/definitions/ErrorResponse"}, ""
        if response is None:
            response = responses.get("default")
        if response is None:
            return None, "undocumented-status"
        if not isinstance(response, Mapping) or "schema" not in response:
            return None, "no-schema"
        produces = route.operation.get("produces") or self.produces
        if status < 400 and not any(_is_json(p) for p in produces):
            return None, "not-json"  # the swagger says this body is not JSON (a stream, a tar, text)
        schema = response["schema"]
        return (schema, "") if isinstance(schema, Mapping) else (None, "no-schema")

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        seen = 0
        while "$ref" in schema:
            schema = _ref_target(self.doc, str(schema["$ref"]))
            seen += 1
            if seen > 64:
                raise KeyError("a $ref cycle")
        return schema


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in _JSON_TYPES or media.endswith("+json")


# -- validation (swagger 2.0 schema objects)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _type_ok(expected: str, value: Any) -> bool:
    actual = _json_type(value)
    if expected == "number":
        return actual in ("integer", "number")
    if expected == "integer" and actual == "number":
        return float(value).is_integer()
    return actual == expected


def _pointer(parts: Sequence[str | int]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(spec: Spec, schema: Mapping[str, Any]) -> str:
    name = ""
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
    resolved = spec.resolve(schema)
    kind = resolved.get("type") or (
        "object" if "properties" in resolved or "allOf" in resolved else "a value"
    )
    return f"{kind} ({name})" if name else str(kind)


_TYPES = {"object", "array", "string", "integer", "number", "boolean"}


class _Findings(list[tuple[str, str, str]]):
    """The violations found so far, and whether Go's null for a nil slice or map is accepted."""

    def __init__(self, go_nulls: bool) -> None:
        super().__init__()
        self.go_nulls = go_nulls


def _nullable(node: Mapping[str, Any], resolved: Mapping[str, Any], go_nulls: bool) -> bool:
    if node.get("x-nullable") or resolved.get("x-nullable"):
        return True
    if not go_nulls:
        return False
    # Go's encoding/json writes a nil slice or map as null; moby's swagger never marks those x-nullable
    if resolved.get("type") == "array":
        return True
    extra = resolved.get("additionalProperties")
    return resolved.get("type") == "object" and (
        isinstance(extra, Mapping)
        or extra is True
        or not (resolved.get("properties") or resolved.get("allOf"))
    )


def _validate(
    spec: Spec, node: Mapping[str, Any], value: Any, where: list[str | int], out: _Findings
) -> None:
    if len(out) >= _MAX_FINDINGS_PER_BODY:
        return
    schema = spec.resolve(node)
    if value is None:
        if not _nullable(node, schema, out.go_nulls):
            out.append(
                (
                    _pointer(where),
                    "x-nullable",
                    f"null where the swagger expects {_describe(spec, node)} (not x-nullable)",
                )
            )
        return
    for sub in schema.get("allOf") or ():
        if isinstance(sub, Mapping):
            _validate(spec, sub, value, where, out)
    expected = schema.get("type")
    if isinstance(expected, str) and expected in _TYPES and not _type_ok(expected, value):
        out.append(
            (
                _pointer(where),
                "type",
                f"expected {_describe(spec, node)}, got {_json_type(value)} {_short(value)}",
            )
        )
        return
    enum = schema.get("enum")
    if isinstance(enum, list) and not any(_json_type(value) == _json_type(e) and value == e for e in enum):
        out.append((_pointer(where), "enum", f"{_short(value)} is not one of {_short(enum, 200)}"))
    if isinstance(value, dict):
        _validate_object(spec, schema, value, where, out)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            for i, item in enumerate(value):
                _validate(spec, items, item, [*where, i], out)
        low, high = schema.get("minItems"), schema.get("maxItems")
        if isinstance(low, int) and len(value) < low:
            out.append((_pointer(where), "minItems", f"{len(value)} item(s), fewer than minItems {low}"))
        if isinstance(high, int) and len(value) > high:
            out.append((_pointer(where), "maxItems", f"{len(value)} item(s), more than maxItems {high}"))
    elif isinstance(value, str):
        low, high = schema.get("minLength"), schema.get("maxLength")
        if isinstance(low, int) and len(value) < low:
            out.append((_pointer(where), "minLength", f"{_short(value)} is shorter than minLength {low}"))
        if isinstance(high, int) and len(value) > high:
            out.append((_pointer(where), "maxLength", f"{_short(value)} is longer than maxLength {high}"))
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            try:
                if not re.search(pattern, value):
                    out.append((_pointer(where), "pattern", f"{_short(value)} does not match {pattern!r}"))
            except re.error:
                pass
    elif isinstance(value, int | float) and not isinstance(value, bool):
        low, high = schema.get("minimum"), schema.get("maximum")
        if isinstance(low, int | float) and (
            value < low or (schema.get("exclusiveMinimum") is True and value == low)
        ):
            out.append((_pointer(where), "minimum", f"{value} is below the minimum {low}"))
        if isinstance(high, int | float) and (
            value > high or (schema.get("exclusiveMaximum") is True and value == high)
        ):
            out.append((_pointer(where), "maximum", f"{value} is above the maximum {high}"))


def _validate_object(
    spec: Spec,
    schema: Mapping[str, Any],
    value: dict[str, Any],
    where: list[str | int],
    out: _Findings,
) -> None:
    properties = schema.get("properties") or {}
    for name in schema.get("required") or ():
        if name not in value:
            out.append((_pointer([*where, name]), "required", f"required property {name!r} is missing"))
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        sub = properties.get(key)
        if isinstance(sub, Mapping):
            _validate(spec, sub, item, [*where, key], out)
        elif isinstance(extra, Mapping):
            _validate(spec, extra, item, [*where, key], out)
        elif extra is False:
            out.append((_pointer([*where, key]), "additionalProperties", f"property {key!r} is not allowed"))


def validate(
    spec: Spec, schema: Mapping[str, Any], value: Any, *, go_nulls: bool = True
) -> list[tuple[str, str, str]]:
    """Validate ``value`` against ``schema`` (a schema object of ``spec``).

    Returns ``[(json pointer, keyword, message)]``, empty when ``value`` conforms. With ``go_nulls`` (the
    default) null is accepted for an array or a map (an object given by ``additionalProperties`` or with no
    properties): that is how Go's encoding/json writes a nil slice or map, which every moby type does and
    moby's swagger never marks ``x-nullable``. A struct, a string or a number is null only where
    ``x-nullable: true`` says so.
    """
    out = _Findings(go_nulls)
    _validate(spec, schema, value, [], out)
    return list(out)


# -- findings


def _generalise(pointer: str) -> str:
    return re.sub(r"/\d+(?=/|$)", "/*", pointer)


@dataclass
class Check:
    """What checking one response gave: ``checked`` or the reason it was skipped, and the findings."""

    checked: bool
    skipped: str = ""
    api_version: str = ""
    template: str = ""
    findings: list[Finding] = field(default_factory=list)


def api_version_of(path: str, headers: Mapping[str, str]) -> tuple[str, str]:
    """``(version, path without the prefix)``: the ``/v1.NN`` prefix, else the ``Api-Version`` header."""
    m = _VERSION_PREFIX.match(path)
    if m:
        return m.group(1), path[m.end() :] or "/"
    header = ""
    for k, v in headers.items():
        if k.lower() == "api-version":
            header = v.strip()
    return header, path


def _documents(body: bytes) -> list[Any]:
    text = body.decode("utf-8")
    decoder = json.JSONDecoder()
    docs: list[Any] = []
    i = 0
    while True:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        if i >= len(text):
            return docs
        doc, i = decoder.raw_decode(text, i)
        docs.append(doc)


# -- the store: which swagger for which version


class SwaggerStore:
    """The swaggers to check against: ``HARNESS_SWAGGER_DIR`` (or ``directory``) if set, else the cache
    (fetching a missing suite on first use unless ``auto_fetch`` is off). Specs load lazily and once."""

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        auto_fetch: bool = True,
        go_nulls: bool = True,
        out: IO[str] | None = None,
    ) -> None:
        env = os.environ.get("HARNESS_SWAGGER_DIR")
        self.go_nulls = go_nulls
        self.directory = Path(directory) if directory is not None else (Path(env) if env else None)
        self.auto_fetch = auto_fetch
        self.out = out
        self._specs: dict[str, Spec] = {}
        self._dir_files: list[tuple[str, Path]] | None = None

    # candidates as (nominal api version, key)
    def _candidates(self) -> list[tuple[str, str]]:
        if self.directory is None:
            return [(s.api, s.suite) for s in SOURCES]
        if self._dir_files is None:
            files = []
            if not self.directory.is_dir():
                raise SchemaUnavailable(f"HARNESS_SWAGGER_DIR {self.directory} is not a directory")
            for p in sorted(self.directory.iterdir()):
                if p.suffix in (".json", ".yaml", ".yml") and p.name != "meta.json":
                    spec = self._load_file(p)
                    self._specs[str(p)] = spec
                    files.append((spec.api_version, str(p)))
            if not files:
                raise SchemaUnavailable(
                    f"HARNESS_SWAGGER_DIR {self.directory} holds no *.yaml or *.json swagger"
                )
            self._dir_files = [(v, Path(k)) for v, k in sorted(files, key=lambda f: _version_key(f[0]))]
        return [(v, str(p)) for v, p in self._dir_files]

    @staticmethod
    def _load_file(path: Path, meta: Mapping[str, Any] | None = None, label: str = "") -> Spec:
        try:
            doc = json.loads(path.read_text()) if path.suffix == ".json" else _read_yaml(path)
        except (OSError, ValueError) as exc:
            raise SchemaUnavailable(f"cannot read the swagger {path}: {exc}") from exc
        except Exception as exc:  # yaml.YAMLError and friends
            raise SchemaUnavailable(f"cannot parse the swagger {path}: {exc}") from exc
        return Spec(doc, label or str(path), meta)

    def _key_for(self, version: str) -> str:
        candidates = self._candidates()
        wanted = _version_key(version)
        for api, key in candidates:
            if wanted and wanted <= _version_key(api):
                return key
        return candidates[-1][1]

    def spec(self, key: str) -> Spec:
        if key in self._specs:
            return self._specs[key]
        source = next(s for s in SOURCES if s.suite == key)
        entry = cache_root() / source.suite
        if not (entry / "meta.json").is_file():
            if not self.auto_fetch:
                raise SchemaUnavailable(
                    f"the {source.suite} swagger (API {source.api}) is not cached in {entry}: "
                    "python -m harness.swagger fetch"
                )
            fetch(source, out=self.out)
        try:
            meta = json.loads((entry / "meta.json").read_text())
        except (OSError, ValueError) as exc:
            raise SchemaUnavailable(
                f"{entry}/meta.json: {exc}; python -m harness.swagger fetch --refresh"
            ) from exc
        label = f"{source.suite} {meta.get('package', PACKAGE)} {meta.get('package_version', '?')}"
        spec = self._load_file(entry / "swagger.json", meta, label)
        self._specs[key] = spec
        return spec

    def for_version(self, version: str) -> Spec:
        return self.spec(self._key_for(version))

    def ensure(self) -> list[Spec]:
        """Every swagger, fetched and loaded (raises ``SchemaUnavailable``)."""
        return [self.spec(key) for _api, key in self._candidates()]

    def loaded(self) -> list[dict[str, str]]:
        return [s.describe() for s in sorted(self._specs.values(), key=lambda s: _version_key(s.api_version))]

    def operation(self, method: str, path: str, headers: Mapping[str, str], default_version: str = "") -> str:
        """The swagger ``operationId`` serving ``method path`` (query allowed), or ``""`` when none does."""
        version, bare = api_version_of(path.split("?", 1)[0] or "/", headers)
        if len(bare) > 1:
            bare = bare.rstrip("/")
        route = self.for_version(version or default_version).route(method, bare)
        return str(route.operation.get("operationId") or "") if route is not None else ""

    def check(
        self,
        method: str,
        path: str,
        status: int,
        headers: Mapping[str, str],
        body: bytes | None,
        default_version: str = "",
    ) -> Check:
        """Check one response. ``path`` is the request path (query allowed, it is dropped)."""
        path = path.split("?", 1)[0] or "/"
        version, bare = api_version_of(path, headers)
        version = version or default_version
        if len(bare) > 1:
            bare = bare.rstrip("/")
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        if method.upper() == "HEAD" or not body:
            return Check(False, "no-body", version)
        if not _is_json(content_type):
            return Check(False, "not-json", version)
        spec = self.for_version(version)
        route = spec.route(method, bare)
        if route is None:
            return Check(False, "unknown-path", version)
        schema, why = spec.response_schema(route, status)
        if schema is None:
            return Check(False, why, version, route.template)

        def finding(pointer: str, keyword: str, message: str) -> Finding:
            return Finding(
                method.upper(), route.template, status, spec.api_version, pointer, keyword, message, url=path
            )

        try:
            docs = _documents(body)
        except (UnicodeDecodeError, ValueError) as exc:
            bad = finding("", "json", f"the body is not JSON: {exc}")
            return Check(True, "", spec.api_version, route.template, [bad])
        raw: list[tuple[str, str, str]] = []
        for doc in docs:
            raw += validate(spec, schema, doc, go_nulls=self.go_nulls)
        found = [finding(_generalise(p), k, m) for p, k, m in raw]
        return Check(True, "", spec.api_version, route.template, merge_findings(found))


# -- command line


def _sources(names: Sequence[str]) -> list[SwaggerSource]:
    by = {s.suite: s for s in SOURCES} | {s.api: s for s in SOURCES} | {s.dockerd: s for s in SOURCES}
    chosen = []
    for n in names:
        if n not in by:
            raise SchemaUnavailable(
                f"unknown swagger {n!r}: choose from {', '.join(s.suite for s in SOURCES)}"
            )
        chosen.append(by[n])
    return chosen or list(SOURCES)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m harness.swagger",
        description="Fetch, list and use the Engine API swaggers scenario responses are checked against.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="download the swaggers (default: all) into the cache")
    f.add_argument(
        "suites", nargs="*", help=f"suites ({', '.join(s.suite for s in SOURCES)}) or API versions"
    )
    f.add_argument("--refresh", action="store_true", help="download again even when cached (sid moves)")
    f.add_argument("--mirror", default=None, help="Debian mirror (default: the host's apt mirror)")
    sub.add_parser("list", help="show the cached swaggers")
    c = sub.add_parser("check", help="validate a JSON body against the swagger")
    c.add_argument("method")
    c.add_argument("path", help="request path, e.g. /v1.41/containers/abc/json")
    c.add_argument("status", type=int)
    c.add_argument("body", help="file holding the JSON body ('-' for stdin)")
    c.add_argument(
        "--strict-nulls",
        action="store_true",
        help="null only where x-nullable (also for arrays and maps, which Go writes as null when nil)",
    )
    args = p.parse_args(argv)
    try:
        if args.command == "fetch":
            for source in _sources(args.suites):
                entry = fetch(source, refresh=args.refresh, mirror=args.mirror, out=sys.stderr)
                meta = json.loads((entry / "meta.json").read_text())
                what = f"API {meta['api_version']} ({PACKAGE} {meta['package_version']})"
                print(f"{source.suite}: {what} in {entry}")
            return 0
        if args.command == "list":
            print(f"cache: {cache_root()}")
            for source in SOURCES:
                meta_path = cache_root() / source.suite / "meta.json"
                if meta_path.is_file():
                    meta = json.loads(meta_path.read_text())
                    state = (
                        f"API {meta.get('api_version')} "
                        f"({meta.get('package_version')}, fetched {meta.get('fetched')})"
                    )
                else:
                    state = "not fetched"
                print(f"  {source.suite:<9} dockerd {source.dockerd:<6} {state}")
            return 0
        body = sys.stdin.buffer.read() if args.body == "-" else Path(args.body).read_bytes()
        result = SwaggerStore(go_nulls=not args.strict_nulls).check(
            args.method, args.path, args.status, {"Content-Type": "application/json"}, body
        )
        if not result.checked:
            print(f"not checked: {result.skipped}")
            return 0
        for finding in result.findings:
            print(finding.summary())
        print(f"{len(result.findings)} finding(s) against API {result.api_version} {result.template}")
        return 1 if result.findings else 0
    except (SchemaUnavailable, OSError) as exc:
        sys.stderr.write(f"harness.swagger: error: {exc}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
