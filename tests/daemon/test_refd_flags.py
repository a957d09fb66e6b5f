"""refd's command line: pflag spellings, cobra error texts, Go value formatting (spec 1.4)."""

from __future__ import annotations

import pytest

from harness.daemon.flags import FlagError, go_format, parse_args, parse_bool, parse_int, usage


def _error(argv: list[str]) -> str:
    with pytest.raises(FlagError) as info:
        parse_args(argv)
    return info.value.render()


def _status(message: str) -> str:
    return f"Status: {message}\nSee 'dockerd --help'.\n\n{usage()}, Code: 125"


# --- value spellings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--log-level=debug"],
        ["--log-level", "debug"],
        ["-ldebug"],
        ["-l", "debug"],
        ["-l=debug"],
    ],
)
def test_string_flag_spellings(argv: list[str]) -> None:
    flags = parse_args(argv)
    assert flags["log-level"] == "debug"
    assert flags.was_set("log-level")


def test_flag_needs_an_argument() -> None:
    assert _error(["--log-level"]) == _status("flag needs an argument: --log-level")
    assert _error(["-l"]) == _status("flag needs an argument: 'l' in -l")
    assert _error(["-Dl"]) == _status("flag needs an argument: 'l' in -l")


@pytest.mark.parametrize(
    "argv",
    [
        ["-Hunix:///x.sock"],
        ["-H", "unix:///x.sock"],
        ["--host=unix:///x.sock"],
        ["--host", "unix:///x.sock"],
        ["-H=unix:///x.sock"],
    ],
)
def test_host_spellings(argv: list[str]) -> None:
    assert parse_args(argv)["host"] == ["unix:///x.sock"]


def test_repeated_host_keeps_order_and_raw_text() -> None:
    flags = parse_args(["-H", "unix:///a.sock", "--host=tcp://127.0.0.1:2375", "-H", "fd://"])
    assert flags["host"] == ["unix:///a.sock", "tcp://127.0.0.1:2375", "fd://"]


def test_bad_host_is_refused_at_parse_time() -> None:
    assert _error(["-H", "foo://x"]) == _status(
        'invalid argument "foo://x" for "-H, --host" flag: '
        "invalid bind address (foo://x): unsupported proto 'foo'"
    )


@pytest.mark.parametrize(
    "argv", [["-D"], ["--debug"], ["--debug=true"], ["-D=true"], ["--debug=1"], ["--debug=T"]]
)
def test_bool_true_spellings(argv: list[str]) -> None:
    assert parse_args(argv)["debug"] is True


@pytest.mark.parametrize("argv", [["--debug=false"], ["-D=false"], ["--debug=0"], ["--debug=F"], []])
def test_bool_false_spellings(argv: list[str]) -> None:
    assert parse_args(argv)["debug"] is False


def test_bool_flag_does_not_take_the_next_word() -> None:
    """``--debug false`` is debug=true plus a positional argument, as in pflag."""
    assert _error(["--debug", "false"]).startswith(
        "\"dockerd\" accepts no argument(s).\nSee 'dockerd --help'."
    )


def test_false_default_overridden_to_false_for_true_default() -> None:
    flags = parse_args(["--iptables=false"])
    assert flags["iptables"] is False and flags.was_set("iptables")
    assert parse_args([])["iptables"] is True


def test_bundled_shorthands() -> None:
    flags = parse_args(["-Dlwarn"])
    assert flags["debug"] is True and flags["log-level"] == "warn"


def test_bad_bool_text_is_strconv() -> None:
    assert _error(["--debug=maybe"]) == _status(
        'invalid argument "maybe" for "-D, --debug" flag: strconv.ParseBool: parsing "maybe": invalid syntax'
    )
    assert _error(["--tls=yes"]) == _status(
        'invalid argument "yes" for "--tls" flag: strconv.ParseBool: parsing "yes": invalid syntax'
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [("10", 10), ("0x10", 16), ("010", 8), ("0b11", 3), ("0o17", 15), ("1_000", 1000), ("+7", 7), ("-7", -7)],
)
def test_int_accepts_go_parseint_base_0(text: str, value: int) -> None:
    assert parse_int(text) == value
    assert parse_args([f"--mtu={text}"])["mtu"] == value


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("abc", "invalid syntax"),
        ("", "invalid syntax"),
        ("08", "invalid syntax"),
        ("1.5", "invalid syntax"),
        (" 5", "invalid syntax"),
        ("_1", "invalid syntax"),
        ("1__0", "invalid syntax"),
        ("0x", "invalid syntax"),
        ("9223372036854775808", "value out of range"),
    ],
)
def test_bad_int_text_is_strconv(text: str, reason: str) -> None:
    assert _error([f"--mtu={text}"]) == _status(
        f'invalid argument "{text}" for "--mtu" flag: strconv.ParseInt: parsing "{text}": {reason}'
    )


def test_parse_bool_and_go_quoting_in_messages() -> None:
    assert parse_bool("TRUE") is True and parse_bool("f") is False
    with pytest.raises(ValueError, match=r'^strconv.ParseBool: parsing "a\\"b\\n": invalid syntax$'):
        parse_bool('a"b\n')


def test_unknown_long_flag() -> None:
    assert _error(["--x"]) == f"Status: unknown flag: --x\nSee 'dockerd --help'.\n\n{usage()}, Code: 125"
    assert _error(["--bogus=1"]) == _status("unknown flag: --bogus")


def test_unknown_shorthand_names_what_is_left_of_the_group() -> None:
    assert _error(["-Z"]) == _status("unknown shorthand flag: 'Z' in -Z")
    assert _error(["-DZq"]) == _status("unknown shorthand flag: 'Z' in -Zq")


def test_bad_flag_syntax() -> None:
    assert _error(["---x"]) == _status("bad flag syntax: ---x")
    assert _error(["--=x"]) == _status("bad flag syntax: --=x")


def test_positional_argument() -> None:
    with pytest.raises(FlagError) as info:
        parse_args(["--debug", "serve"])
    assert not info.value.cobra_status
    assert info.value.render().startswith("\"dockerd\" accepts no argument(s).\nSee 'dockerd --help'.\n\n")
    assert _error(["--", "-D"]).startswith('"dockerd" accepts no argument(s).')


def test_lone_dash_is_positional() -> None:
    assert _error(["-"]).startswith('"dockerd" accepts no argument(s).')


def test_log_opt_map() -> None:
    flags = parse_args(["--log-opt", "max-size=1k", "--log-opt=max-file=3", "--log-opt", "tag={{.Name}}=x"])
    assert flags["log-opt"] == {"max-size": "1k", "max-file": "3", "tag": "{{.Name}}=x"}
    assert parse_args(["--log-opt", "compress"])["log-opt"] == {"compress": ""}  # MapOpts: no "=" means ""


def test_label_validated_at_parse_time() -> None:
    assert parse_args(["--label", "a=1", "--label=b="])["label"] == ["a=1", "b="]
    assert _error(["--label", "foo"]) == _status(
        'invalid argument "foo" for "--label" flag: bad attribute format: foo'
    )
    assert "reserved for internal use" in _error(["--label", "com.docker.x=1"])


def test_was_set_only_for_flags_given() -> None:
    flags = parse_args(["--data-root", "/x", "-D"])
    assert flags.was_set("data-root") and flags.was_set("debug")
    assert not flags.was_set("exec-root") and not flags.was_set("host")
    assert flags["exec-root"] == "/var/run/docker"
    assert flags.changed == {"data-root": "/x", "debug": True}


def test_defaults_are_fresh_copies() -> None:
    parse_args(["-H", "fd://"])
    assert parse_args([])["host"] == []


def test_tls_defaults_follow_docker_cert_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CERT_PATH", "/certs")
    flags = parse_args([])
    assert (flags["tlscacert"], flags["tlscert"], flags["tlskey"]) == (
        "/certs/ca.pem",
        "/certs/cert.pem",
        "/certs/key.pem",
    )
    monkeypatch.delenv("DOCKER_CERT_PATH")
    monkeypatch.setenv("HOME", "/home/u")
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    assert parse_args([])["tlscacert"] == "/home/u/.docker/ca.pem"


def test_help_is_not_a_cobra_status_error() -> None:
    for argv in (["--help"], ["-h"]):
        with pytest.raises(FlagError) as info:
            parse_args(argv)
        assert not info.value.cobra_status
        assert "Usage:\tdockerd [OPTIONS]" in info.value.render()


# --- go_format ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (["a", "b"], "[a b]"),
        ([], "[]"),
        (("x",), "[x]"),
        ({"b": "2", "a": "1"}, "map[a:1 b:2]"),
        ({}, "map[]"),
        (True, "true"),
        (False, "false"),
        (None, "<nil>"),
        (3, "3"),
        ("s p", "s p"),
        (10.0, "10"),
        (1.5, "1.5"),
        (-2.25, "-2.25"),
        (123456.0, "123456"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (0.0, "0"),
        ([1.0, True, {"k": [2.5]}], "[1 true map[k:[2.5]]]"),
    ],
)
def test_go_format(value: object, text: str) -> None:
    assert go_format(value) == text


def test_go_format_is_not_python_repr() -> None:
    assert go_format(["a"]) != str(["a"])
    assert go_format(1e6) != str(1e6)


def test_add_runtime_and_shm_size() -> None:
    flags = parse_args(["--add-runtime", "crun=/usr/bin/crun", "--default-shm-size=128M"])
    assert flags["add-runtime"] == {"crun": {"path": "/usr/bin/crun"}}
    assert flags["default-shm-size"] == "128M"
    assert _error(["--add-runtime", "crun"]) == _status(
        'invalid argument "crun" for "--add-runtime" flag: invalid runtime argument: crun'
    )
    assert _error(["--default-shm-size", "lots"]) == _status(
        'invalid argument "lots" for "--default-shm-size" flag: invalid size: \'lots\''
    )
