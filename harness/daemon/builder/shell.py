"""Dockerfile word processing: quotes, escapes and ``$VAR`` expansion as buildkit's ``shell.Lex`` does.

``Lex(escape).process_word("${A:-x}/b", env)`` expands one word (spaces kept, quotes removed);
``process_words`` also splits the result into words after expansion (EXPOSE, heredoc names).
Supported forms: ``$A``, ``${A}``, ``${A:-w}``, ``${A-w}``, ``${A:+w}``, ``${A+w}``, ``${A:?w}``,
``${A?w}``, ``${A#p}``, ``${A##p}``, ``${A%p}``, ``${A%%p}``, ``${A/p/r}``, ``${A//p/r}``; single
quotes are literal, double quotes expand, the escape token (``\\`` or a backtick) escapes.
Errors raise ``ShellError`` with buildkit's texts (``failed to process "...": ...``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..log import go_quote

__all__ = ["Lex", "ShellError", "env_from_list"]

_SPECIAL = frozenset("@*#?-$!0")
_SPACE = frozenset(" \t\n\r\v\f\x85\xa0")


class ShellError(ValueError):
    """A word that cannot be processed; ``str()`` is buildkit's message."""


def env_from_list(env: list[str]) -> dict[str, str]:
    """shell.EnvsFromSlice: ``["A=b", ...]`` as a mapping (later entries win)."""
    out: dict[str, str] = {}
    for entry in env:
        key, _, value = entry.partition("=")
        out[key] = value
    return out


def _is_space(ch: str) -> bool:
    return ch in _SPACE or ch.isspace()


class _Words:
    """Word splitting of processed text (wordsStruct)."""

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if _is_space(ch):
            if self.in_word and self.buf:
                self.words.append("".join(self.buf))
                self.buf = []
                self.in_word = False
        else:
            self.add_raw(ch)

    def add_raw(self, ch: str) -> None:
        self.buf.append(ch)
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text: str) -> None:
        self.buf.append(text)
        self.in_word = True

    def result(self) -> list[str]:
        if self.buf:
            self.words.append("".join(self.buf))
            self.buf = []
            self.in_word = False
        return self.words


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        if self.pos >= len(self.text):
            return ""
        ch = self.text[self.pos]
        self.pos += 1
        return ch


class Lex:
    """One lexer per escape token; not safe for concurrent use."""

    def __init__(self, escape: str = "\\") -> None:
        self.escape = escape
        self.raw_quotes = False
        self.raw_escapes = False
        self.skip_process_quotes = False
        self.skip_unset_env = False
        self._env: Mapping[str, str] = {}
        self._sc = _Scanner("")
        self._raw_escapes = False

    # -- entry points ---------------------------------------------------------------------------
    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        return self._process(word, env)[0]

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        return self._process(word, env)[1]

    def _process(self, word: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
        self._env = env
        self._sc = _Scanner(word)
        self._raw_escapes = self.raw_escapes
        try:
            return self._stop_on("", self.raw_escapes)
        except ShellError as exc:
            raise ShellError(f"failed to process {go_quote(word)}: {exc}") from None

    # -- scanning --------------------------------------------------------------------------------
    def _stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        saved = self._raw_escapes
        self._raw_escapes = raw_escapes
        try:
            sc = self._sc
            while sc.peek() != "":
                ch = sc.peek()
                if stop and ch == stop:
                    sc.next()
                    return "".join(result), words.result()
                special = None
                if ch == "$":
                    special = self._dollar
                elif ch == "<":
                    special = self._possible_heredoc
                elif not self.skip_process_quotes and ch == "'":
                    special = self._single_quote
                elif not self.skip_process_quotes and ch == '"':
                    special = self._double_quote
                if special is not None:
                    piece = special()
                    result.append(piece)
                    if ch == "$":
                        words.add_string(piece)
                    else:
                        words.add_raw_string(piece)
                    continue
                ch = sc.next()
                if ch == self.escape:
                    if self._raw_escapes:
                        words.add_raw(ch)
                        result.append(ch)
                    ch = sc.next()
                    if ch == "":
                        break
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
            if stop:
                raise ShellError(f"unexpected end of statement while looking for matching {stop}")
            return "".join(result), words.result()
        finally:
            self._raw_escapes = saved

    def _single_quote(self) -> str:
        sc = self._sc
        out: list[str] = []
        ch = sc.next()
        if self.raw_quotes:
            out.append(ch)
        while True:
            ch = sc.next()
            if ch == "":
                raise ShellError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def _double_quote(self) -> str:
        sc = self._sc
        out: list[str] = []
        ch = sc.next()
        if self.raw_quotes:
            out.append(ch)
        while True:
            nxt = sc.peek()
            if nxt == "":
                raise ShellError("unexpected end of statement while looking for matching double-quote")
            if nxt == '"':
                ch = sc.next()
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if nxt == "$":
                out.append(self._dollar())
                continue
            ch = sc.next()
            if ch == self.escape:
                if self._raw_escapes:
                    out.append(ch)
                following = sc.peek()
                if following == "":
                    continue
                if following in ('"', "$", self.escape):
                    ch = sc.next()
            out.append(ch)

    def _possible_heredoc(self) -> str:
        sc = self._sc
        sc.next()
        if sc.peek() != "<":
            return "<"
        sc.next()
        space = []
        while sc.peek() in ("\t", "\r", " ") and sc.peek() != "":
            space.append(sc.next())
        return "<<" + "".join(space)

    def _name(self) -> str:
        sc = self._sc
        name: list[str] = []
        while sc.peek() != "":
            ch = sc.peek()
            if not name and ch.isdigit():
                while sc.peek() != "" and sc.peek().isdigit():
                    name.append(sc.next())
                return "".join(name)
            if not name and ch in _SPECIAL:
                return sc.next()
            if not (ch.isalpha() or ch.isdigit() or ch == "_"):
                break
            name.append(sc.next())
        return "".join(name)

    def _get(self, name: str) -> tuple[str, bool]:
        if name in self._env:
            return self._env[name], True
        return "", False

    def _dollar(self) -> str:
        sc = self._sc
        sc.next()
        if sc.peek() != "{":
            name = self._name()
            if not name:
                return "$"
            value, found = self._get(name)
            if not found and self.skip_unset_env:
                return "$" + name
            return value
        sc.next()
        first = sc.peek()
        if first == "":
            raise ShellError("syntax error: missing '}'")
        if first in ("{", "}", ":"):
            raise ShellError("syntax error: bad substitution")
        name = self._name()
        ch = sc.next()
        chs = ch or "\ufffd"  # Go prints the EOF rune as U+FFFD
        null_is_unset = False
        if ch == "}":
            value, found = self._get(name)
            if not found and self.skip_unset_env:
                return "${" + name + "}"
            return value
        if ch == ":":
            null_is_unset = True
            ch = sc.next()
            chs += ch
        if ch in ("+", "-", "?", "#", "%"):
            raw = ch in ("#", "%")
            if null_is_unset and raw:
                raise ShellError(f"unsupported modifier ({chs}) in substitution")
            try:
                word, _ = self._stop_on("}", raw)
            except ShellError:
                if sc.peek() == "":
                    raise ShellError("syntax error: missing '}'") from None
                raise
            value, found = self._get(name)
            if self.skip_unset_env and not found:
                return "${" + name + chs + word + "}"
            if ch == "-":
                return word if not found or (null_is_unset and value == "") else value
            if ch == "+":
                return "" if not found or (null_is_unset and value == "") else word
            if ch == "?":
                if not found:
                    raise ShellError(f"{name}: {word or 'is not allowed to be unset'}")
                if null_is_unset and value == "":
                    raise ShellError(f"{name}: {word or 'is not allowed to be empty'}")
                return value
            greedy = bool(word) and word[0] == ch
            if greedy:
                word = word[1:]
            if ch == "%":
                return _trim_suffix(word, value, greedy)
            return _trim_prefix(word, value, greedy)
        if ch == "/":
            replace_all = sc.peek() == "/"
            if replace_all:
                sc.next()
            try:
                pattern, _ = self._stop_on("/", True)
            except ShellError:
                if sc.peek() == "":
                    raise ShellError("syntax error: missing '/' in ${}") from None
                raise
            try:
                replacement, _ = self._stop_on("}", True)
            except ShellError:
                if sc.peek() == "":
                    raise ShellError("syntax error: missing '}'") from None
                raise
            value, found = self._get(name)
            if self.skip_unset_env and not found:
                return "${" + name + "/" + pattern + "/" + replacement + "}"
            regex = _pattern_regex(pattern, True, False)
            if replace_all:
                return regex.sub(lambda _m: replacement, value)
            return regex.sub(lambda _m: replacement, value, count=1)
        raise ShellError(f"unsupported modifier ({chs}) in substitution")


def _pattern_regex(pattern: str, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """convertShellPatternToRegex: ``*`` and ``?`` wildcards, ``\\`` escapes; no bracket expressions."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
            continue
        if tok == "?":
            out.append(".")
            continue
        if tok == "\\":
            following = pattern[i] if i < len(pattern) else ""
            if following in ("}", "/"):
                continue
            i += 1
            if following not in ("*", "?", "\\"):
                raise ShellError(
                    f"invalid pattern ({pattern}) in substitution: "
                    f"invalid escape '\\{following or '%!c(int=-1)'}'"
                )
            out.append("\\" + following)
            continue
        out.append(re.escape(tok))
    return re.compile("".join(out), re.S)


def _trim_prefix(word: str, value: str, greedy: bool) -> str:
    regex = _pattern_regex(word, greedy, True)
    match = regex.search(value)
    return value[match.end() :] if match else value


def _reverse_pattern(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i != len(pattern) - 1:
            out.append(pattern[i : i + 2])
            i += 2
        else:
            out.append(pattern[i])
            i += 1
    return "".join(reversed(out))


def _trim_suffix(pattern: str, word: str, greedy: bool) -> str:
    return _trim_prefix(_reverse_pattern(pattern), word[::-1], greedy)[::-1]
