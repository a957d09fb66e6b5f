"""HarnessConfig: options resolved CLI > environment > ini, with errors naming the source."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .errors import ConfigValueError

__all__ = ["BACKENDS", "SCHEMA_MODES", "HarnessConfig", "resolve_config"]

BACKENDS = ("local", "container", "vm")
#: what schema violations in observed responses do: fail the scenario, become findings, or nothing
SCHEMA_MODES = ("strict", "report", "off")


@dataclass(frozen=True)
class HarnessConfig:
    targets: tuple[str, ...]
    backend: str
    keep_daemons: bool
    results_json: str | None
    results_dir: str | None
    shard: tuple[int, int] | None
    schema: str = "report"
    kernel: str = ""  # the vm backend's kernel (bookworm, trixie, sid, 6.1, 6.12); "" = its default
    profiles: tuple[str, ...] = ("default",)  # daemon profiles (harness.profiles), in run order
    profiles_files: tuple[str, ...] = ()  # users' profiles files, read after the built-in one
    docker_cli: str = ""  # --docker-cli: a pinned version (harness.dockercli.PINS) or a path; "" = default
    part: tuple[int, int] | None = None  # this process runs part I of N of the (shard's) scenarios
    costs: str | None = None  # a JSON file of {scenario id: seconds} the parts are balanced by
    shuffle: int | None = None  # run the scenarios in the order this seed draws


def _pick(cli: Any, env_name: str, ini: Any) -> tuple[Any, str]:
    if cli not in (None, ""):
        return cli, "command line"
    if os.environ.get(env_name):
        return os.environ[env_name], f"environment variable {env_name}"
    if ini not in (None, "", []):
        return ini, "ini option"
    return None, "default"


def _maybe(get: Any, name: str) -> Any:
    """An option callers may not define (a config made before it existed): None when unknown."""
    try:
        return get(name)
    except (KeyError, ValueError):
        return None


def _parse_shard(value: str, source: str, option: str = "--harness-shard") -> tuple[int, int]:
    try:
        index, total = (int(p) for p in value.split("/"))
        if not 1 <= index <= total:
            raise ValueError
    except ValueError:
        raise ConfigValueError(
            f"bad {option.removeprefix('--harness-')} {value!r} from {source}: expected I/N with "
            f"1 <= I <= N, e.g. {option} 2/4"
        ) from None
    return index, total


def _parse_seed(value: str, source: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigValueError(
            f"bad shuffle seed {value!r} from {source}: expected an integer, e.g. --harness-shuffle 1234"
        ) from None


def resolve_config(option: Any, ini: Any) -> HarnessConfig:
    """Build the config from a pytest ``config.getoption``/``getini`` pair of callables."""
    from .targets import KNOWN_TARGETS, default_targets

    raw, source = _pick(option("targets"), "HARNESS_TARGETS", ini("harness_targets"))
    if raw in (None, "auto"):
        targets = default_targets()
    else:
        targets = [t.strip() for t in str(raw).split(",") if t.strip()]
    for name in targets:
        if name not in KNOWN_TARGETS:
            raise ConfigValueError(
                f"unknown target {name!r} from {source}: choose from {', '.join(KNOWN_TARGETS)}"
            )
    targets = list(dict.fromkeys(targets))
    if not targets:
        raise ConfigValueError(f"no targets in {raw!r} from {source}: choose from {', '.join(KNOWN_TARGETS)}")
    backend, bsource = _pick(option("backend"), "HARNESS_BACKEND", ini("harness_backend"))
    backend = backend or "local"
    if backend not in BACKENDS:
        raise ConfigValueError(
            f"unknown backend {backend!r} from {bsource}: choose from {', '.join(BACKENDS)}"
        )
    keep, _ = _pick(option("keep_daemons") or None, "HARNESS_KEEP_DAEMONS", None)
    shard_raw, ssource = _pick(option("harness_shard"), "HARNESS_SHARD", None)
    schema, schema_source = _pick(option("schema"), "HARNESS_SCHEMA", ini("harness_schema"))
    schema = str(schema or "report").strip().lower()
    if schema not in SCHEMA_MODES:
        raise ConfigValueError(
            f"bad schema mode {schema!r} from {schema_source}: choose from {', '.join(SCHEMA_MODES)}"
        )
    kernel, ksource = _pick(_maybe(option, "kernel"), "HARNESS_VM_KERNEL", _maybe(ini, "harness_kernel"))
    kernel = str(kernel or "").strip().lower()
    if kernel:
        from .vmimages import KERNELS

        if kernel not in KERNELS:
            raise ConfigValueError(
                f"unknown kernel {kernel!r} from {ksource}: choose from {', '.join(KERNELS)}"
            )
    profiles, profiles_files = _resolve_profiles(option, ini)
    docker_cli, csource = _pick(
        _maybe(option, "docker_cli"), "HARNESS_DOCKER_CLI", _maybe(ini, "harness_docker_cli")
    )
    docker_cli = str(docker_cli or "").strip()
    if docker_cli:
        from .dockercli import PINS

        if docker_cli not in PINS and not docker_cli.startswith(("/", ".")):
            raise ConfigValueError(
                f"unknown docker CLI {docker_cli!r} from {csource}: choose a pinned version "
                f"({', '.join(PINS)}) or the path of a docker binary"
            )
    part_raw = _maybe(option, "harness_part")
    shuffle_raw, shuffle_source = _pick(_maybe(option, "harness_shuffle"), "HARNESS_SHUFFLE", None)
    results_json = option("results_json")
    if results_json and len(targets) != 1:
        raise ConfigValueError(
            f"--results-json needs exactly one target (got {', '.join(targets)} from "
            f"{source}); use --results-dir for several"
        )
    return HarnessConfig(
        targets=tuple(targets),
        backend=backend,
        keep_daemons=str(keep).lower() in ("1", "true", "yes") if keep is not None else False,
        results_json=results_json,
        results_dir=option("results_dir"),
        shard=_parse_shard(str(shard_raw), ssource) if shard_raw else None,
        schema=schema,
        kernel=kernel,
        profiles=profiles,
        profiles_files=profiles_files,
        docker_cli=docker_cli,
        part=_parse_shard(str(part_raw), "command line", "--harness-part") if part_raw else None,
        costs=_maybe(option, "harness_costs") or None,
        shuffle=_parse_seed(str(shuffle_raw), shuffle_source) if shuffle_raw not in (None, "") else None,
    )


def _resolve_profiles(option: Any, ini: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``--profiles`` (names, ``all``) and ``--profiles-file`` (paths), checked against the profiles."""
    from .profiles import select_profiles

    files_raw, _ = _pick(
        _maybe(option, "profiles_file"), "HARNESS_PROFILES_FILE", _maybe(ini, "harness_profiles_file")
    )
    files = tuple(p.strip() for p in str(files_raw or "").split(",") if p.strip())
    raw, source = _pick(_maybe(option, "profiles"), "HARNESS_PROFILES", _maybe(ini, "harness_profiles"))
    return tuple(p.name for p in select_profiles(raw, source, files)), files
