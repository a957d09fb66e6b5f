"""The conformance runner: run pytest once per target, then build parity and write the reports.

The runner is a pipeline of small steps (as in nox's ``workflow.py``): each step takes the ``Run`` state and
returns it, or returns an int to end the run with that exit code. Steps are plain functions, so tests run any
prefix of a pipeline, and the pytest invocation is injectable so tests never start a real pytest or daemon.
The runner knows results, not daemons: it boots nothing itself.

Exit codes: 0 every scenario passed or was skipped on every target and nothing diverged unexplained;
1 some scenario failed/errored or diverged (or went missing) without a known-divergence entry;
2 usage or runner error (bad options, pytest exit >= 2, a missing or invalid results file).
``compare`` exits 1 when the newer report has regressions (``conformance.trend``), else 0 (2 on errors).
"""

from __future__ import annotations

import argparse
import collections
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO, cast

from conformance.errors import ConformanceError
from conformance.parity import DEFAULT_KNOWN_PATH, Parity, build_parity, load_known, load_parity
from conformance.progress import ENV as PROGRESS_ENV
from conformance.report import write_reports
from conformance.trend import compute_trend
from conformance.ui import UI_MODES, PlainUI, ProgressTail, make_ui
from harness.results import Results, ResultsError, dump_results, load_results, merge_results

__all__ = [
    "AREAS",
    "AUTO_JOBS_PER_CPU",
    "COMPARE_STEPS",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "MERGE_STEPS",
    "OPTIONAL_AREAS",
    "REPORT_COMMANDS",
    "REPORT_STEPS",
    "REPO_ROOT",
    "RUN_STEPS",
    "Job",
    "Options",
    "PytestInvoker",
    "PytestRun",
    "Run",
    "Step",
    "area_dir",
    "build_pytest_command",
    "jobs_auto",
    "main",
    "plan_jobs",
    "plugin_autoloaded",
    "report_command",
    "run_pipeline",
    "split_jobs",
    "subprocess_pytest",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

AREAS = ("api", "socket", "config", "systemd", "tutorial")
#: areas a run includes only when named (``--suite upstream-moby``, or ``--suite all``): moby's own
#: integration tests take a Go build (minutes once) and about 5 minutes per target
OPTIONAL_AREAS = ("upstream-moby",)
#: the commands besides a run (``harness report`` passes these through, anything else means ``report``)
REPORT_COMMANDS = ("report", "merge", "compare")
REPO_ROOT = Path(__file__).resolve().parent.parent
PLUGIN = "harness.plugin"
PROGRESS_PLUGIN = "conformance.progress"
TAIL_LINES = 30
_ALL = (*AREAS, *OPTIONAL_AREAS)


def area_dir(area: str) -> str:
    """The directory under ``suites/`` of an area (``upstream-moby`` lives in ``suites/upstream_moby``)."""
    return area.replace("-", "_")


_PYTEST_EXITS = {2: "interrupted", 3: "internal error", 4: "usage error", 5: "no tests collected"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class PytestRun:
    """What one pytest invocation returned: its exit code and the tail of its output."""

    returncode: int
    tail: str = ""


#: ``(command, cwd, env, out) -> PytestRun``; the default runs a subprocess and streams its output to ``out``.
PytestInvoker = Callable[[Sequence[str], Path, Mapping[str, str], TextIO], PytestRun]


def subprocess_pytest(command: Sequence[str], cwd: Path, env: Mapping[str, str], out: TextIO) -> PytestRun:
    """Run ``command``, echoing its output line by line and keeping the last ``TAIL_LINES`` lines."""
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    try:
        proc = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        return PytestRun(127, f"cannot start {command[0]}: {exc}")
    assert proc.stdout is not None
    with proc:
        for line in proc.stdout:
            out.write(line)
            out.flush()
            tail.append(line.rstrip("\n"))
    return PytestRun(proc.returncode, "\n".join(tail))


@dataclass
class Options:
    """Parsed command line. ``command`` selects the pipeline: run, merge or report."""

    command: str = "run"
    targets: tuple[str, ...] = ()
    suites: tuple[str, ...] = AREAS
    reports: Path = Path("reports")
    backend: str | None = None  # None: let the plugin resolve it (HARNESS_BACKEND, ini, else local)
    kernel: str | None = None  # the vm backend's guest kernel; None: the plugin's (HARNESS_VM_KERNEL, ini)
    profiles: str | None = None  # --profiles, checked here, passed to the plugin; None: the plugin's default
    profiles_files: tuple[Path, ...] = ()  # --profiles-file: users' profiles files (absolute)
    keyword: str | None = None
    shard: tuple[int, int] | None = None
    schema: str | None = None  # None: let the plugin resolve it (HARNESS_SCHEMA, ini, else report)
    docker_cli: str | None = None  # None: the plugin's (HARNESS_DOCKER_CLI, ini, else Debian sid's 28.5)
    pytest_args: tuple[str, ...] = ()
    reference: str | None = None
    known: Path | None = None
    inputs: tuple[Path, ...] = ()
    previous: Path | None = None  # --previous, or compare's OLD: a parity.json or a directory holding one
    ui: str = "auto"  # --ui: auto (rich on a terminal when installed), rich, plain
    current: Path | None = None  # compare's NEW
    jobs: int | None = None  # --jobs: pytest processes at once; None: auto (jobs_auto)
    shuffle: int | None = None  # --shuffle: the seed of the scenario order; None: collection order


@dataclass
class Run:
    """The state handed from step to step."""

    argv: list[str]
    root: Path = REPO_ROOT
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    invoke_pytest: PytestInvoker = subprocess_pytest
    which: Callable[[str], str | None] = shutil.which
    #: the rootfs targets ``auto`` adds, and a note when it adds none: (names, note); may build a rootfs
    rootfs_targets: Callable[[TextIO], tuple[list[str], str]] = field(
        default=lambda out: default_rootfs_targets(out)
    )
    plugin_autoloaded: bool | None = None  # None: detect from installed pytest11 entry points
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    options: Options = field(default_factory=Options)
    results_paths: dict[str, Path] = field(default_factory=dict)
    pytest_runs: dict[str, PytestRun] = field(default_factory=dict)
    results: list[Results] = field(default_factory=list)
    parity: Parity | None = None
    previous: Parity | None = None
    ui: PlainUI | None = None  # set by setup_ui (PlainUI when a step runs without it)
    written: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def error(self, message: str) -> int:
        self.err.write(f"conformance: error: {message}\n")
        return EXIT_USAGE


Step = Callable[[Run], "Run | int"]


# -- options


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: {message}")


def _run_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m conformance",
        description="Run the conformance suites against each target, then write parity reports. "
        "Other commands: 'merge RESULTS.json... [--reports DIR]', 'report DIR' and 'compare OLD NEW'. "
        "Arguments after '--' go to pytest.",
    )
    p.add_argument(
        "--targets",
        default="auto",
        help="comma-separated target names; 'auto' (default) = refd, + dockerd when a dockerd binary is on "
        "PATH, + dockerd-28 when its Debian sid rootfs is cached or can be built here (root and debootstrap; "
        "about a minute, once)",
    )
    p.add_argument(
        "--suite",
        default=",".join(AREAS),
        help=f"comma-separated areas (default {','.join(AREAS)}; also {', '.join(OPTIONAL_AREAS)}; "
        "'all' is every area)",
    )
    p.add_argument("--reports", default="reports", help="directory for <target>.json and reports")
    p.add_argument(
        "--backend",
        default=None,
        help="where targets boot, passed to the harness plugin (default: HARNESS_BACKEND, else local)",
    )
    p.add_argument(
        "--kernel",
        default=None,
        help="the vm backend's guest kernel (bookworm/6.1, trixie/6.12, sid/7.2), passed to the harness "
        "plugin; '-k kernel' picks the kernel-sensitive scenarios",
    )
    p.add_argument(
        "--profiles",
        default=None,
        help="comma-separated daemon profiles every target boots in, one set of results per target x "
        "profile (harness/profiles.toml: default, no-bridge, no-iptables, no-userland-proxy, vfs, "
        "local-logs, live-restore, ipv6, userns-remap, host-docker0; 'all': every one; default: default)",
    )
    p.add_argument(
        "--profiles-file",
        action="append",
        default=[],
        metavar="PATH",
        help="your own profiles file (the format of harness/profiles.toml; repeatable); its profiles join "
        "the built-in ones",
    )
    p.add_argument("-k", dest="keyword", default=None, help="pytest -k expression, passed through")
    p.add_argument("--shard", default=None, help="I/N: run only shard I of N (passed as --harness-shard)")
    p.add_argument(
        "--jobs",
        "-j",
        default="auto",
        help="pytest processes run side by side: the targets, the longest split into parts of about equal "
        "cost (from the previous run's results in --reports when there are some); 'auto' (default): "
        f"{AUTO_JOBS_PER_CPU} per CPU, at least one per target; 1 runs the targets one after another",
    )
    p.add_argument(
        "--shuffle",
        nargs="?",
        const="random",
        default=None,
        metavar="SEED",
        help="run each target's scenarios in a shuffled order drawn from SEED (an integer; without one a "
        "random seed), the same order on every target; the seed is printed and kept in the reports, so "
        "'--shuffle SEED' repeats the order",
    )
    p.add_argument(
        "--schema",
        default=None,
        choices=("strict", "report", "off"),
        help="check the JSON bodies scenarios receive against the Engine API swagger: report (default: "
        "violations are findings in the reports), strict (a violation fails its scenario), off",
    )
    p.add_argument(
        "--docker-cli",
        default=None,
        help="the docker CLI scenarios drive, passed to the harness plugin: a pinned Debian CLI (28.5, "
        "sid's docker-cli: the default; 26.1: trixie's; 20.10: bookworm's) or the path of a docker binary",
    )
    _common(p)
    return p


def _ui_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ui",
        default="auto",
        choices=UI_MODES,
        help="terminal output: rich (progress bars, summary tables), plain (lines, as in a CI log) or auto "
        "(rich when the rich package is installed and the output is a terminal; default)",
    )


def _common(p: argparse.ArgumentParser, previous: bool = True) -> None:
    _ui_option(p)
    p.add_argument(
        "--reference", default=None, help="reference target (default: the newest dockerd*, else the first)"
    )
    p.add_argument(
        "--known", default=None, help=f"known-divergences file (default {DEFAULT_KNOWN_PATH.name})"
    )
    if previous:
        p.add_argument(
            "--previous",
            default=None,
            metavar="PATH",
            help="a previous report (its parity.json, or the directory holding it) to compare with: the "
            "trend goes into parity.json, parity.html and trend.md (read before anything is written, so it "
            "may be the reports directory itself)",
        )


def _merge_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m conformance merge",
        description="Merge results files (shards of the same target are combined) and rebuild the reports: "
        "'merge reports/*.json' or 'merge shards/*/*.json --reports DIR'. Parity documents among the "
        "files (parity.json) are skipped. The older spelling 'merge OUT_DIR RESULTS.json...' still works.",
    )
    p.add_argument(
        "results", nargs="+", metavar="RESULTS.json", help="results files (harness.results/1 or /2)"
    )
    p.add_argument(
        "--reports",
        "-o",
        dest="out",
        default=None,
        help="directory for the merged <target>.json files and the reports (default: reports)",
    )
    _common(p)
    return p


def _compare_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m conformance compare",
        description="Compare a report with a previous one: new failures, fixed scenarios, new and resolved "
        "divergences, new and removed scenarios, schema finding changes. Writes trend.md and the trend "
        "section of parity.json (and re-renders parity.md, parity.html, junit.xml) next to NEW. Exits 1 when "
        "there are regressions (a new failure no known divergence excuses, a new unexplained divergence).",
    )
    p.add_argument("old", help="the previous report: its parity.json or the directory holding it")
    p.add_argument("new", help="this report: its parity.json or the directory holding it")
    p.add_argument(
        "--reports",
        "-o",
        dest="out",
        default=None,
        help="write the reports here instead of next to NEW",
    )
    _ui_option(p)
    return p


def _report_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m conformance report",
        description="Rebuild the reports from DIR/<target>.json. (harness report DIR is the same; "
        "harness report merge ... merges results files, harness report compare OLD NEW compares reports.)",
    )
    p.add_argument("dir", help="directory holding <target>.json results files")
    _common(p)
    return p


def _is_out_dir(path: str) -> bool:
    """In ``merge A B...``: ``A`` is the output directory when it is not a results file."""
    return not path.endswith(".json") and not Path(path).is_file()


def _split_names(value: str, what: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if not names:
        raise _UsageError(f"{what}: empty list")
    bad = [n for n in names if not _NAME.fullmatch(n)]
    if bad:
        raise _UsageError(f"{what}: invalid name(s) {', '.join(map(repr, bad))}")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise _UsageError(f"{what}: duplicate name(s) {', '.join(dupes)}")
    return names


def _check_profiles(value: str | None, files: Sequence[Path]) -> str | None:
    """``--profiles`` as the plugin takes it, after checking every name (and the files) here."""
    from harness.profiles import ProfileError, select_profiles

    if value is None:
        return None
    try:
        chosen = select_profiles(value, "--profiles", [os.fspath(f) for f in files])
    except ProfileError as exc:
        raise _UsageError(str(exc)) from None
    return ",".join(p.name for p in chosen)


def _parse_shard(value: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)/(\d+)", value.strip())
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise _UsageError(f"--shard {value!r}: expected I/N with 1 <= I <= N, e.g. 2/4")
    return int(m.group(1)), int(m.group(2))


def _parse_jobs(value: str) -> int | None:
    if value.strip() == "auto":
        return None
    if not value.strip().isdigit() or int(value) < 1:
        raise _UsageError(f"--jobs {value!r}: expected a number >= 1 or 'auto'")
    return int(value)


def _parse_seed(value: str) -> int:
    if value == "random":
        import random

        return random.SystemRandom().randrange(1, 2**31)
    try:
        return int(value)
    except ValueError:
        raise _UsageError(f"--shuffle {value!r}: expected an integer seed, e.g. --shuffle 1234") from None


def parse_options(run: Run) -> Run | int:
    """Parse ``run.argv`` into ``run.options`` (usage errors exit 2, --help exits 0)."""
    argv = list(run.argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    command = "run"
    if argv and argv[0] in ("run", *REPORT_COMMANDS):
        command, argv = argv[0], argv[1:]
    parser = {
        "run": _run_parser,
        "merge": _merge_parser,
        "report": _report_parser,
        "compare": _compare_parser,
    }[command]()
    try:
        if extra and command != "run":
            raise _UsageError(f"'--' passthrough arguments only apply to a run, not to {command!r}")
        try:
            ns = parser.parse_args(argv)
        except SystemExit as exc:  # --help
            return exc.code if isinstance(exc.code, int) else EXIT_OK
        opts = Options(
            command=command,
            reference=getattr(ns, "reference", None),
            known=Path(ns.known) if getattr(ns, "known", None) else None,
            previous=Path(ns.previous) if getattr(ns, "previous", None) else None,
            ui=ns.ui,
        )
        if command == "run":
            opts.targets = _split_names(ns.targets, "--targets")
            opts.suites = _split_names(ns.suite, "--suite")
            expanded = [a for name in opts.suites for a in (_ALL if name == "all" else (name,))]
            opts.suites = tuple(dict.fromkeys(expanded))
            unknown = [
                a for a in opts.suites if a not in _ALL and not (run.root / "suites" / area_dir(a)).is_dir()
            ]
            if unknown:
                raise _UsageError(
                    f"--suite: unknown area(s) {', '.join(unknown)} (known: {', '.join(_ALL)}, all)"
                )
            opts.reports = Path(ns.reports)
            opts.backend = ns.backend
            opts.kernel = ns.kernel
            opts.profiles_files = tuple(Path(f).resolve() for f in ns.profiles_file)
            opts.profiles = _check_profiles(ns.profiles, opts.profiles_files)
            opts.keyword = ns.keyword
            opts.shard = _parse_shard(ns.shard) if ns.shard else None
            opts.schema = ns.schema
            opts.docker_cli = ns.docker_cli
            opts.jobs = _parse_jobs(ns.jobs)
            opts.shuffle = _parse_seed(ns.shuffle) if ns.shuffle is not None else None
            try:
                env_args = shlex.split(run.env.get("HARNESS_PYTEST_ARGS", ""))
            except ValueError as exc:
                raise _UsageError(f"HARNESS_PYTEST_ARGS: {exc}") from exc
            opts.pytest_args = (*env_args, *extra)
        elif command == "merge":
            paths = list(ns.results)
            if len(paths) >= 2 and _is_out_dir(paths[0]):  # the older spelling: merge OUT_DIR FILE...
                if ns.out is not None:
                    raise _UsageError(
                        f"{paths[0]!r} is not a .json file; give the output directory once, as --reports DIR"
                    )
                ns.out = paths.pop(0)
            elif len(paths) == 1 and _is_out_dir(paths[0]):
                raise _UsageError(f"no results files given, only {paths[0]!r} (a directory?)")
            opts.reports = Path(ns.out if ns.out is not None else "reports")
            opts.inputs = tuple(Path(r) for r in paths)
        elif command == "compare":
            opts.previous = Path(ns.old)
            opts.current = Path(ns.new)
            new_file = Path(ns.new) if not Path(ns.new).is_dir() else Path(ns.new) / "parity.json"
            opts.reports = Path(ns.out) if ns.out is not None else new_file.parent
        else:
            opts.reports = Path(ns.dir)
    except _UsageError as exc:
        run.err.write(f"{exc}\n")
        parser.print_usage(run.err)
        return EXIT_USAGE
    run.options = opts
    return run


# -- run: pytest per target


def default_rootfs_targets(out: TextIO) -> tuple[list[str], str]:
    """``harness.targets.main_job_rootfs_targets``: dockerd-28 when its rootfs is or can be built here."""
    from harness.targets import main_job_rootfs_targets

    return main_job_rootfs_targets(out=out)


def resolve_targets(run: Run) -> Run | int:
    """Expand ``auto``: refd, dockerd when a dockerd binary is on PATH, and dockerd-28 when its Debian sid
    rootfs is cached or can be built here (else a note says why it is left out)."""
    targets: list[str] = []
    for name in run.options.targets:
        if name == "auto":
            targets += ["refd"] + (["dockerd"] if run.which("dockerd") else [])
            extra, note = run.rootfs_targets(run.err)
            targets += extra
            if note:
                _ui(run).note(f"note: {note}")
        else:
            targets.append(name)
    auto = "auto" in run.options.targets
    run.options.targets = tuple(dict.fromkeys(targets))
    if auto:
        _ui(run).note(f"targets (auto): {', '.join(run.options.targets)}")
    return run


def plugin_autoloaded(run: Run, search_path: Sequence[str] | None = None) -> bool:
    """True when pytest will load ``harness.plugin`` by itself (an installed pytest11 entry point).

    Passing ``-p harness.plugin`` as well would make pytest register the module twice and crash. The
    subprocess runs in ``run.root``, so the root is searched too (an in-tree ``*.egg-info`` counts).
    """
    if run.plugin_autoloaded is not None:
        return run.plugin_autoloaded
    if run.env.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    path = list(search_path) if search_path is not None else [str(run.root), *sys.path]
    return any(
        ep.group == "pytest11" and ep.value.split(":")[0].strip() == PLUGIN
        for dist in importlib.metadata.distributions(path=path)
        for ep in dist.entry_points
    )


def build_pytest_command(
    run: Run, target: str, results_path: Path, part: tuple[int, int] | None = None, costs: Path | None = None
) -> list[str]:
    """``python -m pytest suites/<area>... -p harness.plugin -p conformance.progress --targets T
    --results-json F -q ...`` (with ``--harness-part I/N`` for one part of a target)."""
    o = run.options
    cmd = [sys.executable, "-m", "pytest", *(f"suites/{area_dir(area)}" for area in o.suites)]
    if not plugin_autoloaded(run):
        cmd += ["-p", PLUGIN]
    cmd += ["-p", PROGRESS_PLUGIN, "--targets", target]
    if o.backend is not None:
        cmd += ["--backend", o.backend]
    if o.kernel is not None:
        cmd += ["--kernel", o.kernel]
    if o.profiles_files:
        cmd += ["--profiles-file", ",".join(os.fspath(f) for f in o.profiles_files)]
    if o.profiles is not None:
        cmd += ["--profiles", o.profiles]
    cmd += ["--results-json", str(results_path), "-q"]
    if o.keyword is not None:
        cmd += ["-k", o.keyword]
    if o.shard is not None:
        cmd += ["--harness-shard", f"{o.shard[0]}/{o.shard[1]}"]
    if part is not None:
        cmd += ["--harness-part", f"{part[0]}/{part[1]}"]
        if costs is not None:
            cmd += ["--harness-costs", str(costs)]
    if o.shuffle is not None:
        cmd += ["--harness-shuffle", str(o.shuffle)]
    if o.schema is not None:
        cmd += ["--schema", o.schema]
    if o.docker_cli is not None:
        cmd += ["--docker-cli", o.docker_cli]
    return cmd + list(o.pytest_args)


#: ``--jobs auto``: pytest processes per CPU. Most of a scenario's time is waiting (daemon boots, dockerd's
#: shutdown, the daemons' own pauses, the CLI), so more processes than CPUs still shortens the run.
AUTO_JOBS_PER_CPU = 2


def jobs_auto(targets: int, cpus: int | None) -> int:
    """``--jobs auto``: AUTO_JOBS_PER_CPU per CPU, and at least one per target."""
    return max(targets, AUTO_JOBS_PER_CPU * (cpus or 1))


@dataclass(frozen=True)
class Job:
    """One pytest process: part ``part`` of ``parts`` of a target's scenarios, written to ``path``."""

    target: str
    part: int
    parts: int
    path: Path
    cost: float = 0.0  # the previous run's seconds for this part's share, for the start order

    @property
    def label(self) -> str:
        return self.target if self.parts == 1 else f"{self.target} {self.part}/{self.parts}"


def _previous_costs(path: Path) -> dict[str, float]:
    """``{scenario id: seconds}`` of a previous run's results file, or {} (none, or unreadable)."""
    if not path.is_file():
        return {}
    try:
        previous = load_results(path)
    except ResultsError:
        return {}
    return {s.id: s.duration for s in previous.scenarios}


#: a target's weight when no previous run says how long it takes: dockerd runs the suites about twice as long
#: as refd (its container starts, builds and shutdowns are slower)
_DEFAULT_WEIGHT = {"refd": 1.0}
_DOCKERD_WEIGHT = 2.0


def split_jobs(weights: Mapping[str, float], jobs: int) -> dict[str, int]:
    """How many parts each target gets so that ``jobs`` processes (at least one per target) end together:
    one each, then one more at a time to the target whose parts are longest (weight / parts)."""
    parts = dict.fromkeys(weights, 1)
    for _ in range(max(0, jobs - len(weights))):
        longest = max(weights, key=lambda t: (weights[t] / parts[t], -list(weights).index(t)))
        parts[longest] += 1
    return parts


def plan_jobs(run: Run, reports: Path) -> tuple[list[Job], dict[str, Path]]:
    """The pytest processes of a run and, per split target, the costs file its parts are balanced by.

    ``--jobs N`` runs N processes (at least one per target): the targets that take longest get more parts
    (by the previous run's durations when ``reports`` holds them, else dockerd counts twice refd), and the
    jobs start costliest first (with ``--jobs 1``, in the targets' order).
    """
    targets = run.options.targets
    jobs = run.options.jobs or jobs_auto(len(targets), os.cpu_count())
    costs = {t: _previous_costs(reports / f"{t}.json") for t in targets}
    weights = {
        t: sum(costs[t].values()) or _DEFAULT_WEIGHT.get(t, 1.0 if t == "external" else _DOCKERD_WEIGHT)
        for t in targets
    }
    split = split_jobs(weights, jobs)
    planned: list[Job] = []
    cost_files: dict[str, Path] = {}
    for target in targets:
        final, parts = reports / f"{target}.json", split[target]
        if parts > 1 and costs[target]:
            cost_files[target] = reports / f".{target}.costs.json"
            cost_files[target].write_text(json.dumps(costs[target]), encoding="utf-8")
        for part in range(1, parts + 1):
            path = final if parts == 1 else reports / f".{target}.part{part}of{parts}.json"
            planned.append(Job(target, part, parts, path, weights[target] / parts))
    if jobs > 1:  # one at a time: the targets' own order
        order = {t: i for i, t in enumerate(targets)}
        planned.sort(key=lambda j: (-j.cost, order[j.target], j.part))
    return planned, cost_files


def _combined_code(codes: Sequence[int]) -> int:
    """One exit code for a target's parts: a runner-level one first, then failures; 5 only if all are 5."""
    bad = [c for c in codes if c not in (0, 1, 5)]
    if bad:
        return bad[0]
    if 1 in codes:
        return 1
    return 5 if codes and all(c == 5 for c in codes) else 0


class _Prefixed:
    """A text stream writing each complete line as ``LABEL| line`` to ``out`` (parallel pytest output)."""

    def __init__(self, out: TextIO, label: str, lock: threading.Lock) -> None:
        self._out, self._label, self._lock, self._buffer = out, label, lock, ""

    def write(self, text: str) -> int:
        self._buffer += text
        *lines, self._buffer = self._buffer.split("\n")
        if lines:
            with self._lock:
                for line in lines:
                    self._out.write(f"{self._label}| {line}\n")
                self._out.flush()
        return len(text)

    def flush(self) -> None:
        pass


class _TargetProgress:
    """Folds the progress events of a target's parts into one stream for the UI (collected counts add up)."""

    def __init__(self, ui: PlainUI, target: str) -> None:
        self._ui, self._target = ui, target
        self._collected: dict[int, int] = {}
        self._lock = threading.Lock()

    def callback(self, part: int) -> Callable[[dict[str, object]], None]:
        def on_event(event: dict[str, object]) -> None:
            if event.get("event") == "collected":
                with self._lock:
                    self._collected[part] = int(str(event.get("count", 0)))
                    event = {**event, "count": sum(self._collected.values())}
            self._ui.event(self._target, event)

        return on_event


def run_targets(run: Run) -> Run | int:
    """Run pytest per target (in parts, side by side: ``--jobs``), merge each target's parts; pytest exit 1
    is data, exit >= 2 or no results file is a runner error."""
    reports = run.options.reports.resolve()
    reports.mkdir(parents=True, exist_ok=True)
    ui = _ui(run)
    ui.plan(run.options.targets)
    jobs, cost_files = plan_jobs(run, reports)
    width = run.options.jobs or jobs_auto(len(run.options.targets), os.cpu_count())
    parallel = min(width, len(jobs)) > 1
    if run.options.shuffle is not None:
        ui.note(f"scenario order: shuffled with seed {run.options.shuffle} (--shuffle {run.options.shuffle})")
    if parallel:
        ui.note(
            f"{len(jobs)} pytest process(es), {min(width, len(jobs))} at a time (--jobs {width}): "
            + ", ".join(j.label for j in jobs)
        )
    for job in jobs:
        job.path.unlink(missing_ok=True)  # never mistake a previous run's file for this one's
    lock = threading.Lock()
    progress = {t: _TargetProgress(ui, t) for t in run.options.targets}
    remaining = collections.Counter(j.target for j in jobs)
    started: dict[str, float] = {}
    outcomes: dict[str, list[tuple[Job, list[str], PytestRun]]] = {t: [] for t in run.options.targets}

    def one(job: Job) -> None:
        part = (job.part, job.parts) if job.parts > 1 else None
        cmd = build_pytest_command(run, job.target, job.path, part, cost_files.get(job.target))
        with lock:
            started.setdefault(job.target, time.monotonic())
            ui.target_started(job.target, cmd)
        events = reports / f".{job.target}.{job.part}.progress.jsonl"
        env = {**_pytest_env(run), PROGRESS_ENV: str(events)}
        stream = ui.pytest_stream(job.target)
        if parallel and not ui.rich:
            stream = cast(TextIO, _Prefixed(stream, job.label, lock))
        with ProgressTail(events, progress[job.target].callback(job.part)):
            result = run.invoke_pytest(cmd, run.root, env, stream)
        with lock:
            outcomes[job.target].append((job, cmd, result))
            remaining[job.target] -= 1
            if remaining[job.target] == 0:
                codes = [r.returncode for _, _, r in outcomes[job.target]]
                ui.target_finished(job.target, _combined_code(codes), time.monotonic() - started[job.target])

    try:
        if parallel:
            with ThreadPoolExecutor(max_workers=min(width, len(jobs)), thread_name_prefix="pytest") as pool:
                for future in [pool.submit(one, job) for job in jobs]:
                    future.result()
        else:
            for job in jobs:
                one(job)
    finally:
        ui.stop()
        for path in cost_files.values():
            path.unlink(missing_ok=True)
    problems: list[str] = []
    for target in run.options.targets:
        done = sorted(outcomes[target], key=lambda o: o[0].part)
        run.pytest_runs[target] = PytestRun(
            _combined_code([r.returncode for _, _, r in done]), "\n".join(r.tail for _, _, r in done)
        )
        run.results_paths[target] = reports / f"{target}.json"
        for job, cmd, result in done:
            problem = _check_pytest(run, target, cmd, result, job.path, split=job.parts > 1)
            if problem:
                problems.append(problem)
        if len(done) > 1 and run.pytest_runs[target].returncode == 5 and run.options.shard is None:
            problems.append(f"pytest for target {target} exited 5 (no tests collected) in every part")
        if not problems and done and done[0][0].parts > 1:
            _merge_parts(target, [job.path for job, _, _ in done], run.results_paths[target])
    if problems:
        for p in problems:
            run.err.write(f"conformance: runner error: {p}\n")
        return EXIT_USAGE
    return run


def _merge_parts(target: str, paths: Sequence[Path], final: Path) -> None:
    """One results file for a target from its parts' files (removed afterwards)."""
    parts = [load_results(p) for p in paths]
    dump_results(merge_results(parts, source=f"the {len(parts)} parts of target {target!r}"), final)
    for path in paths:
        path.unlink(missing_ok=True)


def _ui(run: Run) -> PlainUI:
    if run.ui is None:
        run.ui = PlainUI(run.out)
    return run.ui


def setup_ui(run: Run) -> Run | int:
    """Plain lines or rich progress and tables (``--ui``); a note when rich was asked for and is missing."""
    ui, note = make_ui(run.options.ui, run.out, run.env)
    if note:
        run.err.write(f"conformance: {note}\n")
    run.ui = ui
    return run


def _pytest_env(run: Run) -> dict[str, str]:
    """The environment for pytest: ``run.env`` with the repo root first on PYTHONPATH.

    ``python -m pytest`` in the root can import ``harness`` and ``suites`` anyway, but the daemons the harness
    spawns (``python -m harness.daemon``) are separate interpreters that only see PYTHONPATH.
    """
    env = dict(run.env)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(run.root)]
    env["PYTHONPATH"] = os.pathsep.join([str(run.root), *parts])
    return env


def _check_pytest(
    run: Run, target: str, cmd: Sequence[str], result: PytestRun, path: Path, split: bool = False
) -> str:
    code = result.returncode
    why = ""
    if code == 5 and split and path.is_file():
        pass  # a part with nothing to run (fewer scenarios than parts): the other parts have them
    elif code == 5 and run.options.shard is not None and path.is_file():
        run.warnings.append(
            f"target {target}: shard {run.options.shard[0]}/{run.options.shard[1]} selected "
            "no scenarios (pytest exit 5)"
        )
    elif code not in (0, 1):
        meaning = _PYTEST_EXITS.get(code, "unexpected exit code")
        why = f"pytest for target {target} exited {code} ({meaning})"
    elif not path.is_file():
        why = (
            f"pytest for target {target} exited {code} but wrote no results file {path} "
            f"(is the {PLUGIN} plugin loaded and --results-json supported?)"
        )
    if not why:
        return ""
    tail = "\n".join(f"    {line}" for line in result.tail.splitlines()[-TAIL_LINES:]) or "    (no output)"
    return f"{why}\n  command: {shlex.join(cmd)}\n  cwd: {run.root}\n  output (tail):\n{tail}"


def load_run_results(run: Run) -> Run | int:
    run.results = [load_results(run.results_paths[t]) for t in run.options.targets]
    return run


# -- merge and report


def _load_input(path: Path) -> Results | None:
    """A results file, or None for a parity document (``reports/*.json`` globs in ``parity.json``)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return load_results(path)  # its error message names the file and the problem
    if isinstance(data, dict) and str(data.get("schema", "")).startswith("harness.parity/"):
        return None
    return Results.from_dict(data, os.fspath(path))


def _subsumed(part: Results, others: Sequence[Results]) -> bool:
    """True when every scenario of ``part`` is, identically, in one of ``others`` (a file merged before, or
    the same shard downloaded twice): merging it again would only add its duration twice."""
    seen = {s.id: s for o in others for s in o.scenarios}
    return all(seen.get(s.id) == s for s in part.scenarios)


def merge_inputs(run: Run) -> Run | int:
    """Load every input file, merge shards of the same target, write ``OUT_DIR/<target>.json``."""
    groups: dict[str, list[Results]] = {}
    for path in run.options.inputs:
        loaded = _load_input(path)
        if loaded is None:
            run.out.write(f"conformance: merge: skipping {path} (a parity document, not a results file)\n")
            continue
        groups.setdefault(loaded.target.name, []).append(loaded)
    if not groups:
        return run.error("merge: no results files among the inputs (only parity documents)")
    out_dir = run.options.reports
    out_dir.mkdir(parents=True, exist_ok=True)
    run.results = []
    for name, found in groups.items():
        # the largest first, so a previous merge's output subsumes the shards it was made of
        ordered = sorted(found, key=lambda r: -len(r.scenarios))
        parts: list[Results] = []
        for part in ordered:
            if parts and _subsumed(part, parts):
                continue
            parts.append(part)
        merged = merge_results(parts, source=f"merge of {len(parts)} file(s) for target {name!r}")
        path = out_dir / f"{name}.json"
        dump_results(merged, path)
        run.results_paths[name] = path
        run.results.append(merged)
    return run


_NOT_RESULTS = {"parity.json"}


def collect_dir(run: Run) -> Run | int:
    """Load ``DIR/*.json`` (except the parity document) in name order."""
    directory = run.options.reports
    if not directory.is_dir():
        return run.error(f"{directory}: not a directory")
    files = sorted(
        p for p in directory.glob("*.json") if p.name not in _NOT_RESULTS and not p.name.startswith(".")
    )
    if not files:
        return run.error(f"{directory}: no <target>.json results files")
    run.results = [load_results(p) for p in files]
    for p, r in zip(files, run.results, strict=True):
        run.results_paths[r.target.name] = p
    return run


# -- common tail: parity, reports, summary


def load_previous(run: Run) -> Run | int:
    """Read the ``--previous`` report first: the run may be about to overwrite it (``--previous reports``)."""
    if run.options.previous is not None:
        run.previous = load_parity(run.options.previous)
    return run


def load_current(run: Run) -> Run | int:
    """compare: the report to add a trend to."""
    assert run.options.current is not None
    run.parity = load_parity(run.options.current)
    return run


def attach_trend(run: Run) -> Run | int:
    assert run.parity is not None
    if run.previous is not None:
        source = os.fspath(run.options.previous or "")
        run.parity = replace(run.parity, trend=compute_trend(run.previous, run.parity, source))
    return run


def build_parity_step(run: Run) -> Run | int:
    known_path = run.options.known
    known = (
        load_known(known_path) if known_path is not None else load_known(DEFAULT_KNOWN_PATH, missing_ok=True)
    )
    run.parity = build_parity(run.results, known, reference=run.options.reference)
    return run


def write_reports_step(run: Run) -> Run | int:
    assert run.parity is not None
    run.written = write_reports(run.parity, run.options.reports)
    return run


def print_summary(run: Run) -> Run | int:
    """The terminal summary: per target outcomes, parity and schema; failures, divergences, the trend."""
    assert run.parity is not None
    _ui(run).summary(run.parity, run.warnings, run.written)
    return run


def print_trend_summary(run: Run) -> Run | int:
    """compare: the trend and where it was written."""
    assert run.parity is not None
    _ui(run).trend(run.parity, run.written)
    return run


def decide_compare_exit(run: Run) -> int:
    """compare: 1 when there are regressions, else 0."""
    assert run.parity is not None and run.parity.trend is not None
    regressions = run.parity.trend.regressions()
    _ui(run).result(f"regressions: {len(regressions)}", not regressions)
    return EXIT_FAILED if regressions else EXIT_OK


def decide_exit(run: Run) -> int:
    """0 all passed/skipped and no unexplained divergence; 1 otherwise."""
    assert run.parity is not None
    ok, line = run.parity.ok(), run.parity.result_line()
    for target, result in run.pytest_runs.items():
        summary = run.parity.summary()["targets"].get(target)
        if (
            result.returncode == 1
            and summary
            and not (summary["outcomes"]["failed"] or summary["outcomes"]["error"])
        ):
            run.out.write(
                f"warning: pytest reported failures for target {target} that are not in its results "
                "file (a non-scenario test or a fixture failed); counting the run as failed\n"
            )
            ok, line = False, f"FAILED (pytest failures for {target} outside its results file)"
    _ui(run).result(f"result: {line}", ok)
    return EXIT_OK if ok else EXIT_FAILED


TAIL: tuple[Step, ...] = (build_parity_step, attach_trend, write_reports_step, print_summary, decide_exit)
RUN_STEPS: tuple[Step, ...] = (
    setup_ui,
    load_previous,
    resolve_targets,
    run_targets,
    load_run_results,
    *TAIL,
)
MERGE_STEPS: tuple[Step, ...] = (setup_ui, load_previous, merge_inputs, *TAIL)
REPORT_STEPS: tuple[Step, ...] = (setup_ui, load_previous, collect_dir, *TAIL)
COMPARE_STEPS: tuple[Step, ...] = (
    setup_ui,
    load_previous,
    load_current,
    attach_trend,
    write_reports_step,
    print_trend_summary,
    decide_compare_exit,
)
_PIPELINES = {"run": RUN_STEPS, "merge": MERGE_STEPS, "report": REPORT_STEPS, "compare": COMPARE_STEPS}


def run_pipeline(steps: Sequence[Step], run: Run) -> int:
    """Feed ``run`` through ``steps``; the first int returned is the exit code. Conformance errors exit 2."""
    state: Run | int = run
    try:
        for step in steps:
            assert isinstance(state, Run)
            state = step(state)
            if isinstance(state, int):
                return state
    except (ConformanceError, ResultsError) as exc:
        if run.ui is not None:
            run.ui.stop()
        return run.error(str(exc))
    finally:
        if run.ui is not None:
            run.ui.stop()
    return EXIT_OK


def report_command(argv: Sequence[str]) -> int:
    """``harness report``: DIR (rebuild the reports), merge RESULTS.json... (CI shards), compare OLD NEW.

    Registered as the ``report`` entry of the ``harness.commands`` group (pyproject.toml), so the harness's
    command line offers it without importing the runner.
    """
    rest = list(argv)
    if not rest or rest[0] not in REPORT_COMMANDS:  # harness report DIR: rebuild the reports
        rest = ["report", *rest]
    return main(rest)


def main(
    argv: Sequence[str] | None = None,
    *,
    invoke_pytest: PytestInvoker = subprocess_pytest,
    root: Path = REPO_ROOT,
) -> int:
    run = Run(argv=list(sys.argv[1:] if argv is None else argv), invoke_pytest=invoke_pytest, root=root)
    parsed = parse_options(run)
    if isinstance(parsed, int):
        return parsed
    return run_pipeline(_PIPELINES[parsed.options.command], parsed)
