"""Daemon profiles: the built-in file, users' files, selection, and how a profile joins a scenario's boot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.config import resolve_config
from harness.profiles import (
    BUILTIN_PATH,
    DEFAULT,
    Profile,
    ProfileError,
    load_profiles,
    scenario_id,
    select_profiles,
    split_id,
)

#: the profiles issue 18 asks for, each run on every target
REQUIRED = (
    "default",
    "no-bridge",
    "no-iptables",
    "no-userland-proxy",
    "vfs",
    "local-logs",
    "live-restore",
    "ipv6",
    "userns-remap",
    "host-docker0",
)


def _file(tmp_path: Path, text: str, name: str = "mine.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_the_builtin_file_has_every_required_profile_and_each_sets_something() -> None:
    profiles = load_profiles()
    assert tuple(profiles)[: len(REQUIRED)] == REQUIRED
    assert profiles[DEFAULT].is_default
    for name in REQUIRED[1:]:
        p = profiles[name]
        assert not p.is_default and p.description, name
        assert p.source == BUILTIN_PATH and p.dropped == ()
    assert profiles["no-bridge"].args == ("--bridge=none",)
    assert profiles["local-logs"].config == {
        "log-driver": "local",
        "log-opts": {"max-size": "10m", "max-file": "3"},
    }
    assert profiles["host-docker0"].netns_setup  # it makes docker0 before the daemon boots


def test_a_users_file_adds_profiles_and_may_read_a_daemon_json(tmp_path: Path) -> None:
    (tmp_path / "prod.json").write_text(
        json.dumps({"data-root": "/srv/docker", "hosts": ["fd://"], "log-driver": "local", "debug": True})
    )
    path = _file(
        tmp_path,
        """
[profile.production]
description = "our daemon.json"
daemon-json-file = "prod.json"
daemon-json = { "debug" = false }
args = ["--pidfile=/run/x.pid", "--iptables=false"]
""",
    )
    prod = load_profiles([path])["production"]
    assert prod.config == {"log-driver": "local", "debug": False}  # inline keys win over the file's
    assert prod.args == ("--iptables=false",)
    # where a daemon keeps state and listens is the harness's: left out, and said so
    assert prod.dropped == ("--pidfile=/run/x.pid", "data-root", "hosts")
    assert [p.name for p in select_profiles("default,production", "test", [path])] == [
        "default",
        "production",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[profile.x]\nargs = ['-b none']", "is not a dockerd flag in long form"),
        ("[profile.x]\nargs = ['--no-such-flag']", "is not a dockerd flag in long form"),
        ("[profile.x]\ncolour = 'red'", r"unknown key\(s\) colour"),
        ("[profile.X]\n", "a profile name is lower-case"),
        ("[profile.no-bridge]\n", "already defined in"),
        ("[profile.x]\ndaemon-json-file = 'absent.json'", "absent.json does not exist"),
        ("[profile.x]\ndaemon-json = 3", "daemon-json must be a table"),
        ("[profiles.x]\n", "unknown top-level key"),
        ("[profile.x\n", "is not valid TOML"),
    ],
)
def test_a_bad_profiles_file_is_refused_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = _file(tmp_path, text, f"bad-{abs(hash(text))}.toml")
    with pytest.raises(ProfileError, match=message) as info:
        load_profiles([path])
    assert path in str(info.value)


def test_selection_all_unknown_and_empty() -> None:
    assert [p.name for p in select_profiles(None, "x")] == [DEFAULT]
    assert [p.name for p in select_profiles("all", "x")][: len(REQUIRED)] == list(REQUIRED)
    assert [p.name for p in select_profiles("ipv6, vfs,ipv6", "x")] == ["ipv6", "vfs"]
    with pytest.raises(ProfileError, match="unknown profile 'ipv7' from --profiles: choose from default"):
        select_profiles("ipv7", "--profiles")
    with pytest.raises(ProfileError, match="no profiles in"):
        select_profiles(" , ", "x")


def test_the_harness_config_resolves_profiles_from_cli_env_and_ini(monkeypatch: pytest.MonkeyPatch) -> None:
    def resolve(**cli: object) -> tuple[str, ...]:
        options = {"targets": "refd", "backend": None, "keep_daemons": False, "results_json": None}
        options |= {"results_dir": None, "harness_shard": None, "schema": None, **cli}
        ini = {"harness_targets": "", "harness_backend": "", "harness_schema": "", "harness_profiles": "vfs"}
        return resolve_config(options.__getitem__, ini.__getitem__).profiles

    monkeypatch.delenv("HARNESS_PROFILES", raising=False)
    assert resolve() == ("vfs",)
    monkeypatch.setenv("HARNESS_PROFILES", "ipv6")
    assert resolve() == ("ipv6",)
    assert resolve(profiles="default,no-bridge") == ("default", "no-bridge")
    with pytest.raises(ProfileError, match="from command line"):
        resolve(profiles="nope")


def test_apply_puts_the_profile_first_and_lets_the_scenario_win() -> None:
    p = Profile("p", args=("--bridge=none", "--debug"), config={"log-driver": "local", "mtu": 1400})
    args, config = p.apply(["--bridge=br-x", "--log-level=warn"], {"mtu": 1500})
    # the scenario's --bridge replaces the profile's; its mtu key replaces the profile's
    assert args == ["--debug", "--bridge=br-x", "--log-level=warn"]
    assert config == {"log-driver": "local", "mtu": 1500}
    # a key the scenario gives as a flag is not taken from the profile's daemon.json (no flag/file conflict)
    args, config = p.apply(["--log-driver", "none"], None)
    assert config == {"mtu": 1400} and args == ["--bridge=none", "--debug", "--log-driver", "none"]
    # short flags count too: -b is --bridge
    assert p.apply(["-b", "br0"], None)[0] == ["--debug", "-b", "br0"]


def test_apply_gives_keys_as_flags_when_the_scenario_writes_its_own_daemon_json() -> None:
    p = Profile("p", config={"log-opts": {"max-size": "1m"}, "live-restore": True, "dns": ["10.0.0.2"]})
    args, config = p.apply([], '{"debug": true,')
    assert config == '{"debug": true,'  # the scenario's text, untouched
    assert args == ["--log-opt=max-size=1m", "--live-restore=true", "--dns=10.0.0.2"]
    args, config = p.apply([], None, config_file=False)
    assert config is None and "--live-restore=true" in args
    pools = {"default-address-pools": [{"base": "10.9.0.0/16", "size": 24}], "features": {"cdi": True}}
    assert Profile("q", config=pools).apply([], "{}")[0] == [
        "--default-address-pool=base=10.9.0.0/16,size=24",
        "--feature=cdi=true",
    ]
    with pytest.raises(ProfileError, match="no flag form"):
        Profile("q", config={"builder": {"gc": {}}}).apply([], "{}")


def test_the_default_profile_changes_nothing() -> None:
    default = load_profiles()[DEFAULT]
    assert default.apply(["--debug"], None) == (["--debug"], None)
    assert default.apply([], '{"a":') == ([], '{"a":')


def test_scenario_ids_carry_the_profile_outside_the_default() -> None:
    assert scenario_id("api/x/y", DEFAULT) == "api/x/y"
    assert scenario_id("api/x/y", "no-bridge") == "api/x/y@no-bridge"
    assert split_id("api/x/y@no-bridge") == ("api/x/y", "no-bridge")
    assert split_id("api/x/y") == ("api/x/y", DEFAULT)


def test_a_profile_says_what_it_sets_as_a_key_or_a_flag() -> None:
    from harness.profiles import Profile

    p = Profile(
        "p", args=("--ipv6", "--iptables=false", "--bip=10.0.0.1/24"), config={"userland-proxy": False}
    )
    assert p.setting("userland-proxy", True) is False
    assert p.setting("ipv6") is True and p.setting("iptables", True) is False
    assert p.setting("bip") == "10.0.0.1/24" and p.setting("live-restore", "unset") == "unset"
