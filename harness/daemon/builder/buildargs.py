"""Build arguments, as moby ``builder/dockerfile/buildargs.go`` keeps them.

``buildargs`` from the request override ``ARG`` defaults; ARGs before the first FROM are meta args
(FROM lines expand them; a stage sees one only after re-declaring it with ``ARG name``); the proxy
variables are predefined (usable by RUN without an ARG, left out of the history unless declared).
RUN steps get the allowed args in their environment, and, when there are any, the history and the
cache key of the step start with ``|<n> k=v ...`` (sorted). Args given but never declared are
reported at the end: ``[Warning] One or more build-args [a b] were not consumed``.
"""

from __future__ import annotations

__all__ = ["BUILTIN_ARGS", "BuildArgs"]

BUILTIN_ARGS = (
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
)


class BuildArgs:
    def __init__(self, from_options: dict[str, str | None] | None = None) -> None:
        self.options: dict[str, str | None] = dict(from_options or {})
        self.allowed: dict[str, str | None] = {}
        self.meta: dict[str, str | None] = {}
        self.referenced: set[str] = set()

    def clone(self) -> BuildArgs:
        out = BuildArgs(self.options)
        out.allowed = dict(self.allowed)
        out.meta = dict(self.meta)
        out.referenced = set(self.referenced)
        return out

    def merge_referenced(self, other: BuildArgs) -> None:
        self.referenced |= other.referenced

    def unused_warning(self) -> str:
        left = sorted(k for k in self.options if k not in self.referenced and k not in BUILTIN_ARGS)
        if not left:
            return ""
        return f"[Warning] One or more build-args [{' '.join(left)}] were not consumed\n"

    def reset_allowed(self) -> None:
        self.allowed = {}

    def add_meta(self, key: str, value: str | None) -> None:
        self.meta[key] = value

    def add(self, key: str, value: str | None) -> None:
        self.allowed[key] = value
        self.referenced.add(key)

    def referenced_or_not_builtin(self, key: str) -> bool:
        return key in self.allowed or key not in BUILTIN_ARGS

    def _get(self, key: str, mapping: dict[str, str | None]) -> tuple[str, bool]:
        exists = key in mapping
        default = mapping.get(key)
        override = self.options.get(key)
        if key in self.options and override is not None:
            return override, True
        if default is None:
            meta = self.meta.get(key)
            if key in self.meta and meta is not None:
                return meta, True
            return "", False
        return default, exists

    def _all(self, mapping: dict[str, str | None]) -> dict[str, str]:
        out: dict[str, str] = {}
        for key in [*mapping, *BUILTIN_ARGS]:
            value, ok = self._get(key, mapping)
            if ok:
                out[key] = value
        return out

    def all_allowed(self) -> dict[str, str]:
        return self._all(self.allowed)

    def all_meta(self) -> dict[str, str]:
        return self._all(self.meta)

    def filter_allowed(self, env: list[str]) -> list[str]:
        """The allowed args not already set in ``env``, as ``k=v``."""
        keys = {e.partition("=")[0] for e in env}
        return [f"{k}={v}" for k, v in self.all_allowed().items() if k not in keys]
