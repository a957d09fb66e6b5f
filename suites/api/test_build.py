"""The classic builder (``POST /build``): the JSON stream, errors, options, the cache, quiet builds, tags.

Every scenario builds ``FROM busybox`` (the test image) with contexts from ``_build.context_tar``
and removes what it created (``cleanup``). Image IDs, container IDs and times are normalised by the
runner; COPY's source hashes are replaced by ``<tarsum:NAME>`` when they equal dockerd's tarsum.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

import pytest

from harness.client import EngineClient
from harness.fixtures import Observations

from ._build import Cleanup, V, build, cleanup, context_tar, image_summary, slice_hash, subst, tarsum

__all__ = ["cleanup"]

CLI = Callable[..., Any]
BASIC = 'FROM busybox\nENV A=b\nRUN echo out: $A && echo err >&2\nCOPY f /f\nLABEL x=y\nCMD ["sh"]\n'


def _subs(**files: str) -> dict[str, str]:
    return {tarsum(name, data): f"<tarsum:{name}>" for name, data in files.items()}


# -- the stream -------------------------------------------------------------------------------------
@pytest.mark.scenario(
    "api/build/stream",
    "POST /build MUST answer 200 application/json and stream each step as dockerd's classic builder: "
    "'Step i/n : <line>' (its own message, then '\\n'), ' ---> Running in <id>' for a step container, "
    "the RUN's stdout and its stderr in \\x1b[91m...\\x1b[0m, ' ---> Removed intermediate container', "
    "' ---> <id>' per step, an aux line with the image ID, 'Successfully built' and 'Successfully tagged'",
    ref="moby builder/dockerfile/builder.go dispatchDockerfileWithCancellation; pkg/streamformatter",
)
def test_stream(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    built = build(engine, {"Dockerfile": BASIC, "f": "data\n"}, t="build-stream:latest")
    observe("content-type", built.content_type)
    observe("first-lines", built.lines[:3])
    observe("build", built.record(_subs(f="data\n")))
    observe("image", image_summary(engine, "build-stream", subs=_subs(f="data\n")))
    assert built.status == 200 and built.stdout.endswith("Successfully tagged build-stream:latest\n")
    assert built.stderr == "err\n"


@pytest.mark.scenario(
    "api/build/empty-layers",
    "Steps that change no file (ENV, LABEL, CMD, a RUN that writes nothing) MUST be empty_layer history "
    "entries with size 0; a RUN or COPY that writes MUST add one layer; the history MUST list each step "
    "with its image ID (parent chain) and '<missing>' below the base image",
    ref="moby image/image.go NewChildImage; daemon/images/image_history.go",
)
def test_empty_layers(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    dockerfile = (
        "FROM busybox\nRUN true\nRUN echo no file written\nRUN touch /created && rm /bin/ls\n"
        "RUN mkdir -p /d/e\nWORKDIR /d/e\nWORKDIR /new/dir\nCOPY f g /files/\n"
    )
    built = build(engine, {"Dockerfile": dockerfile, "f": "1", "g": "22"}, t="build-layers")
    observe("build", built.record(_subs(f="1", g="22")))
    multi = slice_hash("multi", [f"file:{tarsum('f', '1')}", f"file:{tarsum('g', '22')}"])
    summary = observe("image", image_summary(engine, "build-layers", subs={multi: "<multi:f,g>"}))
    assert summary["Layers"] == 5


@pytest.mark.scenario(
    "api/build/run-failure",
    "A RUN that exits non-zero MUST end the stream with errorDetail {code, message: \"The command '...' "
    'returned a non-zero code: N"} and leave its container (exited) unless forcerm=1; a command that '
    "cannot start MUST fail with the runtime's message",
    ref="moby builder/dockerfile/dispatchers.go dispatchRun; containerbackend.go",
)
def test_run_failure(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    failed = build(engine, {"Dockerfile": "FROM busybox\nRUN echo partial; exit 3\n"})
    observe("exit-3", failed.record())
    observe("left-behind", [(c["State"], _exit_status(c["Status"])) for c in cleanup.new_containers()])
    forced = build(engine, {"Dockerfile": "FROM busybox\nRUN exit 4\n"}, forcerm=1)
    observe("forcerm", forced.record())
    observe("containers-after-forcerm", len(cleanup.new_containers()))
    observe("not-found", build(engine, {"Dockerfile": 'FROM busybox\nRUN ["nonexistent"]\n'}).record())
    assert failed.others[-1]["errorDetail"]["code"] == 3


@pytest.mark.scenario(
    "api/build/rm",
    "rm=0 MUST keep the step containers (a metadata step's never started, a RUN's exited) and not print "
    "'Removed intermediate container'",
    ref="moby builder/dockerfile/evaluator.go dispatch (Remove, ForceRemove)",
)
def test_rm(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    built = build(engine, {"Dockerfile": "FROM busybox\nENV A=b\nRUN echo kept\n"}, rm=0, nocache=1)
    observe("build", built.record())
    built.ok()
    assert "Removed intermediate container" not in built.stdout
    assert observe("kept", sorted(c["State"] for c in cleanup.new_containers())) == ["created", "exited"]


def _exit_status(status: str) -> str:
    """'Exited (3) 2 seconds ago' -> 'Exited (3)'."""
    match = re.match(r"^[A-Za-z]+(?: \(\d+\))?", status)
    return match.group(0) if match else status


# -- errors -----------------------------------------------------------------------------------------
_EARLY: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "unknown-instruction": ({"Dockerfile": "FROM busybox\nFOO bar\n"}, {}),
    "empty-dockerfile": ({"Dockerfile": ""}, {}),
    "missing-dockerfile": ({"Dockerfile": "FROM busybox\n"}, {"dockerfile": "Nope"}),
    "lowercase-dockerfile": ({"dockerfile": "FROM busybox\nFOO\n"}, {}),
    "bad-escape": ({"Dockerfile": "# escape=x\nFROM busybox\n"}, {}),
    "two-escapes": ({"Dockerfile": "# escape=`\n# escape=\\\nFROM busybox\n"}, {}),
    "from-arguments": ({"Dockerfile": "FROM busybox AS\n"}, {}),
    "stage-name": ({"Dockerfile": "FROM busybox AS 1st\n"}, {}),
    "no-from": ({"Dockerfile": "RUN echo\n"}, {}),
    "onbuild-onbuild": ({"Dockerfile": "FROM busybox\nONBUILD ONBUILD RUN x\n"}, {}),
    "run-network-flag": ({"Dockerfile": "FROM busybox\nRUN --network=bogus echo\n"}, {}),
    "unknown-flag": ({"Dockerfile": "FROM busybox\nCOPY --form=x a b\n"}, {}),
    "json-not-strings": ({"Dockerfile": 'FROM busybox\nCMD ["a", 1]\n'}, {}),
    "heredoc-unterminated": ({"Dockerfile": "FROM busybox\nRUN <<EOF\necho\n"}, {}),
    "env-arguments": ({"Dockerfile": "FROM busybox\nENV ONLYKEY\n"}, {}),
    "bad-tag": ({"Dockerfile": "FROM busybox\n"}, {"t": "Bad:Tag"}),
    "digest-tag": ({"Dockerfile": "FROM busybox\n"}, {"t": "x@sha256:" + "0" * 64}),
    "buildargs-json": ({"Dockerfile": "FROM busybox\n"}, {"buildargs": "{not json"}),
    "labels-type": ({"Dockerfile": "FROM busybox\n"}, {"labels": "[1]"}),
    "isolation": ({"Dockerfile": "FROM busybox\n"}, {"isolation": "hyperv"}),
    "shmsize": ({"Dockerfile": "FROM busybox\n"}, {"shmsize": "big"}),
    "platform": ({"Dockerfile": "FROM busybox\n"}, {"platform": "nosuchos"}),
    "target": ({"Dockerfile": "FROM busybox AS one\n"}, {"target": "two"}),
    "securityopt": ({"Dockerfile": "FROM busybox\n"}, {"securityopt": "seccomp=unconfined"}),
    "version": ({"Dockerfile": "FROM busybox\n"}, {"version": "3"}),
}


@pytest.mark.scenario(
    "api/build/errors-before-stream",
    "A build refused before its first step MUST be an ordinary error response: 400 for a Dockerfile the "
    "parser or the instruction checks refuse ('dockerfile parse error on line N: ...', 'failed to parse "
    "Dockerfile: ...') and bad options, 500 for an unusable tag or a missing Dockerfile",
    ref="moby api/server/router/build/build_routes.go postBuild (errf before the first flush)",
)
@pytest.mark.parametrize("case", sorted(_EARLY))
def test_errors_before_stream(
    engine: EngineClient, cleanup: Cleanup, observe: Observations, case: str
) -> None:
    files, query = _EARLY[case]
    built = build(engine, files, **query)
    observe(case, built.record())
    assert built.status in (200, 400, 500)


_LATE: dict[str, str] = {
    "copy-missing": "FROM busybox\nCOPY nope /x\n",
    "copy-many-to-file": "FROM busybox\nCOPY f g /dst\n",
    "copy-chmod": "FROM busybox\nCOPY --chmod=755 f /f\n",
    "copy-heredoc": "FROM busybox\nCOPY <<EOF /x\nhello\nEOF\n",
    "copy-from-index": "FROM busybox\nCOPY --from=3 /x /x\n",
    "copy-from-current": "FROM busybox\nCOPY --from=0 /x /x\n",
    "chown-unknown-user": "FROM busybox\nCOPY --chown=nosuch f /f\n",
    "chown-format": "FROM busybox\nCOPY --chown=a:b:c f /f\n",
    "run-mount-flag": "FROM busybox\nRUN --mount=type=cache,target=/c echo\n",
    "stopsignal": "FROM busybox\nSTOPSIGNAL SIGNOPE\n",
    "expose-port": "FROM busybox\nEXPOSE 80 http\n",
    "expose-proto": "FROM busybox\nEXPOSE 80/xyz\n",
    "stage-reused": "FROM busybox AS a\nFROM busybox AS a\n",
    "add-url-refused": "FROM busybox\nADD http://127.0.0.1:1/file /x\n",
    "copy-url": "FROM busybox\nCOPY http://127.0.0.1:1/file /x\n",
    "from-blank": 'ARG B=""\nFROM $B\n',
    "expansion": "FROM busybox\nENV A=${B:?must be set}\n",
    "registry-down": "FROM 127.0.0.1:1/library/busybox\n",
}


@pytest.mark.scenario(
    "api/build/errors-in-stream",
    "A step that fails after the stream started MUST end it with an errorDetail line carrying dockerd's "
    "message (COPY failed: ..., invalid signal, Invalid containerPort, stage name already used, 'the --X "
    "option requires BuildKit', Go's network errors for URL sources and unreachable registries)",
    ref="moby builder/dockerfile/copy.go, dispatchers.go; pkg/streamformatter FormatError",
)
@pytest.mark.parametrize("case", sorted(_LATE))
def test_errors_in_stream(engine: EngineClient, cleanup: Cleanup, observe: Observations, case: str) -> None:
    built = build(engine, {"Dockerfile": _LATE[case], "f": "f", "g": "g"}, nocache=1)
    observe(case, built.record())
    assert built.status == 400 or "errorDetail" in built.others[-1]


@pytest.mark.scenario(
    "api/build/bad-context",
    "A body that is not a tar, or a Dockerfile that is a directory, MUST fail the build before it starts",
    ref="moby builder/remotecontext/archive.go FromArchive, detect.go",
)
def test_bad_context(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    directory = build(engine, {"Dockerfile/": None, "Dockerfile/x": "y"})
    observe("dockerfile-dir", directory.record())
    empty = build(engine, raw=b"")
    observe("empty-body", empty.record())
    directory.refused(500, "unexpected error reading Dockerfile: read ")
    directory.refused(500, "/Dockerfile: is a directory")
    empty.refused(500, "Cannot locate specified Dockerfile: Dockerfile")


# -- quiet, tags, cache -------------------------------------------------------------------------------
@pytest.mark.scenario(
    "api/build/quiet",
    'q=1 MUST stream nothing but the image ID ({"stream":"sha256:...\\n"}) on success; on a failure '
    "after the first step it MUST send the lines it held back, then the error",
    ref="moby api/server/router/build/build_routes.go postBuild (SuppressOutput)",
)
def test_quiet(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    ok = build(engine, {"Dockerfile": "FROM busybox\nRUN echo hidden\n"}, q=1, nocache=1)
    observe("success", ok.lines)
    observe("failure", build(engine, {"Dockerfile": "FROM busybox\nRUN echo shown; exit 5\n"}, q=1).record())
    observe("early-failure", build(engine, {"Dockerfile": "FROM busybox\nNOPE\n"}, q=1).record())
    assert len(ok.lines) == 1


@pytest.mark.scenario(
    "api/build/tags",
    "Each t= MUST tag the image ('Successfully tagged NAME' per distinct tag, :latest implied, duplicates "
    "once); the image MUST list them in RepoTags",
    ref="moby api/server/backend/build/tag.go sanitizeRepoAndTags, tagImages",
)
def test_tags(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    built = build(
        engine,
        {"Dockerfile": "FROM busybox\nLABEL tagged=yes\n"},
        t=["build-tag-a", "build-tag-a:latest", "build-tag-b:v2", "localhost:5000/x/build-tag-c:1"],
    )
    observe("build", built.record())
    built.ok()
    tagged = [ln for ln in built.stdout.splitlines() if ln.startswith("Successfully tagged ")]
    assert tagged == [
        "Successfully tagged build-tag-a:latest",
        "Successfully tagged build-tag-b:v2",
        "Successfully tagged localhost:5000/x/build-tag-c:1",
    ]
    repo_tags = observe("repo-tags", sorted(engine.get(f"{V}/images/build-tag-a/json").json()["RepoTags"]))
    assert repo_tags == ["build-tag-a:latest", "build-tag-b:v2", "localhost:5000/x/build-tag-c:1"]


@pytest.mark.scenario(
    "api/build/cache",
    "Rebuilding MUST reuse each step's image (' ---> Using cache') and give the same image ID; a changed "
    "COPY source MUST miss from that step on; nocache=1 MUST never use the cache",
    ref="moby image/cache/cache.go getLocalCachedImage, compare.go; builder/dockerfile/imageprobe.go",
)
def test_cache(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    token = secrets.token_hex(8)
    dockerfile = f'FROM busybox\nENV TOKEN={token}\nRUN echo run\nCOPY f /f\nRUN cat /f\nCMD ["sh"]\n'
    subs = {token: "<token>", tarsum("f", "one"): "<tarsum:one>", tarsum("f", "two"): "<tarsum:two>"}
    first = build(engine, {"Dockerfile": dockerfile, "f": "one"})
    again = build(engine, {"Dockerfile": dockerfile, "f": "one"})
    changed = build(engine, {"Dockerfile": dockerfile, "f": "two"})
    nocache = build(engine, {"Dockerfile": dockerfile, "f": "one"}, nocache=1)
    observe("first", first.record(subs))
    observe("again", again.record(subs))
    observe("same-image", again.image_id == first.image_id)
    observe("changed", changed.record(subs))
    observe("nocache", nocache.record(subs))
    observe("nocache-new-image", nocache.image_id != first.image_id)
    assert again.stdout.count("Using cache") == 5


@pytest.mark.scenario(
    "api/build/cache-from",
    "cachefrom=[image] MUST let a build reuse the steps of an image whose history matches, even without "
    "the parent chain (a loaded or pulled image)",
    ref="moby image/cache/cache.go ImageCache",
)
def test_cache_from(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    token = secrets.token_hex(8)
    dockerfile = f'FROM busybox\nENV TOKEN={token}\nRUN echo built > /out\nCMD ["cat", "/out"]\n'
    first = build(engine, {"Dockerfile": dockerfile}, t="build-cache-from:src")
    reused = build(engine, {"Dockerfile": dockerfile}, cachefrom=json.dumps(["build-cache-from:src"]))
    observe("reused", reused.record({token: "<token>"}))
    first.ok()
    reused.ok()
    assert reused.stdout.count(" ---> Using cache") == 3, reused.stdout
    assert observe("same-image", reused.image_id == first.image_id)


@pytest.mark.scenario(
    "api/build/cache-from-only-named",
    "With cachefrom given, the build MUST take cache only from the images it names: after an identical "
    "build, cachefrom naming an image that does not exist, or one that is not an ancestor of the steps, "
    "MUST print no ' ---> Using cache' and give a new image; naming the earlier build's tag MUST reuse "
    "every step",
    ref="moby image/cache/cache.go New, ImageCache.GetCache (isParent)",
)
def test_cache_from_only_named(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    token = secrets.token_hex(8)
    dockerfile = f'FROM busybox\nENV TOKEN={token}\nRUN echo built > /out\nCMD ["cat", "/out"]\n'
    first = build(engine, {"Dockerfile": dockerfile}, t="build-cache-only:src")
    first.ok()
    seen = {}
    for case, refs in {
        "missing": ["build-cache-only:nosuchtag"],
        "unrelated": ["busybox"],
        "named": ["build-cache-only:src"],
        "missing-and-named": ["build-cache-only:nosuchtag", "build-cache-only:src"],
    }.items():
        again = build(engine, {"Dockerfile": dockerfile}, cachefrom=json.dumps(refs))
        again.ok()
        seen[case] = {
            "using-cache": again.stdout.count(" ---> Using cache"),
            "same-image": again.image_id == first.image_id,
        }
    observe("builds", seen)
    assert seen == {
        "missing": {"using-cache": 0, "same-image": False},
        "unrelated": {"using-cache": 0, "same-image": False},
        "named": {"using-cache": 3, "same-image": True},
        "missing-and-named": {"using-cache": 3, "same-image": True},
    }


# -- options ---------------------------------------------------------------------------------------------
@pytest.mark.scenario(
    "api/build/buildargs",
    "buildargs MUST override ARG defaults; ARGs before FROM MUST expand FROM and be visible in a stage only "
    "once re-declared; proxy args MUST reach RUN without being declared and stay out of the history; a RUN "
    "with args MUST record '|N k=v ...' in its history; unused args MUST be warned about",
    ref="moby builder/dockerfile/buildargs.go; dispatchers.go prependEnvOnCmd",
)
def test_buildargs(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    dockerfile = (
        "ARG BASE=busybox\nARG META=meta-default\nFROM $BASE\nARG X=default\nARG META\nARG EMPTY\n"
        'RUN echo "X=$X META=$META BASE=$BASE EMPTY=$EMPTY proxy=$HTTP_PROXY/$http_proxy"\n'
        'FROM busybox\nRUN echo "second stage X=$X"\n'
    )
    args = {"X": "cli", "UNUSED": "u", "ALSO_UNUSED": None, "HTTP_PROXY": "p", "http_proxy": "q"}
    built = build(engine, {"Dockerfile": dockerfile}, buildargs=args, nocache=1)
    observe("build", built.record())
    built.ok()
    assert "X=cli META=meta-default BASE= EMPTY= proxy=p/q" in built.stdout
    assert "second stage X=\n" in built.stdout
    assert "[Warning] One or more build-args [ALSO_UNUSED UNUSED] were not consumed" in built.stdout
    stage_one = next(d for d in built.others if "aux" in d)["aux"]["ID"]
    history = observe("history", image_summary(engine, stage_one)["history"][:2])
    created_by = " ".join(str(h) for h in history)
    assert history[0]["CreatedBy"].startswith("|2 META=meta-default X=cli /bin/sh -c echo "), history
    assert "HTTP_PROXY=p" not in created_by and "http_proxy=q" not in created_by, history


@pytest.mark.scenario(
    "api/build/labels",
    "labels= MUST add one LABEL step per label (sorted) at the end of the last stage, never expanded",
    ref="moby builder/dockerfile/builder.go buildLabelOptions",
)
def test_labels(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    built = build(
        engine,
        {"Dockerfile": "FROM busybox AS first\nFROM busybox\nLABEL own=1\n"},
        labels={"b": "2", "a": "$HOME"},
        t="build-labels",
        nocache=1,
    )
    observe("build", built.record())
    built.ok()
    steps = [ln for ln in built.stdout.splitlines() if ln.startswith("Step ")]
    assert steps[-3:] == ["Step 3/5 : LABEL own=1", "Step 4/5 : LABEL a=$HOME", "Step 5/5 : LABEL b=2"]
    image = observe("image", image_summary(engine, "build-labels"))
    assert image["Config"]["Labels"] == {"own": "1", "a": "$HOME", "b": "2"}, image


@pytest.mark.kernel
@pytest.mark.scenario(
    "api/build/step-containers",
    "networkmode, extrahosts, shmsize, memory and cpusetcpus MUST apply to the RUN containers",
    ref="moby builder/dockerfile/internals.go hostConfigFromOptions",
)
def test_step_containers(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    cgroup = "cat /sys/fs/cgroup/{v1} 2>/dev/null || cat /sys/fs/cgroup/{v2}"
    dockerfile = (
        "FROM busybox\n"
        "RUN ls /sys/class/net; grep -c myhost /etc/hosts; grep myhost /etc/hosts\n"
        "RUN df -k /dev/shm | tail -1 | awk '{print $2}'\n"
        f"RUN {cgroup.format(v1='memory/memory.limit_in_bytes', v2='memory.max')}\n"
        f"RUN {cgroup.format(v1='cpuset/cpuset.cpus', v2='cpuset.cpus')}\n"
    )
    built = build(
        engine,
        {"Dockerfile": dockerfile},
        networkmode="none",
        extrahosts="myhost:10.1.2.3",
        shmsize=16 * 1024 * 1024,
        memory=64 * 1024 * 1024,
        cpusetcpus="0",
        nocache=1,
    )
    observe("build", built.record())
    built.ok()
    out = built.stdout
    assert "Running in" in out and "\nlo\n1\n10.1.2.3\tmyhost\n" in out  # networkmode=none, extrahosts
    assert "\n16384\n" in out  # shmsize
    assert "\n67108864\n" in out  # memory
    assert re.search(r"cpuset\.cpus\n ---> Running in \w+\n0\n", out), out  # cpusetcpus
    defaults = build(
        engine, {"Dockerfile": "FROM busybox\nRUN ls /sys/class/net; df -k /dev/shm | tail -1\n"}
    )
    observe("defaults", defaults.record())
    defaults.ok()
    assert "eth0" in defaults.stdout and " 65536 " in defaults.stdout, defaults.stdout


@pytest.mark.scenario(
    "api/build/platform",
    "platform= MUST be parsed (400 for an unknown one); FROM --platform and platform= MUST still use a "
    "local image of another platform (dockerd's classic builder takes what GetImage found)",
    ref="moby builder/dockerfile/dispatchers.go initializeStage; daemon/images/image.go GetImage",
)
def test_platform(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    amd64 = build(engine, {"Dockerfile": "FROM busybox\nRUN echo ok\n"}, platform="linux/amd64")
    observe("amd64", amd64.record())
    amd64.ok()
    other = build(
        engine, {"Dockerfile": "FROM --platform=linux/arm64 busybox\nRUN uname -m\n"}, t="build-arm"
    )
    observe("from-platform", other.record())
    other.ok()
    assert observe("architecture", engine.get(f"{V}/images/build-arm/json").json().get("Architecture"))
    bad = build(engine, {"Dockerfile": "FROM --platform=x/y/z/w busybox\n"})
    observe("bad-from-platform", bad.record())
    bad.failed('failed to parse platform x/y/z/w: "x/y/z/w": cannot parse platform specifier')


@pytest.mark.scenario(
    "api/build/compressed-context",
    "The context MAY be a gzip or bzip2 compressed tar (xz needs an xz binary next to dockerd)",
    ref="moby builder/remotecontext/archive.go FromArchive (DecompressStream)",
)
@pytest.mark.parametrize("compression", ["gzip", "bzip2"])
def test_compressed_context(
    engine: EngineClient, cleanup: Cleanup, observe: Observations, compression: str
) -> None:
    files = {"Dockerfile": "FROM busybox\nCOPY f /f\nRUN cat /f\n", "f": f"{compression} context\n"}
    built = build(engine, raw=context_tar(files, compression), nocache=1)
    observe(compression, built.record({tarsum("f", f"{compression} context\n"): "<tarsum:f>"}))
    built.ok()
    assert f"\n{compression} context\n" in built.stdout


@pytest.mark.scenario(
    "api/build/events",
    "A build MUST emit the step containers' create/attach/start/die/destroy events, image create events "
    "for the committed steps and a tag event",
    ref="moby daemon/images/image_commit.go CommitImage; builder/dockerfile/containerbackend.go",
)
def test_events(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    since = time.time()
    build(engine, {"Dockerfile": "FROM busybox\nENV E=1\nRUN true\nCOPY f /f\n", "f": "f"}, t="build-events")
    until = time.time() + 1
    for version in (V, "/v1.46"):  # image create events exist from API 1.46
        resp = engine.get(f"{version}/events?since={since:.3f}&until={until:.3f}")
        seen: list[Any] = [resp.status_code]
        for line in resp.text.splitlines() if resp.status_code == 200 else []:
            event = json.loads(line)
            if event.get("Type") not in ("container", "image"):
                continue
            attrs = dict(event["Actor"]["Attributes"])
            attrs.pop("name", None) if event["Type"] == "container" else None
            seen.append((event["Type"], event["Action"], sorted(attrs)))
        observe(f"events{version}", seen)
        assert seen[0] == 200
        actions = [(kind, action) for kind, action, _attrs in seen[1:]]
        for step in ("create", "attach", "start", "die", "destroy"):
            assert ("container", step) in actions, (version, actions)
        assert actions[-1] == ("image", "tag")
        assert (("image", "create") in actions) == (version == "/v1.46"), (version, actions)


# -- the CLI -------------------------------------------------------------------------------------------
@pytest.mark.scenario(
    "api/build/cli",
    "DOCKER_BUILDKIT=0 docker build MUST work as against dockerd (steps, 'Successfully built/tagged', "
    "exit 0; a failing RUN exits 1 with its message), and docker history MUST show the steps",
    ref="docker/cli cli/command/image/build.go (legacy builder)",
)
def test_cli(
    docker_cli: CLI, engine: EngineClient, cleanup: Cleanup, observe: Observations, tmp_path: Any
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text('FROM busybox\nCOPY f /f\nRUN cat /f\nCMD ["sh"]\n')
    (ctx / "f").write_text("from the cli\n")
    (ctx / ".dockerignore").write_text("secret\n")
    (ctx / "secret").write_text("s\n")
    env = {"DOCKER_BUILDKIT": "0"}

    def run(*args: str, stdin: str | None = None) -> dict[str, Any]:
        result = docker_cli(*args, env=env, timeout=180, input=stdin)
        out = result.stdout
        err = "\n".join(
            line
            for line in result.stderr.splitlines()
            if line.strip() and not line.startswith(("DEPRECATED:", " " * 12))
        )
        return {"rc": result.returncode, "stdout": out, "stderr": err}

    built = observe("build", run("build", "-t", "build-cli", str(ctx)))
    observe(
        "history",
        run("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Size}}|{{.Comment}}", "build-cli"),
    )
    observe("quiet-cached", run("build", "-q", str(ctx)))
    observe(
        "dockerfile-stdin", run("build", "--no-cache", "-f", "-", str(ctx), stdin="FROM busybox\nCOPY f /\n")
    )
    observe("no-context", run("build", "--no-cache", "-", stdin="FROM busybox\nRUN echo no context\n"))
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN exit 7\n")
    observe("failure", run("build", str(ctx)))
    assert built["rc"] == 0


@pytest.mark.scenario(
    "api/build/sdk",
    "The docker SDK's images.build (a Dockerfile object, a directory with .dockerignore, buildargs, "
    "labels, target) MUST return the image and the log lines; a failing step MUST raise BuildError with "
    "dockerd's message; containers.commit MUST return the committed image",
    ref="docker-py docker/models/images.py build, docker/api/build.py",
)
def test_sdk(docker_client: Any, cleanup: Cleanup, observe: Observations, tmp_path: Any) -> None:
    import io

    import docker

    image, logs = docker_client.images.build(
        fileobj=io.BytesIO(b"FROM busybox\nARG WHO=default\nRUN echo hello $WHO\n"),
        buildargs={"WHO": "sdk"},
        labels={"via": "sdk"},
        tag="build-sdk:1",
        rm=True,
    )
    fileobj_logs = observe("fileobj-logs", "".join(chunk.get("stream", "") for chunk in logs))
    assert "\nhello sdk\n" in fileobj_logs and "Successfully tagged build-sdk:1" in fileobj_logs
    assert observe("fileobj-image", {"tags": image.tags, "labels": image.labels}) == {
        "tags": ["build-sdk:1"],
        "labels": {"via": "sdk"},
    }
    (tmp_path / "Dockerfile").write_text("FROM busybox AS one\nCOPY . /ctx/\nRUN ls -a /ctx\nFROM busybox\n")
    (tmp_path / "kept").write_text("k")
    (tmp_path / "dropped").write_text("d")
    (tmp_path / ".dockerignore").write_text("dropped\n")
    _, logs = docker_client.images.build(path=str(tmp_path), target="one", nocache=True)
    path_logs = observe("path-logs", "".join(chunk.get("stream", "") for chunk in logs))
    assert "\n.dockerignore\nDockerfile\nkept\n" in path_logs and "dropped" not in path_logs, path_logs
    assert "Step 3/3" in path_logs  # target=one: the second stage is not built
    try:
        docker_client.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN echo failing; exit 9\n"))
        observe("failure", "no error")
        pytest.fail("images.build of a failing RUN returned instead of raising BuildError")

    except docker.errors.BuildError as exc:
        observe("failure", {"msg": exc.msg, "log": "".join(c.get("stream", "") for c in exc.build_log)})
        assert exc.msg == "The command '/bin/sh -c echo failing; exit 9' returned a non-zero code: 9"
    container = docker_client.containers.run("busybox", ["sh", "-c", "echo c > /c"], detach=True)
    container.wait()
    committed = container.commit(repository="build-sdk-commit", tag="v1", message="sdk", changes=["ENV C=1"])
    observe("commit", {"tags": committed.tags, "env": committed.attrs["Config"]["Env"]})
    assert committed.tags == ["build-sdk-commit:v1"] and "C=1" in committed.attrs["Config"]["Env"]

    container.remove(force=True)


@pytest.mark.scenario(
    "api/build/remote-context",
    "remote= MUST fetch the context: a text/plain body is the Dockerfile (COPY then has no context), an "
    "archive is the context ('Downloading context' progress first); an HTTP error, a refused connection, "
    "an unacceptable Content-Type and a string that is no URL MUST fail with dockerd's texts",
    ref="moby builder/remotecontext/detect.go Detect, remote.go downloadRemote",
)
def test_remote_context(daemon_factory: Any, registry: Any, observe: Observations) -> None:
    from harness.backends.base import DaemonHandle
    from harness.registry_images import Blob, _Pusher
    from harness.testimage import load_test_image

    dockerfile = Blob(b"FROM busybox\nRUN echo from a remote dockerfile\n", "application/octet-stream")
    archive = Blob(
        context_tar({"Dockerfile": "FROM busybox\nCOPY f /f\nRUN cat /f\n", "f": "remote file\n"}),
        "application/octet-stream",
    )
    copying = Blob(b"FROM busybox\nCOPY f /f\n", "application/octet-stream")
    pusher = _Pusher(registry.url, None, registry.ssl_context())
    for blob in (dockerfile, archive, copying):
        pusher.blob("remote/ctx", blob)
    handle: DaemonHandle = daemon_factory()
    host = registry.attach(handle)
    assert handle.endpoint is not None
    load_test_image(handle.endpoint)
    client = EngineClient(handle.endpoint)
    try:
        cases = {
            "dockerfile": f"http://{host}/v2/remote/ctx/blobs/{dockerfile.digest}",
            "archive": f"http://{host}/v2/remote/ctx/blobs/{archive.digest}",
            "no-context": f"http://{host}/v2/remote/ctx/blobs/{copying.digest}",
            "json": f"http://{host}/v2/",
            "not-found": f"http://{host}/v2/remote/ctx/blobs/sha256:{'0' * 64}",
            "refused": "http://127.0.0.1:1/context.tar",
            "not-a-url": "ftp.example/x",
        }
        for name, url in cases.items():
            built = build(client, raw=b"", remote=url, nocache=1)
            observe(name, subst(built.record(), {host: "<registry>"}))
    finally:
        client.close()
