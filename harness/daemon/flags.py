"""dockerd's command-line flags, parsed with pflag/cobra semantics and messages.

Users script dockerd's flags; refd must accept the same spellings (``--flag=v``,
``--flag v``, ``-Hv``, ``-D``) and refuse bad ones with the same text and exit status.
Each flag knows the daemon.json key it conflicts with (a NamedOption name such as
``hosts`` where dockerd has one).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

from . import hosts as hostopts

__all__ = ["FLAGS", "Flag", "FlagError", "ParsedFlags", "go_format", "parse_args", "parse_bool", "usage"]

Kind = Literal["bool", "string", "int", "list", "map", "ulimit"]


class FlagError(Exception):
    """A cobra-level parse error; ``str()`` is dockerd's exact stderr text."""

    def __init__(self, message: str, *, cobra_status: bool = True) -> None:
        super().__init__(message)
        self.cobra_status = cobra_status

    def render(self) -> str:
        if self.cobra_status:
            return f"Status: {self.args[0]}\nSee 'dockerd --help'., Code: 125"
        return str(self.args[0])


@dataclass(frozen=True)
class Flag:
    """One dockerd flag: its long name, shorthand, value kind, default and file key."""

    name: str
    kind: Kind
    default: Any = None
    short: str = ""
    key: str = ""  # daemon.json key when it differs (pflag NamedOption)
    help: str = ""

    @property
    def file_key(self) -> str:
        return self.key or self.name


def _home() -> str:
    return os.environ.get("HOME", "/root")


def _cert_dir() -> str:
    return os.environ.get("DOCKER_CERT_PATH") or os.path.join(
        os.environ.get("DOCKER_CONFIG") or os.path.join(_home(), ".docker"))


FLAGS: tuple[Flag, ...] = (
    Flag("host", "list", [], "H", "hosts", "Daemon socket(s) to connect to"),
    Flag("config-file", "string", "/etc/docker/daemon.json", help="Daemon configuration file"),
    Flag("validate", "bool", False, help="Validate daemon configuration and exit"),
    Flag("debug", "bool", False, "D", help="Enable debug mode"),
    Flag("log-level", "string", "info", "l", help="Set the logging level"),
    Flag("log-format", "string", "text", help="Set the logging format (\"text\"|\"json\")"),
    Flag("raw-logs", "bool", False, help="Full timestamps without ANSI coloring"),
    Flag("tls", "bool", False, help="Use TLS; implied by --tlsverify"),
    Flag("tlsverify", "bool", False, help="Use TLS and verify the remote"),
    Flag("tlscacert", "string", "", help="Trust certs signed only by this CA"),
    Flag("tlscert", "string", "", help="Path to TLS certificate file"),
    Flag("tlskey", "string", "", help="Path to TLS key file"),
    Flag("insecure-registry", "list", [], key="insecure-registries", help="Enable insecure registry communication"),
    Flag("registry-mirror", "list", [], key="registry-mirrors", help="Preferred registry mirror"),
    Flag("data-root", "string", "/var/lib/docker", help="Root directory of persistent Docker state"),
    Flag("exec-root", "string", "/var/run/docker", help="Root directory for execution state files"),
    Flag("pidfile", "string", "/var/run/docker.pid", "p", help="Path to use for daemon PID file"),
    Flag("storage-driver", "string", "", "s", help="Storage driver to use"),
    Flag("storage-opt", "list", [], key="storage-opts", help="Storage driver options"),
    Flag("log-driver", "string", "json-file", help="Default driver for container logs"),
    Flag("log-opt", "map", {}, key="log-opts", help="Default log driver options for containers"),
    Flag("group", "string", "docker", "G", help="Group for the unix socket"),
    Flag("shutdown-timeout", "int", 15, help="Default shutdown timeout in seconds"),
    Flag("live-restore", "bool", False, help="Enable live restore of docker when containers are still running"),
    Flag("label", "list", [], key="labels", help="Set key=value labels to the daemon"),
    Flag("default-ulimit", "ulimit", {}, key="default-ulimits", help="Default ulimits for containers"),
    Flag("iptables", "bool", True, help="Enable addition of iptables rules"),
    Flag("ip-forward", "bool", True, help="Enable net.ipv4.ip_forward"),
    Flag("ip-masq", "bool", True, help="Enable IP masquerading"),
    Flag("userland-proxy", "bool", True, help="Use userland proxy for loopback traffic"),
    Flag("bridge", "string", "", "b", help="Attach containers to a network bridge"),
    Flag("bip", "string", "", help="Specify network bridge IP"),
    Flag("mtu", "int", 0, help="Set the containers network MTU"),
    Flag("dns", "list", [], help="DNS server to use"),
    Flag("experimental", "bool", False, help="Enable experimental features"),
    Flag("max-concurrent-downloads", "int", 3, help="Set the max concurrent downloads"),
    Flag("max-concurrent-uploads", "int", 5, help="Set the max concurrent uploads"),
    Flag("max-download-attempts", "int", 5, help="Set the max download attempts for each pull"),
    Flag("containerd", "string", "", help="containerd grpc address (accepted; refd runs containers itself)"),
    Flag("cgroup-parent", "string", "", help="Set parent cgroup for all containers"),
    Flag("exec-opt", "list", [], key="exec-opts", help="Runtime execution options"),
    Flag("default-runtime", "string", "runc", help="Default OCI runtime for containers"),
    Flag("init", "bool", False, help="Run an init in the container to forward signals and reap processes"),
    Flag("icc", "bool", True, help="Enable inter-container communication"),
    Flag("no-new-privileges", "bool", False, help="Set no-new-privileges by default for new containers"),
    Flag("userns-remap", "string", "", help="User/Group setting for user namespaces"),
)

_BY_NAME = {f.name: f for f in FLAGS}
_BY_SHORT = {f.short: f for f in FLAGS if f.short}

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_bool(text: str) -> bool:
    """Go strconv.ParseBool, raising ValueError with Go's message."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def _parse_int(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise ValueError(f'strconv.ParseInt: parsing "{text}": invalid syntax') from None


def go_format(value: Any) -> str:
    """Render a value like Go's ``%v`` (used in the flag/file conflict message)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_format(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if value is None:
        return "<nil>"
    return str(value)


@dataclass
class ParsedFlags:
    """Flag values (defaults filled) plus which flags the user actually set (pflag Visit)."""

    values: dict[str, Any]
    changed: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def was_set(self, name: str) -> bool:
        return name in self.changed


def _display(flag: Flag) -> str:
    return f"-{flag.short}, --{flag.name}" if flag.short else f"--{flag.name}"


def _convert(flag: Flag, raw: str, current: Any) -> Any:
    try:
        if flag.kind == "bool":
            return parse_bool(raw)
        if flag.kind == "int":
            return _parse_int(raw)
        if flag.kind == "string":
            return raw
        if flag.kind == "list":
            if flag.name == "host":
                raw = hostopts.validate_host_flag(raw)
            return [*current, raw]
        if flag.kind == "map":
            key, sep, val = raw.partition("=")
            if not sep:
                raise ValueError(f"invalid key value pair format: {raw}")
            return {**current, key: val}
        if flag.kind == "ulimit":
            name, sep, limits = raw.partition("=")
            if not sep:
                raise ValueError(f"invalid ulimit argument: {raw}")
            return {**current, name: limits}
    except ValueError as exc:
        raise FlagError(f'invalid argument "{raw}" for "{_display(flag)}" flag: {exc}') from None
    raise AssertionError(flag.kind)


def parse_args(argv: list[str]) -> ParsedFlags:
    """Parse dockerd's argv (without argv[0]); raises FlagError with dockerd's text."""
    values: dict[str, Any] = {f.name: (list(f.default) if isinstance(f.default, list)
                                       else dict(f.default) if isinstance(f.default, dict)
                                       else f.default) for f in FLAGS}
    values["tlscacert"] = os.path.join(_cert_dir(), "ca.pem")
    values["tlscert"] = os.path.join(_cert_dir(), "cert.pem")
    values["tlskey"] = os.path.join(_cert_dir(), "key.pem")
    changed: dict[str, Any] = {}
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            positional += argv[i:]
            break
        if arg.startswith("--"):
            name, eq, inline = arg[2:].partition("=")
            flag = _BY_NAME.get(name)
            if flag is None:
                if name in ("help",):
                    raise FlagError(usage(), cobra_status=False)
                raise FlagError(f"unknown flag: --{name}")
            if eq:
                raw = inline
            elif flag.kind == "bool":
                raw = "true"
            elif i < len(argv):
                raw, i = argv[i], i + 1
            else:
                raise FlagError(f"flag needs an argument: --{name}")
            values[flag.name] = changed[flag.name] = _convert(flag, raw, values[flag.name])
        elif arg.startswith("-") and len(arg) > 1:
            shorts = arg[1:]
            while shorts:
                letter, shorts = shorts[0], shorts[1:]
                if letter == "h":
                    raise FlagError(usage(), cobra_status=False)
                flag = _BY_SHORT.get(letter)
                if flag is None:
                    raise FlagError(f"unknown shorthand flag: '{letter}' in {arg}")
                if shorts.startswith("="):
                    raw, shorts = shorts[1:], ""
                elif flag.kind == "bool":
                    raw = "true"
                elif shorts:
                    raw, shorts = shorts, ""
                elif i < len(argv):
                    raw, i = argv[i], i + 1
                else:
                    raise FlagError(f"flag needs an argument: '{letter}' in -{letter}")
                values[flag.name] = changed[flag.name] = _convert(flag, raw, values[flag.name])
        else:
            positional.append(arg)
    if positional:
        raise FlagError("\"dockerd\" accepts no argument(s).\nSee 'dockerd --help'.\n\nUsage:  dockerd [OPTIONS]\n\n"
                        "A self-sufficient runtime for containers.", cobra_status=False)
    return ParsedFlags(values, changed)


def usage() -> str:
    """The ``--help`` text, in dockerd's layout."""
    lines = ["", "Usage:\tdockerd [OPTIONS]", "", "A self-sufficient runtime for containers.", "", "Options:"]
    for flag in FLAGS:
        short = f"-{flag.short}, " if flag.short else "    "
        lines.append(f"  {short}--{flag.name:<28} {flag.help}")
    return "\n".join(lines)
