"""Dockerfile steps dispatched as dockerd's classic builder does (moby ``builder/dockerfile``).

``Builder(daemon, options, output).build(context, parsed)`` runs the stages and returns the image
ID. Each instruction is one step: ``Step i/n : <line>``, then ``---> <short id>`` of the image the
step produced. Metadata instructions (ENV, LABEL, CMD...) commit a container that never runs
(``Running in`` / ``Removed intermediate container``) whose empty diff becomes an ``empty_layer``
history entry; RUN runs one on refd's runtime (output streamed, a non-zero exit fails the build
with ``The command '...' returned a non-zero code: N``) and commits its read-write layer; COPY and
ADD write into a fresh layer with no container. Every committed image records its parent and its
``container_config``, which the cache (``cache.py``) matches (``Using cache``).

Stages (``FROM x AS name``), ``COPY --from``, ``target``, ONBUILD triggers, build args, ``--label``
options, SHELL, the escape directive, and the options that shape the step containers (network
mode, extra hosts, shm size, cpu/memory limits) follow dockerd 28.5.
"""

from __future__ import annotations

import asyncio
import copy
import os
import posixpath
import re
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ApiError
from ..images.commit import ScratchLayer, commit_layer, container_diff, spooled_diff
from ..images.store import Image, ImageStore, go_arch
from ..log import go_quote
from . import instructions as ins
from .buildargs import BuildArgs
from .cache import ImageProber
from .context import LazySource, Source
from .copy import Copier, CopyInstruction, download, normalize_dest, parse_chown, perform_copy
from .parser import ParseResult, parse
from .shell import Lex, ShellError, env_from_list
from .stream import BuildError, BuildOutput

if TYPE_CHECKING:
    from ..containers.model import Container
    from ..daemon import Daemon

__all__ = ["BuildOptions", "Builder", "parse_platform"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ["/bin/sh", "-c"]
_VALID_PROTOS = ("tcp", "udp", "sctp")


@dataclass
class BuildOptions:
    """ImageBuildOptions, as newImageBuildOptions reads them from the query."""

    tags: list[Any] = field(default_factory=list)
    dockerfile: str = "Dockerfile"
    quiet: bool = False
    no_cache: bool = False
    remove: bool = True
    force_remove: bool = False
    pull: bool = False
    build_args: dict[str, str | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    target: str = ""
    network_mode: str = ""
    extra_hosts: list[str] = field(default_factory=list)
    platform: tuple[str, str, str] | None = None
    shm_size: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    memory: int = 0
    memory_swap: int = 0
    cgroup_parent: str = ""
    ulimits: list[dict[str, Any]] | None = None
    cache_from: list[str] = field(default_factory=list)
    auth_configs: dict[str, Any] = field(default_factory=dict)


# -- platforms --------------------------------------------------------------------------------------------
_OS_ALIASES = {"macos": "darwin"}
_ARCH_ALIASES = {
    "x86_64": ("amd64", ""),
    "x86-64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", ""),
    "arm64": ("arm64", ""),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "i386": ("386", ""),
    "386": ("386", ""),
}
_KNOWN_OS = (
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
    "zos",
)
_KNOWN_ARCH = (
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "ppc64",
    "ppc64le",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
)
_PLATFORM_PART = re.compile(r"^[A-Za-z0-9_.-]+$")


def parse_platform(text: str) -> tuple[str, str, str]:
    """containerd platforms.Parse (os[/arch[/variant]] or a bare architecture); ValueError with its text."""
    if "*" in text:
        raise ValueError(f'"{text}": wildcards not yet supported: invalid argument')
    spec = text.split("(", 1)[0]
    parts = spec.split("/")
    for part in parts:
        if not _PLATFORM_PART.match(part):
            raise ValueError(f'"{part}": unknown operating system or architecture: invalid argument')
    parts = [p.lower() for p in parts]
    if len(parts) == 1:
        os_name = _OS_ALIASES.get(parts[0], parts[0])
        if os_name in _KNOWN_OS:
            return os_name, go_arch(), ""
        arch, variant = _norm_arch(parts[0], "")
        if arch in _KNOWN_ARCH:
            return "linux", arch, variant
        raise ValueError(f'"{text}": unknown operating system or architecture: invalid argument')
    if len(parts) == 2:
        arch, variant = _norm_arch(parts[1], "")
        return _OS_ALIASES.get(parts[0], parts[0]), arch, variant
    if len(parts) == 3:
        arch, variant = _norm_arch(parts[1], parts[2])
        return _OS_ALIASES.get(parts[0], parts[0]), arch, variant
    raise ValueError(f'"{text}": cannot parse platform specifier: invalid argument')


def _norm_arch(arch: str, variant: str) -> tuple[str, str]:
    if arch in _ARCH_ALIASES:
        norm, default_variant = _ARCH_ALIASES[arch]
        if norm == "amd64" and variant == "v1":
            variant = ""
        if norm == "arm64" and variant in ("v8", "8"):
            variant = ""
        return norm, variant or default_variant
    if arch == "arm" and variant in ("", "7", "7l"):
        return "arm", "v7" if variant in ("7", "7l") else variant
    return arch, variant


def format_platform(p: tuple[str, str, str]) -> str:
    return "/".join(x for x in p if x)


def _platform_matches(image: Image, want: tuple[str, str, str]) -> bool:
    os_name = str(image.config.get("os") or "linux")
    arch = str(image.config.get("architecture") or "")
    variant = str(image.config.get("variant") or "")
    if os_name != want[0] or arch != want[1]:
        return False
    return not want[2] or not variant or variant == want[2]


# -- images as the builder sees them ------------------------------------------------------------------
@dataclass
class BaseImage:
    id: str  # "" for scratch
    image: Image | None
    os: str = "linux"
    arch: str = ""
    variant: str = ""

    @property
    def run_config(self) -> dict[str, Any] | None:
        if self.image is None:
            return None
        cfg = self.image.config.get("config")
        return copy.deepcopy(cfg) if isinstance(cfg, dict) else None


@dataclass
class State:
    build_args: BuildArgs
    run_config: dict[str, Any] = field(default_factory=dict)
    maintainer: str = ""
    cmd_set: bool = False
    image_id: str = ""
    base: BaseImage | None = None
    stage_name: str = ""
    os: str = "linux"

    def has_from_image(self) -> bool:
        return bool(self.image_id) or (self.base is not None and self.base.id == "")

    def update_run_config(self) -> None:
        self.run_config["Image"] = self.image_id


def _copy_config(cfg: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(cfg)
    out.update(changes)
    return out


def _shell(cfg: dict[str, Any]) -> list[str]:
    return list(cfg.get("Shell") or DEFAULT_SHELL)


def _go_slice_q(values: list[str] | None) -> str:
    return "[" + " ".join(go_quote(v) for v in values or []) + "]"


def _go_slice_v(values: list[str] | None) -> str:
    return "[" + " ".join(values or []) + "]"


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


# -- EXPOSE (go-connections nat) ---------------------------------------------------------------------------
def _port_range(text: str) -> tuple[int, int]:
    if not text:
        raise ValueError("empty string specified for ports")
    if "-" not in text:
        value = _uint16(text)
        return value, value
    lo_text, hi_text = text.split("-")[:2]
    lo, hi = _uint16(lo_text), _uint16(hi_text)
    if hi < lo:
        raise ValueError(f"invalid range specified for port: {text}")
    return lo, hi


def _uint16(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise ValueError(text)
    return int(text)


def parse_port_specs(ports: list[str]) -> list[str]:
    """nat.ParsePortSpecs as EXPOSE uses it: the ``port/proto`` keys, ranges expanded."""
    out: list[str] = []
    for raw in ports:
        parts = raw.split(":")
        container = parts[-1]
        host = parts[-2] if len(parts) >= 2 else ""
        proto_parts = container.split("/")
        if not container or not proto_parts[0]:
            proto, container = "", ""
        elif len(proto_parts) == 1:
            proto = "tcp"
        else:
            proto, container = proto_parts[1] or "tcp", proto_parts[0]
        if not container:
            raise BuildError(f"No port specified: {raw}<empty>")
        try:
            lo, hi = _port_range(container)
        except ValueError:
            raise BuildError(f"Invalid containerPort: {container}") from None
        if host:
            try:
                hlo, hhi = _port_range(host)
            except ValueError:
                raise BuildError(f"Invalid hostPort: {host}") from None
            if hhi - hlo != hi - lo and hi != lo:
                raise BuildError(
                    f"Invalid ranges specified for container and host Ports: {container} and {host}"
                )
        if proto.lower() not in _VALID_PROTOS:
            raise BuildError(f"Invalid proto: {proto}")
        for port in range(lo, hi + 1):
            key = f"{port}/{proto.lower()}"
            if key not in out:
                out.append(key)
    return out


def _valid_signal(text: str) -> None:
    from ..containers.manager import _SIGNALS

    if re.fullmatch(r"[+-]?[0-9]+", text):
        if int(text) == 0:
            raise BuildError(f"invalid signal: {text}", 400)
        return
    name = text.upper().removeprefix("SIG")
    if name in _SIGNALS or re.fullmatch(r"RTMIN(\+([1-9]|1[0-5]))?|RTMAX(-([1-9]|1[0-4]))?", name):
        return
    raise BuildError(f"invalid signal: {text}", 400)


# -- stage results -----------------------------------------------------------------------------------------
class _Stages:
    def __init__(self) -> None:
        self.flat: list[dict[str, Any]] = []
        self.indexed: dict[str, dict[str, Any]] = {}

    def by_name(self, name: str) -> dict[str, Any] | None:
        return self.indexed.get(name.lower())

    def get(self, name_or_index: str) -> dict[str, Any] | None:
        found = self.by_name(name_or_index)
        if found is not None:
            return found
        if not re.fullmatch(r"[+-]?[0-9]+", name_or_index):
            return None
        index = int(name_or_index)
        if index == len(self.flat):
            raise BuildError("refers to current build stage")
        if index < 0 or index > len(self.flat):
            raise BuildError("index out of bounds")
        return self.flat[index]

    def check_name(self, name: str) -> None:
        if name and self.by_name(name) is not None:
            raise BuildError(f"{name} stage name already used")

    def commit(self, name: str, config: dict[str, Any]) -> None:
        self.check_name(name)
        if name:
            self.indexed[name.lower()] = config
        self.flat.append(config)


# -- the builder --------------------------------------------------------------------------------------------
class Builder:
    def __init__(self, daemon: Daemon, options: BuildOptions, output: BuildOutput) -> None:
        self.daemon = daemon
        self.store: ImageStore = daemon.images
        self.options = options
        self.out = output
        self.prober = ImageProber(self.store, options.no_cache)
        self.tmp_containers: list[str] = []
        self.source: Source | None = None
        self.escape = "\\"
        self.disable_commit = False
        self.scratch_layers: list[ScratchLayer] = []

    # -- top level --------------------------------------------------------------------------------
    async def build(self, source: Source | None, parsed: ParseResult) -> str:
        self.source = source
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
            self.prober.cache_from = self._cache_sources()
        try:
            state = await self._dispatch_all(stages, meta)
        finally:
            for layer in self.scratch_layers:
                await asyncio.to_thread(layer.release)
        if state is None or not state.image_id:
            raise BuildError("No image was generated. Is your Dockerfile empty?")
        return state.image_id

    def _cache_sources(self) -> list[Image]:
        found = []
        for ref in self.options.cache_from:
            try:
                found.append(self.store.resolve(ref))
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
            env = self._env_map([f"{k}={v}" for k, v in build_args.all_allowed().items()])
            self._expand(arg, lex, env)
            for key, value in arg.args:
                build_args.add(key, value)
                build_args.add_meta(key, value)
        results = _Stages()
        state: State | None = None
        for stage in stages:
            results.check_name(stage.name)
            args = build_args.clone()
            args.reset_allowed()
            state = State(build_args=args)
            index = self._step(index, total, str(stage))
            await self._initialize_stage(state, stage, lex, results)
            state.update_run_config()
            self.out.stdout(f" ---> {_short(state.image_id)}\n")
            for cmd in stage.commands:
                index = self._step(index, total, str(cmd))
                await self.dispatch(state, cmd, lex, results)
                state.update_run_config()
                self.out.stdout(f" ---> {_short(state.image_id)}\n")
            if state.image_id:
                self.out.aux({"ID": state.image_id})
            build_args.merge_referenced(state.build_args)
            results.commit(state.stage_name, state.run_config)
        self.out.stdout(build_args.unused_warning())
        return state

    @staticmethod
    def _env_map(env: list[str]) -> dict[str, str]:
        return env_from_list(env)

    @staticmethod
    def _expand(cmd: ins.Command, lex: Lex, env: dict[str, str]) -> None:
        try:
            cmd.expand(lambda word: lex.process_word(word, env))
        except ShellError as exc:
            raise BuildError(str(exc), 400) from None

    # -- FROM -------------------------------------------------------------------------------------
    async def _initialize_stage(self, state: State, stage: ins.Stage, lex: Lex, results: _Stages) -> None:
        self.prober.reset()
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
        base = await self._image_or_stage(name, platform, results)
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

    async def _triggers(self, state: State, triggers: list[str], lex: Lex, results: _Stages) -> None:
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

    async def _image_or_stage(
        self, name: str, platform: tuple[str, str, str] | None, results: _Stages
    ) -> BaseImage:
        local_only = False
        stage = results.by_name(name)
        if stage is not None:
            name = str(stage.get("Image") or "")
            local_only = True
        platform = platform or self.options.platform
        if name == "scratch":
            p = platform or ("linux", go_arch(), "")
            return BaseImage("", None, p[0], p[1], p[2])
        image = await self._get_image(name, local_only, platform)
        return BaseImage(
            image.id,
            image,
            str(image.config.get("os") or "linux"),
            str(image.config.get("architecture") or go_arch()),
            str(image.config.get("variant") or ""),
        )

    async def _get_image(self, name: str, local_only: bool, platform: tuple[str, str, str] | None) -> Image:
        """GetImageAndReleasableLayer: a local image (or stage result), else a pull.

        A local image of another platform is still used unless it must be local (a stage): dockerd's
        GetImage reports the mismatch as not-found but returns the image, which the builder takes.
        """
        if not (self.options.pull and not local_only):
            try:
                image = self.store.resolve(name)
                if platform is not None and not _platform_matches(image, platform) and local_only:
                    raise ApiError(
                        404,
                        f"image with reference {name} was found but its platform "
                        f"({format_platform(_image_platform(image))}) does not match the specified "
                        f"platform ({format_platform(platform)})",
                    )
                return image
            except ApiError as exc:
                if local_only or exc.status != 404:
                    raise BuildError(exc.message, exc.status) from None
        return await self._pull(name, platform)

    async def _pull(self, name: str, platform: tuple[str, str, str] | None) -> Image:
        from ..api.distribution import _metadata, service_config
        from ..distribution.auth import AuthConfig
        from ..distribution.errors import DistributionError
        from ..distribution.progress import ProgressOutput
        from ..distribution.pull import PullOptions, pull
        from ..images.reference import ReferenceError, parse_normalized_named, tag_name_only

        try:
            ref = tag_name_only(parse_normalized_named(name))
        except ReferenceError as exc:
            raise BuildError(str(exc)) from None
        creds = self._auth_for(ref.domain)
        cfg = self.daemon.config
        try:
            service = service_config(self.daemon)
        except ApiError as exc:
            raise BuildError(exc.message, exc.status) from None

        def work() -> Image:
            opts = PullOptions(
                self.store,
                service,
                _metadata(self.daemon),
                ProgressOutput(self.out.raw),
                creds if creds is not None else AuthConfig(),
                platform,
                max_concurrent=int(cfg["max-concurrent-downloads"] or 3),
                max_attempts=int(cfg["max-download-attempts"] or 5),
                log=self.daemon.log,
            )
            pulled = pull(opts, ref)
            return self.store.resolve(pulled.familiar_string())

        try:
            image = await asyncio.to_thread(work)
        except DistributionError as exc:
            raise BuildError(exc.message, exc.status) from None
        except ApiError as exc:
            raise BuildError(exc.message, exc.status) from None
        return image

    def _auth_for(self, domain: str) -> Any:
        from ..distribution.auth import AuthConfig

        configs = self.options.auth_configs or {}
        keys = [domain, f"https://{domain}", f"http://{domain}"]
        if domain == "docker.io":
            keys = ["https://index.docker.io/v1/", "index.docker.io", "docker.io", *keys]
        for key in keys:
            doc = configs.get(key)
            if isinstance(doc, dict):
                return AuthConfig.from_dict(doc)
        return None

    # -- dispatch ---------------------------------------------------------------------------------
    async def dispatch(self, state: State, cmd: ins.Command, lex: Lex, results: _Stages) -> None:
        env_list = list(state.run_config.get("Env") or [])
        env = self._env_map(env_list + state.build_args.filter_allowed(env_list))
        self._expand(cmd, lex, env)
        failed = True
        try:
            await self._dispatch(state, cmd, lex, env, results)
            failed = False
        finally:
            if self.options.force_remove or (self.options.remove and not failed):
                await self._remove_containers()

    async def _dispatch(
        self, state: State, cmd: ins.Command, lex: Lex, env: dict[str, str], results: _Stages
    ) -> None:
        rc = state.run_config
        if isinstance(cmd, ins.EnvCommand):
            message = "ENV"
            envs = list(rc.get("Env") or [])
            for kv in cmd.env:
                message += " " + str(kv)
                for i, existing in enumerate(envs):
                    if existing.partition("=")[0] == kv.key:
                        envs[i] = str(kv)
                        break
                else:
                    envs.append(str(kv))
            rc["Env"] = envs
            await self._commit(state, message)
        elif isinstance(cmd, ins.MaintainerCommand):
            state.maintainer = cmd.maintainer
            await self._commit(state, "MAINTAINER " + cmd.maintainer)
        elif isinstance(cmd, ins.LabelCommand):
            labels = dict(rc.get("Labels") or {})
            message = "LABEL"
            for kv in cmd.labels:
                labels[kv.key] = kv.value
                message += " " + str(kv)
            rc["Labels"] = labels
            await self._commit(state, message)
        elif isinstance(cmd, ins.AddCommand):
            await self._add(state, cmd)
        elif isinstance(cmd, ins.CopyCommand):
            await self._copy(state, cmd, results)
        elif isinstance(cmd, ins.OnbuildCommand):
            rc["OnBuild"] = [*(rc.get("OnBuild") or []), cmd.expression]
            await self._commit(state, "ONBUILD " + cmd.expression)
        elif isinstance(cmd, ins.WorkdirCommand):
            await self._workdir(state, cmd)
        elif isinstance(cmd, ins.RunCommand):
            await self._run(state, cmd)
        elif isinstance(cmd, ins.CmdCommand):
            resolved = self._resolve(cmd, rc)
            rc["Cmd"] = resolved
            rc["ArgsEscaped"] = False
            await self._commit(state, f"CMD {_go_slice_q(resolved)}")
            if cmd.cmd_line:
                state.cmd_set = True
        elif isinstance(cmd, ins.HealthCheckCommand):
            old = rc.get("Healthcheck")
            if isinstance(old, dict) and old.get("Test") and old["Test"][0] != "NONE":
                self.out.stdout(f"Note: overriding previous HEALTHCHECK: {_go_slice_v(old['Test'])}\n")
            rc["Healthcheck"] = dict(cmd.health)
            await self._commit(state, f"HEALTHCHECK {cmd.go_string()}")
        elif isinstance(cmd, ins.EntrypointCommand):
            resolved = self._resolve(cmd, rc)
            rc["Entrypoint"] = resolved
            rc["ArgsEscaped"] = False
            if not state.cmd_set:
                rc["Cmd"] = None
            await self._commit(state, f"ENTRYPOINT {_go_slice_q(resolved)}")
        elif isinstance(cmd, ins.ExposeCommand):
            ports: list[str] = []
            for port in cmd.ports:
                try:
                    ports += lex.process_words(port, env)
                except ShellError as exc:
                    raise BuildError(str(exc)) from None
            exposed = dict(rc.get("ExposedPorts") or {})
            for key in parse_port_specs(ports):
                exposed[key] = {}
            rc["ExposedPorts"] = exposed
            await self._commit(state, "EXPOSE " + " ".join(ports))
        elif isinstance(cmd, ins.UserCommand):
            rc["User"] = cmd.user
            await self._commit(state, f"USER {cmd.user}")
        elif isinstance(cmd, ins.VolumeCommand):
            volumes = dict(rc.get("Volumes") or {})
            for v in cmd.volumes:
                if not v:
                    raise BuildError("VOLUME specified can not be an empty string")
                volumes[v] = {}
            rc["Volumes"] = volumes
            await self._commit(state, f"VOLUME {_go_slice_v(cmd.volumes)}")
        elif isinstance(cmd, ins.StopSignalCommand):
            _valid_signal(cmd.signal)
            rc["StopSignal"] = cmd.signal
            await self._commit(state, f"STOPSIGNAL {cmd.signal}")
        elif isinstance(cmd, ins.ArgCommand):
            for key, value in cmd.args:
                state.build_args.add(key, value)
            await self._commit(state, cmd.describe())
        elif isinstance(cmd, ins.ShellCommand):
            rc["Shell"] = list(cmd.shell)
            await self._commit(state, f"SHELL {_go_slice_v(rc['Shell'])}")
        else:
            raise BuildError(f"unsupported command type: *instructions.{type(cmd).__name__}")

    @staticmethod
    def _resolve(cmd: ins.ShellDependent, rc: dict[str, Any]) -> list[str] | None:
        result = cmd.cmd_line
        if cmd.prepend_shell and result is not None:
            result = [*_shell(rc), *result]
        return result

    # -- commits ----------------------------------------------------------------------------------
    def _probe(self, state: State, config: dict[str, Any]) -> bool:
        p = self.options.platform
        arch = p[1] if p is not None else go_arch()
        cached = self.prober.probe(state.image_id, config, state.os, arch)
        if not cached:
            return False
        self.out.stdout(" ---> Using cache\n")
        state.image_id = cached
        return True

    def _merge_parent_healthcheck(self, state: State, config: dict[str, Any]) -> None:
        """Container create merges the image's healthcheck into zero fields of the request's, and the
        builder's step config shares its Healthcheck with the stage's (copyRunConfig is shallow there):
        after a metadata step the stage's healthcheck has the parent's values where its own are 0."""
        hc = state.run_config.get("Healthcheck")
        parent = self._parent(state)
        parent_hc = parent.runtime_config.get("Healthcheck") if parent is not None else None
        if not isinstance(hc, dict) or not isinstance(parent_hc, dict):
            return
        for key in ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
            if not hc.get(key) and parent_hc.get(key):
                hc[key] = copy.deepcopy(parent_hc[key])
        config["Healthcheck"] = copy.deepcopy(hc)

    async def _commit(self, state: State, comment: str) -> None:
        if self.disable_commit:
            return
        if not state.has_from_image():
            raise BuildError("Please provide a source image with `from` prior to commit")
        config = _copy_config(state.run_config, Cmd=[*_shell(state.run_config), "#(nop) ", comment])
        if self._probe(state, config):
            return
        self._merge_parent_healthcheck(state, config)
        c = await self._create(state, config)
        config["Hostname"] = c.id[:12]  # the create mutated the step's config, as dockerd's does
        if config.get("Labels") is None:
            config["Labels"] = {}
        await self._commit_container(state, c, config, empty=not self._step_layer_may_change(state))

    async def _create(self, state: State, config: dict[str, Any]) -> Container:
        o = self.options
        host_config: dict[str, Any] = {
            "CgroupParent": o.cgroup_parent,
            "CpuShares": o.cpu_shares,
            "CpuPeriod": o.cpu_period,
            "CpuQuota": o.cpu_quota,
            "CpusetCpus": o.cpuset_cpus,
            "CpusetMems": o.cpuset_mems,
            "Memory": o.memory,
            "MemorySwap": o.memory_swap,
            "Ulimits": o.ulimits,
            "ShmSize": o.shm_size,
            "NetworkMode": o.network_mode if o.network_mode not in ("", "default") else "bridge",
            "LogConfig": {"Type": "none", "Config": {}},
            "ExtraHosts": list(o.extra_hosts) or None,
        }
        body = {**copy.deepcopy(config), "HostConfig": host_config}
        image = state.base.image if state.base is not None and state.image_id == state.base.id else None
        if image is None and state.image_id:
            image = self.store.resolve(state.image_id)
        try:
            c, warnings = self.daemon.containers.create(body, "", image=image or _ScratchImage())
        except ApiError as exc:
            raise BuildError(exc.message, exc.status) from None
        self.tmp_containers.append(c.id)
        for warning in warnings:
            self.out.stdout(f" ---> [Warning] {warning}\n")
        self.out.stdout(f" ---> Running in {c.id[:12]}\n")
        return c

    def _step_layer_may_change(self, state: State) -> bool:
        """A container that never runs only changes if its create made the WORKDIR: overlay2's diff of
        an untouched layer is cheap to read; vfs's (a walk of two full copies) only if that can be."""
        from ..images.layers import Overlay2Driver
        from ..scope import follow_in_scope

        if isinstance(self.store.driver, Overlay2Driver):
            return True
        workdir = str(state.run_config.get("WorkingDir") or "")
        if not workdir:
            return False
        parent = self._parent(state)
        dirs = self.store.layer_dirs(parent) if parent is not None else []
        return not dirs or not os.path.isdir(follow_in_scope(dirs[-1], workdir))

    def _parent(self, state: State) -> Image | None:
        if not state.image_id:
            return None
        return self.store.images.get(state.image_id)

    async def _commit_container(
        self, state: State, c: Container, container_config: dict[str, Any], empty: bool = False
    ) -> None:
        parent = self._parent(state)
        store = self.store

        def work() -> Image:
            if empty:
                writer: Any = lambda out: out.write(b"\0" * 1024)  # noqa: E731 - a container that never ran
            else:
                writer = lambda out: container_diff(store, c.id, out)  # noqa: E731
            with spooled_diff(store, writer) as (path, digest):
                return commit_layer(
                    store,
                    parent,
                    path,
                    digest,
                    os_name=state.os,
                    config=copy.deepcopy(state.run_config),
                    container_config=container_config,
                    container_id=c.id,
                    author=state.maintainer,
                    arch=state.base.arch if state.base is not None else "",
                )

        image = await asyncio.to_thread(work)
        store._event("create", image.id, image.id)
        state.image_id = image.id

    async def _remove_containers(self) -> None:
        manager = self.daemon.containers
        for cid in list(self.tmp_containers):
            c = manager.by_id.get(cid)
            if c is not None:
                try:
                    await manager.remove(c, force=True, volumes=True)
                except ApiError as exc:
                    self.out.stdout(f"Removing intermediate container {cid[:12]}: {exc.message}\n")
                    continue
            self.tmp_containers.remove(cid)
            self.out.stdout(f" ---> Removed intermediate container {cid[:12]}\n")

    # -- WORKDIR ----------------------------------------------------------------------------------
    async def _workdir(self, state: State, cmd: ins.WorkdirCommand) -> None:
        rc = state.run_config
        if not cmd.path:
            raise BuildError("cannot normalize nothing")
        current = rc.get("WorkingDir") or ""
        if cmd.path.startswith("/"):
            rc["WorkingDir"] = posixpath.normpath(cmd.path).replace("//", "/")
        else:
            rc["WorkingDir"] = posixpath.normpath(posixpath.join("/", current, cmd.path)).replace("//", "/")
        if self.disable_commit:
            return
        comment = "WORKDIR " + rc["WorkingDir"]
        config = _copy_config(rc, Cmd=[*_shell(rc), "#(nop) " + comment])
        if self._probe(state, config):
            return
        self._merge_parent_healthcheck(state, config)
        c = await self._create(state, config)
        config["Hostname"] = c.id[:12]
        if config.get("Labels") is None:
            config["Labels"] = {}
        await asyncio.to_thread(self._mkdir_workdir, c, rc["WorkingDir"])
        await self._commit_container(state, c, config)

    def _mkdir_workdir(self, c: Container, workdir: str) -> None:
        from ..scope import follow_in_scope

        store = self.store
        root = store.mount_rootfs(c.id)
        try:
            path = follow_in_scope(root, workdir)
            missing = []
            cur = path
            while not os.path.lexists(cur) and cur != root:
                missing.append(cur)
                cur = os.path.dirname(cur)
            for directory in reversed(missing):
                os.mkdir(directory, 0o755)
                os.chown(directory, 0, 0)
        finally:
            store.unmount_rootfs(c.id)

    # -- RUN --------------------------------------------------------------------------------------
    async def _run(self, state: State, cmd: ins.RunCommand) -> None:
        if state.os != "linux":
            raise BuildError(f"operating system is not supported: {state.os}")
        if cmd.flags_used:
            raise BuildError(
                f"the --{cmd.flags_used[0]} option requires BuildKit. Refer to "
                "https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled"
            )
        rc = state.run_config
        cmd_from_args = self._resolve(cmd, rc)
        env = list(rc.get("Env") or [])
        build_args = state.build_args.filter_allowed(env)
        save_cmd = cmd_from_args
        if build_args:
            kept = sorted(
                e for e in build_args if state.build_args.referenced_or_not_builtin(e.partition("=")[0])
            )
            save_cmd = [f"|{len(kept)}", *kept, *(cmd_from_args or [])]
        probe = _copy_config(rc, Cmd=save_cmd, ArgsEscaped=False)
        if save_cmd:
            probe["Entrypoint"] = None
        if self._probe(state, probe):
            return
        run = _copy_config(
            rc, Cmd=cmd_from_args, ArgsEscaped=False, Env=env + build_args, Healthcheck={"Test": ["NONE"]}
        )
        if save_cmd:
            run["Entrypoint"] = [""]
        c = await self._create(state, run)
        code = await self._run_container(c)
        if code != 0:
            message = f"The command '{' '.join(run.get('Cmd') or [])}' returned a non-zero code: {code}"
            raise BuildError(message, code=code)
        await self._commit_container(state, c, probe)

    async def _run_container(self, c: Container) -> int:
        from ..containers.manager import ShimConnection

        manager = self.daemon.containers
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
                            self.out.stderr(text)
                        else:
                            self.out.stdout(text)
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

    # -- COPY / ADD ---------------------------------------------------------------------------------
    async def _add(self, state: State, cmd: ins.AddCommand) -> None:
        if cmd.chmod:
            raise BuildError(
                "the --chmod option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ "
                "to learn how to build images with BuildKit enabled"
            )
        tmp_root = self.store.tmp_root
        copier = Copier(self.source, lambda url: download(url, tmp_root, self.out.stdout, self.out.raw))
        try:
            inst = await asyncio.to_thread(copier.instruction, "ADD", cmd.files.sources, cmd.files.dest)
            inst.chown = cmd.chown
            inst.allow_decompression = True
            await self._perform_copy(state, inst)
        finally:
            copier.cleanup()

    async def _copy(self, state: State, cmd: ins.CopyCommand, results: _Stages) -> None:
        if cmd.chmod:
            raise BuildError(
                "the --chmod option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ "
                "to learn how to build images with BuildKit enabled"
            )
        source: Source | None = self.source
        scratch: ScratchLayer | None = None
        if cmd.from_:
            try:
                image = await self._from_image(cmd.from_, results)
            except BuildError as exc:
                raise BuildError(f"invalid from flag value {cmd.from_}: {exc.message}", exc.status) from None
            scratch = await asyncio.to_thread(ScratchLayer, self.store, image)
            self.scratch_layers.append(scratch)
            source = LazySource(scratch.root)
        copier = Copier(source, None, from_image=bool(cmd.from_))
        inst = await asyncio.to_thread(copier.instruction, "COPY", cmd.files.sources, cmd.files.dest)
        inst.chown = cmd.chown
        if cmd.from_ and not inst.chown:
            inst.preserve_ownership = True
        await self._perform_copy(state, inst)

    async def _from_image(self, ref: str, results: _Stages) -> Image | None:
        stage = results.get(ref)
        if stage is not None:
            image_id = str(stage.get("Image") or "")
            if not image_id:
                return None
            return await self._get_image(image_id, True, self.options.platform)
        return await self._get_image(ref, False, self.options.platform)

    async def _perform_copy(self, state: State, inst: CopyInstruction) -> None:
        rc = state.run_config
        chown = f"--chown={inst.chown} " if inst.chown else ""
        comment = f"{inst.cmd_name} {chown}{inst.source_hash()} in {inst.dest} "
        config = _copy_config(rc, Cmd=[*_shell(rc), "#(nop) " + comment])
        if self._probe(state, config):
            return
        parent = self._parent(state)
        store = self.store

        def work() -> Image:
            layer = ScratchLayer(store, parent)
            try:
                dest = normalize_dest(str(rc.get("WorkingDir") or ""), inst.dest)
                identity: tuple[int, int] | None = (0, 0)
                if inst.chown:
                    try:
                        identity = parse_chown(inst.chown, layer.root)
                    except BuildError as exc:
                        raise BuildError(
                            f"unable to convert uid/gid chown string to host mapping: {exc.message}"
                        ) from None
                for info in inst.infos:
                    try:
                        perform_copy(
                            layer.root,
                            dest,
                            info,
                            None if inst.preserve_ownership else identity,
                            inst.allow_decompression,
                        )
                    except BuildError as exc:
                        raise BuildError(f"failed to copy files: {exc.message}") from None
                    except OSError as exc:
                        raise BuildError(f"failed to copy files: {exc}") from None
                with spooled_diff(store, layer.diff) as (path, digest):
                    return commit_layer(
                        store,
                        parent,
                        path,
                        digest,
                        os_name=state.os,
                        config=copy.deepcopy(rc),
                        container_config=config,
                        author=state.maintainer,
                        arch=state.base.arch if state.base is not None else "",
                    )
            finally:
                layer.release()

        image = await asyncio.to_thread(work)
        state.image_id = image.id


class _ScratchImage:
    """What a step container of a ``FROM scratch`` stage is created from: no layers, no config."""

    id = ""
    config: dict[str, Any] = {"rootfs": {"type": "layers"}}
    top_chain = ""
    diff_ids: list[str] = []


def _image_platform(image: Image) -> tuple[str, str, str]:
    return (
        str(image.config.get("os") or "linux"),
        str(image.config.get("architecture") or ""),
        str(image.config.get("variant") or ""),
    )


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
    builder.disable_commit = True
    state = State(build_args=BuildArgs())
    state.run_config = copy.deepcopy(config)
    state.image_id = str(config.get("Image") or "")
    state.os = os_name
    lex = Lex(parsed.escape)
    for cmd in commands:
        try:
            await builder.dispatch(state, cmd, lex, _Stages())
        except BuildError as exc:
            raise BuildError(exc.message, 400) from None
        state.update_run_config()
    return state.run_config
