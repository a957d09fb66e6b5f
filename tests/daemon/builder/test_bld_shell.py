"""The Dockerfile word lexer: quotes, escapes and ${} forms as buildkit's shell.Lex."""

from __future__ import annotations

import pytest

from harness.daemon.builder.shell import Lex, ShellError
from harness.daemon.log import go_quote

ENV = {"A": "a", "E": "", "P": "/usr/local/bin", "S": "x y"}


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("plain", "plain"),
        ("$A/b", "a/b"),
        ("${A}b", "ab"),
        ("$NOPE", ""),
        ("${NOPE:-d}", "d"),
        ("${E:-d}", "d"),
        ("${E-d}", ""),
        ("${A:+set}", "set"),
        ("${NOPE+set}", ""),
        ("${P#*/}", "usr/local/bin"),
        ("${P##*/}", "bin"),
        ("${P%/*}", "/usr/local"),
        ("${P%%/l*}", "/usr"),
        ("${P/l/L}", "/usr/Local/bin"),
        ("${P//l/L}", "/usr/LocaL/bin"),
        ("'$A'", "$A"),
        ('"$A b"', "a b"),
        (r"\$A", "$A"),
        (r'"\$A \"q\""', '$A "q"'),
        ("$", "$"),
        ("a$1b", "ab"),
    ],
)
def test_process_word(word: str, expected: str) -> None:
    assert Lex("\\").process_word(word, ENV) == expected


def test_process_words_splits_after_expansion() -> None:
    lex = Lex("\\")
    assert lex.process_words("80 $S 'q r'", ENV) == ["80", "x", "y", "q r"]


def test_backtick_escape() -> None:
    assert Lex("`").process_word("`$A", ENV) == "$A"


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("${A", "unsupported modifier (\ufffd) in substitution"),
        ("${A:-x", "syntax error: missing '}'"),
        ("${}", "syntax error: bad substitution"),
        ("${NOPE?}", "NOPE: is not allowed to be unset"),
        ("${E:?must}", "E: must"),
        ("'open", "unexpected end of statement while looking for matching single-quote"),
        ('"open', "unexpected end of statement while looking for matching double-quote"),
        ("${A:#x}", "unsupported modifier (:#) in substitution"),
    ],
)
def test_errors_wrap_the_word(word: str, message: str) -> None:
    with pytest.raises(ShellError) as exc:
        Lex("\\").process_word(word, ENV)
    assert str(exc.value) == f"failed to process {go_quote(word)}: {message}"
