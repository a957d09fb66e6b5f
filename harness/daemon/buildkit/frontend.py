"""The ``dockerfile.v0`` frontend, run by refd itself: a Dockerfile built with BuildKit's semantics.

It shares the classic builder's parser (``builder.parser``/``builder.instructions``: the same
syntax, flags and parse errors), its word expansion, its metadata table (``builder.metadata``: what
ENV, LABEL, CMD... do to the config), its COPY/ADD machinery (``builder.copy``) and its way of
running a step container (``builder.run.run_container``). Where BuildKit differs, dockerd 28.5's
BuildKit is followed:

- only the stages the target needs are built (``--target``, else the last; a stage is needed when
  the target's ``FROM``, ``COPY --from`` or ``RUN --mount=from=`` reaches it);
- metadata instructions make no step and no container: they change the config and add a history
  entry (``empty_layer``) with BuildKit's texts (``HEALTHCHECK {Test:[...] Interval:...}``,
  ``EXPOSE [80/tcp]``); CMD sets ``ArgsEscaped``;
- RUN, COPY, ADD and WORKDIR are the steps (``[stage i/n] RUN ...``, names with the stage's
  variables expanded); their history says ``RUN /bin/sh -c ... # buildkit`` and a step whose diff
  is empty adds no layer;
- the cache is keyed on what a step does and reads (its command, environment, working directory,
  user, mounts; the content of the files it copies), not on image parents: ``buildkit.cache``;
- ``RUN --mount=type=secret|cache|bind|tmpfs|ssh``, ``--network``, heredocs, ``COPY --chmod``,
  ``--link``, ``--from``, ``ARG`` in ``FROM``, ``.dockerignore`` and ``<Dockerfile>.dockerignore``.

The client's context and Dockerfile come through its session (``buildkit.session``); progress goes
to the build's Status stream (``buildkit.progress``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import re
import shutil
import tempfile
from typing import TYPE_CHECKING

from ..builder import instructions as ins
from ..builder.buildargs import BuildArgs
from ..builder.metadata import METADATA, MetaStep
from ..builder.parser import ParseError, parse
from ..builder.shell import Lex, ShellError, env_from_list
from ..builder.state import DEFAULT_PATH, State
from ..builder.stream import BuildError
from ..images.reference import ReferenceError, parse_normalized_named, tag_name_only
from .control import BuildFailed
from .filesteps import FileSteps
from .runstep import RunSteps, mount_options
from .stage import BuildResult, StageState, cache_key, history_entry, history_text

if TYPE_CHECKING:
    from ..images.imagestore import Image
    from .control import Build, Controller
    from .session import Session

__all__ = ["BuildResult", "run_dockerfile"]

_LAYER_KINDS = (ins.RunCommand, ins.CopyCommand, ins.AddCommand, ins.WorkdirCommand)


class DockerfileFrontend(RunSteps, FileSteps):
    def __init__(self, ctl: Controller, build: Build, session: Session, attrs: dict[str, str]) -> None:
        from ..goformat import go_arch

        self.ctl = ctl
        self.daemon = ctl.daemon
        self.store = ctl.daemon.images
        self.cache = ctl.cache
        self.build = build
        self.progress = build.progress
        self.session = session
        self.attrs = attrs
        self.filename = attrs.get("filename") or "Dockerfile"
        self.tmp = tempfile.mkdtemp(prefix="refd-buildkit-", dir=self.store.tmp_root)
        self.context_dir = ""
        self.excludes: list[str] = []
        self.stage_results: dict[int, StageState] = {}
        self.arch = go_arch()
        self.no_cache = "no-cache" in attrs
        self.imported = {}
        self.no_cache_stages = {s for s in attrs.get("no-cache", "").split(",") if s}

    # -- the whole build ------------------------------------------------------------------------------

    # -- the whole build ------------------------------------------------------------------------------
    async def run(self) -> BuildResult:
        try:
            text = await self._load_definition()
            try:
                parsed = parse(text)
                stages, meta = ins.parse_stages(parsed.nodes)
            except (ParseError, ins.InstructionError) as exc:
                raise BuildFailed(str(exc)) from None
            if not stages:
                raise BuildFailed("the Dockerfile (Dockerfile) cannot be empty")
            self.lex = Lex(parsed.escape)
            self.meta_args = self._meta_args(meta)
            target = self._target(stages)
            needed = self._needed(stages, target)
            self.labels = len(stages) > 1
            bases = await self._load_metadata(stages, needed)
            await self._load_dockerignore()
            await self._load_cache_imports()
            states = {i: self._new_stage(stages, i) for i in needed}
            await self._sources(stages, needed, states, bases)
            result = None
            for index in needed:
                result = await self._run_stage(stages, index, bases, states[index])
                self.stage_results[index] = result
            assert result is not None and result.state is not None
            labels = {k.removeprefix("label:"): v for k, v in self.attrs.items() if k.startswith("label:")}
            if labels:
                result.state.run_config["Labels"] = {
                    **(result.state.run_config.get("Labels") or {}),
                    **labels,
                }
            await asyncio.to_thread(self.cache.save)
            return BuildResult(result)
        finally:
            await asyncio.to_thread(shutil.rmtree, self.tmp, True)

    # -- the Dockerfile ----------------------------------------------------------------------------------
    async def _load_definition(self) -> bytes:
        step = self.progress.step(f"[internal] load build definition from {self.filename}").start()
        status = step.status("transferring dockerfile:")
        dest = os.path.join(self.tmp, "dockerfile")
        os.mkdir(dest)
        dir_key = self.attrs.get("dockerfilekey") or "dockerfile"
        name = os.path.basename(self.filename)
        follow = [name, name + ".dockerignore"]
        if name == "Dockerfile":
            follow.append("dockerfile")
        try:
            sent = await self.session.fetch_dir(dir_key, dest, follow=follow, progress=status.update)
        except Exception as exc:
            step.done(str(exc))
            raise
        status.done(sent)
        path = os.path.join(dest, name)
        if (
            not os.path.exists(path)
            and name == "Dockerfile"
            and os.path.exists(os.path.join(dest, "dockerfile"))
        ):
            path = os.path.join(dest, "dockerfile")
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError:
            message = f"failed to read dockerfile: open {name}: no such file or directory"
            step.done(message)
            raise BuildFailed(message) from None
        ignore = os.path.join(dest, name + ".dockerignore")
        if os.path.exists(ignore):
            from ..builder.context import read_ignore_file

            with open(ignore, "rb") as fh:
                self.excludes = read_ignore_file(fh.read())
            self.dockerfile_ignore = True
        step.done()
        return data

    def _meta_args(self, meta: list[ins.ArgCommand]) -> BuildArgs:
        args = BuildArgs(self._build_args())
        for cmd in meta:
            env = env_from_list([f"{k}={v}" for k, v in args.all_meta().items() if v is not None])
            self._expand(cmd, env)
            for key, value in cmd.args:
                args.add(key, value)
                args.add_meta(key, value)
        return args

    def _build_args(self) -> dict[str, str | None]:
        return {k.removeprefix("build-arg:"): v for k, v in self.attrs.items() if k.startswith("build-arg:")}

    def _expand(self, cmd: ins.Command, env: dict[str, str]) -> None:
        try:
            cmd.expand(lambda word: self.lex.process_word(word, env))
        except ShellError as exc:
            raise BuildFailed(str(exc)) from None

    def _target(self, stages: list[ins.Stage]) -> int:
        target = self.attrs.get("target", "")
        if not target:
            return len(stages) - 1
        for i, stage in enumerate(stages):
            if stage.name.lower() == target.lower():
                return i
        raise BuildFailed(f"target stage {json.dumps(target)} could not be found")

    def _stage_index(self, stages: list[ins.Stage], ref: str, before: int) -> int | None:
        for i, stage in enumerate(stages[:before]):
            if stage.name and stage.name == ref.lower():
                return i
        if re.fullmatch(r"[0-9]+", ref) and int(ref) < before:
            return int(ref)
        return None

    def _base_name(self, stage: ins.Stage) -> str:
        env = {k: v for k, v in self.meta_args.all_meta().items() if v is not None}
        try:
            name = self.lex.process_word(stage.base_name, env)
        except ShellError as exc:
            raise BuildFailed(str(exc)) from None
        if not name:
            raise BuildFailed(f"base name ({stage.base_name}) should not be blank")
        return name

    def _needed(self, stages: list[ins.Stage], target: int) -> list[int]:
        deps: dict[int, set[int]] = {}
        for i, stage in enumerate(stages):
            found: set[int] = set()
            base = self._stage_index(stages, self._base_name(stage), i)
            if base is not None:
                found.add(base)
            for cmd in stage.commands:
                refs: list[str] = []
                if isinstance(cmd, ins.CopyCommand) and cmd.from_:
                    refs.append(cmd.from_)
                if isinstance(cmd, ins.RunCommand):
                    refs += [m.get("from", "") for m in (mount_options(t) for t in cmd.mounts)]
                for ref in refs:
                    if not ref:
                        continue
                    index = self._stage_index(stages, ref, len(stages))
                    if index is not None:
                        if index == i:
                            raise BuildFailed(f"circular dependency detected on stage: {stage.name or i}")
                        found.add(index)
            deps[i] = found
        order: list[int] = []

        def visit(i: int, path: tuple[int, ...]) -> None:
            if i in order:
                return
            if i in path:
                raise BuildFailed(f"circular dependency detected on stage: {stages[i].name or i}")
            for d in sorted(deps[i]):
                visit(d, (*path, i))
            order.append(i)

        visit(target, ())
        return order

    @staticmethod
    def _uses_context(stage: ins.Stage) -> bool:
        for cmd in stage.commands:
            if isinstance(cmd, ins.CopyCommand) and not cmd.from_ and cmd.files.sources:
                return True
            if isinstance(cmd, ins.AddCommand) and any(
                not s.startswith(("http://", "https://")) for s in cmd.files.sources
            ):
                return True
            if isinstance(cmd, ins.RunCommand):
                for text in cmd.mounts:
                    opts = mount_options(text)
                    if opts.get("type", "bind") == "bind" and not opts.get("from"):
                        return True
        return False

    # -- sources ---------------------------------------------------------------------------------------

    # -- sources ---------------------------------------------------------------------------------------
    async def _load_metadata(self, stages: list[ins.Stage], needed: list[int]) -> dict[str, Image]:
        bases: dict[str, Image] = {}
        for i in needed:
            name = self._base_name(stages[i])
            if name == "scratch" or self._stage_index(stages, name, i) is not None or name in bases:
                continue
            normalized = _normalized(name)
            step = self.progress.step(f"[internal] load metadata for {normalized}").start()
            try:
                bases[name] = await self._resolve_image(name)
            except BuildFailed as exc:
                step.done(str(exc))
                raise
            step.done()
        return bases

    async def _resolve_image(self, name: str) -> Image:
        from ..builder.baseimage import BaseImages
        from ..builder.options import BuildOptions
        from ..builder.stream import BuildOutput

        pull = self.attrs.get("image-resolve-mode") == "pull"
        options = BuildOptions(pull=pull)
        with contextlib.suppress(ReferenceError):
            domain = parse_normalized_named(name).domain
            user, secret = await self.session.credentials(domain)
            if user or secret:
                options.auth_configs = {domain: {"username": user, "password": secret}}
        out = BuildOutput(asyncio.get_running_loop(), quiet=True)
        try:
            return await BaseImages(self.daemon, options, out).get_image(name, False, None)
        except BuildError as exc:
            raise BuildFailed(
                f"{name}: failed to resolve source metadata for {_normalized(name)}: {exc.message}"
            ) from None

    async def _load_dockerignore(self) -> None:
        step = self.progress.step("[internal] load .dockerignore").start()
        status = step.status("transferring context:")
        dest = os.path.join(self.tmp, "ignore")
        os.mkdir(dest)
        try:
            sent = await self.session.fetch_dir(
                "context", dest, follow=[".dockerignore"], progress=status.update
            )
        except Exception as exc:
            step.done(str(exc))
            raise
        status.done(sent)
        path = os.path.join(dest, ".dockerignore")
        if os.path.exists(path) and not getattr(self, "dockerfile_ignore", False):
            from ..builder.context import read_ignore_file

            with open(path, "rb") as fh:
                self.excludes = read_ignore_file(fh.read())
        step.done()

    async def _load_context(self, follow: list[str]) -> None:
        step = self.progress.step("[internal] load build context").start()
        status = step.status("transferring context:")
        record = await asyncio.to_thread(self.cache.directory, "source.local", "local source for context")
        record.in_use += 1
        try:
            await asyncio.to_thread(_empty_dir, record.path)
            sent = await self.session.fetch_dir(
                "context", record.path, excludes=self.excludes, follow=follow, progress=status.update
            )
        except Exception as exc:
            step.done(str(exc))
            raise
        finally:
            record.in_use -= 1
        status.done(sent)
        self.context_dir = record.path
        step.done()

    # -- stages ------------------------------------------------------------------------------------------

    # -- stages ------------------------------------------------------------------------------------------
    async def _load_cache_imports(self) -> None:
        """``--cache-from IMAGE``: the inline cache an image built with ``--cache-to type=inline`` carries
        (refd's own, ``INLINE_CACHE_KEY`` in its config; read from the local image store as dockerd does)."""
        from .stage import INLINE_CACHE_KEY

        try:
            imports = json.loads(self.attrs.get("cache-imports") or "[]")
        except ValueError:
            imports = []
        for entry in imports if isinstance(imports, list) else []:
            attrs = entry.get("Attrs") or {} if isinstance(entry, dict) else {}
            ref = str(attrs.get("ref") or "")
            if entry.get("Type") != "registry" or not ref:
                continue
            step = self.progress.step(f"importing cache manifest from {ref}").start()
            try:
                image = await asyncio.to_thread(self.store.resolve, ref)
            except Exception:
                step.done()
                continue
            trail = image.config.get(INLINE_CACHE_KEY)
            for key, index, own in trail if isinstance(trail, list) else []:
                self.imported[str(key)] = (list(image.diff_ids), int(index), bool(own))
            step.done()

    def _new_stage(self, stages: list[ins.Stage], index: int) -> StageState:
        stage = stages[index]
        name = self._base_name(stage)
        base_index = self._stage_index(stages, name, index)
        label = (stage.name or f"stage-{index}") if self.labels else ""
        st = StageState(name=stage.name, label=label)
        args = self.meta_args.clone()
        args.reset_allowed()
        st.state = State(build_args=args)
        st.total = (0 if name == "scratch" or base_index is not None else 1) + sum(
            isinstance(c, _LAYER_KINDS) for c in stage.commands
        )
        return st

    async def _sources(
        self,
        stages: list[ins.Stage],
        needed: list[int],
        states: dict[int, StageState],
        bases: dict[str, Image],
    ) -> None:
        """What BuildKit starts first, before any step: the base images (one step per image, named
        by the first stage using it), the build context, the heredoc documents COPY writes."""
        shown: set[str] = set()
        for i in needed:
            name = self._base_name(stages[i])
            if name not in bases:
                continue
            st = states[i]
            text = st.prefix(f"FROM {_normalized(name)}")
            image = bases[name]
            st.record, known = await asyncio.to_thread(self._from_record, image)
            if image.id not in shown:
                shown.add(image.id)
                step = self.progress.step(text)
                if known:  # BuildKit has the image's record from an earlier build (--no-cache or not)
                    step.cached()
                else:
                    step.start().done()
        if any(self._uses_context(stages[i]) for i in needed):
            await self._load_context(_follow_paths([stages[i] for i in needed]))
        for i in needed:
            for cmd in stages[i].commands:
                documents = (
                    len(cmd.files.contents) if isinstance(cmd, ins.CopyCommand | ins.AddCommand) else 0
                )
                if isinstance(cmd, ins.RunCommand) and cmd.files and cmd.files[0][1].startswith("#!"):
                    documents = 1
                for _ in range(documents):
                    self.progress.step("[internal] preparing inline document").start().done()

    def _from_record(self, image: Image) -> tuple[str, bool]:
        """The base image's cache record (dockerd 28.5 shows it as ``from local``), the parent of the
        stage's first step; it holds no layer of its own."""
        from .cache import Record, new_id

        key = cache_key("from", image.id)
        found = self.cache.find(key)
        if found is not None:
            return found.id, True
        found = self.cache.add(
            Record(id=new_id(), type="regular", description="from local ", key=key, chain=image.top_chain)
        )
        return found.id, False

    async def _run_stage(
        self, stages: list[ins.Stage], index: int, bases: dict[str, Image], st: StageState
    ) -> StageState:
        from ..goformat import go_arch

        stage = stages[index]
        name = self._base_name(stage)
        base_index = self._stage_index(stages, name, index)
        assert st.state is not None
        if base_index is not None:
            parent = self.stage_results[base_index]
            st.chain, st.diff_ids, st.key, st.record = (
                parent.chain,
                list(parent.diff_ids),
                parent.key,
                parent.record,
            )
            st.history = copy.deepcopy(parent.history)
            st.trail = copy.deepcopy(parent.trail)
            st.platform = parent.platform
            st.state.run_config = copy.deepcopy(parent.state.run_config if parent.state else {})
            st.author = parent.author
        elif name == "scratch":
            st.platform = ("linux", go_arch(), "")
            st.key = cache_key("scratch")
            st.state.run_config = {}
        else:
            image = bases[name]
            st.chain = image.top_chain
            st.diff_ids = list(image.diff_ids)
            st.key = cache_key("from", image.id)
            st.history = copy.deepcopy(list(image.config.get("history") or []))
            cfg = image.config.get("config")
            st.state.run_config = copy.deepcopy(cfg) if isinstance(cfg, dict) else {}
            st.platform = (
                str(image.config.get("os") or "linux"),
                str(image.config.get("architecture") or go_arch()),
                str(image.config.get("variant") or ""),
            )
            st.base_config = image.raw
            st.author = str(image.config.get("author") or "")
        rc = st.state.run_config
        env = list(rc.get("Env") or [])
        if not any(e.partition("=")[0] == "PATH" for e in env):
            rc["Env"] = [*env, "PATH=" + DEFAULT_PATH]
        st.state.image_id = "sha256:" + "0" * 64 if st.chain else ""
        for cmd in self._triggers(st):
            await self._dispatch(stages, st, cmd)
        for cmd in stage.commands:
            await self._dispatch(stages, st, cmd)
        return st

    def _triggers(self, st: StageState) -> list[ins.Command]:
        """The base image's ONBUILD triggers, run first (BuildKit counts their steps in the stage's)."""
        assert st.state is not None
        rc = st.state.run_config
        triggers = list(rc.get("OnBuild") or [])
        if not triggers:
            return []
        rc["OnBuild"] = None
        commands: list[ins.Command] = []
        for trigger in triggers:
            try:
                parsed = parse(trigger)
                if len(parsed.nodes) != 1:
                    raise BuildFailed("onbuild trigger should be a single expression")
                cmd = ins.parse_command(parsed.nodes[0])
            except (ParseError, ins.InstructionError) as exc:
                raise BuildFailed(str(exc)) from None
            if isinstance(cmd, ins.Stage):
                raise BuildFailed("FROM is not allowed as an ONBUILD trigger")
            commands.append(cmd)
        st.total += sum(isinstance(c, _LAYER_KINDS) for c in commands)
        return commands

    async def _dispatch(self, stages: list[ins.Stage], st: StageState, cmd: ins.Command) -> None:
        state = st.state
        assert state is not None
        env_list = list(state.run_config.get("Env") or [])
        env = env_from_list(env_list + state.build_args.filter_allowed(env_list))
        if isinstance(cmd, ins.RunCommand):
            self._expand(cmd, env)
            await self._run(stages, st, cmd, env)
            return
        self._expand(cmd, env)
        if isinstance(cmd, ins.ArgCommand):
            await self._arg(st, cmd)
            return
        if isinstance(cmd, ins.WorkdirCommand):
            await self._workdir(st, cmd, env)
            return
        if isinstance(cmd, ins.CopyCommand | ins.AddCommand):
            await self._copy(stages, st, cmd, env)
            return
        apply = METADATA.get(type(cmd))
        if apply is None:
            raise BuildFailed(f"unsupported command type: *instructions.{type(cmd).__name__}")
        try:
            comment = apply(state, cmd, MetaStep(self.lex, env, lambda _note: None))
        except BuildError as exc:
            raise BuildFailed(exc.message) from None
        history = history_text(cmd, comment, state)
        if isinstance(cmd, ins.CmdCommand):
            state.run_config["ArgsEscaped"] = True
        elif isinstance(cmd, ins.EntrypointCommand):
            state.run_config.pop("ArgsEscaped", None)
        if isinstance(cmd, ins.MaintainerCommand):
            st.author = cmd.maintainer
        if history is not None:
            st.history.append(history_entry(history, empty=True))

    async def _arg(self, st: StageState, cmd: ins.ArgCommand) -> None:
        state = st.state
        assert state is not None
        overrides = self._build_args()
        parts = []
        for key, value in cmd.args:
            if key in overrides and overrides[key] is not None:
                value = overrides[key]
            elif value is None:
                meta = self.meta_args.all_meta().get(key)
                value = meta
            state.build_args.add(key, value)
            parts.append(key if value is None else f"{key}={value}")
        st.history.append(history_entry("ARG " + " ".join(parts), empty=True))

    # -- WORKDIR --------------------------------------------------------------------------------------


def _follow_paths(stages: list[ins.Stage]) -> list[str]:
    """The context paths the stages read (BuildKit asks the client for those only); [] for all of it."""
    paths: set[str] = set()
    for stage in stages:
        for cmd in stage.commands:
            sources: list[str] = []
            if isinstance(cmd, ins.CopyCommand) and not cmd.from_:
                sources = list(cmd.files.sources)
            elif isinstance(cmd, ins.AddCommand):
                sources = [s for s in cmd.files.sources if not s.startswith(("http://", "https://"))]
            elif isinstance(cmd, ins.RunCommand):
                for text in cmd.mounts:
                    opts = mount_options(text)
                    if opts.get("type", "bind") == "bind" and not opts.get("from"):
                        sources.append(opts.get("source", opts.get("src", ".")) or ".")
            for src in sources:
                norm = os.path.normpath("/" + src).lstrip("/")
                if not norm or norm == "." or any(c in src for c in "$*?[\\") or ".." in src.split("/"):
                    return []
                paths.add(norm)
    return sorted(paths)


def _normalized(name: str) -> str:
    try:
        ref = parse_normalized_named(name)
        if not ref.is_canonical:
            ref = tag_name_only(ref)
        return ref.string()
    except ReferenceError:
        return name


def _empty_dir(path: str) -> None:
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.unlink(full)


async def run_dockerfile(
    ctl: Controller, build: Build, session: Session, attrs: dict[str, str]
) -> BuildResult:
    """Run the Dockerfile frontend for one build."""
    platform = attrs.get("platform", "")
    if platform:
        from ..builder.platforms import parse_platform
        from ..goformat import go_arch

        for text in platform.split(","):
            try:
                p = parse_platform(text.strip())
            except ValueError as exc:
                raise BuildFailed(str(exc)) from None
            if p[0] != "linux" or p[1] != go_arch():
                raise BuildFailed(
                    f"failed to build for platform {text.strip()}: refd builds for this platform only "
                    f"(linux/{go_arch()}); no emulation"
                )
    return await DockerfileFrontend(ctl, build, session, attrs).run()
