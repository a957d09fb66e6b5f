"""Platform specifiers as containerd's ``platforms.Parse`` reads them, and matching images against one."""

from __future__ import annotations

import re

from ..goformat import go_arch
from ..images.imagestore import Image
from ..log import go_quote

__all__ = ["format_platform", "image_platform", "parse_platform", "platform_matches"]

Platform = tuple[str, str, str]

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
_SPECIFIER = re.compile(r"^[A-Za-z0-9_.-]+$")
_OS = re.compile(r"^([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.%-]*)((?:\+[A-Za-z0-9_.%-]+)*)\))?$")
#: the patterns as Go's %q shows them in containerd's messages
_SPECIFIER_Q = '"^[A-Za-z0-9_.-]+$"'
_OS_Q = '"^([A-Za-z0-9_-]+)(?:\\\\(([A-Za-z0-9_.%-]*)((?:\\\\+[A-Za-z0-9_.%-]+)*)\\\\))?$"'


def _q(text: str) -> str:
    return go_quote(text)


def parse_platform(text: str) -> Platform:
    """containerd platforms.Parse (v1.0.0-rc.4, what Debian's dockerd 28.5 is built with), normalized
    (platforms.Normalize, as moby's builder and matchers use it); ValueError with containerd's text."""
    if "*" in text:
        raise ValueError(f"{_q(text)}: wildcards not yet supported: invalid argument")
    parts = text.split("/", 3)
    os_name = ""
    for i, part in enumerate(parts):
        if i == 0:
            match = _OS.match(part)
            if match is None:
                raise ValueError(
                    f"{_q(part)} is an invalid OS component of {_q(text)}: OSAndVersion specifier component "
                    f"must match {_OS_Q}: invalid argument"
                )
            os_name = _norm_os(match.group(1))
        elif not _SPECIFIER.match(part):
            raise ValueError(
                f"{_q(part)} is an invalid component of {_q(text)}: platform specifier component must match "
                f"{_SPECIFIER_Q}: invalid argument"
            )
    if len(parts) == 1:
        if os_name in _KNOWN_OS:
            return _normalized(os_name, go_arch(), "")
        arch, variant = _norm_arch(parts[0], "")
        if arch in _KNOWN_ARCH:
            return _normalized("linux", arch, variant)
        raise ValueError(f"{_q(text)}: unknown operating system or architecture: invalid argument")
    if len(parts) == 2:
        return _normalized(os_name, *_norm_arch(parts[1], ""))
    if len(parts) == 3:
        return _normalized(os_name, *_norm_arch(parts[1], parts[2]))
    raise ValueError(f"{_q(text)}: cannot parse platform specifier: invalid argument")


def _normalized(os_name: str, arch: str, variant: str) -> Platform:
    return (os_name, *_norm_arch(arch, variant))


def _norm_os(name: str) -> str:
    name = name.lower()
    return "darwin" if name == "macos" else name


def _norm_arch(arch: str, variant: str) -> tuple[str, str]:
    """containerd's normalizeArch."""
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        if variant in ("8", "v8", "v8.0"):
            variant = ""
        elif variant in ("9", "9.0", "v9.0"):
            variant = "v9"
        return "arm64", variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            variant = "v7"
        elif variant in ("5", "6", "8"):
            variant = "v" + variant
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
