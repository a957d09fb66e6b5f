"""The plugin's side of the schema checks: collect each scenario's responses and check them as they arrive.

While a scenario's test body runs, a ``Collector`` is the ``harness.apitrace`` sink: every JSON response the
harness's clients (``engine``, ``EngineClient``, ``docker_client``, ``Endpoint.sdk_client()``) read is checked
with ``harness.swagger`` against the swagger of its API version. What a scenario gathered becomes the
``schema`` field of its record in the results file (``checked``, ``skipped`` by reason, ``findings``), with
the swagger operation ids of every response, streamed ones too (``operations``, for ``conformance.coverage``).
The docker CLI talks to the daemon by itself, so its traffic is not seen.
"""

from __future__ import annotations

import collections
import threading
from typing import IO, Any

from . import apitrace

__all__ = ["Collector", "SchemaSession"]


class Collector:
    """The findings of one scenario (one test call); thread-safe, as scenarios may use threads."""

    def __init__(self, session: SchemaSession) -> None:
        self.session = session
        self.checked = 0
        self.skipped: collections.Counter[str] = collections.Counter()
        self.findings: list[Any] = []  # harness.results.Finding
        self.operations: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, response: apitrace.Response) -> None:
        self.session.saw_headers(response.headers)
        operation = self.session.operation(response)
        if operation:
            with self._lock:
                self.operations.add(operation)
        if response.body is None:
            with self._lock:
                self.skipped["streamed"] += 1
            return
        result = self.session.check(response)
        with self._lock:
            if result is None:
                self.skipped["schema-unavailable"] += 1
            elif result.checked:
                self.checked += 1
                from .results import merge_findings

                self.findings = merge_findings(self.findings, result.findings)
            else:
                self.skipped[result.skipped] += 1

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "checked": self.checked,
                "skipped": dict(sorted(self.skipped.items())),
                "findings": [f.to_dict() for f in self.findings],
                "operations": sorted(self.operations),
            }


def merge_records(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Add a parametrized test's schema record to the one its scenario id already has."""
    if not old:
        return new
    from .results import SchemaCheck

    return SchemaCheck.from_dict(old).merge(SchemaCheck.from_dict(new)).to_dict()


class SchemaSession:
    """Per pytest session: the mode, the swagger store (loaded lazily), the daemon's API version seen."""

    def __init__(self, mode: str, out: IO[str] | None = None) -> None:
        self.mode = mode
        self.out = out
        self.error = ""
        self.api_versions: set[str] = set()
        self._store: Any = None  # harness.swagger.SwaggerStore
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return self.mode != "off" and not self.error

    def prepare(self) -> None:
        """Fetch (first time) and load every swagger now, so a failure is one clear message at the start.

        Raises ``harness.swagger.SchemaUnavailable``; the caller decides (strict: usage error, report:
        a warning and no checks).
        """
        from .swagger import SchemaUnavailable, SwaggerStore

        try:
            self._store = SwaggerStore(out=self.out)
            self._store.ensure()
        except SchemaUnavailable as exc:
            self.error = str(exc)
            raise

    def adopt(self, other: SchemaSession) -> None:
        """Share ``other``'s prepared swaggers (and its error): one load serves every target."""
        self._store, self.error = other._store, other.error

    def saw_headers(self, headers: Any) -> None:
        for key, value in headers.items():
            if key.lower() == "api-version" and value:
                self.api_versions.add(str(value).strip())

    def check(self, response: apitrace.Response) -> Any:
        """A ``harness.swagger.Check``, or None when the swaggers are unavailable."""
        from .swagger import SchemaUnavailable

        if self._store is None or self.error:
            return None
        try:
            with self._lock:  # the store loads specs lazily; keep that single-threaded
                return self._store.check(
                    response.method, response.path, response.status, response.headers, response.body
                )
        except SchemaUnavailable as exc:
            self.error = str(exc)
            return None

    def operation(self, response: apitrace.Response) -> str:
        """The swagger operation id ``response`` answered (``""`` if none or the swaggers are unavailable)."""
        from .swagger import SchemaUnavailable

        if self._store is None or self.error:
            return ""
        try:
            with self._lock:
                return str(self._store.operation(response.method, response.path, response.headers))
        except SchemaUnavailable:
            return ""

    def start(self) -> Collector | None:
        if not self.active:
            return None
        collector = Collector(self)
        apitrace.set_sink(collector)
        return collector

    @staticmethod
    def stop() -> None:
        apitrace.set_sink(None)

    def api_version(self) -> str:
        """The newest ``Api-Version`` a daemon of this session answered with."""

        def key(v: str) -> tuple[int, ...]:
            return tuple(int(p) for p in v.split(".") if p.isdigit())

        return max(self.api_versions, key=key, default="")

    def info(self) -> dict[str, Any]:
        """The ``schema`` block of the results file: mode, swaggers used, why checks were off if they were."""
        loaded = self._store.loaded() if self._store is not None else []
        return {"mode": self.mode, "swaggers": loaded, "error": self.error}
