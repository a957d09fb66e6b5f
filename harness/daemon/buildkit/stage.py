"""A stage being built by refd's Dockerfile frontend, and the image config BuildKit writes for it.

``StageState`` is a stage's layers (chain, diff IDs), its config and history, and its position in
the build cache; ``BuildResult`` the finished target. The config is BuildKit's shape (dockerd 28.5):
the OCI fields then Docker's, top-level keys sorted; history entries say ``# buildkit`` for layer
steps, and their times are filled in at the end from the cache records (``_fill_created``), so a
build that is all cache hits makes the same image.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from ..builder import instructions as ins
from ..builder.metadata import go_slice_v, parse_port_specs
from ..builder.state import State

__all__ = [
    "HISTORY_COMMENT",
    "INLINE_CACHE_KEY",
    "BuildResult",
    "StageState",
    "StepImage",
    "cache_key",
    "display_name",
    "fill_created",
    "history_entry",
    "history_text",
    "image_config",
    "run_command_string",
]

HISTORY_COMMENT = "buildkit.dockerfile.v0"
#: where ``--cache-to type=inline`` writes refd's cache keys in an image config (BuildKit's own inline
#: cache, ``moby.buildkit.cache.v0``, has another format: the two do not read each other's)
INLINE_CACHE_KEY = "refd.buildkit.cache.v0"
#: the image config fields BuildKit writes (OCI ImageConfig, then Docker's), in its order
_CONFIG_FIELDS = (
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
    "ArgsEscaped",
    "Healthcheck",
    "OnBuild",
    "Shell",
)


def _now_rfc3339() -> str:
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + (f".{frac:09d}".rstrip("0") or "") + "Z"


def cache_key(*parts: Any) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


@dataclass
class StepImage:
    """What a step container or a scratch view is made from: a layer chain and a config, no image record."""

    top_chain: str
    diff_ids: list[str]
    config: dict[str, Any]
    id: str = ""


@dataclass
class StageState:
    """A stage while it is built: its layers, its config, its history, its cache position."""

    name: str
    label: str  # what prefixes its step names ("" in a one-stage Dockerfile)
    chain: str = ""
    diff_ids: list[str] = field(default_factory=list)
    key: str = ""
    record: str = ""
    state: State | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    platform: tuple[str, str, str] = ("linux", "", "")
    base_config: bytes = b""
    total: int = 0
    index: int = 0
    author: str = ""
    #: the cache keys of the stage's steps with their layer (index in diff_ids, own layer or not):
    #: what ``--cache-to type=inline`` writes into the image
    trail: list[list[Any]] = field(default_factory=list)

    def step_image(self) -> StepImage:
        rc = self.state.run_config if self.state is not None else {}
        return StepImage(self.chain, list(self.diff_ids), {"config": rc, "rootfs": {"type": "layers"}})

    def prefix(self, text: str) -> str:
        if self.total == 0:
            return text
        self.index += 1
        width = len(str(self.total))
        name = f"{self.label} " if self.label else ""
        return f"[{name}{self.index:>{width}}/{self.total}] {text}"


class BuildResult:
    """A finished frontend run: the target stage's layers and image config."""

    def __init__(self, stage: StageState) -> None:
        self.stage = stage
        self.returned_metadata: dict[str, bytes] = {}
        self.config_bytes = image_config(stage)

    def config_with_inline_cache(self) -> bytes:
        """The image config with the steps' cache keys (``--cache-to type=inline``)."""
        return image_config(self.stage, inline_cache=True)

    def metadata(self) -> dict[str, bytes]:
        out = {"containerimage.config": self.config_bytes}
        if self.stage.base_config:
            out["containerimage.base.config"] = self.stage.base_config
        return out

    def release(self) -> None:
        """Nothing is held beyond the cache records (they keep the layers)."""


def image_config(stage: StageState, inline_cache: bool = False) -> bytes:
    rc = stage.state.run_config if stage.state is not None else {}
    config: dict[str, Any] = {}
    for name in _CONFIG_FIELDS:
        value = rc.get(name)
        if value:
            config[name] = value
    history, created = fill_created(stage.history)
    doc: dict[str, Any] = {
        "architecture": stage.platform[1],
        "config": config,
        "created": created,
        "history": history,
        "os": stage.platform[0],
        "rootfs": {"type": "layers", "diff_ids": list(stage.diff_ids)},
    }
    if stage.author:
        doc["author"] = stage.author
    if stage.platform[2]:
        doc["variant"] = stage.platform[2]
    if inline_cache and stage.trail:
        doc[INLINE_CACHE_KEY] = stage.trail
    return json.dumps(dict(sorted(doc.items())), separators=(",", ":")).encode()


def history_entry(created_by: str, empty: bool, layer_ns: int = 0) -> dict[str, Any]:
    """A new history entry; its time is filled in at the end (``_fill_created``)."""
    entry: dict[str, Any] = {"created": None, "created_by": created_by, "comment": HISTORY_COMMENT}
    if empty:
        entry["empty_layer"] = True
    elif layer_ns:
        entry["_ns"] = layer_ns
    return entry


def _format_ns(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return text + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"


def fill_created(history: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """BuildKit's times: a layer's entry has the time its layer was made (the cache record's, so a
    cached rebuild is the same image), an empty entry the next layer's (the last one's at the end);
    the image's ``created`` is the last layer's. Returns the history and that time."""
    out = copy.deepcopy(history)
    following = ""
    last = ""
    for entry in reversed(out):
        ns = entry.pop("_ns", 0)
        if ns:
            entry["created"] = following = _format_ns(ns)
            last = last or following
    base = next((e["created"] for e in reversed(out) if e.get("created")), "") or _now_rfc3339()
    last = last or base
    following = ""
    for entry in reversed(out):
        if entry.get("created") is None:
            entry["created"] = following or last
        elif "created_by" in entry and entry.get("comment") == HISTORY_COMMENT:
            following = entry["created"]
    return out, last


def history_text(cmd: ins.Command, classic: str, state: State) -> str | None:
    """BuildKit's history text for a metadata instruction (None: it writes none)."""
    rc = state.run_config
    if isinstance(cmd, ins.OnbuildCommand):
        return None
    if isinstance(cmd, ins.HealthCheckCommand):
        from ..gotime import go_duration

        h = rc.get("Healthcheck") or {}
        test = "[" + " ".join(h.get("Test") or []) + "]"
        parts = [f"Test:{test}"]
        for key in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
            parts.append(f"{key}:{go_duration(int(h.get(key) or 0))}")
        parts.append(f"Retries:{int(h.get('Retries') or 0)}")
        return "HEALTHCHECK {" + " ".join(parts) + "}"
    if isinstance(cmd, ins.ExposeCommand):
        return "EXPOSE " + go_slice_v(parse_port_specs(classic.removeprefix("EXPOSE ").split()))
    return classic


def copy_history(cmd: ins.CopyCommand | ins.AddCommand, heredocs: list[str]) -> str:
    parts = ["ADD" if isinstance(cmd, ins.AddCommand) else "COPY"]
    if cmd.chown:
        parts.append(f"--chown={cmd.chown}")
    if cmd.chmod:
        parts.append(f"--chmod={cmd.chmod}")
    parts += list(cmd.files.sources)
    parts += [f"<<{name}" for name in heredocs]
    parts.append(cmd.files.dest)
    return " ".join(parts) + " # buildkit"


def run_command_string(args: list[str], build_args: list[str]) -> str:
    prefix = [f"|{len(build_args)}", *build_args] if build_args else []
    return " ".join([*prefix, *args])


def display_name(cmd: ins.Command, env: dict[str, str]) -> str:
    """A step's name: its line with the stage's variables expanded, the instruction upper-cased."""
    text = _expand_line(str(cmd), env)
    word, _, rest = text.partition(" ")
    return f"{word.upper()} {rest}" if rest else word.upper()


def _expand_line(text: str, env: dict[str, str]) -> str:
    """processCmdEnv: $VAR and ${VAR} replaced where the environment has them, the rest left as written."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return env.get(name, match.group(0))

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", sub, text)
