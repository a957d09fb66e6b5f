"""``HostConfig.SecurityOpt`` read as moby's parseSecurityOpt (``daemon/daemon_unix.go``) does.

Checked when the container is created: a malformed entry is dockerd's untyped error (a 500) with its words,
``invalid --security-opt 1: "x"`` (no key) or ``... 2: "k=v"`` (an unknown key or a value that is not a Go
boolean). ``label``, ``apparmor`` and ``seccomp`` values are kept for what the runtime does with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import system
from ..log import go_quote

__all__ = ["SecurityOptions", "parse_bool", "security_options"]

_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def parse_bool(text: str) -> bool | None:
    """Go's strconv.ParseBool; None for anything else."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


@dataclass
class SecurityOptions:
    no_new_privileges: bool = False
    #: None: the default (writable only when privileged)
    writable_cgroups: bool | None = None
    seccomp: str = ""
    apparmor: str = ""


def security_options(host_config: dict[str, Any], daemon_no_new_privileges: bool = False) -> SecurityOptions:
    """The container's security options (the daemon's ``no-new-privileges`` first, its own over it)."""
    out = SecurityOptions(no_new_privileges=daemon_no_new_privileges)
    for raw in host_config.get("SecurityOpt") or []:
        opt = str(raw)
        if opt == "no-new-privileges":
            out.no_new_privileges = True
            continue
        if opt == "writable-cgroups":
            out.writable_cgroups = True
            continue
        if opt == "disable":
            continue
        sep = "=" if "=" in opt else ":" if ":" in opt else ""
        if not sep:
            raise system(f"invalid --security-opt 1: {go_quote(opt)}")
        key, _, value = opt.partition(sep)
        if key == "label":
            continue
        if key == "apparmor":
            out.apparmor = value
        elif key == "seccomp":
            out.seccomp = value
        elif key in ("no-new-privileges", "writable-cgroups"):
            flag = parse_bool(value)
            if flag is None:
                raise system(f"invalid --security-opt 2: {go_quote(opt)}")
            if key == "no-new-privileges":
                out.no_new_privileges = flag
            else:
                out.writable_cgroups = flag
        else:
            raise system(f"invalid --security-opt 2: {go_quote(opt)}")
    return out
