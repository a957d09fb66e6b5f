"""The hosted CI workflow (.github/workflows/conformance.yml) cannot run here, so it is checked instead: it is
valid YAML of the expected shape, every command it runs exists and parses with this tree's parsers, every
OS package, console script and report path it names exists, the artifact layout it produces merges into one
report with the exact merge command it runs, and actionlint (when on PATH) has nothing to say. Every
``nox -s NAME`` the CI entry point and the docs mention is a session of the noxfile."""

from __future__ import annotations

import ast
import fnmatch
import glob
import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from cf_factories import results, scenario

from conformance.parity import load_parity
from conformance.runner import REPO_ROOT, Run, parse_options
from harness.cli import main as harness_main
from harness.ospkgs import PROBES
from harness.profiles import load_profiles, scenario_id
from harness.results import dump_results
from harness.rootfs import RECIPES
from harness.targets import KNOWN_TARGETS
from harness.vmimages import KERNELS

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "conformance.yml"
#: the actions it may use, at these major versions
ACTIONS = {
    "actions/checkout@v4",
    "actions/setup-python@v5",
    "actions/upload-artifact@v4",
    "actions/download-artifact@v4",
    "actions/cache/restore@v4",
    "actions/cache/save@v4",
}


@pytest.fixture(scope="module")
def wf() -> dict[str, Any]:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict)
    return data


def _steps(wf: dict[str, Any], job: str) -> list[dict[str, Any]]:
    steps = wf["jobs"][job]["steps"]
    assert isinstance(steps, list) and all(isinstance(s, dict) for s in steps)
    return steps


def _matrix(wf: dict[str, Any], job: str = "run") -> list[dict[str, Any]]:
    """Every combination of a job's matrix (none: one empty combination)."""
    matrix = wf["jobs"][job].get("strategy", {}).get("matrix", {})
    combos: list[dict[str, Any]] = [{}]
    for name, values in matrix.items():
        combos = [{**c, name: v} for c in combos for v in values]
    return combos


def _expand(text: str, wf: dict[str, Any], values: dict[str, Any]) -> str:
    """Substitute ``${{ matrix.X }}``, ``${{ env.X }}`` and ``$X``/``${X}`` of the workflow's env."""

    def expr(m: re.Match[str]) -> str:
        scope, _, name = m.group(1).strip().partition(".")
        if scope == "matrix":
            return str(values[name])
        if scope == "env":
            return str(wf["env"][name])
        if scope == "steps":
            return "0"
        return "X"

    text = re.sub(r"\$\{\{(.*?)\}\}", expr, text)
    for name, value in wf["env"].items():
        text = re.sub(rf"\$\{{{name}\}}|\${name}\b", str(value), text)
    return text


def _commands(script: str) -> list[list[str]]:
    """Each line's words from the first word that starts a command we check (after sudo, if, then)."""
    out = []
    for line in script.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for part in re.split(r";|&&|\|\|", line):
            words = shlex.split(part, comments=True)
            while words and words[0] in ("sudo", "then", "if", "else"):
                words = words[1:]
            if words:
                out.append(words)
    return out


def _runs_for(step: dict[str, Any], values: dict[str, Any]) -> bool:
    """Whether a step runs for these matrix values (the one matrix condition the workflow uses)."""
    m = re.fullmatch(r"startsWith\(matrix\.target, '([^']*)'\)", str(step.get("if", "")))
    return m is None or str(values.get("target", "")).startswith(m.group(1))


def test_it_is_a_workflow_of_the_expected_shape(wf: dict[str, Any]) -> None:
    triggers = wf.get("on", wf.get(True))  # YAML 1.1 reads the bare key 'on' as true
    assert isinstance(triggers, dict) and {"push", "pull_request", "workflow_dispatch"} <= set(triggers)
    assert wf["permissions"] == {"contents": "read"}
    assert set(wf["jobs"]) == {"run", "kernels", "report"}
    run, kernels, report = wf["jobs"]["run"], wf["jobs"]["kernels"], wf["jobs"]["report"]
    assert all(j["runs-on"].startswith("ubuntu-") for j in (run, kernels, report))
    assert run["strategy"]["fail-fast"] is False and kernels["strategy"]["fail-fast"] is False
    assert report["needs"] == "run" and "cancelled()" in report["if"]
    for job in ("run", "kernels", "report"):
        for step in _steps(wf, job):
            assert ("uses" in step) != ("run" in step), step
            if "uses" in step:
                assert step["uses"] in ACTIONS, step["uses"]


def test_the_matrix_covers_known_targets_every_profile_and_every_shard(wf: dict[str, Any]) -> None:
    matrix = wf["jobs"]["run"]["strategy"]["matrix"]
    assert set(matrix) == {"target", "profile", "shard"}
    assert set(matrix["target"]) <= set(KNOWN_TARGETS)
    assert "refd" in matrix["target"] and sum(t.startswith("dockerd-") for t in matrix["target"]) >= 2
    assert matrix["shard"] == list(range(1, int(wf["env"]["SHARDS"]) + 1))
    # every built-in profile, in the file's order: a profile added to harness/profiles.toml must be run
    assert matrix["profile"] == list(load_profiles())


def test_the_kernel_matrix_runs_the_kernel_scenarios_on_each_kernel_with_kvm(wf: dict[str, Any]) -> None:
    job = wf["jobs"]["kernels"]
    kernels = job["strategy"]["matrix"]["kernel"]
    assert kernels == ["6.1", "6.12", "7.2"] and all(k in KERNELS for k in kernels)
    assert len({KERNELS[k] for k in kernels}) == len(kernels)  # three Debian kernels, not aliases of one
    kvm = next(s for s in _steps(wf, "kernels") if "/dev/kvm" in s.get("run", ""))
    assert "exit 2" in kvm["run"]  # no KVM stops the job loudly rather than crawling under TCG
    run = next(s for s in _steps(wf, "kernels") if "-m conformance" in s.get("run", ""))
    for values in _matrix(wf, "kernels"):
        words = next(w for w in _commands(_expand(run["run"], wf, values)) if "conformance" in w)
        parsed = parse_options(Run(argv=words[3:], env={}))
        assert isinstance(parsed, Run), words
        o = parsed.options
        assert (o.backend, o.kernel, o.keyword) == ("vm", values["kernel"], "kernel")
        assert "refd" in o.targets and any(t.startswith("dockerd-") for t in o.targets)
    packages = [w for step in _steps(wf, "kernels") for c in _commands(step.get("run", "")) for w in c]
    assert "qemu-system-x86" in packages and "debootstrap" in packages


def test_every_command_exists_and_parses(wf: dict[str, Any]) -> None:
    seen: set[str] = set()
    for job in ("run", "kernels", "report"):
        for values in _matrix(wf, job):
            for step in _steps(wf, job):
                if "run" not in step or not _runs_for(step, values):
                    continue
                for words in _commands(_expand(step["run"], wf, values)):
                    if words[0] == ".venv/bin/python":
                        assert words[1] == "-m", words
                        module, args = words[2], words[3:]
                        assert module == "pip" or importlib.util.find_spec(module) is not None, module
                        seen.add(module)
                        if module == "conformance":
                            parsed = parse_options(Run(argv=args, env={}))
                            assert isinstance(parsed, Run), args
                            if job == "kernels":
                                continue  # test_the_kernel_matrix_... checks it
                            assert parsed.options.targets == (values["target"],)
                            assert parsed.options.profiles == values["profile"]
                            assert parsed.options.shard == (values["shard"], int(wf["env"]["SHARDS"]))
                            assert parsed.options.reports == Path("results")
                        elif module == "harness.rootfs":
                            assert args[0] == "build" and set(args[1:]) <= set(RECIPES), args
                            assert set(args[1:]) == {values.get("target", "dockerd-28")}
                    elif words[0] == ".venv/bin/harness":
                        assert words[1:3] == ["report", "merge"], words
                        argv = ["merge", *(w for w in words[3:] if not w.startswith("${previous"))]
                        parsed = parse_options(Run(argv=argv, env={}))
                        assert isinstance(parsed, Run), argv
                        seen.add("harness report merge")
    assert {"conformance", "harness.rootfs", "harness.ospkgs", "harness report merge"} <= seen
    # the rootfs is built only for the dockerd-N targets
    build = next(s for s in _steps(wf, "run") if "harness.rootfs" in s.get("run", ""))
    assert build["if"] == "startsWith(matrix.target, 'dockerd-')"


def _step(wf: dict[str, Any], job: str, uses: str) -> dict[str, Any]:
    return next(s for s in _steps(wf, job) if s.get("uses") == uses)


def test_artifacts_line_up_and_merge_into_one_report(
    wf: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    upload = _step(wf, "run", "actions/upload-artifact@v4")["with"]
    download = _step(wf, "report", "actions/download-artifact@v4")["with"]
    assert not download.get("merge-multiple")  # one directory per artifact: shards/<artifact>/<target>.json
    # what every run job uploads, laid out as download-artifact lays it out
    base_ids = [f"api/s{i}" for i in range(6)]
    profiles = wf["jobs"]["run"]["strategy"]["matrix"]["profile"]
    ids = [scenario_id(sid, p) for sid in base_ids for p in profiles]
    shards = int(wf["env"]["SHARDS"])
    versions = {
        "refd": "28.5.2-refd",
        "dockerd-20.10": "20.10.24",
        "dockerd-26": "26.1.5",
        "dockerd-28": "28.5.2",
    }
    for values in _matrix(wf):
        name = _expand(upload["name"], wf, values)
        assert fnmatch.fnmatch(name, download["pattern"])
        path = Path(_expand(upload["path"], wf, values))
        assert path.parent == Path("results") and path.name == f"{values['target']}.json"
        mine = [
            scenario_id(sid, values["profile"])
            for i, sid in enumerate(base_ids)
            if i % shards == values["shard"] - 1
        ]
        dump_results(
            results(values["target"], *(scenario(sid) for sid in mine), version=versions[values["target"]]),
            tmp_path / download["path"] / name / path.name,
        )
    merge = next(s for s in _steps(wf, "report") if "harness report merge" in s.get("run", ""))
    words = next(w for w in _commands(merge["run"]) if w[0] == ".venv/bin/harness")
    monkeypatch.chdir(tmp_path)

    def argv(previous: list[str]) -> list[str]:
        out: list[str] = []
        for w in words[1:]:
            if w == "${previous[@]}":
                out += previous
            elif "*" in w:
                out += sorted(glob.glob(w))
            else:
                out.append(w)
        return out

    assert harness_main(argv([])) == 0, capsys.readouterr()
    merged = load_parity("reports")
    assert sorted(merged.target_names) == sorted({v["target"] for v in _matrix(wf)})
    assert merged.reference == "dockerd-28" and sorted(s.id for s in merged.scenarios) == sorted(ids)
    # each profile kept apart, with its own counts (the default first)
    assert merged.profile_names()[0] == "default" and sorted(merged.profile_names()) == sorted(profiles)
    assert set(merged.summary()["profiles"]) == set(profiles)
    report = _step(wf, "report", "actions/upload-artifact@v4")["with"]
    files = report["path"].split()
    for f in files:
        if not f.endswith("trend.md"):
            assert Path(f).is_file(), f
    # the next run restores the cached report and gets a trend
    cache = _step(wf, "report", "actions/cache/restore@v4")["with"]
    keep = next(s for s in _steps(wf, "report") if "cp reports/parity.json" in s.get("run", ""))
    Path(cache["path"]).mkdir()
    shutil.copy("reports/parity.json", Path(cache["path"]) / "parity.json")
    assert "previous/parity.json" in keep["run"]
    assert harness_main(argv(["--previous", cache["path"]])) == 0
    assert all(Path(f).is_file() for f in files)
    # every reports/ path the workflow names anywhere (summary, cache condition, copy) is one merge wrote
    named = set(re.findall(r"reports/[\w.-]+", WORKFLOW.read_text()))
    assert {"reports/parity.json", "reports/parity.md", "reports/trend.md"} <= named
    assert sorted(f for f in named if not Path(f).is_file()) == []
    save = _step(wf, "report", "actions/cache/save@v4")["with"]
    assert save["path"] == cache["path"] and save["key"] == cache["key"]


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_run_scripts_pass_shellcheck(wf: dict[str, Any]) -> None:
    for job in ("run", "kernels", "report"):
        for step in _steps(wf, job):
            if "run" in step:
                script = re.sub(r"\$\{\{.*?\}\}", "X", step["run"])
                proc = subprocess.run(
                    ["shellcheck", "-s", "bash", "-"],
                    input=script,
                    text=True,
                    capture_output=True,
                    timeout=60,
                )
                assert proc.returncode == 0, f"{job} / {step.get('name')}:\n{proc.stdout}"


def test_os_packages_and_console_scripts_it_names_exist(wf: dict[str, Any]) -> None:
    """The packages it asks harness.ospkgs for are ones ospkgs probes or apt knows; the .venv/bin/ scripts
    it calls are console scripts of this project (or pip and python)."""
    packages = [
        w
        for step in [*_steps(wf, "run"), *_steps(wf, "kernels")]
        for words in _commands(step.get("run", ""))
        if words[:3] == [".venv/bin/python", "-m", "harness.ospkgs"]
        for w in words[3:]
    ]
    assert "debootstrap" in packages  # harness.rootfs build needs it on the runner
    unprobed = [p for p in packages if p not in PROBES]
    if unprobed and shutil.which("apt-cache"):
        for name in unprobed:
            proc = subprocess.run(["apt-cache", "show", "--no-all-versions", name], capture_output=True)
            assert proc.returncode == 0, f"apt-cache show {name}: no such package ({proc.stderr.decode()})"
    scripts = set(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"])
    called = set(re.findall(r"\.venv/bin/([\w-]+)", WORKFLOW.read_text()))
    assert called <= scripts | {"python", "pip"}, called - scripts


def _nox_sessions() -> set[str]:
    """Session names of noxfile.py, read with ast (nox itself is not installed in the test venv)."""
    names = set()
    for node in ast.parse((REPO_ROOT / "noxfile.py").read_text()).body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            call = deco if isinstance(deco, ast.Call) else None
            func = call.func if call is not None else deco
            if isinstance(func, ast.Attribute) and func.attr == "session":
                named = [k.value for k in (call.keywords if call else []) if k.arg == "name"]
                names.add(str(named[0].value) if named and isinstance(named[0], ast.Constant) else node.name)
    return names


def test_every_nox_session_named_exists() -> None:
    sessions = _nox_sessions()
    assert {"tests", "conformance", "lint"} <= sessions
    sources = [
        WORKFLOW,
        REPO_ROOT / ".ci" / "run",
        REPO_ROOT / "README.md",
        *sorted((REPO_ROOT / "scripts").glob("*.sh")),
        *sorted((REPO_ROOT / "docs").glob("*.md")),
    ]
    named = {
        (src.relative_to(REPO_ROOT).as_posix(), m)
        for src in sources
        for m in re.findall(r"\bnox -s ([\w-]+)", src.read_text())
    }
    assert any(src == ".ci/run" and m == "tests" for src, m in named)
    assert "tests-typo" not in sessions  # the must-fail case: a name nobody defined is caught below
    assert sorted((src, m) for src, m in named if m not in sessions) == []


def _actionlint() -> list[str] | None:
    exe = shutil.which("actionlint")
    return [exe, "-format", "{{json .}}"] if exe else None


@pytest.mark.skipif(
    _actionlint() is None, reason="actionlint is not on PATH (docs/reports.md: how to run it)"
)
def test_actionlint_has_nothing_to_say() -> None:
    command = _actionlint()
    assert command is not None
    proc = subprocess.run([*command, str(WORKFLOW)], capture_output=True, text=True, timeout=120)
    problems = json.loads(proc.stdout or "[]")
    assert proc.returncode in (0, 1), proc.stderr
    assert problems == [], "\n".join(
        f"{p['line']}:{p['column']} {p['message']} [{p['kind']}]" for p in problems
    )
