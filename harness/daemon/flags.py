"""dockerd's command-line flags, parsed with pflag/cobra semantics and messages.

Users script dockerd's flags; refd must accept the same spellings (``--flag=v``,
``--flag v``, ``-Hv``, ``-D``) and refuse bad ones with the same text and exit status.
Each flag knows the daemon.json key it conflicts with (a NamedOption name such as
``hosts`` where dockerd has one).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from . import hosts as hostopts
from .log import go_quote

__all__ = [
    "FLAGS",
    "Flag",
    "FlagError",
    "HelpRequested",
    "ParsedFlags",
    "go_format",
    "parse_args",
    "parse_bool",
    "parse_int",
    "usage",
    "validate_label",
]

Kind = Literal["bool", "string", "int", "list", "map", "ulimit", "runtimes", "membytes"]


class FlagError(Exception):
    """A cobra-level parse error; ``str()`` is dockerd's exact stderr text."""

    def __init__(self, message: str, *, cobra_status: bool = True) -> None:
        super().__init__(message)
        self.cobra_status = cobra_status

    def render(self) -> str:
        if self.cobra_status:
            # dockerd 28 has a hidden subcommand, so cobra's FlagErrorFunc appends the usage text
            return f"Status: {self.args[0]}\nSee 'dockerd --help'.\n\n{usage()}, Code: 125"
        return str(self.args[0])


class HelpRequested(FlagError):
    """``--help``/``-h``: the usage goes to stdout and the exit status is 0."""


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
        os.environ.get("DOCKER_CONFIG") or os.path.join(_home(), ".docker")
    )


FLAGS: tuple[Flag, ...] = (
    Flag("host", "list", [], "H", "hosts", "Daemon socket(s) to connect to"),
    Flag("config-file", "string", "/etc/docker/daemon.json", help="Daemon configuration file"),
    Flag("validate", "bool", False, help="Validate daemon configuration and exit"),
    Flag("debug", "bool", False, "D", help="Enable debug mode"),
    Flag("log-level", "string", "info", "l", help="Set the logging level"),
    Flag("log-format", "string", "text", help='Set the logging format ("text"|"json")'),
    Flag("raw-logs", "bool", False, help="Full timestamps without ANSI coloring"),
    Flag("tls", "bool", False, help="Use TLS; implied by --tlsverify"),
    Flag("tlsverify", "bool", False, help="Use TLS and verify the remote"),
    Flag("tlscacert", "string", "", help="Trust certs signed only by this CA"),
    Flag("tlscert", "string", "", help="Path to TLS certificate file"),
    Flag("tlskey", "string", "", help="Path to TLS key file"),
    Flag(
        "insecure-registry",
        "list",
        [],
        key="insecure-registries",
        help="Enable insecure registry communication",
    ),
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
    Flag(
        "live-restore", "bool", False, help="Enable live restore of docker when containers are still running"
    ),
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
    # Accepted (and mostly unused) so that common daemon.json files are not refused as unknown keys.
    Flag("add-runtime", "runtimes", {}, key="runtimes", help="Register an additional OCI compatible runtime"),
    Flag("default-shm-size", "membytes", "64MiB", help="Default shm size for containers"),
    Flag("default-ipc-mode", "string", "private", help="Default mode for containers ipc"),
    Flag("default-cgroupns-mode", "string", "private", help="Default mode for containers cgroup namespace"),
    Flag("ipv6", "bool", False, help="Enable IPv6 networking for the default bridge network"),
    Flag("ip6tables", "bool", True, help="Enable addition of ip6tables rules"),
    Flag("fixed-cidr", "string", "", help="IPv4 subnet for the default bridge network"),
    Flag("fixed-cidr-v6", "string", "", help="IPv6 subnet for the default bridge network"),
    Flag("dns-opt", "list", [], key="dns-opts", help="DNS options to use"),
    Flag("dns-search", "list", [], help="DNS search domains to use"),
    Flag(
        "authorization-plugin", "list", [], key="authorization-plugins", help="Authorization plugins to load"
    ),
    Flag("selinux-enabled", "bool", False, help="Enable selinux support"),
    Flag("seccomp-profile", "string", "", help="Path to seccomp profile"),
    Flag("http-proxy", "string", "", help="HTTP proxy URL to use for outgoing traffic"),
    Flag("https-proxy", "string", "", help="HTTPS proxy URL to use for outgoing traffic"),
    Flag("no-proxy", "string", "", help="Hosts or IP addresses for which the proxy is skipped"),
    Flag("metrics-addr", "string", "", help="Set default address and port to serve the metrics api on"),
    Flag("containerd-namespace", "string", "moby", help="Containerd namespace to use"),
)

_BY_NAME = {f.name: f for f in FLAGS}
_BY_SHORT = {f.short: f for f in FLAGS if f.short}

_RAM_SIZE = re.compile(r"^[0-9]+(\.[0-9]+)* ?[kKmMgGtTpP]?[iI]?[bB]?$")
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_bool(text: str) -> bool:
    """Go strconv.ParseBool, raising ValueError with Go's message."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"strconv.ParseBool: parsing {go_quote(text)}: invalid syntax")


def _underscore_ok(text: str) -> bool:
    """Go strconv's underscoreOK: ``_`` only between digits (or after a base prefix)."""
    saw, i = "^", 0
    if text[:1] in ("+", "-"):
        text = text[1:]
    hexa = False
    if len(text) >= 2 and text[0] == "0" and text[1].lower() in "box":
        i, saw, hexa = 2, "0", text[1].lower() == "x"
    for ch in text[i:]:
        if "0" <= ch <= "9" or (hexa and "a" <= ch.lower() <= "f"):
            saw = "0"
        elif ch == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
    return saw != "_"


def parse_int(text: str) -> int:
    """pflag's int flag: Go ``strconv.ParseInt(s, 0, 64)`` (0x/0o/0b prefixes, leading 0 is octal)."""

    def fail(reason: str) -> ValueError:
        return ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: {reason}")

    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits:
        raise fail("invalid syntax")
    base = 10
    if digits[0] == "0":
        if len(digits) >= 3 and digits[1].lower() in "box":
            base, digits = {"b": 2, "o": 8, "x": 16}[digits[1].lower()], digits[2:]
        else:
            base, digits = 8, digits[1:]
    value = 0
    for ch in digits:
        if ch == "_":
            continue
        digit = "0123456789abcdefghijklmnopqrstuvwxyz".find(ch.lower()) if ch.isascii() else -1
        if not 0 <= digit < base:
            raise fail("invalid syntax")
        value = value * base + digit
    if "_" in digits and not _underscore_ok(text):
        raise fail("invalid syntax")
    negative = text[0] == "-"
    if value >= (1 << 63) + negative:
        raise fail("value out of range")
    return -value if negative else value


def _go_float(value: float) -> str:
    """Go ``%v`` of a float64 (strconv 'g', shortest): ``%e`` form when the exponent is < -4 or >= 6."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    from decimal import Decimal  # only a float flag value needs it: not imported at every boot

    sign, digit_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    assert isinstance(exponent, int)
    point = len(digits) + exponent  # position of the decimal point (Go's digs.dp)
    exp = point - 1
    prefix = "-" if sign else ""
    if exp < -4 or exp >= 6:  # strconv 'g' with shortest precision uses eprec = 6
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return prefix + digits + "0" * (point - len(digits))
    return f"{prefix}{digits[:point]}.{digits[point:]}"


def go_format(value: Any) -> str:
    """Render a value like Go's ``%v`` (used in the flag/file conflict message).

    Python floats are Go float64s (JSON numbers decoded into ``interface{}``), so ``1e6``
    prints ``1e+06`` as Go's ``%v`` does; ints print as Go ints.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_format(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, float):
        return _go_float(value)
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


def validate_label(value: str) -> str:
    """moby ``opts.ValidateLabel``: ``key=value`` outside the reserved namespaces."""
    if "=" not in value:
        raise ValueError(f"bad attribute format: {value}")
    if value.lower().startswith(("com.docker.", "io.docker.", "org.dockerproject.")):
        raise ValueError(
            f"label {value} is not allowed: the namespaces com.docker.*, io.docker.*, and "
            "org.dockerproject.* are reserved for internal use"
        )
    return value


def _validate_mirror(value: str) -> str:
    """registry.ValidateMirror (the value is kept with one trailing slash)."""
    from .distribution.errors import DistributionError
    from .distribution.service import validate_mirror

    try:
        return validate_mirror(value)
    except DistributionError as exc:
        raise ValueError(exc.message) from None


def _validate_index_name(value: str) -> str:
    """registry.ValidateIndexName."""
    name = "docker.io" if value == "index.docker.io" else value
    if name.startswith("-") or name.endswith("-"):
        raise ValueError(f"invalid index name ({name}). Cannot begin or end with a hyphen")
    return name


_LIST_VALIDATORS = {
    "host": hostopts.validate_host_flag,
    "label": validate_label,
    "registry-mirror": _validate_mirror,
    "insecure-registry": _validate_index_name,
}


def _convert(flag: Flag, raw: str, current: Any) -> Any:
    try:
        if flag.kind == "bool":
            return parse_bool(raw)
        if flag.kind == "int":
            return parse_int(raw)
        if flag.kind == "string":
            return raw
        if flag.kind == "list":
            validator = _LIST_VALIDATORS.get(flag.name)
            return [*current, validator(raw) if validator else raw]
        if flag.kind == "map":  # MapOpts.Set: strings.Cut, a missing "=" means an empty value
            key, _, val = raw.partition("=")
            return {**current, key: val}
        if flag.kind == "ulimit":
            name, sep, limits = raw.partition("=")
            if not sep:
                raise ValueError(f"invalid ulimit argument: {raw}")
            return {**current, name: limits}
        if flag.kind == "runtimes":  # RuntimeOpt.Set
            name, sep, path = (part.strip() for part in raw.partition("="))
            if not sep or not name or not path:
                raise ValueError(f"invalid runtime argument: {raw}")
            if name == "runc":
                raise ValueError("runtime name 'runc' is reserved")
            return {**current, name: {"path": path}}
        if flag.kind == "membytes":  # units.RAMInBytes
            if not _RAM_SIZE.match(raw):
                raise ValueError(f"invalid size: '{raw}'")
            return raw
    except ValueError as exc:
        shown = go_quote(_display(flag))
        raise FlagError(f"invalid argument {go_quote(raw)} for {shown} flag: {exc}") from None
    raise AssertionError(flag.kind)


def _quote_rune(ch: str) -> str:
    """Go ``%q`` of a rune/byte: ``'Z'``."""
    if ch == "'":
        return "'\\''"
    if ch == '"':
        return "'\"'"
    return "'" + go_quote(ch)[1:-1] + "'"


def parse_args(argv: list[str]) -> ParsedFlags:
    """Parse dockerd's argv (without argv[0]); raises FlagError with dockerd's text."""
    values: dict[str, Any] = {
        f.name: (
            list(f.default)
            if isinstance(f.default, list)
            else dict(f.default)
            if isinstance(f.default, dict)
            else f.default
        )
        for f in FLAGS
    }
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
            if arg[2] in "-=":
                raise FlagError(f"bad flag syntax: {arg}")
            name, eq, inline = arg[2:].partition("=")
            flag = _BY_NAME.get(name)
            if flag is None:
                if name in ("help",):
                    raise HelpRequested(usage(), cobra_status=False)
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
            while shorts:  # pflag parseSingleShortArg; messages name what is left of the group
                letter, rest = shorts[0], shorts[1:]
                if letter == "h":
                    raise HelpRequested(usage(), cobra_status=False)
                flag = _BY_SHORT.get(letter)
                if flag is None:
                    raise FlagError(f"unknown shorthand flag: {_quote_rune(letter)} in -{shorts}")
                if len(shorts) > 2 and shorts[1] == "=":
                    raw, rest = shorts[2:], ""
                elif flag.kind == "bool":
                    raw = "true"
                elif rest:
                    raw, rest = rest, ""
                elif i < len(argv):
                    raw, i = argv[i], i + 1
                else:
                    raise FlagError(f"flag needs an argument: {_quote_rune(letter)} in -{shorts}")
                shorts = rest
                values[flag.name] = changed[flag.name] = _convert(flag, raw, values[flag.name])
        else:
            positional.append(arg)
    if positional:
        raise FlagError(
            "\"dockerd\" accepts no argument(s).\nSee 'dockerd --help'.\n\n"
            "Usage:  dockerd [OPTIONS]\n\nA self-sufficient runtime for containers.",
            cobra_status=False,
        )
    return ParsedFlags(values, changed)


def usage() -> str:
    """The ``--help`` text, in dockerd's layout."""
    lines = ["Usage:\tdockerd [OPTIONS]", "", "A self-sufficient runtime for containers.", "", "Options:"]
    for flag in FLAGS:
        short = f"-{flag.short}, " if flag.short else "    "
        lines.append(f"  {short}--{flag.name:<28} {flag.help}")
    return "\n".join(lines) + "\n"
