"""Capabilities: dockerd's default set, CapAdd/CapDrop resolution, and applying a set to a process.

Resolution follows moby's ``oci/caps`` (``NormalizeLegacyCapabilities`` and
``TweakCapabilities``): names are case-insensitive, ``CAP_`` is optional, ``ALL`` means every
capability, and an unknown name fails with ``unknown capability: "CAP_FOO"``. One deliberate
difference: ``ALL`` and ``Privileged`` mean every capability in the *host's current bounding
set*, not every capability the kernel knows, so a privileged container starts on a host whose
own bounding set lacks one (a nested or sandboxed host without CAP_SYS_RESOURCE, say) instead
of failing in capset(2). A capability named explicitly in CapAdd that the host lacks still
fails at start (``unable to apply caps: operation not permitted``), as with runc.

The set given to a process follows dockerd >= 20.10.14 (CVE-2022-24769): bounding, effective
and permitted get the list; inheritable and ambient stay empty. So a non-root user ends up with
no effective capabilities after execve, exactly as under dockerd; ``ambient`` exists for callers
that want the capabilities to survive a switch to a non-root user.

Applying is two-phase around the uid switch, which the process module does in between:
:func:`before_user_switch` (keep capabilities across setuid, drop the bounding set while
CAP_SETPCAP is still effective) and :func:`after_user_switch` (capset, ambient raise).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

from . import syscalls as sc
from .defaults import DEFAULT_CAPABILITIES
from .errors import RuntimeFailure

__all__ = [
    "ALL",
    "CAPABILITIES",
    "DEFAULT_CAPABILITIES",
    "CapabilityError",
    "CapabilitySet",
    "after_user_switch",
    "before_user_switch",
    "bounding_set",
    "cap_number",
    "known_capabilities",
    "last_cap",
    "mask",
    "names_from_mask",
    "normalise",
    "tweak",
]

#: Every capability name by number (linux/capability.h), up to CAP_CHECKPOINT_RESTORE (40).
CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
_NUMBERS = {name: i for i, name in enumerate(CAPABILITIES)}

#: dockerd's default capabilities (moby ``oci/caps.DefaultCapabilities``), in moby's order.
ALL = "ALL"


class CapabilityError(RuntimeFailure, ValueError):
    """An unknown capability name; dockerd answers it as an invalid parameter (400)."""


def last_cap() -> int:
    """The kernel's highest capability number (``/proc/sys/kernel/cap_last_cap``)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return len(CAPABILITIES) - 1


def known_capabilities() -> list[str]:
    """Capabilities both this module and the kernel know (moby's ``GetAllCapabilities``)."""
    return list(CAPABILITIES[: min(last_cap(), len(CAPABILITIES) - 1) + 1])


def bounding_set(pid: int | str = "self") -> frozenset[str]:
    """The names in ``pid``'s capability bounding set (CapBnd in /proc/<pid>/status)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("CapBnd:"):
                return names_from_mask(int(line.split()[1], 16))
    return frozenset()


def cap_number(name: str) -> int:
    """The number of a canonical name (``CAP_CHOWN`` -> 0)."""
    return _NUMBERS[name]


def mask(names: Iterable[str]) -> int:
    """A 64-bit mask of canonical names."""
    out = 0
    for name in names:
        out |= 1 << _NUMBERS[name]
    return out


def names_from_mask(value: int) -> frozenset[str]:
    """Canonical names of the bits set in ``value`` that this module knows."""
    return frozenset(name for i, name in enumerate(CAPABILITIES) if value >> i & 1)


def normalise(names: Iterable[str]) -> list[str]:
    """Upper-case, ``CAP_``-prefixed names; ``ALL`` kept as is; unknown -> :class:`CapabilityError`."""
    valid = set(known_capabilities())
    out: list[str] = []
    for raw in names:
        name = raw.upper()
        if name == ALL:
            out.append(name)
            continue
        if not name.startswith("CAP_"):
            name = "CAP_" + name
        if name not in valid:
            raise CapabilityError(f'unknown capability: "{name}"')
        out.append(name)
    return out


def tweak(
    basics: Iterable[str],
    adds: Iterable[str] = (),
    drops: Iterable[str] = (),
    privileged: bool = False,
    host: Iterable[str] | None = None,
) -> list[str]:
    """moby TweakCapabilities; ALL/privileged mean the host's bounding set (``host``; default ours)."""
    adds, drops = list(adds), list(drops)
    if not privileged and not adds and not drops:
        return list(basics)  # the common case: no need to read the host's bounding set
    everything = [c for c in known_capabilities() if c in (set(host) if host is not None else bounding_set())]
    if privileged:
        return everything
    cap_drop, cap_add = normalise(drops), normalise(adds)
    if ALL in cap_add:
        return [c for c in everything if c not in cap_drop]
    if ALL in cap_drop:
        return [c for c in cap_add if c != ALL]
    out = [c for c in basics if c not in cap_drop]
    out += [c for c in cap_add if c not in out]
    return out


@dataclass(frozen=True)
class CapabilitySet:
    """The five capability sets a container process gets (canonical names)."""

    bounding: frozenset[str]
    effective: frozenset[str]
    permitted: frozenset[str]
    inheritable: frozenset[str] = frozenset()
    ambient: frozenset[str] = frozenset()

    @classmethod
    def docker(cls, names: Iterable[str], ambient: bool = False) -> CapabilitySet:
        """dockerd's shape: bounding = effective = permitted = ``names``; inheritable/ambient if asked."""
        caps = frozenset(names)
        return cls(caps, caps, caps, caps if ambient else frozenset(), caps if ambient else frozenset())

    @classmethod
    def privileged(cls) -> CapabilitySet:
        """Every capability in the host's current bounding set."""
        return cls.docker(bounding_set())

    def to_dict(self) -> dict[str, list[str]]:
        return {
            k: sorted(getattr(self, k), key=cap_number)
            for k in ("bounding", "effective", "permitted", "inheritable", "ambient")
        }

    @classmethod
    def from_dict(cls, data: dict[str, Iterable[str]]) -> CapabilitySet:
        def get(key: str) -> frozenset[str]:
            return frozenset(normalise(data.get(key) or ()))

        return cls(get("bounding"), get("effective"), get("permitted"), get("inheritable"), get("ambient"))


def before_user_switch(caps: CapabilitySet) -> None:
    """Keep permitted capabilities across setuid and shrink the bounding set (needs CAP_SETPCAP, so first)."""
    sc.prctl(sc.PR_SET_KEEPCAPS, 1)
    keep = mask(caps.bounding)
    for number in range(last_cap() + 1):
        if keep >> number & 1:
            continue
        with contextlib.suppress(sc.SyscallError):  # EINVAL: not a capability on this kernel
            if sc.prctl(sc.PR_CAPBSET_READ, number):
                sc.prctl(sc.PR_CAPBSET_DROP, number)


def after_user_switch(caps: CapabilitySet) -> None:
    """Set effective/permitted/inheritable, then raise ambient (needs both latter)."""
    sc.prctl(sc.PR_SET_KEEPCAPS, 0)
    sc.capset(mask(caps.effective), mask(caps.permitted), mask(caps.inheritable))
    for name in sorted(caps.ambient, key=cap_number):
        sc.prctl(sc.PR_CAP_AMBIENT, sc.CAP_AMBIENT_RAISE, cap_number(name))
