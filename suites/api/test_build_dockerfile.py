"""Dockerfile instructions under the classic builder: the image config and history each one produces,
COPY/ADD file semantics, stages, ONBUILD, parser directives, ``.dockerignore``, pulls.

File metadata is observed from inside the built image (a RUN listing modes, owners, sizes and, for
files from the context, their mtimes); directories a step creates carry the build's time, so only
their mode and owner are recorded.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from typing import Any

import pytest

from harness.backends.base import DaemonHandle
from harness.client import EngineClient
from harness.fixtures import Observations

from ._build import Cleanup, build, cleanup, dir_tarsum, image_summary, slice_hash, subst, tarsum

__all__ = ["cleanup"]

LIST = (
    'find {paths} | sort | while read p; do if [ -d "$p" ]; then stat -c \'%n %F %a %u:%g\' "$p"; '
    "else stat -c '%n %F %a %u:%g %s %Y' \"$p\"; fi; done"
)


def listing(*paths: str) -> str:
    return "RUN " + LIST.format(paths=" ".join(paths)) + "\n"


@pytest.mark.scenario(
    "api/build/metadata-instructions",
    "ENV, LABEL, EXPOSE, VOLUME, USER, WORKDIR, STOPSIGNAL, HEALTHCHECK, SHELL, ENTRYPOINT, CMD, ONBUILD "
    "and MAINTAINER MUST set the image config (with ${VAR} expansion where dockerd expands) and record "
    "'#(nop)' history entries worded as dockerd words them",
    ref="moby builder/dockerfile/dispatchers.go",
)
def test_metadata_instructions(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    dockerfile = (
        "FROM busybox\n"
        'MAINTAINER "Jane <jane@example.com>"\n'
        'ENV A=1 B="x y" C=$A\n'
        "ENV D ${A}-${B:-z} ${NOPE:-default}\n"
        "LABEL l1=$A \"l 2\"=v \\\n  l3='$A'\n"
        "EXPOSE 80 8000-8001/udp ${A}0/tcp\n"
        'VOLUME ["/v1", "/v2"]\nVOLUME /v3 /v4\n'
        "USER 1000:1000\nWORKDIR /app\nWORKDIR sub\nWORKDIR $A\n"
        "STOPSIGNAL SIGUSR1\n"
        "HEALTHCHECK --interval=1m --timeout=3s --start-period=2s --retries=2 CMD curl -f http://localhost/\n"
        'HEALTHCHECK --interval=30s CMD ["true"]\n'
        'SHELL ["/bin/sh", "-ec"]\n'
        "ENTRYPOINT echo entry\n"
        'CMD ["a", "b"]\n'
        "ONBUILD RUN echo child of $A\n"
        "ARG LATE=1\n"
    )
    built = build(engine, {"Dockerfile": dockerfile}, t="build-metadata", nocache=1)
    observe("build", built.record())
    built.ok()
    image = observe("image", image_summary(engine, "build-metadata"))
    observe("container-config", engine.get("/v1.41/images/build-metadata/json").json().get("ContainerConfig"))
    cfg = image["Config"]
    assert {"A=1", "B=x y", "C=", "D=1-x y default"} <= set(cfg["Env"]), cfg["Env"]
    assert cfg["Labels"] == {"l1": "1", "l 2": "v", "l3": "$A"}
    assert sorted(cfg["ExposedPorts"]) == ["10/tcp", "80/tcp", "8000/udp", "8001/udp"]
    assert sorted(cfg["Volumes"]) == ["/v1", "/v2", "/v3", "/v4"]
    assert (cfg["User"], cfg["WorkingDir"], cfg["StopSignal"]) == ("1000:1000", "/app/sub/1", "SIGUSR1")
    assert cfg["Healthcheck"]["Test"] == ["CMD", "true"] and cfg["Shell"] == ["/bin/sh", "-ec"]
    assert (cfg["Entrypoint"], cfg["Cmd"]) == (["/bin/sh", "-ec", "echo entry"], ["a", "b"])
    assert cfg["OnBuild"] == ["RUN echo child of $A"]
    created = [h["CreatedBy"] for h in image["history"]]
    for words in (
        '/bin/sh -c #(nop)  MAINTAINER "Jane <jane@example.com>"',
        "/bin/sh -c #(nop)  EXPOSE 10/tcp 80 8000-8001/udp",
        "/bin/sh -c #(nop) WORKDIR /app/sub/1",
        "/bin/sh -c #(nop)  HEALTHCHECK &{[CMD true] 30s 0s 0s 0s 0}",
        '/bin/sh -ec #(nop)  ENTRYPOINT ["/bin/sh" "-ec" "echo entry"]',
    ):
        assert words in created, (words, created)


@pytest.mark.scenario(
    "api/build/cmd-entrypoint",
    "Shell-form CMD/ENTRYPOINT MUST be wrapped in the SHELL; ENTRYPOINT MUST reset an inherited CMD but "
    "not one set earlier in the stage; an empty ENTRYPOINT MUST clear it",
    ref="moby builder/dockerfile/dispatchers.go dispatchEntrypoint, dispatchCmd",
)
def test_cmd_entrypoint(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    cases = {
        "entrypoint-resets-cmd": 'FROM busybox\nENTRYPOINT ["echo"]\n',
        "cmd-then-entrypoint": 'FROM busybox\nCMD ["x"]\nENTRYPOINT echo\n',
        "empty-entrypoint": 'FROM busybox\nENTRYPOINT ["echo"]\nENTRYPOINT []\n',
        "shell-cmd": "FROM busybox\nCMD echo $HOME\n",
        "bare-cmd": "FROM busybox\nCMD\n",
    }
    expected = {
        "entrypoint-resets-cmd": (None, ["echo"]),
        "cmd-then-entrypoint": (["x"], ["/bin/sh", "-c", "echo"]),
        "empty-entrypoint": (None, None),
        "shell-cmd": (["/bin/sh", "-c", "echo $HOME"], None),
        "bare-cmd": (["/bin/sh", "-c"], None),
    }
    for name, dockerfile in cases.items():
        built = build(engine, {"Dockerfile": dockerfile}, t=f"build-cmd-{name}", nocache=1)
        cfg = engine.get(f"/v1.41/images/build-cmd-{name}/json").json()["Config"]
        observe(name, {"status": built.status, "Cmd": cfg["Cmd"], "Entrypoint": cfg["Entrypoint"]})
        built.ok()
        assert (cfg["Cmd"], cfg["Entrypoint"]) == expected[name], (name, cfg["Cmd"], cfg["Entrypoint"])


@pytest.mark.scenario(
    "api/build/run-forms",
    "RUN MUST run shell-form commands with the SHELL and exec-form ones as given (no variable expansion), "
    "with the stage's ENV, USER and WORKDIR, as a container of the step's image",
    ref="moby builder/dockerfile/dispatchers.go dispatchRun",
)
def test_run_forms(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    dockerfile = (
        'FROM busybox\nENV V=value\nRUN echo shell: $V\nRUN ["echo", "exec: $V"]\n'
        'SHELL ["/bin/sh", "-xc"]\nRUN echo traced\n'
        "WORKDIR /tmp/w\nUSER nobody\nRUN pwd; id; echo $HOME\n"
        "RUN <<EOF\necho from a heredoc\nEOF\n"
    )
    built = build(engine, {"Dockerfile": dockerfile}, nocache=1)
    observe("build", built.record())
    built.ok()
    out = built.stdout
    assert "\nshell: value\n" in out and "\nexec: $V\n" in out  # shell form expands, exec form does not
    assert "\ntraced\n" in out and "+ echo traced" in built.stderr  # the SHELL (sh -xc) runs it
    assert "\n/tmp/w\nuid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n/home\n" in out


@pytest.mark.scenario(
    "api/build/copy",
    "COPY MUST copy a file to a path, into an existing or '/'-terminated directory, a directory's contents "
    "(merged), wildcard matches, relative to WORKDIR, owned by root (or --chown's user and group) with "
    "modes and mtimes kept; its history MUST name the sources' hashes (file:, dir:, multi:)",
    ref="moby builder/dockerfile/copy.go performCopyForInfo; go-archive CopyWithTar",
)
def test_copy(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    files: dict[str, Any] = {
        "Dockerfile": (
            "FROM busybox\n"
            "COPY f /f\nCOPY f /existing-dir\nCOPY f /new-dir/\nCOPY dir /merged/\nCOPY dir/ /merged/\n"
            "COPY *.txt /wild/\nCOPY link /link-copied\n"
            "WORKDIR /w\nCOPY f rel\nCOPY f reldir/\n"
            "COPY --chown=nobody:nogroup dir /chowned/\nCOPY --chown=1000 f /uid-only\n"
            "COPY --chown=12:34 f /deep/new/parents/f\n"
            + listing(
                "/f",
                "/existing-dir",
                "/new-dir",
                "/merged",
                "/wild",
                "/link-copied",
                "/w",
                "/chowned",
                "/uid-only",
                "/deep",
            )
        ),
        "f": "file\n",
        "exec.sh": (0o755, "#!/bin/sh\n"),
        "a.txt": "a",
        "b.txt": "bb",
        "dir/": None,
        "dir/x": (0o600, "x"),
        "dir/sub/": None,
        "dir/sub/y": "yy",
        "link": ("link", "f"),
    }
    prefix = "FROM busybox\nRUN mkdir /existing-dir\n"
    files["Dockerfile"] = prefix + files["Dockerfile"].removeprefix("FROM busybox\n")
    dir_hash = slice_hash(
        "dir",
        sorted(
            [
                tarsum("dir/x", "x", 0o600),
                tarsum("dir/sub/y", "yy"),
                dir_tarsum("dir/"),
                dir_tarsum("dir/sub/"),
            ]
        ),
    )
    subs = {
        tarsum("f", "file\n"): "<tarsum:f>",
        dir_hash: "<dir:dir>",
        slice_hash("multi", [f"file:{tarsum('a.txt', 'a')}", f"file:{tarsum('b.txt', 'bb')}"]): "<multi:txt>",
    }
    built = build(engine, files, t="build-copy", nocache=1)
    observe("build", built.record(subs))
    built.ok()
    for line in (
        "/chowned/x regular file 600 65534:65534 1 1600000000",
        "/deep/new/parents/f regular file 644 12:34 5 1600000000",
        "/existing-dir/f regular file 644 0:0 5 1600000000",
        "/link-copied regular file 644 0:0 5 1600000000",
        "/merged/sub/y regular file 644 0:0 2 1600000000",
        "/new-dir/f regular file 644 0:0 5 1600000000",
        "/uid-only regular file 644 1000:1000 5 1600000000",
        "/w/rel regular file 644 0:0 5 1600000000",
        "/w/reldir/f regular file 644 0:0 5 1600000000",
        "/wild/b.txt regular file 644 0:0 2 1600000000",
    ):
        assert f"\n{line}\n" in built.stdout, line
    history = observe("history", image_summary(engine, "build-copy", subs=subs)["history"])
    created = [h["CreatedBy"] for h in history]
    assert "/bin/sh -c #(nop) COPY file:<tarsum:f> in /f " in created, created
    assert "/bin/sh -c #(nop) COPY <dir:dir> in /merged/ " in created, created
    assert "/bin/sh -c #(nop) COPY <multi:txt> in /wild/ " in created, created


def _archive(entries: dict[str, bytes], uid: int = 1234, gid: int = 5678) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid, info.mtime = len(data), 0o640, uid, gid, 1_500_000_000
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0)


@pytest.mark.scenario(
    "api/build/add",
    "ADD MUST unpack a local tar (plain or compressed) into the destination keeping the archive's owners, "
    "copy any other file like COPY, and refuse --chmod; COPY MUST NOT unpack",
    ref="moby builder/dockerfile/copy.go (allowLocalDecompression); go-archive IsArchivePath",
)
def test_add(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    files = {
        "Dockerfile": (
            "FROM busybox\nADD arch.tar.gz /x/\nADD arch.tar.gz /y\nADD plain.txt /p/\nCOPY arch.tar.gz /c/\n"
            "ADD --chown=1:1 arch.tar.gz /owned/\n" + listing("/x", "/y", "/p", "/c", "/owned")
        ),
        "arch.tar.gz": _archive({"t1": b"one", "sub/t2": b"two"}),
        "plain.txt": "plain",
    }
    built = build(engine, files, nocache=1)
    observe("build", built.record())
    built.ok()
    for line in (
        "/x/t1 regular file 640 1234:5678 3 1500000000",
        "/y/sub/t2 regular file 640 1234:5678 3 1500000000",
        "/owned/t1 regular file 640 1234:5678 3 1500000000",
        "/p/plain.txt regular file 644 0:0 5 1600000000",
        "/c/arch.tar.gz regular file 644 0:0 125 1600000000",
    ):
        assert f"\n{line}\n" in built.stdout, line


@pytest.mark.scenario(
    "api/build/multistage",
    "Stages MUST build in order; COPY --from MUST take files from a stage (by name or index) or an image, "
    "keeping their owners; target= MUST stop after the named stage; each stage MUST emit its aux ID",
    ref="moby builder/dockerfile/dispatchers.go dispatchCopy getImageMount; evaluator.go stagesBuildResults",
)
def test_multistage(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    dockerfile = (
        "FROM busybox AS Builder\nRUN echo built > /out && chown 12:34 /out\n"
        "FROM busybox AS second\nRUN echo unused\n"
        "FROM builder\nCOPY --from=builder /out /from-name\nCOPY --from=0 /out /from-index\n"
        "COPY --from=busybox /bin/true /from-image\n"
        "RUN stat -c '%n %F %a %u:%g %s' /from-name /from-index /from-image\n"
    )
    built = build(engine, {"Dockerfile": dockerfile}, nocache=1)
    observe("build", built.record())
    built.ok()
    assert len([d for d in built.others if "aux" in d]) == 3  # one aux ID per stage
    assert "\n/from-name regular file 644 12:34 6\n/from-index regular file 644 12:34 6\n" in built.stdout
    assert "\n/from-image regular file 755 0:0 " in built.stdout
    target = build(engine, {"Dockerfile": dockerfile}, target="second", nocache=1, t="build-target")
    observe("target", target.record())
    target.ok()
    assert "Step 4/4 : RUN echo unused" in target.stdout and "COPY" not in target.stdout
    history = observe("target-image", image_summary(engine, "build-target")["history"][:2])
    assert history[0]["CreatedBy"] == "/bin/sh -c echo unused"


@pytest.mark.scenario(
    "api/build/onbuild",
    "ONBUILD triggers MUST be stored in the image and run right after FROM in a child build ('# Executing "
    "N build triggers'), and not be inherited by the child",
    ref="moby builder/dockerfile/dispatchers.go initializeStage dispatchTriggeredOnBuild",
)
def test_onbuild(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    base = build(
        engine,
        {"Dockerfile": "FROM busybox\nONBUILD RUN echo triggered\nONBUILD ENV T=1\n"},
        t="build-onbuild-base",
        nocache=1,
    )
    observe("base", base.record())
    child = build(
        engine, {"Dockerfile": "FROM build-onbuild-base\nRUN echo child T=$T\n"}, t="build-onbuild-child"
    )
    observe("child", child.record())
    base.ok()
    child.ok()
    assert "Step 1/2 : FROM build-onbuild-base\n# Executing 2 build triggers\n" in child.stdout
    assert "\ntriggered\n" in child.stdout and "\nchild T=1\n" in child.stdout
    config = engine.get("/v1.41/images/build-onbuild-child/json").json()["Config"]
    assert observe("child-onbuild", config["OnBuild"]) is None
    base_config = engine.get("/v1.41/images/build-onbuild-base/json").json()["Config"]
    assert base_config["OnBuild"] == ["RUN echo triggered", "ENV T=1"]


@pytest.mark.scenario(
    "api/build/parser",
    "The escape directive, line continuations (with comments and empty lines inside, the latter warned "
    "about), the syntax directive, JSON forms and instruction case MUST be handled as dockerd parses them",
    ref="moby buildkit frontend/dockerfile/parser",
)
def test_parser(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    cases = {
        "escape-backtick": "# escape=`\nFROM busybox\nRUN echo one `\n  two \\ three\n",
        "continuations": "FROM busybox\nRUN echo a \\\n# inside\n  b \\\n\n  c\n",
        "syntax-directive": "# syntax=docker/dockerfile:1\n# note\nfrom busybox\nrun echo lower\n",
        "json-forms": (
            'FROM busybox\nRUN ["sh", "-c", "echo json"]\nRUN [ "echo" , "spaced" ]\nRUN [bad json\n'
        ),
    }
    built = {}
    for name, dockerfile in cases.items():
        built[name] = build(engine, {"Dockerfile": dockerfile}, nocache=1)
        observe(name, built[name].record())
    built["escape-backtick"].ok()
    assert "\none two  three\n" in built["escape-backtick"].stdout
    built["continuations"].ok()
    assert "\na b c\n" in built["continuations"].stdout
    assert "[WARNING]: Empty continuation line found in: RUN echo a   b   c" in built["continuations"].stderr
    built["syntax-directive"].ok()
    assert "\nlower\n" in built["syntax-directive"].stdout
    built["json-forms"].failed("The command '/bin/sh -c [bad json' returned a non-zero code: 127")
    assert "\njson\n" in built["json-forms"].stdout and "\nspaced\n" in built["json-forms"].stdout


@pytest.mark.scenario(
    "api/build/dockerignore",
    ".dockerignore MUST remove itself and the Dockerfile from the context when it lists them; other files "
    "it lists stay (the client filters the context, not the daemon)",
    ref="moby builder/remotecontext/detect.go removeDockerfile",
)
def test_dockerignore(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    files = {
        "Dockerfile": "FROM busybox\nCOPY . /ctx/\nRUN find /ctx | sort\n",
        ".dockerignore": "# comment\n/secret\nDockerfile\n.dockerignore\n**/*.log\n",
        "secret": "s",
        "keep": "k",
        "d/": None,
        "d/x.log": "l",
    }
    ignored = build(engine, files, nocache=1)
    observe("ignored", ignored.record())
    files[".dockerignore"] = "secret\n!Dockerfile\n"
    kept = build(engine, files, nocache=1)
    observe("kept", kept.record())
    ignored.ok()
    assert "\n/ctx\n/ctx/d\n/ctx/d/x.log\n/ctx/keep\n/ctx/secret\n" in ignored.stdout
    kept.ok()
    assert (
        "\n/ctx\n/ctx/.dockerignore\n/ctx/Dockerfile\n/ctx/d\n/ctx/d/x.log\n/ctx/keep\n/ctx/secret\n"
        in kept.stdout
    )


@pytest.mark.scenario(
    "api/build/dockerfile-generated-name",
    "A Dockerfile sent inside the context under a generated name MUST build: as the docker CLI sends one "
    "from outside the context (.dockerfile.<hex>, listed in .dockerignore, so COPY . leaves it out), and as "
    "docker-py sends it (dockerfile= given twice, the generated name then the Dockerfile's text: the first "
    "value counts, as Go's FormValue); the docker SDK's build with a Dockerfile outside the context MUST "
    "work",
    ref="docker/cli build.AddDockerfileToBuildContext; docker-py utils/build.py process_dockerfile; "
    "moby api/server/router/build/build_routes.go",
)
def test_dockerfile_generated_name(
    engine: EngineClient, docker_client: Any, tmp_path: Any, cleanup: Cleanup, observe: Observations
) -> None:
    name = ".dockerfile.0123456789abcdef0123"
    dockerfile = "FROM busybox\nCOPY . /ctx/\nRUN find /ctx | sort\n"
    files = {"keep": "k", ".dockerignore": f"*.md\n{name}", name: dockerfile}
    cli_form = build(engine, files, dockerfile=name, nocache=1)
    observe("cli-form", cli_form.record())
    cli_form.ok()
    assert "\n/ctx\n/ctx/.dockerignore\n/ctx/keep\n" in cli_form.stdout
    sdk_form = build(engine, {"keep": "k", name: dockerfile}, dockerfile=[name, dockerfile], nocache=1)
    observe("sdk-form", sdk_form.record())
    sdk_form.ok()
    assert f"\n/ctx\n/ctx/{name}\n/ctx/keep\n" in sdk_form.stdout
    context, outside = tmp_path / "context", tmp_path / "elsewhere"
    context.mkdir()
    outside.mkdir()
    (context / "keep").write_text("k")
    (outside / "Dockerfile").write_text('FROM busybox\nCOPY keep /keep\nCMD ["cat", "/keep"]\n')
    image, _ = docker_client.images.build(path=str(context), dockerfile=str(outside / "Dockerfile"), rm=True)
    # run detached and read the logs: docker-py's run() returns None for a log driver other than
    # json-file or journald (the local-logs profile's local)
    ctr = docker_client.containers.run(image.id, detach=True)
    try:
        ctr.wait(timeout=60)
        out = ctr.logs()
    finally:
        ctr.remove(force=True)
    assert observe("sdk-run", out) == b"k"


@pytest.mark.scenario(
    "api/build/scratch",
    "FROM scratch MUST start from no layers: metadata steps work, COPY adds the first layer, RUN fails "
    "as there is no shell",
    ref="moby builder/dockerfile/dispatchers.go getImageOrStage (NoBaseImageSpecifier)",
)
def test_scratch(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    built = build(engine, {"Dockerfile": "FROM scratch\nENV A=b\nCOPY f /f\n", "f": "x"}, t="build-scratch")
    observe("build", built.record({tarsum("f", "x"): "<tarsum:f>"}))
    built.ok()
    image = observe("image", image_summary(engine, "build-scratch", subs={tarsum("f", "x"): "<tarsum:f>"}))
    assert image["Layers"] == 1 and [h["CreatedBy"] for h in image["history"]] == [
        "/bin/sh -c #(nop) COPY file:<tarsum:f> in /f ",
        "/bin/sh -c #(nop)  ENV A=b",
    ]
    run = build(engine, {"Dockerfile": "FROM scratch\nRUN true\n"})
    observe("run", run.record())
    run.failed('exec: "/bin/sh": stat /bin/sh: no such file or directory')


@pytest.mark.scenario(
    "api/build/pull",
    "A base image that is not local (or pull=1) MUST be pulled, its progress in the build's stream",
    ref="moby daemon/images/image_builder.go GetImageAndReleasableLayer pullForBuilder",
)
def test_pull(daemon_factory: Any, registry: Any, observe: Observations) -> None:
    handle: DaemonHandle = daemon_factory()
    host = registry.attach(handle)
    assert handle.endpoint is not None
    client = EngineClient(handle.endpoint)
    try:
        dockerfile = f"FROM {host}/library/busybox:latest\nRUN echo pulled base\n"
        first = build(client, {"Dockerfile": dockerfile}, nocache=1)
        observe("first", _pull_record(first, host))
        again = build(client, {"Dockerfile": dockerfile}, nocache=1)
        observe("local", _pull_record(again, host))
        forced = build(client, {"Dockerfile": dockerfile}, nocache=1, pull=1)
        observe("pull=1", _pull_record(forced, host))
        missing = build(client, {"Dockerfile": f"FROM {host}/library/nosuch\n"})
        observe("missing", _pull_record(missing, host))
    finally:
        client.close()


def _pull_record(built: Any, host: str) -> Any:
    """The build with pull progress reduced to its messages (per-layer progress is timing)."""
    others = []
    for line in built.others:
        if "status" in line and "id" in line:
            continue  # per-layer lines: Pulling fs layer, Downloading..., Pull complete
        others.append({k: v for k, v in line.items() if k in ("status", "errorDetail", "error", "aux")})
    out = {"status": built.status, "stdout": built.stdout, "others": others}
    return subst(out, {host: "<registry>"})


@pytest.mark.scenario(
    "api/build/context-paths",
    "dockerfile= MAY name a Dockerfile in a subdirectory; a COPY source whose '..' leaves the context MUST "
    "fail the build with 'forbidden path outside the build context'",
    ref="moby builder/remotecontext/detect.go FullPath (FollowSymlinkInScope)",
)
def test_context_paths(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    files = {
        "sub/": None,
        "sub/Dockerfile.dev": "FROM busybox\nCOPY ../../f /up\nCOPY /f /abs\nCOPY escape /escape\n"
        + listing("/up", "/abs", "/escape"),
        "f": "root file",
        "escape": ("link", "/../../../f"),
    }
    built = build(engine, files, dockerfile="sub/Dockerfile.dev", nocache=1)
    observe("build", built.record())
    assert "Step 1/5 : FROM busybox" in built.stdout  # the Dockerfile was found in sub/
    built.failed("COPY failed: forbidden path outside the build context: ../../f ()")


@pytest.mark.scenario(
    "api/build/add-url",
    "ADD of an http URL MUST download it (progress in the stream), name the file after the URL's path "
    "(or __unnamed__ when it has none and the destination is a file), keep it unpacked, and record "
    "the download's hash; an HTTP error status MUST fail the step with dockerd's 'failed to GET' text",
    ref="moby builder/dockerfile/copy.go downloadSource; builder/remotecontext/remote.go GetWithStatusError",
)
def test_add_url(daemon_factory: Any, registry: Any, observe: Observations) -> None:
    handle: DaemonHandle = daemon_factory()
    host = registry.attach(handle)
    assert handle.endpoint is not None
    client = EngineClient(handle.endpoint)
    try:
        from harness.testimage import load_test_image

        load_test_image(handle.endpoint)
        dockerfile = (
            f"FROM busybox\nADD http://{host}/v2/ /api.json\nADD http://{host}/v2/_catalog /dir/\n"
            "RUN cat /api.json; echo; ls -ln /dir; stat -c '%a %u:%g %Y' /api.json\n"
        )
        built = build(client, {"Dockerfile": dockerfile}, nocache=1)
        observe("build", subst(built.record(), {host: "<registry>"}))
        missing = build(client, {"Dockerfile": f"FROM busybox\nADD http://{host}/v2/nosuch/x /x\n"})
        observe("not-found", subst(missing.record(), {host: "<registry>"}))
        unnamed = build(client, {"Dockerfile": f"FROM busybox\nADD http://{host}/v2/ /dir/\n"})
        observe("unnamed-into-dir", subst(unnamed.record(), {host: "<registry>"}))
    finally:
        client.close()
