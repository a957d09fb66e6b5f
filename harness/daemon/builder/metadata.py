"""The instructions that only change the image config (ENV, LABEL, CMD, EXPOSE...), as a table.

``METADATA[type(cmd)](state, cmd, step)`` applies one to ``state.run_config`` with dockerd 28.5's
checks and returns the comment the classic builder commits (``ENV A=b``, ``CMD ["sh" "-c" "x"]``);
the classic builder commits it as an empty step, BuildKit's frontend writes its own history text.
Nothing here touches a container or a layer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..log import go_quote
from . import instructions as ins
from .shell import Lex, ShellError
from .state import State, shell_of
from .stream import BuildError

__all__ = [
    "METADATA",
    "MetaStep",
    "go_slice_q",
    "go_slice_v",
    "parse_port_specs",
    "resolve_cmd",
    "valid_signal",
]

_VALID_PROTOS = ("tcp", "udp", "sctp")


@dataclass
class MetaStep:
    """What a metadata instruction may need besides the state: the lexer, the environment, a note channel."""

    lex: Lex
    env: dict[str, str]
    note: Callable[[str], None]


def go_slice_q(values: list[str] | None) -> str:
    """``%q`` of a Go []string."""
    return "[" + " ".join(go_quote(v) for v in values or []) + "]"


def go_slice_v(values: list[str] | None) -> str:
    """``%v`` of a Go []string."""
    return "[" + " ".join(values or []) + "]"


def resolve_cmd(cmd: ins.ShellDependent, rc: dict[str, Any]) -> list[str] | None:
    """The command line as the config stores it: the shell form behind the stage's SHELL."""
    result = cmd.cmd_line
    if cmd.prepend_shell and result is not None:
        result = [*shell_of(rc), *result]
    return result


# -- EXPOSE (go-connections nat) ---------------------------------------------------------------------------
def _port_range(text: str) -> tuple[int, int]:
    if not text:
        raise ValueError("empty string specified for ports")
    if "-" not in text:
        value = _uint16(text)
        return value, value
    lo_text, hi_text = text.split("-")[:2]
    lo, hi = _uint16(lo_text), _uint16(hi_text)
    if hi < lo:
        raise ValueError(f"invalid range specified for port: {text}")
    return lo, hi


def _uint16(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise ValueError(text)
    return int(text)


def parse_port_specs(ports: list[str]) -> list[str]:
    """nat.ParsePortSpecs as EXPOSE uses it: the ``port/proto`` keys, ranges expanded."""
    out: list[str] = []
    for raw in ports:
        parts = raw.split(":")
        container = parts[-1]
        host = parts[-2] if len(parts) >= 2 else ""
        proto_parts = container.split("/")
        if not container or not proto_parts[0]:
            proto, container = "", ""
        elif len(proto_parts) == 1:
            proto = "tcp"
        else:
            proto, container = proto_parts[1] or "tcp", proto_parts[0]
        if not container:
            raise BuildError(f"No port specified: {raw}<empty>")
        try:
            lo, hi = _port_range(container)
        except ValueError:
            raise BuildError(f"Invalid containerPort: {container}") from None
        if host:
            try:
                hlo, hhi = _port_range(host)
            except ValueError:
                raise BuildError(f"Invalid hostPort: {host}") from None
            if hhi - hlo != hi - lo and hi != lo:
                raise BuildError(
                    f"Invalid ranges specified for container and host Ports: {container} and {host}"
                )
        if proto.lower() not in _VALID_PROTOS:
            raise BuildError(f"Invalid proto: {proto}")
        for port in range(lo, hi + 1):
            key = f"{port}/{proto.lower()}"
            if key not in out:
                out.append(key)
    return out


def valid_signal(text: str) -> None:
    """signal.ParseSignal as STOPSIGNAL checks it."""
    from ..containers.signals import SIGNALS as _SIGNALS

    if re.fullmatch(r"[+-]?[0-9]+", text):
        if int(text) == 0:
            raise BuildError(f"invalid signal: {text}", 400)
        return
    name = text.upper().removeprefix("SIG")
    if name in _SIGNALS or re.fullmatch(r"RTMIN(\+([1-9]|1[0-5]))?|RTMAX(-([1-9]|1[0-4]))?", name):
        return
    raise BuildError(f"invalid signal: {text}", 400)


# -- the instructions ----------------------------------------------------------------------------------
def _env(state: State, cmd: ins.EnvCommand, step: MetaStep) -> str:
    rc = state.run_config
    message = "ENV"
    envs = list(rc.get("Env") or [])
    for kv in cmd.env:
        message += " " + str(kv)
        for i, existing in enumerate(envs):
            if existing.partition("=")[0] == kv.key:
                envs[i] = str(kv)
                break
        else:
            envs.append(str(kv))
    rc["Env"] = envs
    return message


def _maintainer(state: State, cmd: ins.MaintainerCommand, step: MetaStep) -> str:
    state.maintainer = cmd.maintainer
    return "MAINTAINER " + cmd.maintainer


def _label(state: State, cmd: ins.LabelCommand, step: MetaStep) -> str:
    rc = state.run_config
    labels = dict(rc.get("Labels") or {})
    message = "LABEL"
    for kv in cmd.labels:
        labels[kv.key] = kv.value
        message += " " + str(kv)
    rc["Labels"] = labels
    return message


def _onbuild(state: State, cmd: ins.OnbuildCommand, step: MetaStep) -> str:
    rc = state.run_config
    rc["OnBuild"] = [*(rc.get("OnBuild") or []), cmd.expression]
    return "ONBUILD " + cmd.expression


def _cmd(state: State, cmd: ins.CmdCommand, step: MetaStep) -> str:
    rc = state.run_config
    resolved = resolve_cmd(cmd, rc)
    rc["Cmd"] = resolved
    rc["ArgsEscaped"] = False
    if cmd.cmd_line:
        state.cmd_set = True
    return f"CMD {go_slice_q(resolved)}"


def _healthcheck(state: State, cmd: ins.HealthCheckCommand, step: MetaStep) -> str:
    rc = state.run_config
    old = rc.get("Healthcheck")
    if isinstance(old, dict) and old.get("Test") and old["Test"][0] != "NONE":
        step.note(f"Note: overriding previous HEALTHCHECK: {go_slice_v(old['Test'])}\n")
    rc["Healthcheck"] = dict(cmd.health)
    return f"HEALTHCHECK {cmd.go_string()}"


def _entrypoint(state: State, cmd: ins.EntrypointCommand, step: MetaStep) -> str:
    rc = state.run_config
    resolved = resolve_cmd(cmd, rc)
    rc["Entrypoint"] = resolved
    rc["ArgsEscaped"] = False
    if not state.cmd_set:
        rc["Cmd"] = None
    return f"ENTRYPOINT {go_slice_q(resolved)}"


def _expose(state: State, cmd: ins.ExposeCommand, step: MetaStep) -> str:
    rc = state.run_config
    ports: list[str] = []
    for port in cmd.ports:
        try:
            ports += step.lex.process_words(port, step.env)
        except ShellError as exc:
            raise BuildError(str(exc)) from None
    exposed = dict(rc.get("ExposedPorts") or {})
    for key in parse_port_specs(ports):
        exposed[key] = {}
    rc["ExposedPorts"] = exposed
    return "EXPOSE " + " ".join(ports)


def _user(state: State, cmd: ins.UserCommand, step: MetaStep) -> str:
    state.run_config["User"] = cmd.user
    return f"USER {cmd.user}"


def _volume(state: State, cmd: ins.VolumeCommand, step: MetaStep) -> str:
    rc = state.run_config
    volumes = dict(rc.get("Volumes") or {})
    for v in cmd.volumes:
        if not v:
            raise BuildError("VOLUME specified can not be an empty string")
        volumes[v] = {}
    rc["Volumes"] = volumes
    return f"VOLUME {go_slice_v(cmd.volumes)}"


def _stopsignal(state: State, cmd: ins.StopSignalCommand, step: MetaStep) -> str:
    valid_signal(cmd.signal)
    state.run_config["StopSignal"] = cmd.signal
    return f"STOPSIGNAL {cmd.signal}"


def _arg(state: State, cmd: ins.ArgCommand, step: MetaStep) -> str:
    for key, value in cmd.args:
        state.build_args.add(key, value)
    return cmd.describe()


def _shell(state: State, cmd: ins.ShellCommand, step: MetaStep) -> str:
    rc = state.run_config
    rc["Shell"] = list(cmd.shell)
    return f"SHELL {go_slice_v(rc['Shell'])}"


#: instruction type -> the function applying it to the state; each returns the classic history comment
METADATA: dict[type[ins.Command], Callable[[State, Any, MetaStep], str]] = {
    ins.EnvCommand: _env,
    ins.MaintainerCommand: _maintainer,
    ins.LabelCommand: _label,
    ins.OnbuildCommand: _onbuild,
    ins.CmdCommand: _cmd,
    ins.HealthCheckCommand: _healthcheck,
    ins.EntrypointCommand: _entrypoint,
    ins.ExposeCommand: _expose,
    ins.UserCommand: _user,
    ins.VolumeCommand: _volume,
    ins.StopSignalCommand: _stopsignal,
    ins.ArgCommand: _arg,
    ins.ShellCommand: _shell,
}
