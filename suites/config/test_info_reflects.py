"""/info reflects the effective configuration (spec 1.6)."""

from __future__ import annotations

import pytest

from harness.fixtures import DaemonFactory, Observations
from harness.profiles import Profile
from suites._daemon import after_userns_line
from suites._daemon import info as _info


@pytest.mark.scenario(
    "config/info/reflects-file",
    "Keys from daemon.json MUST show in /info: Debug, Labels, LoggingDriver, LiveRestoreEnabled, "
    "insecure registries",
    ref="spec 1.6",
)
def test_info_reflects_file(daemon_factory: DaemonFactory, observe: Observations) -> None:
    daemon = daemon_factory(
        config={
            "debug": True,
            "labels": ["team=qa", "tier=1"],
            "log-driver": "json-file",
            "live-restore": True,
            "insecure-registries": ["myreg.local:5000", "10.9.0.0/16"],
        }
    )
    info = _info(daemon)
    registry = info["RegistryConfig"]
    observe("Debug", info["Debug"])
    observe("Labels", sorted(info["Labels"]))  # dockerd dedupes labels through a Go map: order is random
    observe("LoggingDriver", info["LoggingDriver"])
    observe("LiveRestoreEnabled", info["LiveRestoreEnabled"])
    observe("InsecureRegistryCIDRs", registry["InsecureRegistryCIDRs"])
    observe("myreg", registry["IndexConfigs"].get("myreg.local:5000"))
    assert info["Debug"] is True and sorted(info["Labels"]) == ["team=qa", "tier=1"]
    assert registry["IndexConfigs"]["myreg.local:5000"]["Secure"] is False


@pytest.mark.scenario(
    "config/info/reflects-flags",
    "Flags MUST show in /info: --data-root as DockerRootDir (its remapped root under --userns-remap), "
    "--label as Labels, --debug as Debug",
    ref="spec 1.6",
)
def test_info_reflects_flags(daemon_factory: DaemonFactory, observe: Observations, profile: Profile) -> None:
    daemon = daemon_factory(args=["--label=from=flag", "--debug"])
    info = _info(daemon)
    observe("Labels", info["Labels"])
    observe("Debug", info["Debug"])
    # with --userns-remap=default the root is the remapped one (dockremap's first subordinate ids)
    root = f"{daemon.data_root}/100000.100000" if profile.setting("userns-remap") else daemon.data_root
    observe("DockerRootDir_matches", info["DockerRootDir"] == root)
    assert info["DockerRootDir"] == root and info["Labels"] == ["from=flag"]


@pytest.mark.scenario(
    "config/logging/debug-request-lines",
    "With --debug every API request MUST be logged at debug level naming method and path",
    ref="spec 5.1",
)
def test_debug_request_lines(daemon_factory: DaemonFactory, observe: Observations) -> None:
    daemon = daemon_factory(args=["--debug"])
    _info(daemon)
    lines = [ln for ln in daemon.logs().splitlines() if "level=debug" in ln and "/info" in ln]
    observe("logged", bool(lines))
    assert lines


@pytest.mark.scenario(
    "config/logging/log-level-filters",
    "--log-level=error MUST suppress info lines such as 'API listen on'",
    ref="spec 5.1",
)
def test_log_level_error(daemon_factory: DaemonFactory, observe: Observations) -> None:
    daemon = daemon_factory(args=["--log-level=error"])
    _info(daemon)
    remapped, lines = after_userns_line(daemon.logs().splitlines())
    observe("userns_line", remapped)  # logged before the level is set: the userns-remap profile's
    observe("info_lines", [ln for ln in lines if "level=info" in ln])
    assert not [ln for ln in lines if "level=info" in ln]


@pytest.mark.scenario(
    "config/logging/invalid-level",
    "An invalid --log-level MUST stop start-up with exit status 1",
    ref="spec 1.3",
)
def test_invalid_level(daemon_factory: DaemonFactory, observe: Observations) -> None:
    code, daemon = daemon_factory.start_expecting_exit(args=["--log-level=verbose"])
    observe("exit_code", code)
    observe("mentions_level", "verbose" in daemon.logs())
    assert code == 1 and "verbose" in daemon.logs()


@pytest.mark.scenario(
    "config/logging/text-format",
    'Log lines MUST be logrus text: time="<RFC3339 nanos>Z" level=<l> msg=...',
    ref="spec 5.1",
)
def test_text_format(daemon_factory: DaemonFactory, observe: Observations) -> None:
    import re

    daemon = daemon_factory()
    remapped, lines = after_userns_line(daemon.logs().splitlines())
    first = lines[0]
    pattern = r'^time="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z" level=info msg="Starting up"$'
    observe("userns_line", remapped)  # the userns-remap profile's daemons log it first, text too
    observe("first_line_matches", bool(re.match(pattern, first)))
    assert re.match(pattern, first), first
