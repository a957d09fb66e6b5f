"""resolve_config: CLI > environment > ini, and every bad value names where it came from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from harness.config import HarnessConfig, resolve_config
from harness.errors import ConfigValueError

ENV_VARS = ("HARNESS_TARGETS", "HARNESS_BACKEND", "HARNESS_KEEP_DAEMONS", "HARNESS_SHARD", "HARNESS_SCHEMA")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def _resolve(ini: dict[str, str] | None = None, **cli: Any) -> HarnessConfig:
    options = {
        "targets": None,
        "backend": None,
        "keep_daemons": False,
        "results_json": None,
        "results_dir": None,
        "harness_shard": None,
        "schema": None,
        **cli,
    }
    inis = {"harness_targets": "", "harness_backend": "", "harness_schema": "", **(ini or {})}
    option: Callable[[str], Any] = options.__getitem__  # an unknown option name is a KeyError, as in pytest
    return resolve_config(option, inis.__getitem__)


def test_defaults() -> None:
    cfg = _resolve(ini={}, targets="refd")
    assert cfg == HarnessConfig(
        targets=("refd",),
        backend="local",
        keep_daemons=False,
        results_json=None,
        results_dir=None,
        shard=None,
        schema="report",
    )


def test_schema_mode_cli_env_ini_and_bad_value(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _resolve({"harness_schema": "off"}, targets="refd").schema == "off"
    monkeypatch.setenv("HARNESS_SCHEMA", "strict")
    assert _resolve({"harness_schema": "off"}, targets="refd").schema == "strict"
    assert _resolve(targets="refd", schema="report").schema == "report"
    with pytest.raises(ConfigValueError, match="bad schema mode 'loud' from command line: choose from"):
        _resolve(targets="refd", schema="loud")


def test_cli_beats_env_beats_ini(monkeypatch: pytest.MonkeyPatch) -> None:
    ini = {"harness_targets": "external"}
    assert _resolve(ini).targets == ("external",)
    monkeypatch.setenv("HARNESS_TARGETS", "dockerd")
    assert _resolve(ini).targets == ("dockerd",)
    assert _resolve(ini, targets="refd").targets == ("refd",)


def test_empty_env_does_not_override_ini(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_TARGETS", "")
    assert _resolve({"harness_targets": "external"}).targets == ("external",)


def test_targets_are_split_trimmed_and_deduplicated() -> None:
    assert _resolve(targets=" refd , dockerd,refd,").targets == ("refd", "dockerd")


@pytest.mark.parametrize(
    ("where", "source"),
    [
        ("cli", "from command line"),
        ("env", "from environment variable HARNESS_TARGETS"),
        ("ini", "from ini option"),
    ],
)
def test_unknown_target_names_its_source(where: str, source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs: dict[str, Any] = {}
    ini = {}
    if where == "cli":
        kwargs["targets"] = "refd,nosuch"
    elif where == "env":
        monkeypatch.setenv("HARNESS_TARGETS", "nosuch")
    else:
        ini["harness_targets"] = "nosuch"
    with pytest.raises(
        ConfigValueError, match=f"unknown target 'nosuch' {source}: choose from refd, dockerd"
    ):
        _resolve(ini, **kwargs)


def test_a_targets_value_with_no_names_is_refused() -> None:
    with pytest.raises(ConfigValueError, match="no targets in ' , ' from command line"):
        _resolve(targets=" , ")


def test_backend_precedence_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _resolve({"harness_backend": "local"}, targets="refd").backend == "local"
    monkeypatch.setenv("HARNESS_BACKEND", "qemu")
    with pytest.raises(
        ConfigValueError, match="unknown backend 'qemu' from environment variable HARNESS_BACKEND"
    ):
        _resolve(targets="refd")
    assert _resolve(targets="refd", backend="local").backend == "local"  # the CLI wins over the bad env value
    with pytest.raises(ConfigValueError, match="unknown backend 'kvm' from command line"):
        _resolve(targets="refd", backend="kvm")


@pytest.mark.parametrize(
    ("value", "expected"), [("1", True), ("true", True), ("yes", True), ("0", False), ("no", False)]
)
def test_keep_daemons_from_env(value: str, expected: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_KEEP_DAEMONS", value)
    assert _resolve(targets="refd").keep_daemons is expected


def test_keep_daemons_flag_wins() -> None:
    assert _resolve(targets="refd", keep_daemons=True).keep_daemons is True


def test_shard_from_cli_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _resolve(targets="refd", harness_shard="2/4").shard == (2, 4)
    monkeypatch.setenv("HARNESS_SHARD", "1/3")
    assert _resolve(targets="refd").shard == (1, 3)
    assert _resolve(targets="refd", harness_shard="3/3").shard == (3, 3)


@pytest.mark.parametrize("bad", ["0/2", "3/2", "1", "a/b", "1/2/3", "-1/2"])
def test_bad_shard_is_refused_naming_its_source(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigValueError, match=f"bad shard '{bad}' from command line: expected I/N"):
        _resolve(targets="refd", harness_shard=bad)
    monkeypatch.setenv("HARNESS_SHARD", bad)
    with pytest.raises(ConfigValueError, match=f"bad shard '{bad}' from environment variable HARNESS_SHARD"):
        _resolve(targets="refd")


def test_results_json_with_one_target() -> None:
    cfg = _resolve(targets="refd,refd", results_json="out/refd.json")
    assert (cfg.targets, cfg.results_json) == (("refd",), "out/refd.json")


def test_results_json_with_two_targets_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        ConfigValueError,
        match=r"--results-json needs exactly one target \(got refd, dockerd "
        r"from command line\); use --results-dir",
    ):
        _resolve(targets="refd,dockerd", results_json="x.json")
    monkeypatch.setenv("HARNESS_TARGETS", "refd,dockerd")
    with pytest.raises(ConfigValueError, match="from environment variable HARNESS_TARGETS"):
        _resolve(results_json="x.json")
    assert _resolve(targets="refd,dockerd", results_dir="reports").results_dir == "reports"


def test_auto_means_the_default_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("harness.targets.default_targets", lambda: ["refd"])
    assert _resolve(targets="auto").targets == ("refd",)
    assert _resolve().targets == ("refd",)
