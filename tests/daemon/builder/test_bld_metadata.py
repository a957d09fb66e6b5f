"""Metadata instructions: what each does to the run config, and the comment the classic builder commits."""

from __future__ import annotations

from typing import Any

import pytest

from harness.daemon.builder import instructions as ins
from harness.daemon.builder.buildargs import BuildArgs
from harness.daemon.builder.metadata import METADATA, MetaStep
from harness.daemon.builder.parser import parse
from harness.daemon.builder.shell import Lex
from harness.daemon.builder.state import State
from harness.daemon.builder.stream import BuildError


def _apply(state: State, line: str, env: dict[str, str] | None = None) -> tuple[str, list[str]]:
    notes: list[str] = []
    cmd = ins.parse_command(parse(line + "\n").nodes[0])
    assert isinstance(cmd, ins.Command)
    comment = METADATA[type(cmd)](state, cmd, MetaStep(Lex("\\"), env or {}, notes.append))
    return comment, notes


def _state(**config: Any) -> State:
    return State(build_args=BuildArgs(), run_config=dict(config))


def test_env_replaces_a_key_in_place_and_appends_new_ones() -> None:
    state = _state(Env=["PATH=/bin", "A=1"])
    comment, _ = _apply(state, "ENV A=2 B=3")
    assert comment == "ENV A=2 B=3"
    assert state.run_config["Env"] == ["PATH=/bin", "A=2", "B=3"]


def test_cmd_and_entrypoint() -> None:
    state = _state(Cmd=["old"])
    assert _apply(state, "CMD echo hi")[0] == 'CMD ["/bin/sh" "-c" "echo hi"]'
    assert state.run_config["Cmd"] == ["/bin/sh", "-c", "echo hi"] and state.cmd_set
    _apply(state, 'ENTRYPOINT ["tini"]')
    assert state.run_config["Entrypoint"] == ["tini"] and state.run_config["Cmd"] == [
        "/bin/sh",
        "-c",
        "echo hi",
    ]
    fresh = _state(Cmd=["from-base"])
    _apply(fresh, "ENTRYPOINT run")
    assert fresh.run_config["Cmd"] is None  # an ENTRYPOINT drops the base image's CMD


def test_shell_changes_the_shell_form() -> None:
    state = _state()
    assert _apply(state, 'SHELL ["/bin/bash", "-e", "-c"]')[0] == "SHELL [/bin/bash -e -c]"
    _apply(state, "CMD x")
    assert state.run_config["Cmd"] == ["/bin/bash", "-e", "-c", "x"]


def test_expose_expands_words_and_ranges() -> None:
    state = _state(ExposedPorts={"22/tcp": {}})
    comment, _ = _apply(state, "EXPOSE $P 53/udp", {"P": "80-81"})
    assert comment == "EXPOSE 80-81 53/udp"  # sorted as written ($P first), then expanded
    assert set(state.run_config["ExposedPorts"]) == {"22/tcp", "80/tcp", "81/tcp", "53/udp"}


def test_labels_volumes_user_maintainer_onbuild() -> None:
    state = _state(Labels={"a": "1"})
    assert _apply(state, "LABEL b=2")[0] == "LABEL b=2"
    assert state.run_config["Labels"] == {"a": "1", "b": "2"}
    assert _apply(state, "VOLUME /x /y")[0] == "VOLUME [/x /y]"
    assert _apply(state, "USER u:g")[0] == "USER u:g" and state.run_config["User"] == "u:g"
    assert _apply(state, "MAINTAINER me")[0] == "MAINTAINER me" and state.maintainer == "me"
    assert _apply(state, "ONBUILD RUN x")[0] == "ONBUILD RUN x"
    assert state.run_config["OnBuild"] == ["RUN x"]


def test_healthcheck_notes_an_override() -> None:
    state = _state(Healthcheck={"Test": ["CMD-SHELL", "old"]})
    comment, notes = _apply(state, "HEALTHCHECK --interval=5s CMD true")
    assert comment == "HEALTHCHECK &{[CMD-SHELL true] 5s 0s 0s 0s 0}"
    assert notes == ["Note: overriding previous HEALTHCHECK: [CMD-SHELL old]\n"]


def test_arg_and_stopsignal() -> None:
    state = _state()
    assert _apply(state, "ARG A=1 B")[0] == "ARG A=1 B"
    assert state.build_args.all_allowed() == {"A": "1"}
    assert _apply(state, "STOPSIGNAL SIGUSR1")[0] == "STOPSIGNAL SIGUSR1"
    with pytest.raises(BuildError, match="invalid signal: NOPE"):
        _apply(state, "STOPSIGNAL NOPE")
