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
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..builder import instructions as ins
from ..builder.buildargs import BuildArgs
from ..builder.metadata import METADATA, MetaStep, go_slice_v, parse_port_specs, resolve_cmd
from ..builder.parser import ParseError, parse
from ..builder.shell import Lex, ShellError, env_from_list
from ..builder.state import DEFAULT_PATH, State
from ..builder.stream import BuildError
from ..errors import ApiError
from ..images.reference import ReferenceError, parse_normalized_named, tag_name_only
from .cache import Record, new_id
from .control import BuildFailed

if TYPE_CHECKING:
    from ..containers.model import Container
    from ..images.store import Image
    from .control import Build, Controller
    from .progress import Step
    from .session import Session

__all__ = ["BuildResult", "run_dockerfile"]

HISTORY_COMMENT = "buildkit.dockerfile.v0"
_LAYER_KINDS = (ins.RunCommand, ins.CopyCommand, ins.AddCommand, ins.WorkdirCommand)
#: the image config fields BuildKit writes (OCI ImageConfig, then Docker's), in its order
_CONFIG_FIELDS = (
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
    "ArgsEscaped",
    "Healthcheck",
    "OnBuild",
    "Shell",
)


def _now_rfc3339() -> str:
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + (f".{frac:09d}".rstrip("0") or "") + "Z"


def _key(*parts: Any) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


@dataclass
class StepImage:
    """What a step container or a scratch view is made from: a layer chain and a config, no image record."""

    top_chain: str
    diff_ids: list[str]
    config: dict[str, Any]
    id: str = ""


@dataclass
class StageState:
    """A stage while it is built: its layers, its config, its history, its cache position."""

    name: str
    label: str  # what prefixes its step names ("" in a one-stage Dockerfile)
    chain: str = ""
    diff_ids: list[str] = field(default_factory=list)
    key: str = ""
    record: str = ""
    state: State | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    platform: tuple[str, str, str] = ("linux", "", "")
    base_config: bytes = b""
    total: int = 0
    index: int = 0
    author: str = ""

    def step_image(self) -> StepImage:
        rc = self.state.run_config if self.state is not None else {}
        return StepImage(self.chain, list(self.diff_ids), {"config": rc, "rootfs": {"type": "layers"}})

    def prefix(self, text: str) -> str:
        if self.total == 0:
            return text
        self.index += 1
        width = len(str(self.total))
        name = f"{self.label} " if self.label else ""
        return f"[{name}{self.index:>{width}}/{self.total}] {text}"


class BuildResult:
    """A finished frontend run: the target stage's layers and image config."""

    def __init__(self, stage: StageState, cache_from_key: str = "") -> None:
        self.stage = stage
        self.returned_metadata: dict[str, bytes] = {}
        self.config_bytes = _image_config(stage)

    def metadata(self) -> dict[str, bytes]:
        out = {"containerimage.config": self.config_bytes}
        if self.stage.base_config:
            out["containerimage.base.config"] = self.stage.base_config
        return out

    def release(self) -> None:
        """Nothing is held beyond the cache records (they keep the layers)."""


def _image_config(stage: StageState) -> bytes:
    rc = stage.state.run_config if stage.state is not None else {}
    config: dict[str, Any] = {}
    for name in _CONFIG_FIELDS:
        value = rc.get(name)
        if value:
            config[name] = value
    history, created = _fill_created(stage.history)
    doc: dict[str, Any] = {
        "architecture": stage.platform[1],
        "config": config,
        "created": created,
        "history": history,
        "os": stage.platform[0],
        "rootfs": {"type": "layers", "diff_ids": list(stage.diff_ids)},
    }
    if stage.author:
        doc["author"] = stage.author
    if stage.platform[2]:
        doc["variant"] = stage.platform[2]
    return json.dumps(dict(sorted(doc.items())), separators=(",", ":")).encode()


class DockerfileFrontend:
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
        self.no_cache_stages = {s for s in attrs.get("no-cache", "").split(",") if s}

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
            if any(self._uses_context(stages[i]) for i in needed):
                await self._load_context(_follow_paths([stages[i] for i in needed]))
            result = None
            for index in needed:
                result = await self._run_stage(stages, index, bases)
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
                    refs += [m.get("from", "") for m in (_mount_options(t) for t in cmd.mounts)]
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
                    opts = _mount_options(text)
                    if opts.get("type", "bind") == "bind" and not opts.get("from"):
                        return True
        return False

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
    async def _run_stage(self, stages: list[ins.Stage], index: int, bases: dict[str, Image]) -> StageState:
        from ..goformat import go_arch

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
        if base_index is not None:
            parent = self.stage_results[base_index]
            st.chain, st.diff_ids, st.key, st.record = (
                parent.chain,
                list(parent.diff_ids),
                parent.key,
                parent.record,
            )
            st.history = copy.deepcopy(parent.history)
            st.platform = parent.platform
            st.state.run_config = copy.deepcopy(parent.state.run_config if parent.state else {})
            st.author = parent.author
        elif name == "scratch":
            st.platform = ("linux", go_arch(), "")
            st.key = _key("scratch")
            st.state.run_config = {}
        else:
            image = bases[name]
            step = self.progress.step(st.prefix(f"FROM {_normalized(name)}")).start()
            st.chain = image.top_chain
            st.diff_ids = list(image.diff_ids)
            st.key = _key("from", image.id)
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
            step.done()
        rc = st.state.run_config
        env = list(rc.get("Env") or [])
        if not any(e.partition("=")[0] == "PATH" for e in env):
            rc["Env"] = [*env, "PATH=" + DEFAULT_PATH]
        st.state.image_id = "sha256:" + "0" * 64 if st.chain else ""
        for cmd in stage.commands:
            await self._dispatch(stages, st, cmd)
        return st

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
        history = _history_text(cmd, comment, state)
        if isinstance(cmd, ins.CmdCommand):
            state.run_config["ArgsEscaped"] = True
        elif isinstance(cmd, ins.EntrypointCommand):
            state.run_config.pop("ArgsEscaped", None)
        if isinstance(cmd, ins.MaintainerCommand):
            st.author = cmd.maintainer
        if history is not None:
            st.history.append(_entry(history, empty=True))

    def _made(self, st: StageState) -> int:
        """When the stage's current layer was first made (its cache record's creation)."""
        record = self.cache.records.get(st.record)
        return record.created if record is not None else time.time_ns()

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
        st.history.append(_entry("ARG " + " ".join(parts), empty=True))

    # -- WORKDIR --------------------------------------------------------------------------------------
    async def _workdir(self, st: StageState, cmd: ins.WorkdirCommand, env: dict[str, str]) -> None:
        from ..builder.run import make_dirs_in_root, workdir_path

        state = st.state
        assert state is not None
        rc = state.run_config
        try:
            wd = workdir_path(str(rc.get("WorkingDir") or ""), cmd.path)
        except BuildError as exc:
            raise BuildFailed(exc.message) from None
        rc["WorkingDir"] = wd
        if wd == "/":
            st.history.append(_entry("WORKDIR /", empty=True))
            return
        name = st.prefix(_display(cmd, self.lex, env))
        key = _key(st.key, "workdir", wd, str(rc.get("User") or ""))

        def change(root: str) -> None:
            make_dirs_in_root(root, wd)

        layered = await self._file_step(st, name, key, name, change)
        st.history.append(_entry(f"WORKDIR {wd}", empty=not layered, layer_ns=self._made(st)))

    # -- COPY / ADD -----------------------------------------------------------------------------------
    async def _copy(
        self,
        stages: list[ins.Stage],
        st: StageState,
        cmd: ins.CopyCommand | ins.AddCommand,
        env: dict[str, str],
    ) -> None:
        from ..builder.context import LazySource, Source
        from ..builder.copy import Copier, download, normalize_dest, parse_chown, perform_copy
        from ..images.commit import ScratchLayer

        state = st.state
        assert state is not None
        rc = state.run_config
        is_add = isinstance(cmd, ins.AddCommand)
        name = st.prefix(_display(cmd, self.lex, env))
        scratch: ScratchLayer | None = None
        source: Source | None = LazySource(self.context_dir) if self.context_dir else None
        source_key = "context"
        from_ = cmd.from_ if isinstance(cmd, ins.CopyCommand) else ""
        if from_:
            index = self._stage_index(stages, from_, len(stages))
            if index is not None:
                other = self.stage_results[index]
                view = StepImage(other.chain, other.diff_ids, {})
                source_key = other.key
            else:
                image = await self._resolve_image(from_)
                view = StepImage(image.top_chain, list(image.diff_ids), {})
                source_key = image.id
            opened = await asyncio.to_thread(ScratchLayer, self.store, view if view.top_chain else None)  # type: ignore[arg-type]
            scratch = opened
            source = LazySource(opened.root)
        heredocs: list[str] = []
        tmp_docs = ""
        try:
            sources = list(cmd.files.sources)
            if cmd.files.contents:
                tmp_docs = tempfile.mkdtemp(dir=self.tmp)
                for doc in cmd.files.contents:
                    data = doc.data
                    if doc.expand:
                        with contextlib.suppress(ShellError):
                            data = self.lex.process_word(data, env)
                    with open(os.path.join(tmp_docs, doc.path), "w") as fh:
                        fh.write(data)
                    heredocs.append(doc.path)
            tmp_root = self.store.tmp_root

            def plan() -> tuple[Any, Any]:
                copier = Copier(
                    source,
                    (lambda url: download(url, tmp_root, lambda _t: None, lambda _b: None))
                    if is_add
                    else None,
                    from_image=bool(from_),
                )
                inst = (
                    copier.instruction("ADD" if is_add else "COPY", sources, cmd.files.dest)
                    if sources
                    else None
                )
                docs = None
                if heredocs:
                    doc_copier = Copier(LazySource(tmp_docs), None)
                    docs = doc_copier.instruction("COPY", heredocs, cmd.files.dest)
                return copier, (inst, docs)

            try:
                copier, (inst, docs) = await asyncio.to_thread(plan)
            except BuildError as exc:
                raise BuildFailed(_copy_error(exc.message, sources)) from None
            hashes = [i.hash for part in (inst, docs) if part is not None for i in part.infos]
            key = _key(
                st.key,
                "add" if is_add else "copy",
                source_key,
                hashes,
                cmd.files.dest,
                cmd.chown,
                cmd.chmod,
                str(rc.get("WorkingDir") or ""),
            )
            chmod = _chmod(cmd.chmod)

            def change(root: str) -> None:
                dest = normalize_dest(str(rc.get("WorkingDir") or ""), cmd.files.dest)
                identity: tuple[int, int] | None = (0, 0)
                if cmd.chown:
                    identity = parse_chown(cmd.chown, root)
                for part in (inst, docs):
                    if part is None:
                        continue
                    for info in part.infos:
                        preserve = bool(from_) and not cmd.chown
                        perform_copy(
                            root,
                            dest,
                            info,
                            None if preserve else identity,
                            is_add and not info.no_decompress,
                        )
                        if chmod is not None:
                            _apply_chmod(root, dest, info, chmod)

            try:
                layered = await self._file_step(st, name, key, name, change)
            finally:
                copier.cleanup()
            history = _copy_history(cmd, heredocs)
            st.history.append(_entry(history, empty=not layered, layer_ns=self._made(st)))
        finally:
            if scratch is not None:
                await asyncio.to_thread(scratch.release)
            if tmp_docs:
                shutil.rmtree(tmp_docs, ignore_errors=True)

    async def _file_step(self, st: StageState, name: str, key: str, description: str, change: Any) -> bool:
        """A step that changes files without running anything: a scratch layer over the stage, its diff."""
        from ..images.commit import ScratchLayer

        step = self.progress.step(name)
        if await self._cached(st, key, step):
            return st.diff_ids[-1:] != [] and self.cache.records[st.record].own_layer
        step.start()
        view = st.step_image()

        def work() -> tuple[Any, bool]:
            layer = ScratchLayer(self.store, view if view.top_chain else None)  # type: ignore[arg-type]
            try:
                change(layer.root)
                return self._commit(st, key, name, layer.diff)
            finally:
                layer.release()

        try:
            _, layered = await asyncio.to_thread(work)
        except BuildError as exc:
            step.done(exc.message)
            raise BuildFailed(exc.message) from None
        except OSError as exc:
            step.done(str(exc))
            raise BuildFailed(str(exc)) from None
        step.done()
        return layered

    def _commit(self, st: StageState, key: str, description: str, writer: Any) -> tuple[Record, bool]:
        """The diff as a layer on the stage (none when empty), recorded in the cache (blocking)."""
        from ..images.commit import spooled_diff
        from ..images.diff import EMPTY_LAYER

        store = self.store
        with spooled_diff(store, writer) as (path, digest):
            chain, layered = st.chain, False
            with store.pinned() as pin:
                if digest != EMPTY_LAYER:
                    with open(path, "rb") as fh:
                        layer = store.register_layer(fh, st.chain, pin)
                    chain, layered = layer.chain_id, True
                    st.diff_ids.append(layer.diff_id)
                record = self.cache.add(
                    Record(
                        id=new_id(),
                        type="regular",
                        description=description,
                        key=key,
                        chain=chain,
                        own_layer=layered,
                        parent=st.record,
                    )
                )
        st.chain, st.key, st.record = chain, key, record.id
        return record, layered

    async def _cached(self, st: StageState, key: str, step: Step) -> bool:
        if self.no_cache and (not self.no_cache_stages or st.name in self.no_cache_stages):
            return False
        record = self.cache.find(key)
        if record is None:
            return False
        if record.own_layer:
            st.diff_ids.append(self.store.layers[record.chain].diff_id)
        st.chain, st.key, st.record = record.chain, key, record.id
        step.cached()
        return True

    # -- RUN ------------------------------------------------------------------------------------------
    async def _run(
        self, stages: list[ins.Stage], st: StageState, cmd: ins.RunCommand, env: dict[str, str]
    ) -> None:
        state = st.state
        assert state is not None
        rc = state.run_config
        args = _run_args(cmd, rc)
        run_env = list(rc.get("Env") or [])
        build_args = state.build_args.filter_allowed(run_env)
        name = st.prefix(_display(cmd, self.lex, env))
        mounts = [_mount_options(text) for text in cmd.mounts]
        mount_keys = [{k: v for k, v in m.items() if k != "required"} for m in mounts]
        key = _key(
            st.key,
            "run",
            args,
            run_env + build_args,
            str(rc.get("WorkingDir") or ""),
            str(rc.get("User") or ""),
            cmd.network,
            mount_keys,
            self._mount_sources(stages, mounts),
        )
        step = self.progress.step(name)
        history = "RUN " + _run_command_string(args, build_args) + " # buildkit"
        if await self._cached(st, key, step):
            record = self.cache.records[st.record]
            st.history.append(_entry(history, empty=not record.own_layer, layer_ns=record.created))
            return
        step.start()
        try:
            layered = await self._execute(
                stages, st, args, run_env + build_args, cmd, mounts, key, name, step
            )
        except BuildFailed as exc:
            step.done(str(exc))
            raise
        step.done()
        st.history.append(_entry(history, empty=not layered, layer_ns=self._made(st)))

    def _mount_sources(self, stages: list[ins.Stage], mounts: list[dict[str, str]]) -> list[str]:
        keys = []
        for m in mounts:
            ref = m.get("from", "")
            if ref:
                index = self._stage_index(stages, ref, len(stages))
                keys.append(self.stage_results[index].key if index is not None else ref)
        return keys

    async def _execute(
        self,
        stages: list[ins.Stage],
        st: StageState,
        args: list[str],
        env: list[str],
        cmd: ins.RunCommand,
        mounts: list[dict[str, str]],
        key: str,
        name: str,
        step: Step,
    ) -> bool:
        from ..builder.run import run_container

        state = st.state
        assert state is not None
        rc = state.run_config
        host: dict[str, Any] = {
            "NetworkMode": {"default": "bridge", "none": "none", "host": "host"}.get(cmd.network, "bridge"),
            "LogConfig": {"Type": "none", "Config": {}},
            "Mounts": [],
            "Tmpfs": {},
        }
        cleanups: list[Any] = []
        stubs: list[str] = []
        try:
            for m in mounts:
                await self._mount(stages, m, host, env, cleanups, stubs, args)
            body = {
                "Cmd": args,
                "Entrypoint": None,
                "Env": env,
                "WorkingDir": rc.get("WorkingDir") or "",
                "User": rc.get("User") or "",
                "Labels": {},
                "HostConfig": host,
            }
            view = st.step_image()
            view.config = {"config": {"Env": env}, "rootfs": {"type": "layers"}}
            try:
                c, _ = self.daemon.containers.create(body, "", image=view)
            except ApiError as exc:
                raise BuildFailed(exc.message) from None
            try:
                code = await run_container(
                    self.daemon, c, lambda t: step.log(1, t.encode()), lambda t: step.log(2, t.encode())
                )
                if code != 0:
                    raise BuildFailed(
                        f'process "{" ".join(args)}" did not complete successfully: exit code: {code}'
                    )
                description = "mount / from exec " + " ".join(args)
                _, layered = await asyncio.to_thread(self._commit_container, st, c, key, description, stubs)
                return layered
            finally:
                with contextlib.suppress(ApiError):
                    await self.daemon.containers.remove(c, force=True, volumes=True)
        except BuildError as exc:
            raise BuildFailed(exc.message) from None
        finally:
            for cleanup in reversed(cleanups):
                with contextlib.suppress(Exception):
                    result = cleanup()
                    if asyncio.iscoroutine(result):
                        await result

    def _commit_container(
        self, st: StageState, c: Container, key: str, name: str, stubs: list[str]
    ) -> tuple[Record, bool]:
        from ..images.commit import container_diff

        store = self.store
        if stubs:
            root = store.mount_rootfs(c.id)
            try:
                _remove_stubs(root, stubs, st.step_image(), store)
            finally:
                store.unmount_rootfs(c.id)
        return self._commit(st, key, name, lambda out: container_diff(store, c.id, out))

    async def _mount(
        self,
        stages: list[ins.Stage],
        m: dict[str, str],
        host: dict[str, Any],
        env: list[str],
        cleanups: list[Any],
        stubs: list[str],
        run_args: list[str],
    ) -> None:
        from ..images.commit import ScratchLayer

        kind = m.get("type", "bind")
        target = m.get("target") or m.get("dst") or m.get("destination") or ""
        if kind == "secret":
            secret_id = m.get("id") or os.path.basename(target)
            target = target or f"/run/secrets/{secret_id}"
            data = await self.session.secret(secret_id)
            if data is None:
                if m.get("required", "false") in ("", "true"):
                    raise BuildFailed(f"secret {secret_id}: not found")
                return
            path = os.path.join(tempfile.mkdtemp(dir=self.tmp), "secret")
            with open(path, "wb") as fh:
                fh.write(data)
            os.chmod(path, int(m.get("mode", "0400"), 8))
            with contextlib.suppress(ValueError, OSError):
                os.chown(path, int(m.get("uid", "0")), int(m.get("gid", "0")))
            host["Mounts"].append({"Type": "bind", "Source": path, "Target": target, "ReadOnly": True})
            stubs.append(target)
        elif kind == "cache":
            if not target:
                raise BuildFailed("mount target is required for cache mounts")
            cache_id = m.get("id") or target
            record = await asyncio.to_thread(
                self.cache.directory,
                "exec.cachemount",
                f"cached mount {target} from exec {' '.join(run_args)}",
                _key("cachemount", cache_id),
            )
            record.in_use += 1
            cleanups.append(lambda: setattr(record, "in_use", record.in_use - 1))
            host["Mounts"].append({"Type": "bind", "Source": record.path, "Target": target})
            stubs.append(target)
        elif kind == "tmpfs":
            if not target:
                raise BuildFailed("mount target is required for tmpfs mounts")
            size = m.get("size") or m.get("tmpfs-size")
            host["Tmpfs"][target] = f"size={size}" if size else ""
            stubs.append(target)
        elif kind == "bind":
            if not target:
                raise BuildFailed("mount target is required for bind mounts")
            ref = m.get("from", "")
            if ref:
                index = self._stage_index(stages, ref, len(stages))
                if index is not None:
                    other = self.stage_results[index]
                    view = StepImage(other.chain, other.diff_ids, {})
                else:
                    image = await self._resolve_image(ref)
                    view = StepImage(image.top_chain, list(image.diff_ids), {})
                layer = await asyncio.to_thread(ScratchLayer, self.store, view if view.top_chain else None)  # type: ignore[arg-type]
                cleanups.append(lambda: asyncio.to_thread(layer.release))
                root = layer.root
            else:
                root = self.context_dir
            source = os.path.normpath(os.path.join(root, m.get("source", m.get("src", "")).lstrip("/")))
            if not source.startswith(root):
                raise BuildFailed(f"invalid mount source {m.get('source')!r}")
            if not os.path.exists(source):
                raise BuildFailed(f'failed to compute cache key: "/{m.get("source", "")}": not found')
            rw = m.get("rw", m.get("readwrite", "false")) in ("", "true")
            if rw:  # writes are thrown away, as BuildKit's readwrite bind mounts are
                copy_dir = tempfile.mkdtemp(dir=self.tmp)
                dest = os.path.join(copy_dir, "m")
                await asyncio.to_thread(_copy_any, source, dest)
                source = dest
            host["Mounts"].append({"Type": "bind", "Source": source, "Target": target, "ReadOnly": not rw})
            stubs.append(target)
        elif kind == "ssh":
            ssh_id = m.get("id") or "default"
            target = target or "/run/buildkit/ssh_agent.0"
            await self.session.check_agent(ssh_id)
            sock_dir = tempfile.mkdtemp(dir=self.tmp)
            path = os.path.join(sock_dir, "agent.sock")
            server = await asyncio.start_unix_server(
                lambda r, w: _forward_agent(self.session, ssh_id, r, w), path=path
            )
            os.chmod(path, 0o666)
            cleanups.append(server.close)
            host["Mounts"].append({"Type": "bind", "Source": path, "Target": target})
            env.append(f"SSH_AUTH_SOCK={target}")
            stubs.append(target)
        else:
            raise BuildFailed(f"unsupported mount type {kind!r}")


# -- helpers ---------------------------------------------------------------------------------------------
def _mount_options(text: str) -> dict[str, str]:
    """``--mount=type=cache,target=/x,ro``: key=value pairs (a bare word is ``word=``)."""
    out: dict[str, str] = {}
    for part in _csv_fields(text):
        key, eq, value = part.partition("=")
        key = key.strip().lower()
        if key in ("ro", "readonly") and not eq:
            out["ro"] = "true"
        elif key in ("rw", "readwrite") and not eq:
            out["rw"] = "true"
        elif key == "required" and not eq:
            out["required"] = "true"
        else:
            out[key] = value
    return out


def _csv_fields(text: str) -> list[str]:
    import csv
    import io

    rows = list(csv.reader(io.StringIO(text)))
    return rows[0] if rows else []


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
                    opts = _mount_options(text)
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


def _display(cmd: ins.Command, lex: Lex, env: dict[str, str]) -> str:
    """A step's name: its line with the stage's variables expanded, the instruction upper-cased."""
    text = _expand_line(str(cmd), env)
    word, _, rest = text.partition(" ")
    return f"{word.upper()} {rest}" if rest else word.upper()


def _expand_line(text: str, env: dict[str, str]) -> str:
    """processCmdEnv: $VAR and ${VAR} replaced where the environment has them, the rest left as written."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return env.get(name, match.group(0))

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", sub, text)


def _run_args(cmd: ins.RunCommand, rc: dict[str, Any]) -> list[str]:
    if (
        cmd.files
        and cmd.prepend_shell
        and cmd.cmd_line
        and len(cmd.cmd_line) == 1
        and cmd.cmd_line[0].lstrip().startswith("<<")
    ):
        content = cmd.files[0][1]
        script = content
        return [*(rc.get("Shell") or ["/bin/sh", "-c"]), script]
    args = resolve_cmd(cmd, rc) or []
    if cmd.files and cmd.prepend_shell:
        # heredocs after the command: the shell reads them as here-documents
        body = args[-1]
        for name, content, _chomp in cmd.files:
            body += "\n" + content + name
        args = [*args[:-1], body]
    return args


def _run_command_string(args: list[str], build_args: list[str]) -> str:
    prefix = [f"|{len(build_args)}", *build_args] if build_args else []
    return " ".join([*prefix, *args])


def _history_text(cmd: ins.Command, classic: str, state: State) -> str | None:
    """BuildKit's history text for a metadata instruction (None: it writes none)."""
    rc = state.run_config
    if isinstance(cmd, ins.OnbuildCommand):
        return None
    if isinstance(cmd, ins.HealthCheckCommand):
        from ..containers.health import go_duration

        h = rc.get("Healthcheck") or {}
        test = "[" + " ".join(h.get("Test") or []) + "]"
        parts = [f"Test:{test}"]
        for key in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
            parts.append(f"{key}:{go_duration(int(h.get(key) or 0))}")
        parts.append(f"Retries:{int(h.get('Retries') or 0)}")
        return "HEALTHCHECK {" + " ".join(parts) + "}"
    if isinstance(cmd, ins.ExposeCommand):
        return "EXPOSE " + go_slice_v(parse_port_specs(classic.removeprefix("EXPOSE ").split()))
    return classic


def _copy_history(cmd: ins.CopyCommand | ins.AddCommand, heredocs: list[str]) -> str:
    parts = ["ADD" if isinstance(cmd, ins.AddCommand) else "COPY"]
    if cmd.chown:
        parts.append(f"--chown={cmd.chown}")
    if cmd.chmod:
        parts.append(f"--chmod={cmd.chmod}")
    parts += list(cmd.files.sources)
    parts += [f"<<{name}" for name in heredocs]
    parts.append(cmd.files.dest)
    return " ".join(parts) + " # buildkit"


def _copy_error(message: str, sources: list[str]) -> str:
    match = re.search(r"stat (\S+): file does not exist", message)
    if match is None:
        return message
    path = next((s for s in sources if match.group(1).endswith(s.lstrip("/"))), match.group(1))
    return (
        f'failed to compute cache key: failed to calculate checksum of ref: "/{path.lstrip("/")}": not found'
    )


def _chmod(text: str) -> int | None:
    if not text:
        return None
    if not re.fullmatch(r"[0-7]{1,4}", text):
        raise BuildFailed(
            f"invalid chmod parameter: '{text}'. it should be octal string and between 0 and 07777"
        )
    return int(text, 8)


def _apply_chmod(root: str, dest: str, info: Any, mode: int) -> None:
    from ..scope import follow_in_scope

    target = follow_in_scope(root, dest)
    if os.path.isdir(target) and (dest.endswith("/") or not os.path.isdir(info.source.full_path(info.path))):
        target = os.path.join(target, os.path.basename(info.path.rstrip("/")))
    if os.path.isdir(target) and not os.path.islink(target):
        for top, dirs, files in os.walk(target):
            for name in dirs + files:
                p = os.path.join(top, name)
                if not os.path.islink(p):
                    os.chmod(p, mode)
    if os.path.lexists(target) and not os.path.islink(target):
        os.chmod(target, mode)


def _entry(created_by: str, empty: bool, layer_ns: int = 0) -> dict[str, Any]:
    """A new history entry; its time is filled in at the end (``_fill_created``)."""
    entry: dict[str, Any] = {"created": None, "created_by": created_by, "comment": HISTORY_COMMENT}
    if empty:
        entry["empty_layer"] = True
    elif layer_ns:
        entry["_ns"] = layer_ns
    return entry


def _format_ns(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return text + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"


def _fill_created(history: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """BuildKit's times: a layer's entry has the time its layer was made (the cache record's, so a
    cached rebuild is the same image), an empty entry the next layer's (the last one's at the end);
    the image's ``created`` is the last layer's. Returns the history and that time."""
    out = copy.deepcopy(history)
    following = ""
    last = ""
    for entry in reversed(out):
        ns = entry.pop("_ns", 0)
        if ns:
            entry["created"] = following = _format_ns(ns)
            last = last or following
    base = next((e["created"] for e in reversed(out) if e.get("created")), "") or _now_rfc3339()
    last = last or base
    following = ""
    for entry in reversed(out):
        if entry.get("created") is None:
            entry["created"] = following or last
        elif "created_by" in entry and entry.get("comment") == HISTORY_COMMENT:
            following = entry["created"]
    return out, last


def _empty_dir(path: str) -> None:
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.unlink(full)


def _copy_any(src: str, dest: str) -> None:
    if os.path.isdir(src):
        shutil.copytree(src, dest, symlinks=True)
    else:
        shutil.copy2(src, dest)


def _remove_stubs(root: str, targets: list[str], view: StepImage, store: Any) -> None:
    """The mount points made for RUN's mounts are not part of the step's layer (BuildKit drops them)."""
    from ..images.commit import ScratchLayer

    base = ScratchLayer(store, view if view.top_chain else None)  # type: ignore[arg-type]
    try:
        for target in sorted(targets, key=len, reverse=True):
            parts = target.strip("/").split("/")
            for depth in range(len(parts), 0, -1):
                rel = "/".join(parts[:depth])
                if os.path.lexists(os.path.join(base.root, rel)):
                    break
                path = os.path.join(root, rel)
                if os.path.isdir(path) and not os.path.islink(path):
                    with contextlib.suppress(OSError):
                        os.rmdir(path)
                elif os.path.lexists(path):
                    with contextlib.suppress(OSError):
                        if os.path.getsize(path) == 0:
                            os.unlink(path)
    finally:
        base.release()


async def _forward_agent(
    session: Session, ssh_id: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """One agent connection from a RUN step, relayed over a ForwardAgent stream of the client's session."""
    from .messages import BytesMessage

    call = await session.ssh_stream(ssh_id)

    async def upstream() -> None:
        while data := await reader.read(1 << 16):
            await call.send(BytesMessage(data=data).encode())
        await call.finish()

    task = asyncio.ensure_future(upstream())
    try:
        while (raw := await call.recv()) is not None:
            writer.write(bytes(BytesMessage.decode(raw).data))
            await writer.drain()
    except Exception:
        pass
    finally:
        task.cancel()
        writer.close()
        await session.peer.cancel(call)


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
