"""daemon.json loading: unknown keys, conflicts, types, syntax (spec 1.1-1.2)."""

from __future__ import annotations

import pytest

from harness.fixtures import DaemonFactory, Observations
from harness.profiles import Profile
from harness.wait import ping_once, wait_until
from suites._daemon import after_userns_line

PREFIX = "unable to configure the Docker daemon with file "


def _error_line(logs: str) -> str:
    lines = [ln for ln in logs.splitlines() if ln.startswith(PREFIX)]
    return lines[-1] if lines else ""


@pytest.mark.scenario(
    "config/daemon-json/unknown-key",
    "An unknown daemon.json key MUST stop start-up with 'the following directives don't match "
    "any configuration option: <key>'",
    ref="spec 1.2 step 4",
)
def test_unknown_key(daemon_factory: DaemonFactory, observe: Observations) -> None:
    code, daemon = daemon_factory.start_expecting_exit(config={"bogus-key": 1})
    line = _error_line(daemon.logs()).replace(daemon.config_path, "<config>")
    observe("exit_code", code)
    observe("error", line)
    assert code == 1
    assert line == (
        f"{PREFIX}<config>: the following directives don't match any configuration option: bogus-key"
    )


@pytest.mark.scenario(
    "config/daemon-json/flattened-unknown-key",
    "Nested objects MUST be flattened so an unknown inner key is reported by its own name",
    ref="spec 1.2 step 3",
)
def test_flattened_unknown_key(daemon_factory: DaemonFactory, observe: Observations) -> None:
    code, daemon = daemon_factory.start_expecting_exit(config={"tls": {"bogus": 1}})
    line = _error_line(daemon.logs()).replace(daemon.config_path, "<config>")
    observe("exit_code", code)
    observe("error", line)
    assert code == 1
    assert line.endswith("the following directives don't match any configuration option: bogus")


@pytest.mark.scenario(
    "config/daemon-json/flag-conflict",
    "A key given both as a flag and in the file MUST stop start-up, even with equal values",
    ref="spec 1.2 step 5",
)
def test_flag_conflict(daemon_factory: DaemonFactory, observe: Observations) -> None:
    code, daemon = daemon_factory.start_expecting_exit(args=["--debug"], config={"debug": True})
    line = _error_line(daemon.logs()).replace(daemon.config_path, "<config>")
    observe("exit_code", code)
    observe("error", line)
    assert code == 1
    assert line.endswith(
        "the following directives are specified both as a flag and in the configuration file: "
        "debug: (from flag: true, from file: true)"
    )


@pytest.mark.scenario(
    "config/daemon-json/type-mismatch",
    "A value of the wrong JSON type MUST stop start-up with Go's unmarshal error",
    ref="spec 1.2 step 7",
)
def test_type_mismatch(daemon_factory: DaemonFactory, observe: Observations) -> None:
    code, daemon = daemon_factory.start_expecting_exit(config={"debug": "yes"})
    line = _error_line(daemon.logs()).replace(daemon.config_path, "<config>")
    observe("exit_code", code)
    observe("error", line)
    assert code == 1
    assert "json: cannot unmarshal string into Go struct field Config.debug of type bool" in line


@pytest.mark.scenario(
    "config/daemon-json/invalid-json",
    "Truncated JSON MUST stop start-up with 'invalid JSON: unexpected end of JSON input' (dockerd 28.5)",
    ref="spec 1.2 step 8; observed on Debian's dockerd 28.5.2; moby daemon/config/config.go (HEAD)",
)
def test_invalid_json(daemon_factory: DaemonFactory, observe: Observations) -> None:
    code, daemon = daemon_factory.start_expecting_exit(config='{"debug": true,')
    line = _error_line(daemon.logs()).replace(daemon.config_path, "<config>")
    observe("exit_code", code)
    observe("error", line)
    assert code == 1
    assert line == f"{PREFIX}<config>: invalid JSON: unexpected end of JSON input"


@pytest.mark.scenario(
    "config/daemon-json/empty-file",
    "An empty daemon.json SHOULD be accepted as an empty configuration (dockerd >= 23)",
    ref="spec 1.2 step 2",
)
def test_empty_file(daemon_factory: DaemonFactory, observe: Observations) -> None:
    daemon = daemon_factory(config="", wait=False)
    assert daemon.endpoint is not None
    endpoint = daemon.endpoint

    def answered() -> bool:
        try:
            return ping_once(endpoint) == 200
        except OSError:
            return False

    wait_until(lambda: answered() or daemon.returncode is not None, 30)
    observe("serving", daemon.returncode is None)
    observe("error", _error_line(daemon.logs()).replace(daemon.config_path, "<config>"))
    assert daemon.returncode is None, daemon.log_tail()


@pytest.mark.scenario(
    "config/flags/validate",
    "--validate MUST print 'configuration OK' on stderr and exit 0 without serving (dockerd >= 23)",
    ref="spec 1.5",
)
def test_validate(daemon_factory: DaemonFactory, observe: Observations, profile: Profile) -> None:
    code, daemon = daemon_factory.start_expecting_exit(args=["--validate"], config={"debug": True})
    remapped, rest = after_userns_line(daemon.logs().strip().splitlines())
    observe("exit_code", code)
    observe("userns_line", remapped)  # the userns-remap profile's daemons resolve it first
    observe("stderr", "\n".join(rest))
    assert code == 0
    assert remapped == bool(profile.setting("userns-remap"))
    assert rest == ["configuration OK"]


@pytest.mark.scenario(
    "config/flags/validate-bad-file",
    "--validate MUST fail with the same error text as a normal start on a bad file",
    ref="spec 1.5",
)
def test_validate_bad(daemon_factory: DaemonFactory, observe: Observations) -> None:
    code, daemon = daemon_factory.start_expecting_exit(
        args=["--validate"], config={"max-concurrent-downloads": -1}
    )
    line = daemon.logs().strip().replace(daemon.config_path, "<config>")
    observe("exit_code", code)
    observe("stderr", line)
    assert code == 1
    assert line.endswith("invalid max concurrent downloads: -1")


@pytest.mark.scenario(
    "config/daemon-json/missing-explicit-file",
    "An explicit --config-file that does not exist MUST stop start-up",
    ref="spec 1.1",
)
def test_missing_explicit(daemon_factory: DaemonFactory, observe: Observations) -> None:
    code, daemon = daemon_factory.start_expecting_exit(
        args=["--config-file=/nonexistent/daemon.json"], config_file_flag=False
    )
    observe("exit_code", code)
    observe("error", _error_line(daemon.logs()))
    assert code == 1
    assert _error_line(daemon.logs()) == (
        f"{PREFIX}/nonexistent/daemon.json: open /nonexistent/daemon.json: no such file or directory"
    )


@pytest.mark.scenario(
    "config/flags/unknown-flag",
    "An unknown flag MUST fail with cobra's 'unknown flag' status text",
    ref="spec 1.4",
)
def test_unknown_flag(daemon_factory: DaemonFactory, observe: Observations) -> None:
    code, daemon = daemon_factory.start_expecting_exit(args=["--no-such-flag"])
    text = daemon.logs().strip()
    # dockerd >= 28 appends its usage text (its own flag list) before ", Code: 125": compare the frame only
    observe("exit_code", code)
    observe("first_lines", text.splitlines()[:2])
    observe("ends_with_code", text.endswith(", Code: 125"))
    assert code == 1
    assert text.startswith("Status: unknown flag: --no-such-flag\nSee 'dockerd --help'.")
    assert text.endswith(", Code: 125")


@pytest.mark.scenario(
    "config/flags/bad-bool",
    "A bad boolean flag value MUST fail with strconv.ParseBool's message",
    ref="spec 1.4",
)
def test_bad_bool(daemon_factory: DaemonFactory, observe: Observations) -> None:
    code, daemon = daemon_factory.start_expecting_exit(args=["--debug=maybe"])
    observe("exit_code", code)
    observe("first_line", daemon.logs().strip().splitlines()[0])
    assert code == 1
    assert (
        'invalid argument "maybe" for "-D, --debug" flag: strconv.ParseBool: parsing "maybe": invalid syntax'
        in daemon.logs()
    )


@pytest.mark.scenario(
    "config/registry/invalid-settings",
    "Invalid registry settings MUST stop start-up: a mirror without scheme or with credentials and an index "
    "name with a leading hyphen as flag errors, an insecure registry with another scheme as 'failed to start "
    "daemon'",
    ref="moby registry/config.go ValidateMirror, ValidateIndexName, loadInsecureRegistries",
)
def test_invalid_registry_settings(daemon_factory: DaemonFactory, observe: Observations) -> None:
    cases = {
        "mirror-no-scheme": {"args": ["--registry-mirror=mirror.example"]},
        "mirror-credentials": {"args": ["--registry-mirror=https://u:p@mirror.example"]},
        "index-hyphen": {"args": ["--insecure-registry=-bad-"]},
        "insecure-scheme": {"args": ["--insecure-registry=ftp://x"]},
        "file-insecure-scheme": {"config": {"insecure-registries": ["ftp://x"]}},
        "file-mirror-no-scheme": {"config": {"registry-mirrors": ["mirror.example"]}},
    }
    for name, kwargs in cases.items():
        code, daemon = daemon_factory.start_expecting_exit(**kwargs)
        logs = daemon.logs().replace(daemon.config_path, "<config>")
        first = next(
            (ln for ln in logs.splitlines() if ln.startswith(("Status: ", PREFIX, "failed to start daemon"))),
            "",
        )
        observe(name, {"exit_code": code, "error": first})
        assert code == 1
