"""Dockerfile stages run as dockerd's classic builder runs them (moby ``builder/dockerfile``).

``Builder(daemon, options, output).build(context, parsed)`` runs the stages and returns the image
ID. Each instruction is one step: ``Step i/n : <line>``, then ``---> <short id>`` of the image the
step produced. ``EXECUTORS`` maps each instruction type to what runs it: the metadata instructions
(``metadata.METADATA``: ENV, LABEL, CMD...) change the config and commit an empty step; RUN and
WORKDIR (``run.py``) and COPY/ADD (``copystep.py``) make layers; the cache and the commits are
``commit.StepCommitter``'s, base images ``baseimage.BaseImages``'.

Stages (``FROM x AS name``), ``COPY --from``, ``target``, ONBUILD triggers, build args, ``--label``
options, SHELL, the escape directive, and the options that shape the step containers (network
mode, extra hosts, shm size, cpu/memory limits) follow dockerd 28.5.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ApiError
from ..images.imagestore import Image
from ..log import go_quote
from . import instructions as ins
from .baseimage import BaseImages
from .buildargs import BuildArgs
from .commit import StepCommitter
from .context import Source
from .copystep import CopySteps
from .metadata import METADATA, MetaStep
from .options import BuildOptions
from .parser import ParseResult, parse
from .platforms import parse_platform
from .run import run_step, workdir_step
from .shell import Lex, ShellError, env_from_list
from .state import DEFAULT_PATH, Stages, State, short_id
from .stream import BuildError, BuildOutput

if TYPE_CHECKING:
    from ..daemon import Daemon

__all__ = ["EXECUTORS", "Builder", "build_from_config", "expand_command"]


@dataclass
class Step:
    """One instruction's surroundings: the lexer, its expansion environment, the finished stages."""

    lex: Lex
    env: dict[str, str]
    results: Stages


def expand_command(cmd: ins.Command, lex: Lex, env: dict[str, str]) -> None:
    """Expand the words buildkit expands for this instruction; a bad word is a 400."""
    try:
        cmd.expand(lambda word: lex.process_word(word, env))
    except ShellError as exc:
        raise BuildError(str(exc), 400) from None


def step_env(state: State) -> dict[str, str]:
    """The environment a step's words expand against: the config's Env and the allowed build args."""
    env_list = list(state.run_config.get("Env") or [])
    return env_from_list(env_list + state.build_args.filter_allowed(env_list))


async def _metadata(builder: Builder, state: State, cmd: ins.Command, step: Step) -> None:
    comment = METADATA[type(cmd)](state, cmd, MetaStep(step.lex, step.env, builder.out.stdout))
    await builder.committer.commit(state, comment)


async def _run(builder: Builder, state: State, cmd: Any, step: Step) -> None:
    await run_step(builder.committer, state, cmd)


async def _workdir(builder: Builder, state: State, cmd: Any, step: Step) -> None:
    await workdir_step(builder.committer, state, cmd)


async def _add(builder: Builder, state: State, cmd: Any, step: Step) -> None:
    await builder.copies.add(state, cmd)


async def _copy(builder: Builder, state: State, cmd: Any, step: Step) -> None:
    await builder.copies.copy(state, cmd, step.results)


Executor = Callable[["Builder", State, Any, Step], Awaitable[None]]

#: instruction type -> what runs it in the classic builder
EXECUTORS: dict[type[ins.Command], Executor] = {
    **dict.fromkeys(METADATA, _metadata),
    ins.RunCommand: _run,
    ins.WorkdirCommand: _workdir,
    ins.AddCommand: _add,
    ins.CopyCommand: _copy,
}


class Builder:
    """One classic build: the stages in order, each instruction through ``EXECUTORS``."""

    def __init__(self, daemon: Daemon, options: BuildOptions, output: BuildOutput) -> None:
        self.daemon = daemon
        self.options = options
        self.out = output
        self.committer = StepCommitter(daemon, options, output)
        self.images = BaseImages(daemon, options, output)
        self.copies = CopySteps(self.committer, self.images)
        self.escape = "\\"

    async def build(self, source: Source | None, parsed: ParseResult) -> str:
        self.copies.source = source
        self.escape = parsed.escape
        try:
            stages, meta = ins.parse_stages(parsed.nodes)
        except ins.InstructionError as exc:
            raise BuildError(str(exc), 400) from None
        if self.options.target:
            index = next(
                (i for i, s in enumerate(stages) if s.name.lower() == self.options.target.lower()), -1
            )
            if index < 0:
                raise BuildError(f"target stage {go_quote(self.options.target)} could not be found", 400)
            stages = stages[: index + 1]
        if stages:
            for key in sorted(self.options.labels):
                stages[-1].commands.append(ins.label_command(key, self.options.labels[key]))
        for line in parsed.warning_lines():
            self.out.stderr(line)
        if self.options.cache_from:
            self.committer.prober.cache_from = self._cache_sources()
        try:
            state = await self._dispatch_all(stages, meta)
        finally:
            await self.copies.release()
        if state is None or not state.image_id:
            raise BuildError("No image was generated. Is your Dockerfile empty?")
        return state.image_id

    async def remove_containers(self) -> None:
        """Remove the step containers still around (a cancelled build's)."""
        await self.committer.remove_containers()

    def _cache_sources(self) -> list[Image]:
        found = []
        for ref in self.options.cache_from:
            try:
                found.append(self.daemon.images.resolve(ref))
            except ApiError:
                self.daemon.log.warning(f"Could not look up {ref} for cache resolution, skipping")
        return found

    def _step(self, index: int, total: int, text: str) -> int:
        self.out.stdout(f"Step {index}/{total} : {text}")
        self.out.stdout("\n")
        return index + 1

    async def _dispatch_all(self, stages: list[ins.Stage], meta: list[ins.ArgCommand]) -> State | None:
        build_args = BuildArgs(self.options.build_args)
        total = len(meta) + len(stages) + sum(len(s.commands) for s in stages)
        index = 1
        lex = Lex(self.escape)
        for arg in meta:
            index = self._step(index, total, str(arg))
            expand_command(arg, lex, env_from_list([f"{k}={v}" for k, v in build_args.all_allowed().items()]))
            for key, value in arg.args:
                build_args.add(key, value)
                build_args.add_meta(key, value)
        results = Stages()
        state: State | None = None
        for stage in stages:
            results.check_name(stage.name)
            args = build_args.clone()
            args.reset_allowed()
            state = State(build_args=args)
            index = self._step(index, total, str(stage))
            await self._initialize_stage(state, stage, lex, results)
            state.update_run_config()
            self.out.stdout(f" ---> {short_id(state.image_id)}\n")
            for cmd in stage.commands:
                index = self._step(index, total, str(cmd))
                await self.dispatch(state, cmd, lex, results)
                state.update_run_config()
                self.out.stdout(f" ---> {short_id(state.image_id)}\n")
            if state.image_id:
                self.out.aux({"ID": state.image_id})
            build_args.merge_referenced(state.build_args)
            results.commit(state.stage_name, state.run_config)
        self.out.stdout(build_args.unused_warning())
        return state

    # -- FROM -------------------------------------------------------------------------------------
    async def _initialize_stage(self, state: State, stage: ins.Stage, lex: Lex, results: Stages) -> None:
        self.committer.prober.reset()
        platform = None
        meta_env = state.build_args.all_meta()
        if stage.platform:
            try:
                text = lex.process_word(stage.platform, meta_env)
            except ShellError as exc:
                raise BuildError(
                    f"failed to process arguments for platform {stage.platform}: {exc}"
                ) from None
            try:
                platform = parse_platform(text)
            except ValueError as exc:
                raise BuildError(f"failed to parse platform {text}: {exc}", 400) from None
        try:
            name = lex.process_word(stage.base_name, meta_env)
        except ShellError as exc:
            raise BuildError(str(exc)) from None
        if not name:
            raise BuildError(f"base name ({stage.base_name}) should not be blank")
        base = await self.images.image_or_stage(name, platform, results)
        state.stage_name = stage.name
        state.image_id = base.id
        state.os = base.os or "linux"
        if state.os != "linux":
            raise BuildError(f"operating system is not supported: {state.os}")
        state.run_config = base.run_config or {}
        state.base = base
        env = list(state.run_config.get("Env") or [])
        if not any(e.partition("=")[0] == "PATH" for e in env):
            state.run_config["Env"] = [*env, "PATH=" + DEFAULT_PATH]
        state.run_config["OpenStdin"] = False
        state.run_config["StdinOnce"] = False
        triggers = list(state.run_config.get("OnBuild") or [])
        if triggers:
            state.run_config["OnBuild"] = None
            await self._triggers(state, triggers, lex, results)

    async def _triggers(self, state: State, triggers: list[str], lex: Lex, results: Stages) -> None:
        self.out.stdout(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
        for trigger in triggers:
            state.update_run_config()
            try:
                parsed = parse(trigger)
            except Exception as exc:
                raise BuildError(str(exc)) from None
            if len(parsed.nodes) != 1:
                raise BuildError("onbuild trigger should be a single expression")
            try:
                cmd = ins.parse_command(parsed.nodes[0])
            except ins.InstructionError as exc:
                raise BuildError(str(exc)) from None
            if isinstance(cmd, ins.Stage):
                raise BuildError(f"{type(cmd).__name__} is not a command type")
            await self.dispatch(state, cmd, lex, results)

    # -- one instruction --------------------------------------------------------------------------
    async def dispatch(self, state: State, cmd: ins.Command, lex: Lex, results: Stages) -> None:
        env = step_env(state)
        expand_command(cmd, lex, env)
        executor = EXECUTORS.get(type(cmd))
        failed = True
        try:
            if executor is None:
                raise BuildError(f"unsupported command type: *instructions.{type(cmd).__name__}")
            await executor(self, state, cmd, Step(lex, env, results))
            failed = False
        finally:
            if self.options.force_remove or (self.options.remove and not failed):
                await self.committer.remove_containers()


_COMMIT_COMMANDS = (
    "cmd",
    "entrypoint",
    "healthcheck",
    "env",
    "expose",
    "label",
    "onbuild",
    "stopsignal",
    "user",
    "volume",
    "workdir",
)


async def build_from_config(
    daemon: Daemon, config: dict[str, Any], changes: list[str], os_name: str
) -> dict[str, Any]:
    """BuildFromConfig: ``docker commit --change`` instructions applied to a config (nothing committed).

    Errors raise BuildError with status 400 and dockerd's texts (``X is not a valid change command``).
    """
    if not changes:
        return config
    try:
        parsed = parse("\n".join(changes))
    except Exception as exc:
        raise BuildError(str(exc), 400) from None
    for node in parsed.nodes:
        if node.command not in _COMMIT_COMMANDS:
            raise BuildError(f"{node.value} is not a valid change command", 400)
    commands: list[ins.Command] = []
    for node in parsed.nodes:
        try:
            cmd = ins.parse_command(node)
        except ins.InstructionError as exc:
            raise BuildError(str(exc), 400) from None
        assert not isinstance(cmd, ins.Stage)
        commands.append(cmd)
    loop = asyncio.get_running_loop()
    builder = Builder(daemon, BuildOptions(no_cache=True), BuildOutput(loop, quiet=True))
    builder.committer.disable_commit = True
    state = State(build_args=BuildArgs())
    state.run_config = copy.deepcopy(config)
    state.image_id = str(config.get("Image") or "")
    state.os = os_name
    lex = Lex(parsed.escape)
    for cmd in commands:
        try:
            await builder.dispatch(state, cmd, lex, Stages())
        except BuildError as exc:
            raise BuildError(exc.message, 400) from None
        state.update_run_config()
    return state.run_config
