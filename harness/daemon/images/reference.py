"""Docker image references, parsed and normalised exactly as ``github.com/distribution/reference`` v0.6 does.

``busybox`` is the familiar form of ``docker.io/library/busybox``; ``TagNameOnly`` adds
``:latest``; ``FamiliarString`` turns a normalised reference back into what users type
(``busybox:latest``, ``example.com/x/y@sha256:...``). Error texts are the library's own:

* ``invalid reference format``
* ``invalid reference format: repository name (library/Busybox) must be lowercase``
* ``invalid tag format``, ``repository name must have at least one component``,
  ``repository name must not be more than 255 characters``
* ``invalid repository name (<64 hex>), cannot specify 64-byte hexadecimal strings``
* digests as ``github.com/opencontainers/go-digest`` words them: ``invalid checksum digest format``,
  ``invalid checksum digest length``, ``unsupported digest algorithm``.

Usage::

    ref = parse_normalized_named("busybox")      # Named docker.io/library/busybox
    tag_name_only(ref).familiar_string()         # "busybox:latest"
    parse_any_reference("sha256:<64 hex>")       # DigestReference
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

__all__ = [
    "DEFAULT_DOMAIN",
    "DigestReference",
    "Named",
    "ReferenceError",
    "familiar_match",
    "parse",
    "parse_any_reference",
    "parse_digest",
    "parse_normalized_named",
    "repo_tag_reference",
    "tag_name_only",
    "validate_tag",
    "with_tag",
]

DEFAULT_DOMAIN = "docker.io"
_LEGACY_DEFAULT_DOMAIN = "index.docker.io"
_OFFICIAL_PREFIX = "library/"
_DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

# regexp.go, with RE2's ASCII-only \w
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*"
_HOST = r"(?:" + _DOMAIN_NAME + r"|\[(?:[a-fA-F0-9:]+)\])"
_DOMAIN_AND_PORT = _HOST + r"(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}"
_PATH_COMPONENT = _ALNUM + r"(?:" + _SEPARATOR + _ALNUM + r")*"
_REMOTE_NAME = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_NAME = r"(?:" + _DOMAIN_AND_PORT + r"/)?" + _REMOTE_NAME

_REFERENCE_RE = re.compile(r"^(" + _NAME + r")(?::(" + _TAG + r"))?(?:@(" + _DIGEST + r"))?$", re.ASCII)
_ANCHORED_NAME_RE = re.compile(r"^(?:(" + _DOMAIN_AND_PORT + r")/)?(" + _REMOTE_NAME + r")$", re.ASCII)
_ANCHORED_TAG_RE = re.compile(r"^" + _TAG + r"$", re.ASCII)
_ANCHORED_DIGEST_RE = re.compile(r"^" + _DIGEST + r"$", re.ASCII)
_IDENTIFIER_RE = re.compile(r"^[a-f0-9]{64}$")

# go-digest: algorithms registered in dockerd and the length of their hex encoding
_ALGORITHMS = {"sha256": 64, "sha384": 96, "sha512": 128}
_GO_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


class ReferenceError(ValueError):
    """A reference or digest that does not parse; ``str()`` is the Go library's message."""


@dataclass(frozen=True)
class Named:
    """A named reference: ``domain/path[:tag][@digest]`` (what distribution calls Named/Tagged/Canonical)."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}" if self.domain else self.path

    def string(self) -> str:
        out = self.name
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out

    __str__ = string

    @property
    def is_name_only(self) -> bool:
        return not self.tag and not self.digest

    @property
    def is_canonical(self) -> bool:
        """Carries a digest (distribution's Canonical)."""
        return bool(self.digest)

    @property
    def is_tagged(self) -> bool:
        return bool(self.tag)

    def familiar(self) -> Named:
        domain, path = self.domain, self.path
        if domain == DEFAULT_DOMAIN:
            domain = ""
            if path.startswith(_OFFICIAL_PREFIX) and "/" not in path[len(_OFFICIAL_PREFIX) :]:
                path = path[len(_OFFICIAL_PREFIX) :]
        return Named(domain, path, self.tag, self.digest)

    def familiar_name(self) -> str:
        return self.familiar().name

    def familiar_string(self) -> str:
        return self.familiar().string()

    def trim(self) -> Named:
        """The repository alone (TrimNamed)."""
        return Named(self.domain, self.path)


@dataclass(frozen=True)
class DigestReference:
    """A bare digest (``sha256:...``), as ParseAnyReference returns for IDs."""

    digest: str

    def string(self) -> str:
        return self.digest

    __str__ = string

    def familiar_string(self) -> str:
        return self.digest


def parse_digest(text: str) -> str:
    """go-digest ``Parse``: the digest, or ReferenceError with go-digest's message."""
    algorithm, sep, encoded = text.partition(":")
    if not sep or not algorithm or not encoded:
        raise ReferenceError("invalid checksum digest format")
    if algorithm not in _ALGORITHMS:
        if not _GO_DIGEST_RE.match(text):
            raise ReferenceError("invalid checksum digest format")
        raise ReferenceError("unsupported digest algorithm")
    if len(encoded) != _ALGORITHMS[algorithm]:
        raise ReferenceError("invalid checksum digest length")
    if not re.fullmatch(r"[a-f0-9]+", encoded):
        raise ReferenceError("invalid checksum digest format")
    return text


def parse(text: str) -> Named | DigestReference:
    """distribution ``Parse`` (no normalisation)."""
    match = _REFERENCE_RE.match(text)
    if match is None:
        if text == "":
            raise ReferenceError("repository name must have at least one component")
        if _REFERENCE_RE.match(text.lower()) is not None:
            raise ReferenceError("repository name must be lowercase")
        raise ReferenceError("invalid reference format")
    name_match = _ANCHORED_NAME_RE.match(match.group(1))
    if name_match is not None:
        domain, path = name_match.group(1) or "", name_match.group(2)
    else:
        domain, path = "", match.group(1)
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        raise ReferenceError(f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    digest = parse_digest(match.group(3)) if match.group(3) else ""
    if not domain and not path:
        if digest:
            return DigestReference(digest)
        raise ReferenceError("repository name must have at least one component")
    return Named(domain, path, match.group(2) or "", digest)


def _split_docker_domain(name: str) -> tuple[str, str]:
    maybe_domain, sep, maybe_remote = name.partition("/")
    if not sep:
        return DEFAULT_DOMAIN, _OFFICIAL_PREFIX + name
    if maybe_domain == "localhost":
        domain, remote = maybe_domain, maybe_remote
    elif maybe_domain == _LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, maybe_remote
    elif "." in maybe_domain or ":" in maybe_domain or maybe_domain.lower() != maybe_domain:
        domain, remote = maybe_domain, maybe_remote
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = _OFFICIAL_PREFIX + remote
    return domain, remote


def parse_normalized_named(text: str) -> Named:
    """distribution ``ParseNormalizedNamed``: ``busybox`` -> ``docker.io/library/busybox``."""
    if _IDENTIFIER_RE.match(text):
        raise ReferenceError(f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_docker_domain(text)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise ReferenceError(f"invalid reference format: repository name ({remote}) must be lowercase")
    ref = parse(domain + "/" + remainder)
    if not isinstance(ref, Named):
        raise ReferenceError(f"reference {ref.string()} has no name")
    return ref


def parse_any_reference(text: str) -> Named | DigestReference:
    """distribution ``ParseAnyReference``: a 64-hex ID, a digest, or a normalised name."""
    if _IDENTIFIER_RE.match(text):
        return DigestReference("sha256:" + text)
    try:
        return DigestReference(parse_digest(text))
    except ReferenceError:
        pass
    return parse_normalized_named(text)


def validate_tag(tag: str) -> str:
    if not _ANCHORED_TAG_RE.match(tag):
        raise ReferenceError("invalid tag format")
    return tag


def with_tag(ref: Named, tag: str) -> Named:
    return replace(ref, tag=validate_tag(tag))


def with_digest(ref: Named, digest: str) -> Named:
    if not _ANCHORED_DIGEST_RE.match(digest):
        raise ReferenceError("invalid digest format")
    return replace(ref, digest=digest)


def tag_name_only(ref: Named) -> Named:
    """Add ``:latest`` to a name without tag or digest."""
    return replace(ref, tag=_DEFAULT_TAG) if ref.is_name_only else ref


def _go_path_match(pattern: str, name: str) -> bool:
    """Go's ``path.Match``; raises ReferenceError("syntax error in pattern") for a bad pattern."""
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            i += 1
            if i >= len(pattern):
                raise ReferenceError("syntax error in pattern")
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            j = i + 1
            negate = j < len(pattern) and pattern[j] == "^"
            if negate:
                j += 1
            parts = []
            first = True
            while True:
                if j >= len(pattern):
                    raise ReferenceError("syntax error in pattern")
                if pattern[j] == "]" and not first:
                    break
                first = False
                lo = pattern[j]
                if lo == "\\":
                    j += 1
                    if j >= len(pattern):
                        raise ReferenceError("syntax error in pattern")
                    lo = pattern[j]
                elif lo in "-]":
                    raise ReferenceError("syntax error in pattern")
                j += 1
                hi = lo
                if j < len(pattern) and pattern[j] == "-":
                    j += 1
                    if j >= len(pattern):
                        raise ReferenceError("syntax error in pattern")
                    hi = pattern[j]
                    if hi == "\\":
                        j += 1
                        if j >= len(pattern):
                            raise ReferenceError("syntax error in pattern")
                        hi = pattern[j]
                    elif hi in "-]":
                        raise ReferenceError("syntax error in pattern")
                    j += 1
                parts.append(re.escape(lo) + ("-" + re.escape(hi) if hi != lo else ""))
            body = "".join(parts)
            out.append(f"[^/{body}]" if negate else f"(?:(?!/)[{body}])")
            i = j
        else:
            out.append(re.escape(ch))
        i += 1
    return re.fullmatch("".join(out), name, re.DOTALL) is not None


def familiar_match(pattern: str, ref: Named) -> bool:
    """distribution ``FamiliarMatch``: the glob against the familiar string, then the familiar name."""
    if _go_path_match(pattern, ref.familiar_string()):
        return True
    return _go_path_match(pattern, ref.familiar_name())


def repo_tag_reference(repo: str, tag: str) -> Named | None:
    """httputils.RepoTagReference: ``repo`` (+ ``tag``, default latest); None without a repo."""
    if not repo:
        return None
    ref = parse_normalized_named(repo)
    if ref.is_canonical:
        raise ReferenceError("cannot import digest reference")
    if tag:
        return with_tag(ref, tag)
    return tag_name_only(ref)
