"""The build context: the request's tar unpacked, file hashes, ``.dockerignore`` and the Dockerfile.

moby ``builder/remotecontext`` (``archive.go``, ``detect.go``, ``lazycontext.go``, ``filehash.go``) and
``pkg/tarsum``:

* ``ArchiveContext.extract(stream, tmp)`` unpacks a (plain, gzip, bzip2 or xz) tar safely and keeps a
  tarsum v1 per entry (sha256 of the selected header fields, xattrs sorted, then the content), the
  hash COPY and ADD write into their history (``COPY file:<sum> in /dst``) and key the cache on;
* ``LazySource(root)`` hashes the files of a directory the same way on demand (``COPY --from``);
* ``dockerfile(ctx, name)`` finds, reads and parses the Dockerfile (``Dockerfile`` falls back to
  ``dockerfile``) and removes it and ``.dockerignore`` from the context when ``.dockerignore``
  excludes them; the daemon excludes nothing else (the client filters the context it sends);
* ``go_match`` is Go's ``filepath.Match`` (COPY wildcards), ``PatternMatcher`` moby's patternmatcher
  (``.dockerignore`` patterns, ``**`` and ``!`` exclusions).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import stat
import tarfile
import tempfile
from typing import IO, Any

from ..scope import follow_in_scope
from .parser import ParseError, ParseResult, parse
from .stream import BuildError

__all__ = [
    "ArchiveContext",
    "LazySource",
    "PatternMatcher",
    "Source",
    "contains_wildcards",
    "dockerfile",
    "go_match",
    "read_ignore_file",
]


class Source:
    """A directory files are copied from: ``root``, ``hash(path)``, ``full_path(path)``."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)

    def full_path(self, path: str) -> str:
        """FullPath: symlinks are followed inside the root; a path that climbs out of it lexically is
        refused (``forbidden path outside the build context: ../x ()``)."""
        from ..images.tarsafe import go_clean

        joined = go_clean(self.root + "/" + path)
        if joined != self.root and not joined.startswith(self.root.rstrip("/") + "/"):
            raise BuildError(f"forbidden path outside the build context: {path} ()")
        return follow_in_scope(self.root, path)

    def _rel(self, path: str) -> str:
        full = self.full_path(path)
        rel = os.path.relpath(full, self.root)
        return rel

    def hash(self, path: str) -> str:
        raise NotImplementedError

    def close(self) -> None:
        """Nothing to release by default."""


def _key(name: str) -> str:
    """tarsum's file key: path.Join(".", path.Join("/", name))."""
    from ..images.tarsafe import go_clean

    return go_clean("/" + name).lstrip("/") or "."


def _header_hash(fields: list[tuple[str, str]], xattrs: list[tuple[str, str]]) -> hashlib._Hash:
    h = hashlib.sha256()
    for key, value in [*fields, *sorted(xattrs)]:
        h.update(key.encode() + value.encode("utf-8", "surrogateescape"))
    return h


def _type_flag(info: tarfile.TarInfo) -> str:
    flag = info.type
    if flag == tarfile.AREGTYPE:
        flag = tarfile.REGTYPE
    return flag.decode("latin-1")


class _PaddedAtEOF(io.RawIOBase):
    """A tar stream whose end may lack its last block's padding and the two zero blocks: Go's reader
    takes that as the end of the archive (the docker CLI sends such a tar for ``-f -``), Python's
    does not, so the missing zeros are supplied."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self.raw = raw
        self.pos = 0
        self.extra = -1

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.extra < 0:
            data = self.raw.read(len(b))
            if data:
                n = len(data)
                b[:n] = data
                self.pos += n
                return n
            self.extra = (-self.pos % 512) + 1024
        n = min(len(b), self.extra)
        b[:n] = b"\0" * n
        self.extra -= n
        return n


class ArchiveContext(Source):
    """A context unpacked from the request body; hashes are the tarsums of its entries."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.sums: dict[str, str] = {}

    @classmethod
    def extract(cls, stream: IO[bytes], tmp_root: str) -> ArchiveContext:
        from ..images.tarsafe import ArchiveError, decompress, extract

        root = tempfile.mkdtemp(prefix="docker-builder", dir=tmp_root)
        ctx = cls(root)
        members: list[tarfile.TarInfo] = []
        try:
            try:
                padded = io.BufferedReader(_PaddedAtEOF(decompress(stream)))
                extract(padded, root, whiteouts="keep", on_member=members.append)
            except ArchiveError as exc:
                raise BuildError(str(exc)) from None
            except OSError as exc:
                raise BuildError(str(exc)) from None
            for info in members:
                key = _key(info.name)
                if key in ctx.sums:
                    continue
                ctx.sums[key] = ctx._tarsum(info)
        except BaseException:
            ctx.close()
            raise
        return ctx

    def _tarsum(self, info: tarfile.TarInfo) -> str:
        name = info.name + "/" if info.isdir() and not info.name.endswith("/") else info.name
        device = info.ischr() or info.isblk()
        fields = [
            ("name", name),
            ("mode", str(info.mode)),
            ("uid", str(info.uid)),
            ("gid", str(info.gid)),
            ("size", str(info.size)),
            ("typeflag", _type_flag(info)),
            ("linkname", info.linkname),
            ("uname", ""),
            ("gname", ""),
            ("devmajor", str(info.devmajor if device else 0)),
            ("devminor", str(info.devminor if device else 0)),
        ]
        xattrs = [
            (k[len("SCHILY.xattr.") :], v)
            for k, v in (info.pax_headers or {}).items()
            if k.startswith("SCHILY.xattr.")
        ]
        h = _header_hash(fields, xattrs)
        if info.isreg() and info.size > 0:
            path = os.path.join(self.root, _key(info.name))
            try:
                st = os.lstat(path)
                if stat.S_ISREG(st.st_mode):
                    with open(path, "rb") as fh:
                        while chunk := fh.read(1 << 20):
                            h.update(chunk)
            except OSError:
                pass
        return h.hexdigest()

    def hash(self, path: str) -> str:
        rel = self._rel(path)
        found = self.sums.get(rel.replace(os.sep, "/"))
        return found if found is not None else path

    def remove(self, path: str) -> None:
        full = self.full_path(path)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(full)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def file_hash(full: str, name: str, st: os.stat_result) -> str:
    """NewFileHash: the tarsum of a file on disk (archive.FileInfoHeader, no user name lookups)."""
    mode = st.st_mode
    perm = stat.S_IMODE(mode) & 0o777
    go_mode = perm | (mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX))
    size, link, flag, major, minor = 0, "", "0", 0, 0
    if stat.S_ISREG(mode):
        size = st.st_size
    elif stat.S_ISDIR(mode):
        flag = "5"
        name += "/"
    elif stat.S_ISLNK(mode):
        flag = "2"
        link = os.readlink(full)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        flag = "3" if stat.S_ISCHR(mode) else "4"
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(mode):
        flag = "6"
    fields = [
        ("name", name),
        ("mode", str(go_mode)),
        ("uid", str(st.st_uid)),
        ("gid", str(st.st_gid)),
        ("size", str(size)),
        ("typeflag", flag),
        ("linkname", link),
        ("uname", ""),
        ("gname", ""),
        ("devmajor", str(major)),
        ("devminor", str(minor)),
    ]
    xattrs: list[tuple[str, str]] = []
    try:
        cap = os.getxattr(full, "security.capability", follow_symlinks=False)
        xattrs.append(("security.capability", cap.decode("utf-8", "surrogateescape")))
    except OSError:
        pass
    h = _header_hash(fields, xattrs)
    if stat.S_ISREG(mode) and size > 0:
        with open(full, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


class LazySource(Source):
    """A directory (an image's root filesystem) hashed file by file on first use."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.sums: dict[str, str] = {}

    def hash(self, path: str) -> str:
        full = self.full_path(path)
        rel = os.path.relpath(full, self.root)
        try:
            st = os.lstat(full)
        except OSError:
            return rel
        if rel not in self.sums:
            self.sums[rel] = file_hash(full, rel, st)
        return self.sums[rel]


# -- Go's filepath.Match ----------------------------------------------------------------------------
class BadPattern(ValueError):
    def __init__(self) -> None:
        super().__init__("syntax error in pattern")


def _class_regex(pattern: str, i: int) -> tuple[str, int]:
    """A ``[...]`` class starting after '[' at i: (regex, index after ']'); BadPattern if malformed."""
    out = ["["]
    if i < len(pattern) and pattern[i] == "^":
        out.append("^")
        i += 1
    count = 0
    while True:
        if i >= len(pattern):
            raise BadPattern
        ch = pattern[i]
        if ch == "]" and count > 0:
            i += 1
            break
        lo, i = _class_char(pattern, i)
        if i < len(pattern) and pattern[i] == "-":
            hi, i = _class_char(pattern, i + 1)
            if hi < lo:
                raise BadPattern
            out.append(re.escape(lo) + "-" + re.escape(hi))
        else:
            out.append(re.escape(lo))
        count += 1
    out.append("]")
    return "".join(out), i


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    if i >= len(pattern):
        raise BadPattern
    ch = pattern[i]
    if ch in "-]":
        raise BadPattern
    if ch == "\\":
        i += 1
        if i >= len(pattern):
            raise BadPattern
        ch = pattern[i]
    return ch, i + 1


def _go_match_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
            i += 1
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "[":
            part, i = _class_regex(pattern, i + 1)
            out.append(part)
        elif ch == "\\":
            if i + 1 >= len(pattern):
                raise BadPattern
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(ch))
            i += 1
    return re.compile("".join(out) + r"\Z", re.S)


def go_match(pattern: str, name: str) -> bool:
    """filepath.Match; BadPattern ("syntax error in pattern") for a malformed pattern."""
    return _go_match_regex(pattern).match(name) is not None


def contains_wildcards(name: str) -> bool:
    i = 0
    while i < len(name):
        ch = name[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "*?[":
            return True
        i += 1
    return False


# -- .dockerignore -------------------------------------------------------------------------------------
def _clean(path: str) -> str:
    from ..images.tarsafe import go_clean

    return go_clean(path)


def read_ignore_file(data: bytes) -> list[str]:
    """ignorefile.ReadAll: patterns, comments and blank lines dropped, cleaned, leading '/' removed."""
    out: list[str] = []
    for index, raw in enumerate(data.split(b"\n")):
        if index == 0 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        line = raw.decode("utf-8", "surrogateescape").removesuffix("\r")
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = _clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        out.append("!" + pattern if invert else pattern)
    return out


class _Pattern:
    def __init__(self, cleaned: str, exclusion: bool) -> None:
        self.cleaned = cleaned
        self.exclusion = exclusion
        self.kind = ""
        self.regex: re.Pattern[str] | None = None

    def _compile(self) -> None:
        reg = "^"
        kind = "exact"
        p = self.cleaned
        pos = 0
        iteration = 0
        while pos < len(p):
            ch = p[pos]
            pos += 1
            if ch == "*":
                if pos < len(p) and p[pos] == "*":
                    pos += 1
                    if pos < len(p) and p[pos] == "/":
                        pos += 1
                    if pos >= len(p):
                        if kind == "exact":
                            kind = "prefix"
                        else:
                            reg += ".*"
                            kind = "regexp"
                    else:
                        reg += "(.*/)?"
                        kind = "regexp"
                    if iteration == 0:
                        kind = "suffix"
                else:
                    reg += "[^/]*"
                    kind = "regexp"
            elif ch == "?":
                reg += "[^/]"
                kind = "regexp"
            elif ch in ".+()|{}$":
                reg += "\\" + ch
            elif ch == "\\":
                if pos < len(p):
                    reg += "\\" + p[pos]
                    pos += 1
                    kind = "regexp"
                else:
                    reg += "\\\\"
            elif ch in "[]":
                reg += ch
                kind = "regexp"
            else:
                reg += ch
            iteration += 1
        self.kind = kind
        if kind == "regexp":
            self.regex = re.compile(reg + "$", re.S)

    def match(self, path: str) -> bool:
        if not self.kind:
            self._compile()
        if self.kind == "exact":
            return path == self.cleaned
        if self.kind == "prefix":
            return path.startswith(self.cleaned[:-2])
        if self.kind == "suffix":
            suffix = self.cleaned[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        assert self.regex is not None
        return self.regex.match(path) is not None


class PatternMatcher:
    """moby patternmatcher: later patterns win; ``!`` re-includes; a parent's match counts."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[_Pattern] = []
        for raw in patterns:
            p = raw.strip()
            if not p:
                continue
            p = _clean(p)
            exclusion = p.startswith("!")
            if exclusion:
                if len(p) == 1:
                    raise ValueError('illegal exclusion pattern: "!"')
                p = p[1:]
            _go_match_regex(p)  # filepath.Match's syntax check
            self.patterns.append(_Pattern(p, exclusion))

    def matches_or_parent_matches(self, file: str) -> bool:
        file = _clean(file)
        if file == ".":
            return False
        matched = False
        parent = os.path.dirname(file) or "."
        parent_dirs = parent.split("/")
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            match = pattern.match(file)
            if not match and parent != ".":
                for i in range(len(parent_dirs)):
                    if pattern.match("/".join(parent_dirs[: i + 1])):
                        match = True
                        break
            if match:
                matched = not pattern.exclusion
        return matched


# -- the Dockerfile ------------------------------------------------------------------------------------
def _remove_ignored(ctx: ArchiveContext, name: str) -> None:
    try:
        with open(ctx.full_path(".dockerignore"), "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return
    except IsADirectoryError:
        raise BuildError(
            f"error reading .dockerignore: read {ctx.full_path('.dockerignore')}: is a directory"
        ) from None
    try:
        matcher = PatternMatcher(read_ignore_file(data))
    except ValueError:
        return
    for path in (".dockerignore", name):
        try:
            hit = matcher.matches_or_parent_matches(path)
        except (ValueError, re.error):
            hit = False
        if hit:
            ctx.remove(path)


def dockerfile(ctx: ArchiveContext, name: str) -> ParseResult:
    """withDockerfileFromContext: the parsed Dockerfile ``name``; it and .dockerignore may go after."""
    full = ctx.full_path(name)
    try:
        with open(full, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        if name == "Dockerfile" and os.path.exists(ctx.full_path("dockerfile")):
            return dockerfile(ctx, "dockerfile")
        raise BuildError(f"Cannot locate specified Dockerfile: {name}") from None
    except IsADirectoryError:
        raise BuildError(f"unexpected error reading Dockerfile: read {full}: is a directory") from None
    if not data:
        raise BuildError(f"the Dockerfile ({name}) cannot be empty", 400)
    try:
        result = parse(data)
    except ParseError as exc:
        raise BuildError(f"failed to parse {name}: {exc}", 400) from None
    _remove_ignored(ctx, name)
    return result
