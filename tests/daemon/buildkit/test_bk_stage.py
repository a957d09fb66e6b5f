"""The frontend's pure parts: BuildKit's image config and history, step names, mounts, context paths."""

from __future__ import annotations

import json

from harness.daemon.builder import instructions as ins
from harness.daemon.builder.buildargs import BuildArgs
from harness.daemon.builder.parser import parse
from harness.daemon.builder.state import State
from harness.daemon.buildkit.frontend import _follow_paths
from harness.daemon.buildkit.runstep import _run_args, mount_options
from harness.daemon.buildkit.stage import (
    StageState,
    display_name,
    fill_created,
    history_entry,
    history_text,
    image_config,
    run_command_string,
)


def _cmd(line: str) -> ins.Command:
    cmd = ins.parse_command(parse(line + "\n").nodes[0])
    assert isinstance(cmd, ins.Command)
    return cmd


def test_step_names_are_numbered_per_stage() -> None:
    one = StageState(name="", label="", total=3)
    assert one.prefix("FROM x") == "[1/3] FROM x"
    named = StageState(name="base", label="base", total=12)
    assert named.prefix("RUN a") == "[base  1/12] RUN a"  # the index padded to the total's width
    assert StageState(name="", label="stage-1", total=0).prefix("COPY a b") == "COPY a b"


def test_display_names_expand_the_stage_variables() -> None:
    assert display_name(_cmd("run echo $A ${B} $C"), {"A": "1", "B": "2"}) == "RUN echo 1 2 $C"


def test_history_times_come_from_the_layers() -> None:
    base = {"created": "2020-01-01T00:00:00Z", "comment": "Imported from -"}
    history = [
        base,
        history_entry("ENV A=b", empty=True),
        history_entry("RUN x # buildkit", empty=False, layer_ns=1_700_000_000_500_000_000),
        history_entry("COPY f /f # buildkit", empty=False, layer_ns=1_700_000_001_000_000_000),
        history_entry('CMD ["sh"]', empty=True),
    ]
    filled, created = fill_created(history)
    assert [h["created"] for h in filled] == [
        "2020-01-01T00:00:00Z",
        "2023-11-14T22:13:20.5Z",  # the next layer's time
        "2023-11-14T22:13:20.5Z",
        "2023-11-14T22:13:21Z",
        "2023-11-14T22:13:21Z",  # after the last layer: the last layer's
    ]
    assert created == "2023-11-14T22:13:21Z"
    assert "_ns" not in json.dumps(filled)
    only_meta, created = fill_created([base, history_entry("ENV A=b", empty=True)])
    assert created == "2020-01-01T00:00:00Z" == only_meta[1]["created"]  # no layer: the base's time


def test_image_config_in_buildkits_shape() -> None:
    st = StageState(name="", label="", diff_ids=["sha256:a"], platform=("linux", "amd64", ""))
    st.state = State(build_args=BuildArgs())
    st.state.run_config = {
        "Hostname": "x",
        "Cmd": ["sh"],
        "Env": ["PATH=/bin"],
        "ArgsEscaped": True,
        "Labels": {},
    }
    st.history = [history_entry("RUN x # buildkit", empty=False, layer_ns=1_700_000_000_000_000_000)]
    doc = json.loads(image_config(st))
    assert list(doc) == ["architecture", "config", "created", "history", "os", "rootfs"]
    assert list(doc["config"]) == ["Env", "Cmd", "ArgsEscaped"]  # OCI order, empty fields left out
    assert doc["rootfs"] == {"type": "layers", "diff_ids": ["sha256:a"]}
    assert doc["history"][0]["comment"] == "buildkit.dockerfile.v0"


def test_history_texts_where_buildkit_differs() -> None:
    state = State(build_args=BuildArgs())
    state.run_config = {"Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000}}
    assert (
        history_text(_cmd("HEALTHCHECK CMD true"), "", state)
        == "HEALTHCHECK {Test:[CMD-SHELL true] Interval:5s Timeout:0s StartPeriod:0s StartInterval:0s "
        "Retries:0}"
    )
    assert history_text(_cmd("EXPOSE 80 53/udp"), "EXPOSE 80 53/udp", state) == "EXPOSE [80/tcp 53/udp]"
    assert history_text(_cmd("ONBUILD RUN x"), "ONBUILD RUN x", state) is None
    assert history_text(_cmd("ENV A=b"), "ENV A=b", state) == "ENV A=b"
    assert run_command_string(["/bin/sh", "-c", "x"], ["A=1"]) == "|1 A=1 /bin/sh -c x"


def test_mount_options() -> None:
    assert mount_options("type=cache,target=/root/.cache,sharing=locked") == {
        "type": "cache",
        "target": "/root/.cache",
        "sharing": "locked",
    }
    assert mount_options("type=bind,source=a,target=/a,rw") == {
        "type": "bind",
        "source": "a",
        "target": "/a",
        "rw": "true",
    }
    assert mount_options('type=secret,id=s,"target=/x,y"') == {"type": "secret", "id": "s", "target": "/x,y"}


def test_context_paths_a_build_reads() -> None:
    stages, _ = ins.parse_stages(
        parse("FROM a\nCOPY f d/ /x/\nADD http://h/x /y\nRUN --mount=source=m,target=/m true\n").nodes
    )
    assert _follow_paths(stages) == ["d", "f", "m"]
    wild, _ = ins.parse_stages(parse("FROM a\nCOPY *.txt /x/\n").nodes)
    assert _follow_paths(wild) == []  # wildcards: the whole context
    whole, _ = ins.parse_stages(parse("FROM a\nCOPY . /x/\n").nodes)
    assert _follow_paths(whole) == []


def test_run_heredoc_is_the_script() -> None:
    run = _cmd("RUN <<EOF\necho one\necho two\nEOF")
    assert isinstance(run, ins.RunCommand)
    assert _run_args(run, {}) == ["/bin/sh", "-c", "echo one\necho two\n"]
    plain = _cmd("RUN echo hi")
    assert isinstance(plain, ins.RunCommand)
    assert _run_args(plain, {"Shell": ["/bin/bash", "-c"]}) == ["/bin/bash", "-c", "echo hi"]
