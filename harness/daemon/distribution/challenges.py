"""``WWW-Authenticate`` challenges, as docker/distribution's ``registry/client/auth/challenge`` parses them.

``parse_challenges`` reads one challenge (scheme and parameters) per header value; ``challenge_error``
is the OAuth error a bearer challenge carries (``error="invalid_token"``), which HandleErrorResponse
reports before the body.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import MESSAGES, ErrcodeError

__all__ = ["Challenge", "challenge_error", "parse_challenges"]


@dataclass
class Challenge:
    scheme: str
    params: dict[str, str] = field(default_factory=dict)


def _token(text: str, i: int) -> tuple[str, int]:
    start = i
    while i < len(text) and text[i] not in ' \t,="':
        i += 1
    return text[start:i], i


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t":
        i += 1
    return i


def _quoted(text: str, i: int) -> tuple[str, int]:
    if i >= len(text) or text[i] != '"':
        return _token(text, i)
    i += 1
    out: list[str] = []
    while i < len(text):
        ch = text[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch == "\\" and i + 1 < len(text):
            i += 1
            ch = text[i]
        out.append(ch)
        i += 1
    return "".join(out), i


def parse_challenges(values: list[str]) -> list[Challenge]:
    """challenge.ResponseChallenges: one challenge per ``WWW-Authenticate`` header value."""
    out = []
    for header in values:
        i = _skip_space(header, 0)
        scheme, i = _token(header, i)
        if not scheme:
            continue
        params: dict[str, str] = {}
        while True:
            i = _skip_space(header, i)
            key, i = _token(header, i)
            if not key:
                break
            i = _skip_space(header, i)
            if i >= len(header) or header[i] != "=":
                break
            i = _skip_space(header, i + 1)
            value, i = _quoted(header, i)
            params[key.lower()] = value
            i = _skip_space(header, i)
            if i >= len(header) or header[i] != ",":
                break
            i += 1
        out.append(Challenge(scheme.lower(), params))
    return out


def challenge_error(values: list[str]) -> ErrcodeError | None:
    """OAuth errors in a bearer challenge (``error="invalid_token"``), as HandleErrorResponse reads them."""
    for challenge in parse_challenges(values):
        if challenge.scheme != "bearer":
            continue
        code = {"invalid_token": "UNAUTHORIZED", "insufficient_scope": "DENIED"}.get(
            challenge.params.get("error", "")
        )
        if code:
            return ErrcodeError(code, challenge.params.get("error_description") or MESSAGES[code])
    return None
