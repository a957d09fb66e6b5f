"""The builder's two tables: instruction name -> parser, instruction type -> executor."""

from __future__ import annotations

import pytest

from harness.daemon.builder import instructions as ins
from harness.daemon.builder.dispatch import EXECUTORS
from harness.daemon.builder.metadata import METADATA
from harness.daemon.builder.parser import parse

ONE_OF_EACH = (
    'FROM busybox AS base\nADD a /a\nARG X=1\nCMD ["sh"]\nCOPY --from=base a /b\nENTRYPOINT sh\n'
    "ENV A=b\nEXPOSE 80\nHEALTHCHECK NONE\nLABEL l=v\nMAINTAINER me\nONBUILD RUN true\nRUN true\n"
    'SHELL ["/bin/sh", "-c"]\nSTOPSIGNAL SIGTERM\nUSER nobody\nVOLUME /v\nWORKDIR /w\n'
)


def _commands() -> list[ins.Command | ins.Stage]:
    return [ins.parse_command(node) for node in parse(ONE_OF_EACH).nodes]


def test_every_instruction_has_a_parser_of_its_own_type() -> None:
    commands = _commands()
    assert sorted(c.name.lower() if isinstance(c, ins.Command) else "from" for c in commands) == sorted(
        ins.PARSERS
    )
    kinds = {type(c) for c in commands}
    assert len(kinds) == len(ins.PARSERS)  # one type per instruction


def test_every_command_type_has_an_executor() -> None:
    kinds = {type(c) for c in _commands() if not isinstance(c, ins.Stage)}
    assert kinds == set(EXECUTORS)
    assert set(METADATA) < set(EXECUTORS)
    # the layer-making instructions are not metadata
    assert not {ins.RunCommand, ins.CopyCommand, ins.AddCommand, ins.WorkdirCommand} & set(METADATA)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("RUNN true", "unknown instruction: RUNN (did you mean RUN?)"),
        ("copyy a b", "unknown instruction: copyy (did you mean copy?)"),
        ("FROBNICATE x", "unknown instruction: FROBNICATE"),
        ("STOPSIGNAL", "STOPSIGNAL requires exactly one argument"),
        ("USER", "USER requires exactly one argument"),
        ("EXPOSE", "EXPOSE requires at least one argument"),
        ("SHELL sh -c", "SHELL requires the arguments to be in JSON form"),
        ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("FROM a b", "FROM requires either one or three arguments"),
        ("ENV --x=1 A=b", "unknown flag: --x"),
    ],
)
def test_parser_errors(line: str, message: str) -> None:
    node = parse(line + "\n").nodes[0]
    with pytest.raises(ins.InstructionError) as info:
        ins.parse_command(node)
    assert str(info.value) == message


def test_parse_stages_groups_commands_and_meta_args() -> None:
    stages, meta = ins.parse_stages(parse("ARG V=1\nFROM a:$V AS one\nRUN x\nFROM one\nCMD y\n").nodes)
    assert [a.args for a in meta] == [[("V", "1")]]
    assert [(s.name, s.base_name, [str(c) for c in s.commands]) for s in stages] == [
        ("one", "a:$V", ["RUN x"]),
        ("", "one", ["CMD y"]),
    ]
    with pytest.raises(ins.InstructionError, match="dockerfile parse error on line 2: unknown instruction"):
        ins.parse_stages(parse("FROM a\nNOPE x\n").nodes)
