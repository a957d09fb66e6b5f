"""Dockerfile parsing: directives, continuations, comments, heredocs, JSON forms and instruction errors."""

from __future__ import annotations

import pytest

from harness.daemon.builder import instructions as ins
from harness.daemon.builder.parser import ParseError, parse


def test_nodes_lines_and_forms() -> None:
    result = parse(
        b"# syntax=docker/dockerfile:1\n"
        b"FROM busybox AS base\n"
        b"RUN echo a \\\n"
        b"  # a comment inside\n"
        b"  b\n"
        b'CMD ["sh", "-c"]\n'
        b"ENV A=b C='d e'\n"
        b"ENV K v w\n"
    )
    assert [(n.value, n.start_line, n.end_line) for n in result.nodes] == [
        ("FROM", 2, 2),
        ("RUN", 3, 5),
        ("CMD", 6, 6),
        ("ENV", 7, 7),
        ("ENV", 8, 8),
    ]
    run, cmd, env, legacy = result.nodes[1:]
    assert run.args == ["echo a   b"] and not run.json
    assert cmd.args == ["sh", "-c"] and cmd.json
    assert env.args == ["A", "b", "=", "C", "'d e'", "="]
    assert legacy.args == ["K", "v w", ""]


def test_escape_directive_and_bom() -> None:
    result = parse("\ufeff# escape=`\nFROM x\nRUN a `\n b\n".encode())
    assert result.escape == "`"
    assert result.nodes[1].args == ["a  b"]


def test_empty_continuation_warning() -> None:
    result = parse(b"FROM x\nRUN a \\\n\n b\n")
    assert result.warning_lines() == [
        "[WARNING]: Empty continuation line found in: RUN a  b\n",
        "[WARNING]: Empty continuation lines will become errors in a future release.\n",
    ]


def test_heredoc_content() -> None:
    node = parse(b"FROM x\nRUN <<EOF\necho hi\nEOF\nCOPY <<-A /x\n\tdata\nA\n").nodes
    assert node[1].args == ["<<EOF"] and node[1].heredocs[0].content == "echo hi\n"
    assert node[2].heredocs[0].chomp and node[2].heredocs[0].name == "A"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"", "file with no instructions"),
        (b"# escape=x\nFROM a\n", "invalid escape token 'x' does not match ` or \\"),
        (b"# escape=\\\n# escape=`\nFROM a\n", "only one escape parser directive can be used"),
        (b"FROM a\nRUN <<EOF\nno end\n", "unterminated heredoc"),
        (b'FROM a\nCMD ["a", 1]\n', "when using JSON array syntax, arrays must be comprised of strings only"),
        (b"FROM a\nENV A\n", "ENV must have two arguments"),
    ],
)
def test_parse_errors(text: bytes, message: str) -> None:
    with pytest.raises(ParseError) as exc:
        parse(text)
    assert str(exc.value) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            b"FROM a\nFOO b\n",
            "dockerfile parse error on line 2: unknown instruction: FOO (did you mean FROM?)",
        ),
        (
            b"FROM a\nrunn b\n",
            "dockerfile parse error on line 2: unknown instruction: runn (did you mean run?)",
        ),
        (b"FROM\n", "dockerfile parse error on line 1: FROM requires either one or three arguments"),
        (
            b"FROM a AS 1x\n",
            'dockerfile parse error on line 1: invalid name for build stage: "1x", name can\'t '
            "start with a number or contain symbols",
        ),
        (b"RUN x\n", "no build stage in current context"),
        (
            b"FROM a\nCOPY x\n",
            "dockerfile parse error on line 2: COPY requires at least two arguments, but only "
            "one was provided. Destination could not be determined",
        ),
        (
            b"FROM a\nCOPY --form=x a b\n",
            "dockerfile parse error on line 2: unknown flag: --form (did you mean from?)",
        ),
        (b"FROM a\nRUN --network=x b\n", 'dockerfile parse error on line 2: invalid network mode "x"'),
        (
            b"FROM a\nONBUILD FROM b\n",
            "dockerfile parse error on line 2: FROM isn't allowed as an ONBUILD trigger",
        ),
        (
            b"FROM a\nSHELL sh -c\n",
            "dockerfile parse error on line 2: SHELL requires the arguments to be in JSON form",
        ),
        (
            b"FROM a\nHEALTHCHECK --interval=1us CMD x\n",
            'dockerfile parse error on line 2: Interval "interval" cannot be less than 1ms',
        ),
        (
            b"FROM a\nHEALTHCHECK FOO x\n",
            'dockerfile parse error on line 2: Unknown type "FOO" in HEALTHCHECK (try CMD)',
        ),
    ],
)
def test_instruction_errors(text: bytes, message: str) -> None:
    with pytest.raises(ins.InstructionError) as exc:
        ins.parse_stages(parse(text).nodes)
    assert str(exc.value) == message


def test_stages_meta_args_and_commands() -> None:
    stages, meta = ins.parse_stages(
        parse(
            b"ARG V=1\nFROM a AS One\nCOPY --from=x --chown=1:2 s1 s2 /d/\nHEALTHCHECK --retries=3 CMD ping\n"
            b"ONBUILD RUN echo x\nEXPOSE 443 80\nFROM One\n"
        ).nodes
    )
    assert meta[0].args == [("V", "1")]
    assert [s.name for s in stages] == ["one", ""]
    copy, health, onbuild, expose = stages[0].commands
    assert isinstance(copy, ins.CopyCommand)
    assert (copy.from_, copy.chown, copy.files.sources, copy.files.dest) == ("x", "1:2", ["s1", "s2"], "/d/")
    assert isinstance(health, ins.HealthCheckCommand)
    assert health.health == {"Test": ["CMD-SHELL", "ping"], "Retries": 3}
    assert health.go_string() == "&{[CMD-SHELL ping] 0s 0s 0s 0s 3}"
    assert isinstance(onbuild, ins.OnbuildCommand) and onbuild.expression == "RUN echo x"
    assert isinstance(expose, ins.ExposeCommand) and expose.ports == ["443", "80"]
