"""The Dockerfile parser: lines to instruction nodes, as buildkit's ``frontend/dockerfile/parser`` does.

``parse(data)`` returns a ``ParseResult``: the nodes (one per instruction, with the command as
written, the original line, ``--flags``, the arguments split per instruction kind, heredocs and
line numbers), the escape token and the warnings dockerd prints before the first step.

What it handles, with buildkit's rules: a UTF-8 BOM; parser directives (``# escape=``,
``# syntax=``, ``# check=``) before anything else; comments (also inside continuations);
line continuations with the escape token; empty continuation lines (a warning); heredocs
(``<<EOF``, ``<<-EOF``, quoted names) on RUN, COPY and ADD (and under ONBUILD); the JSON form.
Errors raise ``ParseError`` (the message only; dockerd prefixes ``failed to parse Dockerfile: ``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from .shell import Lex, ShellError

__all__ = ["Heredoc", "Node", "ParseError", "ParseResult", "parse", "parse_heredoc"]

_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_HEREDOC = re.compile(r"^(\d*)<<(-?)\s*([^<]*)$", re.S)
_LEADING_TABS = re.compile(r"^\t+", re.M)
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$", re.S)
_VALID_DIRECTIVES = ("syntax", "escape", "check")
_HEREDOC_COMMANDS = ("add", "copy", "run")
_MAX_LINE = 64 * 1024 - 1


class ParseError(ValueError):
    """A Dockerfile the parser refuses; ``str()`` is buildkit's message, ``line`` where it happened."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.line = line


@dataclass
class Heredoc:
    name: str
    file_descriptor: int = 0
    expand: bool = True
    chomp: bool = False
    content: str = ""


@dataclass
class Node:
    """One instruction: ``value`` is the command as written (``RUN``, ``run``...)."""

    value: str
    original: str = ""
    flags: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    json: bool = False
    sub: Node | None = None  # ONBUILD's instruction
    heredocs: list[Heredoc] = field(default_factory=list)
    start_line: int = 0
    end_line: int = 0
    comments: list[str] = field(default_factory=list)

    @property
    def command(self) -> str:
        return self.value.lower()

    def all_args(self) -> list[str]:
        """nodeArgs: the arguments, an ONBUILD's sub-instruction flattened in."""
        if self.sub is not None:
            return [self.sub.value, *self.sub.all_args()]
        return list(self.args)

    def heredoc_capable(self) -> bool:
        node = self
        if node.command == "onbuild" and node.sub is not None:
            node = node.sub
        return node.command in _HEREDOC_COMMANDS and not node.json


@dataclass
class ParseResult:
    nodes: list[Node]
    escape: str = "\\"
    warnings: list[str] = field(default_factory=list)

    def warning_lines(self) -> list[str]:
        """Result.PrintWarnings: the writes dockerd makes to the build's stderr before the first step."""
        if not self.warnings:
            return []
        lines = [f"[WARNING]: {w}\n" for w in self.warnings]
        return [*lines, "[WARNING]: Empty continuation lines will become errors in a future release.\n"]


class _Directives:
    def __init__(self) -> None:
        self.escape = "\\"
        self.continuation = self._regex("\\")
        self.done = False
        self.seen: set[str] = set()

    @staticmethod
    def _regex(token: str) -> re.Pattern[str]:
        t = re.escape(token)
        return re.compile(rf"([^{t}]){t}[ \t]*$|^{t}[ \t]*$")

    def set_escape(self, token: str) -> None:
        if token not in ("`", "\\"):
            raise ParseError(f"invalid escape token '{token}' does not match ` or \\")
        self.escape = token
        self.continuation = self._regex(token)

    def possible_directive(self, line: str) -> bool:
        if self.done:
            return False
        match = _DIRECTIVE.match(line)
        if match is None:
            self.done = True
            return False
        key = match.group(1).lower()
        if key not in _VALID_DIRECTIVES:
            self.done = True
            return False
        if key in self.seen:
            raise ParseError(f"only one {key} parser directive can be used")
        self.seen.add(key)
        if key == "escape":
            self.set_escape(match.group(2))
        return True


def _trim_newline(line: str) -> str:
    return line.rstrip("\r\n")


def _is_comment(line: str) -> bool:
    stripped = line.lstrip()
    return stripped.startswith("#")


def _process_line(d: _Directives, token: str, strip_left: bool) -> tuple[str, bool]:
    token = _trim_newline(token)
    if strip_left:
        token = token.lstrip()
    directive = d.possible_directive(token)
    return ("" if _is_comment(token) else token), directive


def _trim_continuation(line: str, d: _Directives) -> tuple[str, bool]:
    if d.continuation.search(line):
        return d.continuation.sub(lambda m: m.group(1) or "", line), False
    return line, True


def _scan_lines(text: str) -> list[str]:
    """bufio.Scanner with line endings kept."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    for line in lines:  # splitlines also splits on \r, \v, \f...: re-join to split on \n only
        if out and not out[-1].endswith("\n"):
            out[-1] += line
        else:
            out.append(line)
    return out


# -- argument parsers (line_parsers.go) -------------------------------------------------------------
def _parse_words(rest: str, escape: str) -> list[str]:
    """parseWords: words with their quotes and escapes kept (stripped later by the shell lexer)."""
    words: list[str] = []
    in_spaces, in_word, in_quote = 0, 1, 2
    phase = in_spaces
    quote = ""
    blank_ok = False
    buf: list[str] = []
    pos = 0
    n = len(rest)
    while pos <= n:
        ch = rest[pos] if pos < n else ""
        if phase == in_spaces:
            if pos == n:
                break
            if ch.isspace():
                pos += 1
                continue
            phase = in_word
        if phase in (in_word, in_quote) and pos == n:
            if blank_ok or buf:
                words.append("".join(buf))
            break
        if phase == in_word:
            if ch.isspace():
                phase = in_spaces
                if blank_ok or buf:
                    words.append("".join(buf))
                buf = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = in_quote
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                buf.append(ch)
                pos += 1
                ch = rest[pos]
            buf.append(ch)
            pos += 1
            continue
        if phase == in_quote:
            if ch == quote:
                phase = in_word
            if ch == escape and quote != "'":
                if pos + 1 == n:
                    phase = in_word
                    pos += 1
                    continue
                pos += 1
                buf.append(ch)
                ch = rest[pos]
            buf.append(ch)
            pos += 1
    return words


def _name_val(rest: str, key: str, escape: str) -> list[str]:
    """parseNameVal: ``[k, v, sep, k, v, sep...]``; the legacy ``KEY name value`` form has sep ''."""
    words = _parse_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = _WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise ParseError(f"{key} must have two arguments")
        return [parts[0], parts[1], ""]
    out: list[str] = []
    for word in words:
        if "=" not in word:
            raise ParseError(f"Syntax error - can't find = in {_go_q(word)}. Must be of the form: name=value")
        k, _, v = word.partition("=")
        out += [k, v, "="]
    return out


def _go_q(text: str) -> str:
    from ..log import go_quote

    return go_quote(text)


def _whitespace_delimited(rest: str) -> list[str]:
    if rest == "":
        return []
    return _WHITESPACE.split(rest)


class _NotJSON(Exception):
    pass


def _parse_json(rest: str) -> list[str]:
    rest = rest.lstrip()
    if not rest.startswith("["):
        raise _NotJSON
    try:
        value = json.loads(rest, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise _NotJSON from None
    if not isinstance(value, list):
        raise _NotJSON
    for item in value:
        if not isinstance(item, str):
            raise ParseError("when using JSON array syntax, arrays must be comprised of strings only")
    return value


def _reject_constant(name: str) -> None:
    raise ValueError(name)  # Go's JSON has no NaN or Infinity


def _maybe_json(rest: str) -> tuple[list[str], bool]:
    if rest == "":
        return [], False
    try:
        return _parse_json(rest), True
    except _NotJSON:
        return [rest], False


def _maybe_json_to_list(rest: str) -> tuple[list[str], bool]:
    try:
        return _parse_json(rest), True
    except _NotJSON:
        return _whitespace_delimited(rest), False


def _health_config(rest: str) -> tuple[list[str], bool]:
    sep = 0
    while sep < len(rest) and not rest[sep].isspace():
        sep += 1
    nxt = sep
    while nxt < len(rest) and rest[nxt].isspace():
        nxt += 1
    if sep == 0:
        return [], False
    cmd, is_json = _maybe_json(rest[nxt:])
    return [rest[:sep], *cmd], is_json


def _split_command(line: str, escape: str) -> tuple[str, list[str], str]:
    parts = _WHITESPACE.split(line.strip(), maxsplit=1)
    args, flags = "", list[str]()
    if len(parts) == 2:
        args, flags = _builder_flags(parts[1], escape)
    return parts[0], flags, args.strip()


def _builder_flags(line: str, escape: str) -> tuple[str, list[str]]:
    """extractBuilderFlags: the leading ``--flag[=value]`` words and the rest of the line."""
    words: list[str] = []
    in_spaces, in_word, in_quote = 0, 1, 2
    phase = in_spaces
    buf: list[str] = []
    quote = ""
    blank_ok = False
    pos = 0
    n = len(line)
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if phase == in_spaces:
            if pos == n:
                break
            if ch.isspace():
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            phase = in_word
        if phase in (in_word, in_quote) and pos == n:
            word = "".join(buf)
            if word != "--" and (blank_ok or word):
                words.append(word)
            break
        if phase == in_word:
            if ch.isspace():
                word = "".join(buf)
                phase = in_spaces
                if word == "--":
                    return line[pos:], words
                if blank_ok or word:
                    words.append(word)
                buf = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = in_quote
                pos += 1
                continue
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            buf.append(ch)
            pos += 1
            continue
        if phase == in_quote:
            if ch == quote:
                phase = in_word
                pos += 1
                continue
            if ch == escape:
                if pos + 1 == n:
                    phase = in_word
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            buf.append(ch)
            pos += 1
    return "", words


def _node_from_line(line: str, d: _Directives, comments: list[str]) -> Node:
    cmd, flags, rest = _split_command(line, d.escape)
    node = Node(value=cmd, original=line, flags=flags, comments=list(comments))
    kind = cmd.lower()
    if kind in ("add", "copy", "volume"):
        node.args, node.json = _maybe_json_to_list(rest)
    elif kind == "arg":
        node.args = _parse_words(rest, d.escape)
    elif kind in ("cmd", "entrypoint", "run", "shell"):
        node.args, node.json = _maybe_json(rest)
    elif kind == "env":
        node.args = _name_val(rest, "ENV", d.escape)
    elif kind == "label":
        node.args = _name_val(rest, "LABEL", d.escape)
    elif kind in ("expose", "from"):
        node.args = _whitespace_delimited(rest)
    elif kind == "healthcheck":
        node.args, node.json = _health_config(rest)
    elif kind in ("maintainer", "stopsignal", "user", "workdir"):
        node.args = [rest] if rest else []
    elif kind == "onbuild":
        if rest:
            node.sub = _node_from_line(rest, d, [])
    else:
        node.args = [""]  # parseIgnore: an unknown instruction fails when instructions are parsed
    return node


# -- heredocs ---------------------------------------------------------------------------------------
def parse_heredoc(src: str) -> Heredoc | None:
    """ParseHeredoc: ``<<EOF``, ``<<-EOF``, ``3<<"EOF"``... as a Heredoc, or None."""
    match = _HEREDOC.match(src)
    if match is None:
        return None
    fd = int(match.group(1) or 0)
    chomp = match.group(2) == "-"
    rest = match.group(3)
    if not rest:
        return None
    lex = Lex("\\")
    lex.skip_unset_env = True
    try:
        words = lex.process_words(rest, {})
    except ShellError as exc:
        raise ParseError(str(exc)) from None
    if len(words) != 1:
        return None
    lex.raw_quotes = True
    try:
        raw_words = lex.process_words(rest, {})
    except ShellError as exc:
        raise ParseError(str(exc)) from None
    if len(raw_words) != len(words):
        raise ParseError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    word, raw = words[0], raw_words[0]
    expand = (word.count("'") + word.count('"')) == (raw.count("'") + raw.count('"'))
    return Heredoc(name=word, file_descriptor=fd, expand=expand, chomp=chomp)


def _heredocs_from_line(line: str) -> list[Heredoc]:
    lex = Lex("\\")
    lex.raw_quotes = True
    lex.raw_escapes = True
    lex.skip_unset_env = True
    try:
        words = lex.process_words(line, {})
    except ShellError:
        words = []
    docs = []
    for word in words:
        doc = parse_heredoc(word)
        if doc is not None:
            docs.append(doc)
    return docs


def chomp_heredoc(content: str) -> str:
    return _LEADING_TABS.sub("", content)


# -- parse ------------------------------------------------------------------------------------------
def parse(data: bytes | str) -> ParseResult:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    lines = _scan_lines(text)
    d = _Directives()
    nodes: list[Node] = []
    warnings: list[str] = []
    comments: list[str] = []
    current = 0
    i = 0
    while i < len(lines):
        raw = lines[i]
        i += 1
        if current == 0 and raw.startswith("\ufeff"):
            raw = raw[1:]
        if len(_trim_newline(raw)) > _MAX_LINE:
            raise ParseError(f"dockerfile line greater than max allowed size of {_MAX_LINE}", current)
        if _is_comment(raw):
            comment = raw.strip()[1:].strip()
            comments = [*comments, comment] if comment else []
        try:
            line, directive = _process_line(d, raw, True)
        except ParseError as exc:
            exc.line = current
            raise
        if directive and comments:
            comments = comments[:-1]
        current += 1
        start = current
        line, end_of_line = _trim_continuation(line, d)
        if end_of_line and not line:
            continue
        buf = [line]
        empty_continuation = False
        while not end_of_line and i < len(lines):
            nxt = lines[i]
            i += 1
            piece, _ = _process_line(d, nxt, False)
            current += 1
            if _is_comment(nxt):
                continue
            if not _trim_newline(piece).lstrip():
                empty_continuation = True
                continue
            piece, end_of_line = _trim_continuation(piece, d)
            buf.append(piece)
        full = "".join(buf)
        if empty_continuation:
            warnings.append("Empty continuation line found in: " + full)
        try:
            node = _node_from_line(full, d, comments)
        except ParseError as exc:
            exc.line = start
            raise
        if node.heredoc_capable() and "<<" in full:
            for doc in _heredocs_from_line(full):
                terminated = False
                while i < len(lines):
                    body = lines[i]
                    i += 1
                    current += 1
                    candidate = _trim_newline(body)
                    if doc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == doc.name:
                        terminated = True
                        break
                    doc.content += body
                if not terminated:
                    raise ParseError("unterminated heredoc", start)
                node.heredocs.append(doc)
        node.start_line, node.end_line = start, current
        nodes.append(node)
        comments = []
    if not nodes:
        raise ParseError("file with no instructions", current)
    return ParseResult(nodes=nodes, escape=d.escape, warnings=warnings)
