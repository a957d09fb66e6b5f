"""Platform specifiers as containerd's ``platforms.Parse`` reads them, and matching images against one."""

from __future__ import annotations

import re

from ..goformat import go_arch
from ..images.imagestore import Image

__all__ = ["format_platform", "image_platform", "parse_platform", "platform_matches"]

Platform = tuple[str, str, str]

_OS_ALIASES = {"macos": "darwin"}
_ARCH_ALIASES = {
    "x86_64": ("amd64", ""),
    "x86-64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", ""),
    "arm64": ("arm64", ""),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "i386": ("386", ""),
    "386": ("386", ""),
}
_KNOWN_OS = (
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
    "zos",
)
_KNOWN_ARCH = (
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "ppc64",
    "ppc64le",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
)
_PLATFORM_PART = re.compile(r"^[A-Za-z0-9_.-]+$")


def parse_platform(text: str) -> Platform:
    """containerd platforms.Parse (os[/arch[/variant]] or a bare architecture); ValueError with its text."""
    if "*" in text:
        raise ValueError(f'"{text}": wildcards not yet supported: invalid argument')
    spec = text.split("(", 1)[0]
    parts = spec.split("/")
    for part in parts:
        if not _PLATFORM_PART.match(part):
            raise ValueError(f'"{part}": unknown operating system or architecture: invalid argument')
    parts = [p.lower() for p in parts]
    if len(parts) == 1:
        os_name = _OS_ALIASES.get(parts[0], parts[0])
        if os_name in _KNOWN_OS:
            return os_name, go_arch(), ""
        arch, variant = _norm_arch(parts[0], "")
        if arch in _KNOWN_ARCH:
            return "linux", arch, variant
        raise ValueError(f'"{text}": unknown operating system or architecture: invalid argument')
    if len(parts) == 2:
        arch, variant = _norm_arch(parts[1], "")
        return _OS_ALIASES.get(parts[0], parts[0]), arch, variant
    if len(parts) == 3:
        arch, variant = _norm_arch(parts[1], parts[2])
        return _OS_ALIASES.get(parts[0], parts[0]), arch, variant
    raise ValueError(f'"{text}": cannot parse platform specifier: invalid argument')


def _norm_arch(arch: str, variant: str) -> tuple[str, str]:
    if arch in _ARCH_ALIASES:
        norm, default_variant = _ARCH_ALIASES[arch]
        if norm == "amd64" and variant == "v1":
            variant = ""
        if norm == "arm64" and variant in ("v8", "8"):
            variant = ""
        return norm, variant or default_variant
    if arch == "arm" and variant in ("", "7", "7l"):
        return "arm", "v7" if variant in ("7", "7l") else variant
    return arch, variant


def format_platform(p: Platform) -> str:
    return "/".join(x for x in p if x)


def image_platform(image: Image) -> Platform:
    return (
        str(image.config.get("os") or "linux"),
        str(image.config.get("architecture") or ""),
        str(image.config.get("variant") or ""),
    )


def platform_matches(image: Image, want: Platform) -> bool:
    """The image is for ``want`` (a variant only counts when both name one)."""
    os_name, arch, variant = image_platform(image)
    if os_name != want[0] or arch != want[1]:
        return False
    return not want[2] or not variant or variant == want[2]
