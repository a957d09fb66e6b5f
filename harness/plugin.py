"""pytest11 entry point ``harness``: options, markers, target parametrisation, results files.

Loaded in every pytest run of an environment where the harness is installed, so it
imports nothing heavy at module level.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import time
import zlib
from typing import Any

import pytest

from . import ordering
from .fixtures import (  # noqa: F401 - fixtures are registered by import
    _CONFIG_KEY,
    ISOLATION_KEY,
    OBSERVATIONS_KEY,
    SUBRESULTS_KEY,
    _session_factory,
    _shared_daemon_isolation,
    daemon_factory,
    docker_cli,
    docker_client,
    docker_daemon,
    engine,
    observe,
    profile,
    registries,
    registry,
    registry_auth,
    registry_tls,
    registry_token,
    subresults,
    target,
    test_image,
    tls_material,
)
from .profiles import DEFAULT as DEFAULT_PROFILE
from .systemd_box import systemd_box  # noqa: F401 - registered by import; heavy parts load on use

__all__ = ["pytest_addoption", "pytest_configure"]

_RECORDS: pytest.StashKey[dict[str, dict[str, Any]]] = pytest.StashKey()
_STARTED: pytest.StashKey[float] = pytest.StashKey()
_SCHEMA: pytest.StashKey[Any] = pytest.StashKey()  # schemacheck.SchemaSession per target name
_COLLECTOR: pytest.StashKey[Any] = pytest.StashKey()  # schemacheck.Collector of one test call
RESULTS_SCHEMA = "harness.results/3"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "Docker Engine conformance harness")
    group.addoption(
        "--targets",
        default=None,
        help="comma-separated targets: refd, dockerd, dockerd-20.10, dockerd-26, dockerd-28, "
        "external (default: refd plus dockerd if installed)",
    )
    group.addoption("--backend", default=None, help="where daemons boot: local (default), container or vm")
    group.addoption(
        "--kernel",
        default=None,
        help="the vm backend's guest kernel: bookworm (6.1, default), trixie (6.12) or sid",
    )
    group.addoption(
        "--profiles",
        default=None,
        help="comma-separated daemon profiles every target boots in (harness/profiles.toml: default, "
        "no-bridge, no-iptables, ipv6, ...; 'all' = every profile; default: default)",
    )
    group.addoption(
        "--profiles-file",
        default=None,
        help="your own profiles file(s), comma-separated, in the format of harness/profiles.toml",
    )
    group.addoption(
        "--keep-daemons",
        action="store_true",
        default=False,
        help="leave daemon work directories in place for debugging",
    )
    group.addoption("--results-json", default=None, help="write this target's scenario results to PATH")
    group.addoption("--results-dir", default=None, help="write <target>.json results files into DIR")
    group.addoption("--harness-shard", default=None, help="run shard I of N scenarios (I/N)")
    group.addoption(
        "--harness-part",
        default=None,
        help="of the (shard's) scenarios, run part I of N, the parts balanced by cost (the conformance "
        "runner's --jobs runs the parts side by side)",
    )
    group.addoption(
        "--harness-costs",
        default=None,
        help="a JSON file {scenario id: seconds} (a previous run's) that --harness-part balances by",
    )
    group.addoption(
        "--harness-shuffle",
        default=None,
        metavar="SEED",
        help="run the scenarios in the order SEED draws (the same seed, the same order); env HARNESS_SHUFFLE",
    )
    group.addoption(
        "--schema",
        default=None,
        help="check the JSON bodies scenarios receive against the Engine API swagger: report (default; "
        "violations are findings in the results), strict (a violation fails the scenario), off",
    )
    group.addoption(
        "--docker-cli",
        default=None,
        help="the docker CLI scenarios drive: a pinned Debian CLI (28.5: sid's docker-cli, the default; "
        "26.1: trixie's; 20.10: bookworm's docker.io) or the path of a docker binary",
    )
    parser.addini("harness_targets", "default targets (comma-separated)", default="")
    parser.addini("harness_backend", "default backend", default="")
    parser.addini("harness_kernel", "the vm backend's kernel (bookworm, trixie, sid)", default="")
    parser.addini("harness_schema", "schema check mode: strict, report or off", default="")
    parser.addini("harness_profiles", "default daemon profiles (comma-separated)", default="")
    parser.addini("harness_profiles_file", "your own profiles file(s) (comma-separated)", default="")
    parser.addini("harness_docker_cli", "the docker CLI: 28.5, 26.1, 20.10 or a path", default="")


def pytest_configure(config: pytest.Config) -> None:
    from .config import resolve_config
    from .errors import ConfigValueError

    config.addinivalue_line(
        "markers", "scenario(id, statement, ref): a conformance scenario with a stable id"
    )
    config.addinivalue_line("markers", "requires_root: needs uid 0")
    config.addinivalue_line(
        "markers", "refd_only(reason): behaviour only refd has; not compared with dockerd"
    )
    config.addinivalue_line(
        "markers",
        "profiles(*names, exclude=(), reason): the daemon profiles a scenario makes sense in (names or "
        "globs; none = all), minus those in exclude; elsewhere it is skipped with the reason",
    )
    config.addinivalue_line(
        "markers", "box: uses a systemd box (a container with systemd as PID 1; seconds per scenario)"
    )
    config.addinivalue_line(
        "markers",
        "kernel: depends on the kernel (cgroups, overlay, namespaces, netfilter); what --backend vm "
        "--kernel K runs first: -m kernel (or -k kernel)",
    )
    try:
        config.stash[_CONFIG_KEY] = resolve_config(config.getoption, config.getini)
    except ConfigValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if config.stash[_CONFIG_KEY].kernel:  # the vm backend (and daemons booted for this run) read it there
        os.environ["HARNESS_VM_KERNEL"] = config.stash[_CONFIG_KEY].kernel
    if config.stash[_CONFIG_KEY].docker_cli:  # make_cli and the systemd box read it there
        os.environ["HARNESS_DOCKER_CLI"] = config.stash[_CONFIG_KEY].docker_cli
    config.stash[_RECORDS] = {}
    config.stash[_STARTED] = time.time()
    config.stash[_SCHEMA] = {}
    if os.geteuid() == 0:
        from .cleanup import LEDGER

        LEDGER.reap()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    cfg = metafunc.config.stash[_CONFIG_KEY]
    if "target" in metafunc.fixturenames:
        names = list(cfg.targets)
        metafunc.parametrize("target", names, ids=names, indirect=True, scope="session")
    # the default run keeps its test ids (test_x[refd]): the profile is a parameter only when chosen
    if "profile" in metafunc.fixturenames and _profiled(cfg):
        profiles = list(cfg.profiles)
        metafunc.parametrize("profile", profiles, ids=profiles, indirect=True, scope="session")


def _profiled(cfg: Any) -> bool:
    return tuple(cfg.profiles) != (DEFAULT_PROFILE,)


def _scenario(item: pytest.Item) -> pytest.Mark | None:
    return item.get_closest_marker("scenario")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    seen: dict[tuple[str, str, str], str] = {}
    cfg = config.stash[_CONFIG_KEY]
    unprofiled: list[pytest.Item] = []
    for item in items:
        if "systemd_box" in getattr(item, "fixturenames", ()):  # -m "not box" leaves the slow ones out
            item.add_marker(pytest.mark.box)
            # a box boots its daemon through its unit files and the scenario's own daemon.json
            item.add_marker(
                pytest.mark.profiles(
                    DEFAULT_PROFILE,
                    reason="a systemd box boots its daemon from its unit files and the scenario's own "
                    "daemon.json, not through the harness's daemon factory",
                )
            )
        _check_profiles_mark(config, item)
        # no daemon, so no profile: such a test belongs to the default profile only
        no_daemon = "profile" not in getattr(item, "fixturenames", ())
        if _profiled(cfg) and no_daemon and DEFAULT_PROFILE not in cfg.profiles:
            unprofiled.append(item)
        mark = _scenario(item)
        if mark is None:
            continue
        if not mark.args or not isinstance(mark.args[0], str) or "/" not in mark.args[0]:
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.scenario needs an id like 'api/system/ping'"
            )
        if "@" in mark.args[0]:
            raise pytest.UsageError(
                f"{item.nodeid}: scenario id {mark.args[0]!r} must not contain '@' (it separates the profile)"
            )
        key = (mark.args[0], _target_of(item), _profile_of(item))
        base = item.nodeid.split("[")[0]
        if key in seen and seen[key] != base:
            raise pytest.UsageError(
                f"scenario id {mark.args[0]!r} is used by both {seen[key]} and {item.nodeid}"
            )
        seen[key] = base
    if unprofiled:
        config.hook.pytest_deselected(items=unprofiled)
        items[:] = [i for i in items if i not in unprofiled]
    _check_counting(config, items)
    keep = list(items)
    if cfg.shard is not None:
        index, total = cfg.shard
        # every target's run of a scenario lands in the same shard, so shards merge per scenario id (a
        # profile's run of it is another id: profiles spread over the shards)
        keep = [i for i in keep if zlib.crc32(_group_key(i).encode()) % total == index - 1]
    if cfg.part is not None:
        costs = ordering.load_costs(cfg.costs) if cfg.costs else {}
        keep = ordering.part_of(keep, cfg.part[0], cfg.part[1], _group_key, costs)
    if cfg.shuffle is not None:
        keep = ordering.shuffle(keep, cfg.shuffle, _group_key)
    if len(keep) != len(items):
        chosen = set(map(id, keep))
        config.hook.pytest_deselected(items=[i for i in items if id(i) not in chosen])
    items[:] = keep
    _prepare_schema(config, items)
    _prepare_docker_cli(config, items)


def _prepare_docker_cli(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Fetch the pinned docker CLI before the first scenario (once; then cached) and say which it is."""
    if not any(_scenario(i) for i in items):
        return
    from .dockercli import DockerCLIError, resolve, selected

    capman = config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
        try:
            cli = resolve(selected())
        except DockerCLIError as exc:  # every scenario that runs the CLI fails with this, loudly
            sys.stderr.write(f"harness: error: {exc}\n")
            return
    sys.stderr.write(f"harness: docker CLI {cli.describe()}\n")


def _group_key(item: pytest.Item) -> str:
    """What keeps items together in a shard or a part: the scenario's record id, else the node id."""
    mark = _scenario(item)
    return _record_id(item, mark) if mark else item.nodeid.split("[")[0]


def _schema_session(config: pytest.Config, name: str) -> Any:
    sessions = config.stash[_SCHEMA]
    if name not in sessions:
        from .schemacheck import SchemaSession

        sessions[name] = SchemaSession(config.stash[_CONFIG_KEY].schema)
    return sessions[name]


def _prepare_schema(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Fetch and load the swaggers once, before any scenario runs (only when there are scenarios)."""
    mode = config.stash[_CONFIG_KEY].schema
    if mode == "off" or not any(_scenario(i) for i in items):
        return
    from .schemacheck import SchemaSession

    probe = SchemaSession(mode, sys.stderr)
    capman = config.pluginmanager.getplugin("capturemanager")
    # the first run fetches the swaggers (seconds): show that, and a failure, through pytest's capture
    with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
        try:
            probe.prepare()
        except Exception as exc:
            if mode == "strict":
                raise pytest.UsageError(
                    f"--schema strict: the Engine API swaggers are unavailable: {exc}"
                ) from None
            sys.stderr.write(f"harness: warning: schema checks are off for this run: {exc}\n")
    for name in config.stash[_CONFIG_KEY].targets:
        _schema_session(config, name).adopt(probe)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """While a scenario's body runs, check every JSON response its clients read against the swagger."""
    if _scenario(item) is None or item.config.stash[_CONFIG_KEY].schema == "off":
        return (yield)
    session = _schema_session(item.config, _target_of(item) or item.config.stash[_CONFIG_KEY].targets[0])
    collector = session.start()
    if collector is None:
        return (yield)
    item.stash[_COLLECTOR] = collector
    try:
        result = yield
    finally:
        session.stop()
    if session.mode == "strict" and collector.findings:
        lines = "\n".join(f"  {f.summary()}" for f in collector.findings)
        pytest.fail(
            f"schema violations ({len(collector.findings)}) in responses against the Engine API swagger:\n"
            f"{lines}",
            pytrace=False,
        )
    return result


def pytest_assertion_pass(item: pytest.Item, lineno: int, orig: str, expl: str) -> None:
    """Each passing ``assert`` is a check (pytest calls this with ``enable_assertion_pass_hook = true``)."""
    from . import checks

    checks.counted()


@pytest.hookimpl(wrapper=True, specname="pytest_runtest_call")
def pytest_runtest_call_counting_checks(item: pytest.Item) -> Any:
    """A scenario that passes without one check (an ``assert`` or a ``harness.checks`` helper) fails: its
    observations compare targets, but on any single target its statement would go unchecked."""
    mark = _scenario(item)
    if mark is None:
        return (yield)
    from . import checks

    checks.reset()
    result = yield
    if checks.count() == 0:
        pytest.fail(
            f"scenario {mark.args[0]!r} made no check of its statement: it passed without a "
            "passing assert or a harness.checks helper (expect_error, expect_status, eventually); "
            "observe() records what a target did, it checks nothing",
            pytrace=False,
        )
    return result


def _check_counting(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Counting checks needs pytest's assertion pass hook, and scenario modules rewritten with it."""
    scenarios = [i for i in items if _scenario(i) is not None]
    if not scenarios:
        return
    if not config.getini("enable_assertion_pass_hook"):
        raise pytest.UsageError(
            "the harness counts each scenario's checks through pytest's assertion pass hook: add "
            "'enable_assertion_pass_hook = true' to the pytest ini ([tool.pytest.ini_options]) or pass "
            "-o enable_assertion_pass_hook=true"
        )
    stale = sorted({str(getattr(i, "path", i.nodeid)) for i in scenarios if _rewritten_without_hook(i)})
    if stale:
        raise pytest.UsageError(
            "these scenario modules were loaded from bytecode pytest rewrote before "
            "enable_assertion_pass_hook was on, so their asserts would not count: "
            f"{', '.join(stale)}; remove their __pycache__ directories and run again"
        )


def _rewritten_without_hook(item: pytest.Item) -> bool:
    """True when the test function holds rewritten asserts that do not call the pass hook."""
    code = getattr(getattr(item, "function", None), "__code__", None)
    names: set[str] = set()
    todo = [code] if code is not None else []
    while todo:
        co = todo.pop()
        names.update(co.co_names)
        todo.extend(c for c in co.co_consts if hasattr(c, "co_names"))
    return "_format_explanation" in names and "_check_if_assertion_pass_impl" not in names


def pytest_runtest_setup(item: pytest.Item) -> None:
    """refd-only scenarios are skipped on other targets, and scenarios outside their profiles in those, with
    the reason shown in the report."""
    applies, reason = _in_profile(item)
    if not applies:
        pytest.skip(f"not in profile {_profile_of(item)}: {reason}")
    mark = item.get_closest_marker("refd_only")
    if mark is None:
        return
    name = _target_of(item) or item.config.stash[_CONFIG_KEY].targets[0]
    if name != "refd":
        reason = mark.args[0] if mark.args else "behaviour only refd has"
        pytest.skip(f"refd-only: {reason}")


def _target_of(item: pytest.Item) -> str:
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "target" in callspec.params:
        return str(callspec.params["target"])
    return ""


def _profile_of(item: pytest.Item) -> str:
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "profile" in callspec.params:
        return str(callspec.params["profile"])
    return DEFAULT_PROFILE


def _record_id(item: pytest.Item, mark: pytest.Mark) -> str:
    """The id a scenario's result is recorded under: ``<id>@<profile>`` outside the default profile."""
    from .profiles import scenario_id

    return scenario_id(str(mark.args[0]), _profile_of(item))


def _profiles_mark(item: pytest.Item) -> tuple[tuple[str, ...], tuple[str, ...], str] | None:
    """``(only, exclude, reason)`` of the closest ``@pytest.mark.profiles``, merged with the others: every
    mark on the item must let a profile in (a module's pytestmark and a test's own mark both count)."""
    marks = list(item.iter_markers("profiles"))
    if not marks:
        return None
    only: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    reasons = []
    for mark in marks:
        only += tuple(str(a) for a in mark.args)
        exclude += tuple(str(e) for e in mark.kwargs.get("exclude", ()))
        reasons.append(str(mark.kwargs.get("reason", "")))
    return only, exclude, "; ".join(r for r in reasons if r)


def _check_profiles_mark(config: pytest.Config, item: pytest.Item) -> None:
    from .profiles import load_profiles

    for mark in item.iter_markers("profiles"):
        unknown = set(mark.kwargs) - {"exclude", "reason"}
        exclude = mark.kwargs.get("exclude", ())
        if unknown or isinstance(exclude, str) or not str(mark.kwargs.get("reason", "")).strip():
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.profiles(*names, exclude=(...), reason='why') needs a reason "
                "and a tuple of names to exclude"
            )
        known = load_profiles(config.stash[_CONFIG_KEY].profiles_files)
        for name in (*mark.args, *exclude):
            if not any(ch in str(name) for ch in "*?[") and name not in known:
                raise pytest.UsageError(
                    f"{item.nodeid}: @pytest.mark.profiles names unknown profile {name!r} "
                    f"(known: {', '.join(known)})"
                )


def _in_profile(item: pytest.Item) -> tuple[bool, str]:
    """Whether the item's profile is one its ``@pytest.mark.profiles`` marks let in, and their reason."""
    from .profiles import matches

    found = _profiles_mark(item)
    if found is None:
        return True, ""
    only, exclude, reason = found
    name = _profile_of(item)
    return (not only or matches(name, only)) and not matches(name, exclude), reason


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    mark = _scenario(item)
    if mark is None:
        return report
    records = item.config.stash[_RECORDS]
    target_name = _target_of(item) or item.config.stash[_CONFIG_KEY].targets[0]
    record_id = _record_id(item, mark)
    key = f"{target_name}\0{record_id}"
    record = records.setdefault(
        key,
        {
            "id": record_id,
            "nodeid": item.nodeid.split("[")[0],
            "area": mark.args[0].split("/")[0],
            "statement": mark.args[1] if len(mark.args) > 1 else mark.kwargs.get("statement", ""),
            "ref": mark.kwargs.get("ref", mark.args[2] if len(mark.args) > 2 else ""),
            "outcome": "passed",
            "reason": "",
            "duration": 0.0,
            "observations": {},
            "target": target_name,
        },
    )
    collector = item.stash.get(_COLLECTOR, None)
    if collector is not None and report.when == "call":
        from .schemacheck import merge_records

        record["schema_check"] = merge_records(record.get("schema_check"), collector.to_dict())
    record["duration"] += report.duration
    if report.skipped:
        record["outcome"] = "skipped"
        longrepr = report.longrepr
        record["reason"] = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    elif report.failed:
        record["outcome"] = "failed" if report.when == "call" else "error"
        record["reason"] = _short(report.longreprtext)
    left = item.stash.get(ISOLATION_KEY, None)
    if left and report.when == "teardown":
        record["left_behind"] = list(left)
    observations = item.stash.get(OBSERVATIONS_KEY, None)
    if observations is not None:
        record["observations"].update(_jsonable(dict(observations)))
    reported = item.stash.get(SUBRESULTS_KEY, None)
    if reported is not None and report.when == "teardown":
        from .profiles import scenario_id

        for sub in reported:
            sub_id = scenario_id(sub["id"], _profile_of(item))  # <id>@<profile> as the scenario's own
            records[f"{target_name}\0{sub_id}"] = {
                **sub,
                "id": sub_id,
                "nodeid": record["nodeid"],
                "area": sub["id"].split("/")[0],
                "observations": {},
                "target": target_name,
            }
    return report


def _short(text: str, limit: int = 2000) -> str:
    lines = [ln for ln in text.splitlines() if ln.startswith("E ")] or text.splitlines()[-5:]
    out = "\n".join(lines)
    return out[:limit]


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _target_info(name: str, backend: str, api_version: str = "") -> dict[str, Any]:
    from .targets import resolve_target

    try:
        version = resolve_target(name).version
    except Exception:  # an unavailable target still gets a results file
        version = ""
    return {
        "name": name,
        "version": version,
        "api_version": api_version,
        "backend": backend,
        "kernel": _kernel(backend),
        "docker_cli": _docker_cli(),
    }


def _profiles_info(cfg: Any) -> dict[str, Any]:
    """What each profile of the run set, as the reports show it."""
    from .profiles import load_profiles

    known = load_profiles(cfg.profiles_files)
    return {name: known[name].to_dict() for name in cfg.profiles}


def _docker_cli() -> str:
    """The docker CLI the scenarios drove: its version and where it came from (every report says it)."""
    from .dockercli import DockerCLIError, resolve, selected

    try:
        return resolve(selected()).describe()
    except DockerCLIError as exc:
        return f"unavailable: {str(exc).splitlines()[0]}"


def _kernel(backend: str) -> str:
    """The kernel the daemons ran on: this host's, or the guest's under the vm backend."""
    if backend == "vm":
        from .backends.vm import guest_kernel

        return guest_kernel() or f"vm:{os.environ.get('HARNESS_VM_KERNEL') or 'bookworm'}"
    return platform.release()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """One line per target: how many responses were checked against the swagger, how many findings."""
    records = config.stash.get(_RECORDS, {})
    for name, session in config.stash.get(_SCHEMA, {}).items():
        if session.mode == "off":
            continue
        mine = [r for r in records.values() if r["target"] == name]
        checked = sum(r.get("schema_check", {}).get("checked", 0) for r in mine)
        hits = [r["id"] for r in mine if r.get("schema_check", {}).get("findings")]
        count = sum(len(r["schema_check"]["findings"]) for r in mine if r["id"] in hits)
        state = (
            f"off ({session.error.splitlines()[0]})" if session.error else f"{checked} response(s) checked"
        )
        terminalreporter.write_line(
            f"harness schema [{name}]: {state}, {count} finding(s) in {len(hits)} scenario(s)"
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    cfg = config.stash.get(_CONFIG_KEY, None)
    if cfg is None or not (cfg.results_json or cfg.results_dir):
        return
    records = config.stash[_RECORDS]
    started = config.stash[_STARTED]
    for name in cfg.targets:
        scenarios = sorted((dict(r) for r in records.values() if r["target"] == name), key=lambda r: r["id"])
        for record in scenarios:
            record.pop("target", None)
        schema = _schema_session(config, name)
        doc = {
            "schema": RESULTS_SCHEMA,
            "target": _target_info(name, cfg.backend, schema.api_version()),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "duration": round(time.time() - started, 3),
            "schema_check": schema.info(),
            "profiles": _profiles_info(cfg),
            **({"shuffle_seed": cfg.shuffle} if cfg.shuffle is not None else {}),
            "scenarios": scenarios,
        }
        path = cfg.results_json or os.path.join(cfg.results_dir, f"{name}.json")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as fh:
            json.dump(doc, fh, indent=1)
