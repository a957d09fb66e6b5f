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
    observe("image", image_summary(engine, "build-metadata"))
    observe("container-config", engine.get("/v1.41/images/build-metadata/json").json().get("ContainerConfig"))


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
    for name, dockerfile in cases.items():
        built = build(engine, {"Dockerfile": dockerfile}, t=f"build-cmd-{name}", nocache=1)
        cfg = engine.get(f"/v1.41/images/build-cmd-{name}/json").json()["Config"]
        observe(name, {"status": built.status, "Cmd": cfg["Cmd"], "Entrypoint": cfg["Entrypoint"]})


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
    observe("history", image_summary(engine, "build-copy", subs=subs)["history"])


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
    target = build(engine, {"Dockerfile": dockerfile}, target="second", nocache=1, t="build-target")
    observe("target", target.record())
    observe("target-image", image_summary(engine, "build-target")["history"][:2])


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
    observe("child-onbuild", engine.get("/v1.41/images/build-onbuild-child/json").json()["Config"]["OnBuild"])


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
    for name, dockerfile in cases.items():
        observe(name, build(engine, {"Dockerfile": dockerfile}, nocache=1).record())


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
    observe("ignored", build(engine, files, nocache=1).record())
    files[".dockerignore"] = "secret\n!Dockerfile\n"
    observe("kept", build(engine, files, nocache=1).record())


@pytest.mark.scenario(
    "api/build/scratch",
    "FROM scratch MUST start from no layers: metadata steps work, COPY adds the first layer, RUN fails "
    "as there is no shell",
    ref="moby builder/dockerfile/dispatchers.go getImageOrStage (NoBaseImageSpecifier)",
)
def test_scratch(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    built = build(engine, {"Dockerfile": "FROM scratch\nENV A=b\nCOPY f /f\n", "f": "x"}, t="build-scratch")
    observe("build", built.record({tarsum("f", "x"): "<tarsum:f>"}))
    observe("image", image_summary(engine, "build-scratch", subs={tarsum("f", "x"): "<tarsum:f>"}))
    observe("run", build(engine, {"Dockerfile": "FROM scratch\nRUN true\n"}).record())


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
    "dockerfile= MAY name a Dockerfile in a subdirectory; COPY sources MUST stay inside the context "
    "('..' and absolute paths are relative to its root) and symlinks MUST be followed inside it",
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
