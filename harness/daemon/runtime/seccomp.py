"""A seccomp profile (Docker's JSON, ``--security-opt seccomp=<profile>``) compiled to a classic BPF filter.

What runc does with libseccomp, for the x86_64 calls: the architecture is checked first (another one is
killed, libseccomp's default), then each rule's call number (and argument conditions: ``SCMP_CMP_EQ``,
``NE``, ``MASKED_EQ``, ``GT``, ``GE``, ``LT``, ``LE`` on the 64-bit value) returns its action, and anything
else the profile's ``defaultAction``. Rules are kept or dropped by ``includes``/``excludes`` (capabilities,
architectures, minimum kernel) as moby's profile loader does; a call name this machine's table does not know
is skipped, as runc skips names libseccomp does not know.

The filter is a list of ``(code, jt, jf, k)`` instructions, JSON-friendly for the shim's spec file;
:func:`install` loads it into the calling thread (``seccomp(SECCOMP_SET_MODE_FILTER)``).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import struct
from collections.abc import Iterable, Mapping
from typing import Any

from .syscall_numbers import X86_64

__all__ = ["SeccompError", "compile_profile", "install"]

Instruction = tuple[int, int, int, int]

_AUDIT_ARCH_X86_64 = 0xC000003E
_RET_KILL_THREAD = 0x00000000
_ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000,
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
}
# classic BPF opcodes
_LD_W_ABS = 0x20
_ALU_AND_K = 0x54
_JEQ, _JGT, _JGE = 0x15, 0x25, 0x35
_RET_K = 0x06
_NATIVE_ARCHES = ("amd64", "x86_64", "SCMP_ARCH_X86_64")


class SeccompError(ValueError):
    """The profile cannot be used; the message says what in it."""


def _action(name: str, errno_ret: int | None, default_errno: int | None) -> int:
    if name == "SCMP_ACT_NOTIFY":
        raise SeccompError("the seccomp action SCMP_ACT_NOTIFY needs a listener, which refd does not run")
    if name not in _ACTIONS:
        raise SeccompError(f"unrecognized seccomp action {name!r}")
    value = _ACTIONS[name]
    if name in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        data = errno_ret if errno_ret is not None else default_errno
        value |= (errno.EPERM if data is None else int(data)) & 0xFFFF
    return value


def _kernel_at_least(wanted: str) -> bool:
    def numbers(text: str) -> tuple[int, ...]:
        out = []
        for part in text.split("-")[0].split(".")[:3]:
            digits = "".join(ch for ch in part if ch.isdigit())
            out.append(int(digits or 0))
        return tuple(out)

    return numbers(platform.release()) >= numbers(wanted)


def _applies(rule: Mapping[str, Any], caps: set[str]) -> bool:
    """moby's profile loader: a rule is the container's when its ``includes`` hold and ``excludes`` do not."""
    includes = rule.get("includes") or {}
    excludes = rule.get("excludes") or {}
    if includes.get("caps") and not all(str(c).upper() in caps for c in includes["caps"]):
        return False
    if includes.get("arches") and not any(a in _NATIVE_ARCHES for a in includes["arches"]):
        return False
    if includes.get("minKernel") and not _kernel_at_least(str(includes["minKernel"])):
        return False
    if excludes.get("caps") and any(str(c).upper() in caps for c in excludes["caps"]):
        return False
    if excludes.get("arches") and any(a in _NATIVE_ARCHES for a in excludes["arches"]):
        return False
    return not (excludes.get("minKernel") and _kernel_at_least(str(excludes["minKernel"])))


class _Assembler:
    """Instructions with jumps to labels, resolved to classic BPF's relative 8-bit offsets."""

    def __init__(self) -> None:
        self.code: list[tuple[int, str | int, str | int, int]] = []
        self.labels: dict[str, int] = {}
        self._next = 0

    def label(self) -> str:
        self._next += 1
        return f"L{self._next}"

    def here(self, label: str) -> None:
        self.labels[label] = len(self.code)

    def emit(self, code: int, k: int, jt: str | int = 0, jf: str | int = 0) -> None:
        self.code.append((code, jt, jf, k & 0xFFFFFFFF))

    def program(self) -> list[Instruction]:
        out: list[Instruction] = []
        for index, (code, jt, jf, k) in enumerate(self.code):
            offsets = []
            for target in (jt, jf):
                offset = target if isinstance(target, int) else self.labels[target] - index - 1
                if not 0 <= offset <= 255:
                    raise SeccompError("the seccomp profile is too large for refd's filter (a jump over 255)")
                offsets.append(offset)
            out.append((code, offsets[0], offsets[1], k))
        if len(out) > 4096:
            raise SeccompError(
                f"the seccomp filter would have {len(out)} instructions (the kernel takes 4096)"
            )
        return out


def _arg_check(asm: _Assembler, arg: Mapping[str, Any], fail: str) -> None:
    """Jump to ``fail`` unless the argument condition holds; fall through when it does."""
    index = int(arg.get("index", 0))
    if not 0 <= index <= 5:
        raise SeccompError(f"seccomp argument index {index} is out of range (0-5)")
    value = int(arg.get("value", 0)) & 0xFFFFFFFFFFFFFFFF
    two = int(arg.get("valueTwo", 0)) & 0xFFFFFFFFFFFFFFFF
    op = str(arg.get("op") or "")
    lo_off, hi_off = 16 + 8 * index, 16 + 8 * index + 4  # struct seccomp_data, little-endian
    vlo, vhi = value & 0xFFFFFFFF, value >> 32
    ok = asm.label()
    if op in ("SCMP_CMP_EQ", "SCMP_CMP_MASKED_EQ"):
        if op == "SCMP_CMP_MASKED_EQ":
            mask, (vlo, vhi) = value, (two & 0xFFFFFFFF, two >> 32)
        for offset, want, part in ((hi_off, vhi, 32), (lo_off, vlo, 0)):
            asm.emit(_LD_W_ABS, offset)
            if op == "SCMP_CMP_MASKED_EQ":
                asm.emit(_ALU_AND_K, (mask >> part) & 0xFFFFFFFF)
            asm.emit(_JEQ, want, 0, fail)
    elif op == "SCMP_CMP_NE":
        asm.emit(_LD_W_ABS, hi_off)
        asm.emit(_JEQ, vhi, 0, ok)
        asm.emit(_LD_W_ABS, lo_off)
        asm.emit(_JEQ, vlo, fail, 0)
    elif op in ("SCMP_CMP_GT", "SCMP_CMP_GE"):
        asm.emit(_LD_W_ABS, hi_off)
        asm.emit(_JGT, vhi, ok, 0)
        asm.emit(_JEQ, vhi, 0, fail)
        asm.emit(_LD_W_ABS, lo_off)
        asm.emit(_JGT if op == "SCMP_CMP_GT" else _JGE, vlo, 0, fail)
    elif op in ("SCMP_CMP_LT", "SCMP_CMP_LE"):
        asm.emit(_LD_W_ABS, hi_off)
        asm.emit(_JGE, vhi, 0, ok)
        asm.emit(_JEQ, vhi, 0, fail)
        asm.emit(_LD_W_ABS, lo_off)
        asm.emit(_JGT if op == "SCMP_CMP_LE" else _JGE, vlo, fail, 0)
    else:
        raise SeccompError(f"unrecognized seccomp comparison operator {op!r}")
    asm.here(ok)


def compile_profile(text: str, capabilities: Iterable[str] | None = None) -> list[Instruction]:
    """The filter for ``text`` (Docker's seccomp JSON); ``capabilities``: the container's, for the rules'
    ``includes``/``excludes`` (None: every capability, a privileged container)."""
    if platform.machine() not in ("x86_64", "amd64"):
        raise SeccompError(
            f"refd compiles seccomp profiles for x86_64 only (this machine: {platform.machine()})"
        )
    try:
        profile = json.loads(text)
    except ValueError as exc:
        raise SeccompError(f"decoding seccomp profile failed: {exc}") from None
    if not isinstance(profile, dict):
        raise SeccompError("decoding seccomp profile failed: the profile is not a JSON object")
    caps = {str(c).upper() for c in capabilities} if capabilities is not None else None
    default_errno = profile.get("defaultErrnoRet")
    default = _action(str(profile.get("defaultAction") or ""), default_errno, None)
    asm = _Assembler()
    asm.emit(_LD_W_ABS, 4)  # seccomp_data.arch
    asm.emit(_JEQ, _AUDIT_ARCH_X86_64, 1, 0)
    asm.emit(_RET_K, _RET_KILL_THREAD)
    asm.emit(_LD_W_ABS, 0)  # seccomp_data.nr
    for rule in profile.get("syscalls") or []:
        if not isinstance(rule, dict):
            raise SeccompError("decoding seccomp profile failed: a syscalls entry is not an object")
        if caps is not None and not _applies(rule, caps):
            continue
        action = _action(str(rule.get("action") or ""), rule.get("errnoRet"), default_errno)
        names = [str(n) for n in rule.get("names") or []] or ([str(rule["name"])] if rule.get("name") else [])
        args = [a for a in rule.get("args") or [] if isinstance(a, dict)]
        for name in names:
            number = X86_64.get(name)
            if number is None:
                continue
            nxt = asm.label()
            asm.emit(_JEQ, number, 0, nxt)
            if args:
                fail = asm.label()
                for arg in args:
                    _arg_check(asm, arg, fail)
                asm.emit(_RET_K, action)
                asm.here(fail)
                asm.emit(_LD_W_ABS, 0)  # the checks loaded arguments: the number again for the next rule
                asm.emit(_JEQ, 0, nxt, nxt)  # (an unconditional jump to the next rule)
            else:
                asm.emit(_RET_K, action)
            asm.here(nxt)
    asm.emit(_RET_K, default)
    return asm.program()


_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277}
_SECCOMP_SET_MODE_FILTER = 1


_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded before a container's process leaves the host's root


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(program: Iterable[Iterable[int]]) -> None:
    """Load the filter into this thread (seccomp(2) SECCOMP_SET_MODE_FILTER); OSError on refusal."""
    packed = b"".join(struct.pack("=HBBI", *(int(x) for x in ins)) for ins in program)
    buf = ctypes.create_string_buffer(packed, len(packed))
    prog = _SockFprog(len(packed) // 8, ctypes.cast(buf, ctypes.c_void_p))
    libc = _LIBC
    number = _SYS_SECCOMP.get(platform.machine(), 317)
    if libc.syscall(ctypes.c_long(number), _SECCOMP_SET_MODE_FILTER, 0, ctypes.byref(prog)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp: {os.strerror(err)}")
