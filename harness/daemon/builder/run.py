"""RUN and WORKDIR steps of the classic builder, and running a step container with its output streamed.

RUN probes the cache with its command (``|n k=v`` build args in front when any are in play), runs a
container on refd's runtime with the output streamed to the build (stderr apart), fails the build
with ``The command '...' returned a non-zero code: N`` and commits the container's diff. WORKDIR
changes the config and makes the directory in a container that never runs.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import ApiError
from . import instructions as ins
from .commit import StepCommitter
from .metadata import resolve_cmd
from .state import State, copy_config, shell_of
from .stream import BuildError

if TYPE_CHECKING:
    from ..containers.model import Container
    from ..daemon import Daemon

__all__ = ["run_container", "run_step", "workdir_step"]


async def run_step(committer: StepCommitter, state: State, cmd: ins.RunCommand) -> None:
    if state.os != "linux":
        raise BuildError(f"operating system is not supported: {state.os}")
    if cmd.flags_used:
        raise BuildError(
            f"the --{cmd.flags_used[0]} option requires BuildKit. Refer to "
            "https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled"
        )
    rc = state.run_config
    cmd_from_args = resolve_cmd(cmd, rc)
    env = list(rc.get("Env") or [])
    build_args = state.build_args.filter_allowed(env)
    save_cmd = cmd_from_args
    if build_args:
        kept = sorted(
            e for e in build_args if state.build_args.referenced_or_not_builtin(e.partition("=")[0])
        )
        save_cmd = [f"|{len(kept)}", *kept, *(cmd_from_args or [])]
    probe = copy_config(rc, Cmd=save_cmd, ArgsEscaped=False)
    if save_cmd:
        probe["Entrypoint"] = None
    if committer.probe(state, probe):
        return
    run = copy_config(
        rc, Cmd=cmd_from_args, ArgsEscaped=False, Env=env + build_args, Healthcheck={"Test": ["NONE"]}
    )
    if save_cmd:
        run["Entrypoint"] = [""]
    c = await committer.create(state, run)
    out = committer.out
    code = await run_container(committer.daemon, c, out.stdout, out.stderr)
    if code != 0:
        message = f"The command '{' '.join(run.get('Cmd') or [])}' returned a non-zero code: {code}"
        raise BuildError(message, code=code)
    await committer.commit_container(state, c, probe)


async def run_container(
    daemon: Daemon, c: Container, stdout: Callable[[str], None], stderr: Callable[[str], None]
) -> int:
    """Start a created container attached to its output, streamed to the callbacks; its exit code."""
    from ..containers.shimclient import ShimConnection

    manager = daemon.containers
    done = asyncio.Event()
    tasks: list[asyncio.Future[None]] = []
    request = {"op": "attach", "stdin": False, "stdout": True, "stderr": True}

    async def connect(state_dir: str | None) -> None:
        if state_dir is None:
            done.set()
            return
        reader, writer = await ShimConnection.open(state_dir, request)

        async def pump() -> None:
            try:
                while True:
                    header = await reader.readexactly(8)
                    stream_id, size = struct.unpack(">BxxxI", header)
                    data = await reader.readexactly(size)
                    text = data.decode("utf-8", "replace")
                    if stream_id == 2:
                        stderr(text)
                    else:
                        stdout(text)
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                pass
            finally:
                writer.close()
                done.set()

        tasks.append(asyncio.ensure_future(pump()))

    manager.pending_attach.setdefault(c.id, []).append(connect)
    manager.emit(c, "attach")
    try:
        await manager.start(c)
    except ApiError as exc:  # the API's ": unknown" (a gRPC status) is not in the builder's text
        raise BuildError(exc.message.removesuffix(": unknown"), exc.status) from None
    await done.wait()
    result = await manager.wait(c, "not-running")
    for task in tasks:
        await task
    return int(result.get("StatusCode") or 0)


def workdir_path(current: str, path: str) -> str:
    """The WORKDIR a stage gets: absolute, cleaned, relative ones joined to the current one."""
    if not path:
        raise BuildError("cannot normalize nothing")
    if path.startswith("/"):
        return posixpath.normpath(path).replace("//", "/")
    return posixpath.normpath(posixpath.join("/", current, path)).replace("//", "/")


async def workdir_step(committer: StepCommitter, state: State, cmd: ins.WorkdirCommand) -> None:
    rc = state.run_config
    rc["WorkingDir"] = workdir_path(rc.get("WorkingDir") or "", cmd.path)
    if committer.disable_commit:
        return
    comment = "WORKDIR " + rc["WorkingDir"]
    config = copy_config(rc, Cmd=[*shell_of(rc), "#(nop) " + comment])
    if committer.probe(state, config):
        return
    committer.merge_parent_healthcheck(state, config)
    c = await committer.create(state, config)
    config["Hostname"] = c.id[:12]
    if config.get("Labels") is None:
        config["Labels"] = {}
    await asyncio.to_thread(_mkdir_workdir, committer, c, rc["WorkingDir"])
    await committer.commit_container(state, c, config)


def make_dirs_in_root(root: str, path: str) -> None:
    """mkdir -p of ``path`` inside ``root`` (symlinks followed within it), new directories 0755 root:root."""
    from ..scope import follow_in_scope

    full = follow_in_scope(root, path)
    missing = []
    cur = full
    while not os.path.lexists(cur) and cur != root:
        missing.append(cur)
        cur = os.path.dirname(cur)
    for directory in reversed(missing):
        os.mkdir(directory, 0o755)
        os.chown(directory, 0, 0)


def _mkdir_workdir(committer: StepCommitter, c: Container, workdir: str) -> None:
    layers = committer.store.layers
    root = layers.mount_rootfs(c.id)
    try:
        make_dirs_in_root(root, workdir)
    finally:
        layers.unmount_rootfs(c.id)
