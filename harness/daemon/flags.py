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

Kind = Literal[
    "bool",
    "string",
    "int",
    "list",
    "map",
    "set",
    "mapmap",
    "ulimit",
    "runtimes",
    "membytes",
    "ip",
    "ipslice",
    "iplist",
    "pool",
]
#: pflag ``Value.Type()`` of each kind: the word ``--help`` shows after the flag's name
TYPE_NAMES: dict[str, str] = {
    "bool": "",
    "string": "string",
    "int": "int",
    "list": "list",
    "map": "map",
    "set": "map",
    "mapmap": "mapmap",
    "ulimit": "ulimit",
    "runtimes": "runtime",
    "membytes": "bytes",
    "ip": "ip",
    "ipslice": "ipSlice",
    "iplist": "list",
    "pool": "pool-options",
}


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


class VersionRequested(FlagError):
    """``--version``/``-v``: ``Docker version X, build Y`` goes to stdout and the exit status is 0."""


@dataclass(frozen=True)
class Flag:
    """One dockerd flag: its long name, shorthand, value kind, default, file key and ``--help`` text.

    ``hidden`` flags are accepted but not listed; a ``deprecated`` one says so on stderr when used.
    """

    name: str
    kind: Kind
    default: Any = None
    short: str = ""
    key: str = ""  # daemon.json key when it differs (pflag NamedOption)
    help: str = ""
    hidden: bool = False
    deprecated: str = ""

    @property
    def file_key(self) -> str:
        return self.key or self.name

    @property
    def type_name(self) -> str:
        return TYPE_NAMES[self.kind]


def _home() -> str:
    return os.environ.get("HOME", "/root")


def _cert_dir() -> str:
    return os.environ.get("DOCKER_CERT_PATH") or os.path.join(
        os.environ.get("DOCKER_CONFIG") or os.path.join(_home(), ".docker")
    )


def _cgroupns_default() -> str:
    """config.New: ``private`` on a cgroup v2 (unified) host, ``host`` on v1 or hybrid."""
    return "private" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "host"


#: Every flag of dockerd 28.5's ``--help`` (and its hidden and deprecated ones), in its order. ``help`` and
#: ``version`` are answered by the parser itself.
FLAGS: tuple[Flag, ...] = (
    Flag("add-runtime", "runtimes", {}, key="runtimes", help="Register an additional OCI compatible runtime"),
    Flag(
        "allow-direct-routing",
        "bool",
        False,
        help="Allow remote access to published ports on container IP addresses",
    ),
    Flag(
        "allow-nondistributable-artifacts",
        "list",
        [],
        key="allow-nondistributable-artifacts",
        help="Allow push of nondistributable artifacts to registry",
        deprecated="Pushing nondistributable artifacts is now enabled by default. ",
    ),
    Flag(
        "api-cors-header",
        "string",
        "",
        help="Set CORS headers in the Engine API; deprecated: this feature was deprecated in 27.0, and now "
        "removed",
        deprecated="accessing Docker API through a browser is insecure; use a reverse proxy if you need CORS "
        "headers",
    ),
    Flag(
        "authorization-plugin", "list", [], key="authorization-plugins", help="Authorization plugins to load"
    ),
    Flag("bip", "string", "", help="IPv4 address for the default bridge"),
    Flag("bip6", "string", "", help="IPv6 address for the default bridge"),
    Flag("bridge", "string", "", "b", help="Attach containers to a network bridge"),
    Flag("cdi-spec-dir", "list", [], key="cdi-spec-dirs", help="CDI specification directories to use"),
    Flag("cgroup-parent", "string", "", help="Set parent cgroup for all containers"),
    Flag("config-file", "string", "/etc/docker/daemon.json", help="Daemon configuration file"),
    Flag("containerd", "string", "", help="containerd grpc address"),
    Flag("containerd-namespace", "string", "moby", help="Containerd namespace to use"),
    Flag(
        "containerd-plugins-namespace",
        "string",
        "plugins.moby",
        key="containerd-plugin-namespace",  # sic: the flag is plural, the daemon.json key is not
        help="Containerd namespace to use for plugins",
    ),
    Flag(
        "cpu-rt-period",
        "int",
        0,
        help="Limit the CPU real-time period in microseconds for the parent cgroup for all containers (not "
        "supported with cgroups v2)",
    ),
    Flag(
        "cpu-rt-runtime",
        "int",
        0,
        help="Limit the CPU real-time runtime in microseconds for the parent cgroup for all containers (not "
        "supported with cgroups v2)",
    ),
    Flag("cri-containerd", "bool", False, help="start containerd with cri"),
    Flag("data-root", "string", "/var/lib/docker", help="Root directory of persistent Docker state"),
    Flag("debug", "bool", False, "D", help="Enable debug mode"),
    Flag(
        "default-address-pool",
        "pool",
        [],
        key="default-address-pools",
        help="Default address pools for node specific local networks",
    ),
    Flag(
        "default-cgroupns-mode",
        "string",
        None,  # _cgroupns_default(), resolved at parse time
        help='Default mode for containers cgroup namespace ("host" | "private")',
    ),
    Flag("default-gateway", "ip", "", help="Default gateway IPv4 address for the default bridge network"),
    Flag("default-gateway-v6", "ip", "", help="Default gateway IPv6 address for the default bridge network"),
    Flag(
        "default-ipc-mode",
        "string",
        "private",
        help='Default mode for containers ipc ("shareable" | "private")',
    ),
    Flag("default-network-opt", "mapmap", {}, key="default-network-opts", help="Default network options"),
    Flag("default-runtime", "string", "runc", help="Default OCI runtime for containers"),
    Flag("default-shm-size", "membytes", "64MiB", help="Default shm size for containers"),
    Flag("default-ulimit", "ulimit", {}, key="default-ulimits", help="Default ulimits for containers"),
    Flag("dns", "ipslice", [], help="DNS server to use"),
    Flag("dns-opt", "list", [], key="dns-opts", help="DNS options to use"),
    Flag("dns-search", "list", [], help="DNS search domains to use"),
    Flag("exec-opt", "list", [], key="exec-opts", help="Runtime execution options"),
    Flag("exec-root", "string", "/var/run/docker", help="Root directory for execution state files"),
    Flag("experimental", "bool", False, help="Enable experimental features"),
    Flag("feature", "set", {}, key="features", help="Enable feature in the daemon"),
    Flag("fixed-cidr", "string", "", help="IPv4 subnet for the default bridge network"),
    Flag("fixed-cidr-v6", "string", "", help="IPv6 subnet for the default bridge network"),
    Flag("group", "string", "docker", "G", help="Group for the unix socket"),
    Flag("host", "list", [], "H", "hosts", "Daemon socket(s) to connect to"),
    Flag(
        "host-gateway-ip",
        "iplist",
        [],
        key="host-gateway-ips",
        help="IP addresses that the special 'host-gateway' string in --add-host resolves to. Defaults to the "
        "IP addresses of the default bridge",
    ),
    Flag("http-proxy", "string", "", help="HTTP proxy URL to use for outgoing traffic"),
    Flag("https-proxy", "string", "", help="HTTPS proxy URL to use for outgoing traffic"),
    Flag("icc", "bool", True, help="Enable inter-container communication for the default bridge network"),
    Flag("init", "bool", False, help="Run an init in the container to forward signals and reap processes"),
    Flag("init-path", "string", "", help="Path to the docker-init binary"),
    Flag(
        "insecure-registry",
        "list",
        [],
        key="insecure-registries",
        help="Enable insecure registry communication",
    ),
    Flag("ip", "ip", "0.0.0.0", help="Host IP for port publishing from the default bridge network"),
    Flag("ip-forward", "bool", True, help="Enable IP forwarding in system configuration"),
    Flag(
        "ip-forward-no-drop",
        "bool",
        False,
        help="Do not set the filter-FORWARD policy to DROP when enabling IP forwarding",
    ),
    Flag("ip-masq", "bool", True, help="Enable IP masquerading for the default bridge network"),
    Flag("ip6tables", "bool", True, help="Enable addition of ip6tables rules"),
    Flag("iptables", "bool", True, help="Enable addition of iptables rules"),
    Flag("ipv6", "bool", False, help="Enable IPv6 networking for the default bridge network"),
    Flag("label", "list", [], key="labels", help="Set key=value labels to the daemon"),
    Flag(
        "live-restore", "bool", False, help="Enable live restore of docker when containers are still running"
    ),
    Flag("log-driver", "string", "json-file", help="Default driver for container logs"),
    Flag("log-format", "string", "text", help='Set the logging format ("text"|"json")'),
    Flag(
        "log-level",
        "string",
        "info",
        "l",
        help='Set the logging level ("debug"|"info"|"warn"|"error"|"fatal")',
    ),
    Flag("log-opt", "map", {}, key="log-opts", help="Default log driver options for containers"),
    Flag("max-concurrent-downloads", "int", 3, help="Set the max concurrent downloads"),
    Flag("max-concurrent-uploads", "int", 5, help="Set the max concurrent uploads"),
    Flag("max-download-attempts", "int", 5, help="Set the max download attempts for each pull"),
    Flag("metrics-addr", "string", "", help="Set default address and port to serve the metrics api on"),
    Flag("mtu", "int", 1500, help='Set the MTU for the default "bridge" network'),
    Flag("network-control-plane-mtu", "int", 1500, help="Network Control plane MTU"),
    Flag(
        "network-diagnostic-port",
        "int",
        0,
        help="TCP port number of the network diagnostic server",
        hidden=True,
    ),
    Flag("no-new-privileges", "bool", False, help="Set no-new-privileges by default for new containers"),
    Flag(
        "no-proxy",
        "string",
        "",
        help="Comma-separated list of hosts or IP addresses for which the proxy is skipped",
    ),
    Flag(
        "node-generic-resource",
        "list",
        [],
        key="node-generic-resources",
        help="Advertise user-defined resource",
    ),
    Flag("pidfile", "string", "/var/run/docker.pid", "p", help="Path to use for daemon PID file"),
    Flag("raw-logs", "bool", False, help="Full timestamps without ANSI coloring"),
    Flag("registry-mirror", "list", [], key="registry-mirrors", help="Preferred Docker registry mirror"),
    Flag(
        "restart",
        "bool",
        True,
        "r",
        help="--restart on the daemon has been deprecated in favor of --restart policies on docker run",
        deprecated="Please use a restart policy on docker run",
    ),
    Flag("rootless", "bool", False, help="Enable rootless mode; typically used with RootlessKit"),
    Flag(
        "seccomp-profile",
        "string",
        "builtin",
        help='Path to seccomp profile. Set to "unconfined" to disable the default seccomp profile',
    ),
    Flag("selinux-enabled", "bool", False, help="Enable selinux support"),
    Flag("shutdown-timeout", "int", 15, help="Set the default shutdown timeout"),
    Flag("storage-driver", "string", "", "s", help="Storage driver to use"),
    Flag("storage-opt", "list", [], key="storage-opts", help="Storage driver options"),
    Flag(
        "swarm-default-advertise-addr",
        "string",
        "",
        help="Set default address or interface for swarm advertised address",
    ),
    Flag("tls", "bool", False, help="Use TLS; implied by --tlsverify"),
    Flag("tlscacert", "string", "", help="Trust certs signed only by this CA"),
    Flag("tlscert", "string", "", help="Path to TLS certificate file"),
    Flag("tlskey", "string", "", help="Path to TLS key file"),
    Flag("tlsverify", "bool", False, help="Use TLS and verify the remote"),
    Flag("userland-proxy", "bool", True, help="Use userland proxy for loopback traffic"),
    Flag("userland-proxy-path", "string", "/usr/sbin/docker-proxy", help="Path to the userland proxy binary"),
    Flag("userns-remap", "string", "", help="User/Group setting for user namespaces"),
    Flag("validate", "bool", False, help="Validate daemon configuration and exit"),
)
#: what the parser answers itself: shown in ``--help`` among the others
HELP_FLAG = Flag("help", "bool", False, help="Print usage")
VERSION_FLAG = Flag("version", "bool", False, "v", help="Print version information and quit")

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
    #: pflag's deprecation notices for the flags given, printed (stdout) once the command line parsed
    notices: list[str] = field(default_factory=list)

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


def _parse_ip(raw: str) -> str:
    """Go ``net.ParseIP``: dotted IPv4 or IPv6 (no zone, no leading zeros)."""
    import ipaddress

    text = raw.strip()
    if "%" in text:
        raise ValueError(raw)
    return str(ipaddress.ip_address(text))


def _parse_addr(raw: str) -> str:
    """Go ``netip.ParseAddr``, with its message."""
    import ipaddress

    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        raise ValueError(f"ParseAddr({go_quote(raw)}): unable to parse IP") from None


def _parse_pool(raw: str) -> dict[str, Any]:
    """opts.PoolsOpt.Set: ``base=CIDR,size=N`` (CSV, keys case-insensitive)."""
    import csv

    from .netip import NetipError, parse_prefix

    fields = next(csv.reader([raw]), [])
    pool: dict[str, Any] = {"base": "", "size": 0}
    for item in fields:
        key, sep, val = item.lower().partition("=")
        if not sep:
            raise ValueError(f"invalid field '{item}' must be a key=value pair")
        if key == "base":
            try:
                pool["base"] = str(parse_prefix(val))
            except NetipError as exc:
                raise ValueError(f"invalid base prefix {go_quote(val)}: {exc}") from None
        elif key == "size":
            if not re.fullmatch(r"[+-]?[0-9]+", val):
                raise ValueError(
                    f"invalid size value: {go_quote(raw)} (must be integer): strconv.Atoi: parsing "
                    f"{go_quote(val)}: invalid syntax"
                )
            if not -(1 << 63) <= int(val) < 1 << 63:
                raise ValueError(
                    f"invalid size value: {go_quote(raw)} (must be integer): strconv.Atoi: parsing "
                    f"{go_quote(val)}: value out of range"
                )
            pool["size"] = int(val)
        else:
            raise ValueError(f"unexpected key '{key}' in '{item}'")
    return pool


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
        if flag.kind == "set":  # SetOpts.Set: name, or name=bool
            key, sep, val = raw.partition("=")
            if not key:
                raise ValueError(f"invalid option name: {raw}")
            return {**current, key: parse_bool(val) if sep else True}
        if flag.kind == "mapmap":  # MapMapOpts.Set: root-key=key=value
            root, sep, rest = raw.partition("=")
            key, sep2, val = rest.partition("=")
            if not (sep and sep2):
                raise ValueError(
                    f"invalid value {go_quote(raw)} for map option, should be root-key=key=value"
                )
            return {**current, root: {**current.get(root, {}), key: val}}
        if flag.kind == "ip":  # pflag ipValue
            try:
                return _parse_ip(raw)
            except ValueError:
                raise ValueError(f"failed to parse IP: {go_quote(raw)}") from None
        if flag.kind == "ipslice":  # pflag ipSliceValue: comma-separated, appended
            out = list(current)
            for item in next(__import__("csv").reader([raw]), []) if raw else []:
                try:
                    out.append(_parse_ip(item))
                except ValueError:
                    raise ValueError(f"invalid string being converted to IP address: {item}") from None
            return out
        if flag.kind == "iplist":  # NamedIPListOpts: netip.ParseAddr
            return [*current, _parse_addr(raw)]
        if flag.kind == "pool":
            return [*current, _parse_pool(raw)]
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


def defaults() -> dict[str, Any]:
    """Every flag's default value (fresh copies; the TLS files and cgroupns mode follow the environment)."""
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
    values["default-cgroupns-mode"] = _cgroupns_default()
    return values


_SPECIAL = {"help": HELP_FLAG, "version": VERSION_FLAG}


def parse_args(argv: list[str]) -> ParsedFlags:
    """Parse dockerd's argv (without argv[0]); raises FlagError with dockerd's text.

    As cobra does: every flag is parsed first (a bad one is the error), then ``--help`` wins, then
    ``--version``, then positional arguments are refused.
    """
    values = defaults()
    changed: dict[str, Any] = {}
    notices: list[str] = []
    special = {"help": False, "version": False}
    positional: list[str] = []

    def take(flag: Flag, raw: str) -> None:
        if flag.name in special:
            try:
                special[flag.name] = parse_bool(raw)
            except ValueError as exc:
                shown = go_quote(_display(flag))
                raise FlagError(f"invalid argument {go_quote(raw)} for {shown} flag: {exc}") from None
            return
        if flag.deprecated:
            notices.append(f"Flag --{flag.name} has been deprecated, {flag.deprecated}")
        values[flag.name] = changed[flag.name] = _convert(flag, raw, values[flag.name])

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
            flag = _BY_NAME.get(name) or _SPECIAL.get(name)
            if flag is None:
                raise FlagError(f"unknown flag: --{name}")
            if eq:
                raw = inline
            elif flag.kind == "bool":
                raw = "true"
            elif i < len(argv):
                raw, i = argv[i], i + 1
            else:
                raise FlagError(f"flag needs an argument: --{name}")
            take(flag, raw)
        elif arg.startswith("-") and len(arg) > 1:
            shorts = arg[1:]
            while shorts:  # pflag parseSingleShortArg; messages name what is left of the group
                letter, rest = shorts[0], shorts[1:]
                if letter == "h":  # cobra's help flag: its shorthand is deprecated
                    flag = HELP_FLAG
                    notices.append("Flag shorthand -h has been deprecated, please use --help")
                else:
                    flag = _BY_SHORT.get(letter) or (VERSION_FLAG if letter == "v" else None)
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
                take(flag, raw)
        else:
            positional.append(arg)
    parsed = ParsedFlags(values, changed, notices)
    if special["help"]:
        raise HelpRequested(_notes(notices) + help_text(), cobra_status=False)
    if special["version"]:
        raise VersionRequested(_notes(notices) + version_text(), cobra_status=False)
    if positional:
        raise FlagError(
            "\"dockerd\" accepts no argument(s).\nSee 'dockerd --help'.\n\n"
            "Usage:  dockerd [OPTIONS]\n\nA self-sufficient runtime for containers.",
            cobra_status=False,
        )
    return parsed


def _notes(notices: list[str]) -> str:
    return "".join(n + "\n" for n in notices)


def version_text() -> str:
    """``dockerd --version``: cobra's version template with refd's own version and build."""
    from . import ENGINE_VERSION
    from .buildinfo import git_commit

    return f"Docker version {ENGINE_VERSION}, build {git_commit()}\n"


def shown_default(flag: Flag) -> str:
    """What pflag appends as ``(default X)``: nothing for a zero value."""
    value = defaults()[flag.name]
    if flag.kind == "bool":
        return "true" if value else ""
    if flag.kind == "string":
        return f'"{value}"' if value else ""
    if flag.kind == "int":
        return str(value) if value else ""
    if flag.kind in ("map", "set", "mapmap"):
        return go_format(value)
    if flag.kind in ("ulimit", "runtimes", "ipslice"):
        return "[]"
    if flag.kind == "membytes":
        return str(value)
    if flag.kind == "ip":
        return str(value)
    return ""  # list, iplist, pool: empty ListOpts print nothing


def _wrap_n(width: int, slop: int, text: str) -> tuple[str, str]:
    """pflag wrapN: the first line of ``text`` at most ``width`` (+``slop``) long, and the rest."""
    if width + slop > len(text):
        return text, ""
    cut = max(text.rfind(ch, 0, width) for ch in " \t\n")
    if cut <= 0:
        return text, ""
    newline = text.rfind("\n", 0, width)
    if 0 < newline < cut:
        return text[:newline], text[newline + 1 :]
    return text[:cut], text[cut + 1 :]


def _wrap(indent: int, cols: int, text: str) -> str:
    """pflag wrap: ``text`` in the column from ``indent`` to ``cols``, continuation lines indented."""
    room = cols - indent
    out = ""
    if room < 24:
        indent, room = 16, cols - 16
        out = "\n" + " " * indent
    if room < 24:
        return text.replace("\n", out)
    slop = 5
    room -= slop
    line, text = _wrap_n(room, slop, text)
    out += line.replace("\n", "\n" + " " * indent)
    while text:
        line, text = _wrap_n(room, slop, text)
        out += "\n" + " " * indent + line.replace("\n", "\n" + " " * indent)
    return out


def _terminal_width() -> int:
    """dockerd's wrappedFlagUsages: the terminal's width on stdin, else 80."""
    try:
        return os.get_terminal_size(0).columns
    except OSError:
        return 80


def flag_usages(cols: int | None = None) -> str:
    """pflag FlagUsagesWrapped(width - 1): every visible flag, sorted, aligned and wrapped."""
    cols = (_terminal_width() if cols is None else cols) - 1
    shown = sorted(
        [*(f for f in FLAGS if not f.hidden and not f.deprecated), HELP_FLAG, VERSION_FLAG],
        key=lambda f: f.name,
    )
    lines = []
    for flag in shown:
        line = f"  -{flag.short}, --{flag.name}" if flag.short else f"      --{flag.name}"
        if flag.type_name:
            line += " " + flag.type_name
        text = flag.help
        default = "" if flag in (HELP_FLAG, VERSION_FLAG) else shown_default(flag)
        if default:
            text += f" (default {default})"
        lines.append((line, text))
    maxlen = max(len(line) for line, _ in lines) + 1  # pflag's maxlen counts its separator byte
    # Fprintln(line, spacing, wrapped): a space between each, so the text starts at column maxlen + 2
    return "".join(
        f"{line} {' ' * (maxlen - len(line))} {_wrap(maxlen + 2, cols, text)}\n" for line, text in lines
    )


def usage() -> str:
    """cobra's usage text (what a flag error appends)."""
    return (
        "Usage:\tdockerd [OPTIONS]\n\nA self-sufficient runtime for containers.\n\nOptions:\n"
        + flag_usages().rstrip()
        + "\n"
    )


def help_text() -> str:
    """``dockerd --help``: cobra's help template (a blank line, then the usage)."""
    return "\n" + usage()
