"""Typed Dockerfile instructions from parser nodes, as buildkit's ``frontend/dockerfile/instructions``.

``parse_stages(nodes)`` gives the build stages (each a FROM with its commands) and the meta ARGs
before the first FROM; ``parse_command(node)`` one instruction (ONBUILD triggers). Flags are
checked as buildkit's BFlags checks them, errors raise ``InstructionError`` with its texts; a
failure inside ``parse_stages`` reads ``dockerfile parse error on line N: ...``.

Each command keeps its source (``str(cmd)``, the ``Step i/n : ...`` text) and the expansion rules:
``expand(fn)`` applies ``fn`` to the words buildkit expands for that instruction.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..gotime import go_duration, parse_go_duration
from ..log import go_quote
from .parser import Node, chomp_heredoc, parse_heredoc

__all__ = [
    "AddCommand",
    "ArgCommand",
    "CmdCommand",
    "Command",
    "CopyCommand",
    "EntrypointCommand",
    "EnvCommand",
    "ExposeCommand",
    "HealthCheckCommand",
    "InstructionError",
    "LabelCommand",
    "MaintainerCommand",
    "OnbuildCommand",
    "RunCommand",
    "ShellCommand",
    "Stage",
    "StopSignalCommand",
    "UnknownInstruction",
    "UserCommand",
    "VolumeCommand",
    "WorkdirCommand",
    "levenshtein",
    "parse_command",
    "parse_stages",
    "suggest",
]

_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")
_ONBUILD_PREFIX = re.compile(r"(?i)^\s*ONBUILD\s*")

Expander = Callable[[str], str]


class InstructionError(ValueError):
    """An instruction buildkit refuses; ``str()`` is its message."""


class UnknownInstruction(InstructionError):
    pass


# -- suggestions (buildkit util/suggest) --------------------------------------------------------------
def levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def suggest(value: str, options: list[str], case_sensitive: bool) -> str:
    """The closest option (distance below 3), in the value's case; '' for none or an exact match."""
    orig = value
    if not case_sensitive:
        value = value.lower()
    match, best = "", 3
    for opt in options:
        cand = opt if case_sensitive else opt.lower()
        if value == cand:
            return ""
        dist = levenshtein(value, cand)
        if dist < best:
            best = dist
            if case_sensitive:
                match = cand
            elif orig == orig.lower():
                match = cand.lower()
            elif orig == orig.upper():
                match = cand.upper()
            else:
                match = cand
    return match


def _with_suggestion(message: str, value: str, options: list[str], case_sensitive: bool) -> str:
    match = suggest(value, options, case_sensitive)
    return f"{message} (did you mean {match}?)" if match else message


# -- flags (bflag.go) -------------------------------------------------------------------------------
class _Flags:
    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.kinds: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self.used: list[str] = []

    def add_bool(self, name: str, default: bool = False) -> None:
        self.kinds[name] = "bool"
        self.values[name] = default

    def add_string(self, name: str, default: str = "") -> None:
        self.kinds[name] = "string"
        self.values[name] = default

    def add_strings(self, name: str) -> None:
        self.kinds[name] = "strings"
        self.values[name] = []

    def parse(self) -> None:
        for arg in self.args:
            if arg == "--":
                return
            if not arg.startswith("--"):
                raise InstructionError(f"arg should start with -- : {arg}")
            flag_name, has_value, value = arg.partition("=")
            name = flag_name[2:]
            if name not in self.kinds:
                raise InstructionError(
                    _with_suggestion(f"unknown flag: {flag_name}", name, sorted(self.kinds), True)
                )
            kind = self.kinds[name]
            if name in self.used and kind != "strings":
                raise InstructionError(f"duplicate flag specified: {flag_name}")
            if name not in self.used:
                self.used.append(name)
            if kind == "bool":
                if has_value and value == "":
                    raise InstructionError(f"missing a value on flag: {flag_name}")
                if value.lower() in ("true", ""):
                    self.values[name] = True
                elif value.lower() == "false":
                    self.values[name] = False
                else:
                    raise InstructionError(f"expecting boolean value for flag {flag_name}, not: {value}")
            elif kind == "string":
                if not has_value:
                    raise InstructionError(f"missing a value on flag: {flag_name}")
                self.values[name] = value
            else:
                if not has_value:
                    raise InstructionError(f"missing a value on flag: {flag_name}")
                self.values[name].append(value)


# -- commands ---------------------------------------------------------------------------------------
@dataclass
class Command:
    name: str  # as written
    code: str  # the trimmed original line: what ``Step i/n : `` shows
    line: int = 0

    def __str__(self) -> str:
        return self.code

    def expand(self, fn: Expander) -> None:
        """Single-word expansion of the words buildkit expands for this instruction (none here)."""


@dataclass
class KeyValue:
    key: str
    value: str
    no_delim: bool = False

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


@dataclass
class EnvCommand(Command):
    env: list[KeyValue] = field(default_factory=list)

    def expand(self, fn: Expander) -> None:
        self.env = [KeyValue(fn(kv.key), fn(kv.value), kv.no_delim) for kv in self.env]


@dataclass
class MaintainerCommand(Command):
    maintainer: str = ""


@dataclass
class LabelCommand(Command):
    labels: list[KeyValue] = field(default_factory=list)
    no_expand: bool = False

    def expand(self, fn: Expander) -> None:
        if not self.no_expand:
            self.labels = [KeyValue(fn(kv.key), fn(kv.value), kv.no_delim) for kv in self.labels]


def label_command(key: str, value: str) -> LabelCommand:
    """NewLabelCommand for ``--label`` build options (never expanded)."""
    kv = KeyValue(key, value)
    return LabelCommand(name="label", code=f"LABEL {kv}", labels=[kv], no_expand=True)


@dataclass
class SourceContent:
    path: str
    data: str
    expand: bool


@dataclass
class SourcesAndDest:
    dest: str = ""
    sources: list[str] = field(default_factory=list)
    contents: list[SourceContent] = field(default_factory=list)

    def expand_paths(self, fn: Expander) -> None:
        self.sources = [fn(s) for s in self.sources]
        self.dest = fn(self.dest)


@dataclass
class AddCommand(Command):
    files: SourcesAndDest = field(default_factory=SourcesAndDest)
    chown: str = ""
    chmod: str = ""
    link: bool = False
    checksum: str = ""
    excludes: list[str] = field(default_factory=list)

    def expand(self, fn: Expander) -> None:
        self.chown, self.chmod, self.checksum = fn(self.chown), fn(self.chmod), fn(self.checksum)
        self.files.expand_paths(fn)


@dataclass
class CopyCommand(Command):
    files: SourcesAndDest = field(default_factory=SourcesAndDest)
    from_: str = ""
    chown: str = ""
    chmod: str = ""
    link: bool = False
    excludes: list[str] = field(default_factory=list)

    def expand(self, fn: Expander) -> None:
        self.chown, self.chmod = fn(self.chown), fn(self.chmod)
        self.files.expand_paths(fn)


@dataclass
class OnbuildCommand(Command):
    expression: str = ""


@dataclass
class WorkdirCommand(Command):
    path: str = ""

    def expand(self, fn: Expander) -> None:
        self.path = fn(self.path)


@dataclass
class ShellDependent(Command):
    cmd_line: list[str] | None = None
    prepend_shell: bool = True
    files: list[tuple[str, str, bool]] = field(default_factory=list)


@dataclass
class RunCommand(ShellDependent):
    flags_used: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)  # --mount values (BuildKit's)
    network: str = "default"


@dataclass
class CmdCommand(ShellDependent):
    pass


@dataclass
class EntrypointCommand(ShellDependent):
    pass


@dataclass
class HealthCheckCommand(Command):
    health: dict[str, Any] = field(default_factory=dict)

    def go_string(self) -> str:
        """``%q`` of the *HealthConfig, as dockerd writes it into the step's history."""
        h = self.health
        parts = ["[" + " ".join(h.get("Test") or []) + "]"]
        for key in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
            parts.append(go_duration(int(h.get(key) or 0)))
        parts.append(str(int(h.get("Retries") or 0)))
        return "&{" + " ".join(parts) + "}"


@dataclass
class ExposeCommand(Command):
    ports: list[str] = field(default_factory=list)


@dataclass
class UserCommand(Command):
    user: str = ""

    def expand(self, fn: Expander) -> None:
        self.user = fn(self.user)


@dataclass
class VolumeCommand(Command):
    volumes: list[str] = field(default_factory=list)

    def expand(self, fn: Expander) -> None:
        self.volumes = [fn(v) for v in self.volumes]


@dataclass
class StopSignalCommand(Command):
    signal: str = ""

    def expand(self, fn: Expander) -> None:
        self.signal = fn(self.signal)


@dataclass
class ArgCommand(Command):
    args: list[tuple[str, str | None]] = field(default_factory=list)

    def expand(self, fn: Expander) -> None:
        self.args = [(fn(k), None if v is None else fn(v)) for k, v in self.args]

    def describe(self) -> str:
        """The ``ARG a=b c`` text of the step's history."""
        return "ARG " + " ".join(k if v is None else f"{k}={v}" for k, v in self.args)


@dataclass
class ShellCommand(Command):
    shell: list[str] = field(default_factory=list)


@dataclass
class Stage:
    name: str
    base_name: str
    platform: str
    source_code: str
    commands: list[Command] = field(default_factory=list)
    line: int = 0

    def __str__(self) -> str:
        return self.source_code


# -- parsing ----------------------------------------------------------------------------------------
def _base(node: Node) -> dict[str, Any]:
    return {"name": node.value, "code": node.original.strip(), "line": node.start_line}


def _kvps(args: list[str], command: str) -> list[KeyValue]:
    if not args:
        raise InstructionError(f"{command} requires at least one argument")
    if len(args) % 3:
        raise InstructionError(f"Bad input to {command}, too many arguments")
    out = []
    for i in range(0, len(args), 3):
        if not args[i]:
            raise InstructionError(f"{command} names can not be blank")
        out.append(KeyValue(args[i], args[i + 1], args[i + 2] == ""))
    return out


def _sources_and_dest(node: Node, args: list[str], command: str) -> SourcesAndDest:
    srcs, dest = args[:-1], args[-1]
    if parse_heredoc(dest) is not None:
        raise InstructionError(f"{command} cannot accept a heredoc as a destination")
    lookup = {doc.name: doc for doc in node.heredocs}
    out = SourcesAndDest(dest=dest)
    for src in srcs:
        doc = parse_heredoc(src)
        if doc is not None:
            found = lookup.get(doc.name)
            content = found.content if found is not None else ""
            if doc.chomp:
                content = chomp_heredoc(content)
            out.contents.append(SourceContent(doc.name, content, doc.expand))
        else:
            out.sources.append(src)
    return out


def _shell_dependent(node: Node, args: list[str], empty_as_none: bool) -> dict[str, Any]:
    cmd_line: list[str] | None = list(args)
    if empty_as_none and not args:
        cmd_line = None
    files = [(d.name, d.content, d.chomp) for d in node.heredocs]
    return {"cmd_line": cmd_line, "prepend_shell": not node.json, "files": files}


def _interval(flags: _Flags, name: str) -> int:
    text = flags.values[name]
    if not text:
        return 0
    try:
        ns = parse_go_duration(text)
    except ValueError as exc:
        raise InstructionError(str(exc)) from None
    if ns == 0:
        return 0
    if ns < 1_000_000:
        raise InstructionError(f"Interval {go_quote(name)} cannot be less than 1ms")
    return ns


def _parse_healthcheck(node: Node, args: list[str]) -> HealthCheckCommand:
    if not args:
        raise InstructionError("HEALTHCHECK requires at least one argument")
    kind, rest = args[0].upper(), args[1:]
    if kind == "NONE":
        if rest:
            raise InstructionError("HEALTHCHECK NONE takes no arguments")
        return HealthCheckCommand(**_base(node), health={"Test": ["NONE"]})
    flags = _Flags(node.flags)
    for name in ("interval", "timeout", "start-period", "start-interval", "retries"):
        flags.add_string(name)
    flags.parse()
    if kind != "CMD":
        raise InstructionError(f"Unknown type {go_quote(kind)} in HEALTHCHECK (try CMD)")
    if not rest:
        raise InstructionError("Missing command after HEALTHCHECK CMD")
    health: dict[str, Any] = {"Test": [kind if node.json else "CMD-SHELL", *rest]}
    for flag, key in (
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start-period", "StartPeriod"),
        ("start-interval", "StartInterval"),
    ):
        value = _interval(flags, flag)
        if value:
            health[key] = value
    retries_text = flags.values["retries"]
    if retries_text:
        if not re.fullmatch(r"[+-]?\d+", retries_text):
            raise InstructionError(f"strconv.ParseInt: parsing {go_quote(retries_text)}: invalid syntax")
        retries = int(retries_text)
        if not -(2**31) <= retries < 2**31:
            raise InstructionError(f"strconv.ParseInt: parsing {go_quote(retries_text)}: value out of range")
        if retries < 0:
            raise InstructionError(f"--retries cannot be negative ({retries})")
        if retries:
            health["Retries"] = retries
    return HealthCheckCommand(**_base(node), health=health)


def _parse_run(node: Node, args: list[str]) -> RunCommand:
    flags = _Flags(node.flags)
    flags.add_strings("device")
    flags.add_string("network", "default")
    flags.add_strings("mount")
    flags.parse()
    network = flags.values["network"]
    if network not in ("default", "none", "host"):
        raise InstructionError(f"invalid network mode {go_quote(network)}")
    return RunCommand(
        **_base(node),
        **_shell_dependent(node, args, False),
        flags_used=list(flags.used),
        mounts=list(flags.values["mount"]),
        network=network,
    )


def _copy_flags(
    node: Node, args: list[str], name: str, strings: tuple[str, ...], bools: tuple[str, ...]
) -> dict[str, Any]:
    """ADD and COPY share their argument check and their flag parsing (``--exclude`` included)."""
    if len(args) < 2:
        raise InstructionError(
            f"{name} requires at least two arguments, but only one was provided. "
            "Destination could not be determined"
        )
    flags = _Flags(node.flags)
    for flag in strings:
        flags.add_string(flag)
    for flag in bools:
        flags.add_bool(flag)
    flags.add_strings("exclude")
    flags.parse()
    return flags.values


def _no_flags(node: Node) -> None:
    _Flags(node.flags).parse()


def _exactly_one(args: list[str], command: str) -> str:
    if len(args) != 1:
        raise InstructionError(f"{command} requires exactly one argument")
    return args[0]


def _at_least_one(args: list[str], command: str) -> None:
    if not args:
        raise InstructionError(f"{command} requires at least one argument")


def _parse_env(node: Node, args: list[str]) -> EnvCommand:
    _no_flags(node)
    return EnvCommand(**_base(node), env=_kvps(args, "ENV"))


def _parse_maintainer(node: Node, args: list[str]) -> MaintainerCommand:
    maintainer = _exactly_one(args, "MAINTAINER")
    _no_flags(node)
    return MaintainerCommand(**_base(node), maintainer=maintainer)


def _parse_label(node: Node, args: list[str]) -> LabelCommand:
    _no_flags(node)
    return LabelCommand(**_base(node), labels=_kvps(args, "LABEL"))


def _parse_add(node: Node, args: list[str]) -> AddCommand:
    v = _copy_flags(node, args, "ADD", ("chown", "chmod", "checksum"), ("link", "keep-git-dir", "unpack"))
    return AddCommand(
        **_base(node),
        files=_sources_and_dest(node, args, "ADD"),
        chown=v["chown"],
        chmod=v["chmod"],
        link=v["link"],
        checksum=v["checksum"],
        excludes=v["exclude"],
    )


def _parse_copy(node: Node, args: list[str]) -> CopyCommand:
    v = _copy_flags(node, args, "COPY", ("chown", "from", "chmod"), ("link",))
    return CopyCommand(
        **_base(node),
        files=_sources_and_dest(node, args, "COPY"),
        from_=v["from"],
        chown=v["chown"],
        chmod=v["chmod"],
        link=v["link"],
        excludes=v["exclude"],
    )


def _parse_from(node: Node, args: list[str]) -> Stage:
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME.match(name):
            raise InstructionError(
                f"invalid name for build stage: {go_quote(args[2])}, name can't start with a number or "
                "contain symbols"
            )
    elif len(args) != 1:
        raise InstructionError("FROM requires either one or three arguments")
    else:
        name = ""
    flags = _Flags(node.flags)
    flags.add_string("platform")
    flags.parse()
    return Stage(
        name=name,
        base_name=args[0],
        platform=flags.values["platform"],
        source_code=node.original.strip(),
        line=node.start_line,
    )


def _parse_onbuild(node: Node, args: list[str]) -> OnbuildCommand:
    _at_least_one(args, "ONBUILD")
    _no_flags(node)
    trigger = args[0].strip().upper()
    if trigger == "ONBUILD":
        raise InstructionError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise InstructionError(f"{trigger} isn't allowed as an ONBUILD trigger")
    expression = _ONBUILD_PREFIX.sub("", node.original, count=1)
    for doc in node.heredocs:
        expression += "\n" + doc.content + doc.name
    return OnbuildCommand(**_base(node), expression=expression)


def _parse_workdir(node: Node, args: list[str]) -> WorkdirCommand:
    path = _exactly_one(args, "WORKDIR")
    _no_flags(node)
    return WorkdirCommand(**_base(node), path=path)


def _parse_cmd(node: Node, args: list[str]) -> CmdCommand:
    _no_flags(node)
    return CmdCommand(**_base(node), **_shell_dependent(node, args, False))


def _parse_entrypoint(node: Node, args: list[str]) -> EntrypointCommand:
    _no_flags(node)
    return EntrypointCommand(**_base(node), **_shell_dependent(node, args, True))


def _parse_expose(node: Node, args: list[str]) -> ExposeCommand:
    _at_least_one(args, "EXPOSE")
    _no_flags(node)
    return ExposeCommand(**_base(node), ports=sorted(args))


def _parse_user(node: Node, args: list[str]) -> UserCommand:
    user = _exactly_one(args, "USER")
    _no_flags(node)
    return UserCommand(**_base(node), user=user)


def _parse_volume(node: Node, args: list[str]) -> VolumeCommand:
    _at_least_one(args, "VOLUME")
    _no_flags(node)
    volumes: list[str] = []
    for raw in args:
        if not raw.strip():
            raise InstructionError("VOLUME specified can not be an empty string")
        volumes.append(raw.strip())
    return VolumeCommand(**_base(node), volumes=volumes)


def _parse_stopsignal(node: Node, args: list[str]) -> StopSignalCommand:
    return StopSignalCommand(**_base(node), signal=_exactly_one(args, "STOPSIGNAL"))


def _parse_arg(node: Node, args: list[str]) -> ArgCommand:
    _at_least_one(args, "ARG")
    pairs: list[tuple[str, str | None]] = []
    for arg in args:
        if "=" in arg:
            key, _, value = arg.partition("=")
            if not key:
                raise InstructionError("ARG names can not be blank")
            pairs.append((key, value))
        else:
            pairs.append((arg, None))
    return ArgCommand(**_base(node), args=pairs)


def _parse_shell(node: Node, args: list[str]) -> ShellCommand:
    _no_flags(node)
    _at_least_one(args, "SHELL")
    if not node.json:
        raise InstructionError("SHELL requires the arguments to be in JSON form")
    return ShellCommand(**_base(node), shell=list(args))


#: instruction name (lower case) -> its parser; the keys are the instructions buildkit knows
PARSERS: dict[str, Callable[[Node, list[str]], Command | Stage]] = {
    "add": _parse_add,
    "arg": _parse_arg,
    "cmd": _parse_cmd,
    "copy": _parse_copy,
    "entrypoint": _parse_entrypoint,
    "env": _parse_env,
    "expose": _parse_expose,
    "from": _parse_from,
    "healthcheck": _parse_healthcheck,
    "label": _parse_label,
    "maintainer": _parse_maintainer,
    "onbuild": _parse_onbuild,
    "run": _parse_run,
    "shell": _parse_shell,
    "stopsignal": _parse_stopsignal,
    "user": _parse_user,
    "volume": _parse_volume,
    "workdir": _parse_workdir,
}


def parse_command(node: Node) -> Command | Stage:
    """ParseInstruction: one node as a typed instruction, or a Stage for FROM."""
    parser = PARSERS.get(node.command)
    if parser is None:
        raise UnknownInstruction(
            _with_suggestion(
                f"unknown instruction: {node.value}", node.value, [c.upper() for c in PARSERS], False
            )
        )
    return parser(node, node.all_args())


def parse_stages(nodes: list[Node]) -> tuple[list[Stage], list[ArgCommand]]:
    """instructions.Parse: stages and the ARGs before the first FROM."""
    stages: list[Stage] = []
    meta: list[ArgCommand] = []
    for node in nodes:
        try:
            cmd = parse_command(node)
        except InstructionError as exc:
            raise InstructionError(f"dockerfile parse error on line {node.start_line}: {exc}") from None
        if not stages and isinstance(cmd, ArgCommand):
            meta.append(cmd)
            continue
        if isinstance(cmd, Stage):
            stages.append(cmd)
            continue
        if not stages:
            raise InstructionError("no build stage in current context")
        stages[-1].commands.append(cmd)
    return stages, meta
