"""daemon.json loading end to end: decode, syntax, flatten, unknown keys, conflicts, types, merge,
validation (spec 1.1-1.3; dockerd 28.5.2 ``daemon/config/config.go``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.daemon.config import (
    ConfigError,
    DaemonConfig,
    conflict_free_labels,
    load_config,
    read_config_file,
)
from harness.daemon.flags import parse_args

PREFIX = "unable to configure the Docker daemon with file "
MERGED = "merged configuration validation from file and command line flags failed: "


def _write(tmp_path: Path, content: str | bytes | object, name: str = "daemon.json") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        path.write_text(json.dumps(content))
    return path


def _load(tmp_path: Path, content: str | bytes | object, *args: str) -> DaemonConfig:
    path = _write(tmp_path, content)
    return load_config(parse_args(["--config-file", str(path), *args]))


def _fail(tmp_path: Path, content: str | bytes | object, *args: str) -> str:
    path = _write(tmp_path, content)
    with pytest.raises(ConfigError) as info:
        load_config(parse_args(["--config-file", str(path), *args]))
    text = str(info.value)
    return text.removeprefix(f"{PREFIX}{path}: ") if text.startswith(f"{PREFIX}{path}: ") else "BARE: " + text


# --- the file itself -----------------------------------------------------------------------------------


def test_missing_default_file_is_fine(tmp_path: Path) -> None:
    flags = parse_args(["-D"])
    flags.values["config-file"] = str(tmp_path / "absent.json")  # the default path, not given explicitly
    config = load_config(flags)
    assert config["debug"] is True and config.file_keys == frozenset()


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "A" / "daemon.json"
    with pytest.raises(ConfigError) as info:
        load_config(parse_args(["--config-file", str(path)]))
    assert str(info.value) == f"{PREFIX}{path}: open {path}: no such file or directory"


def test_default_path_that_is_a_directory_is_an_error(tmp_path: Path) -> None:
    flags = parse_args([])
    flags.values["config-file"] = str(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config(flags)
    assert str(info.value) == f"{PREFIX}{tmp_path}: read {tmp_path}: is a directory"


@pytest.mark.parametrize("content", ["", "   \n\t", "null"])
def test_empty_file_is_an_empty_config(tmp_path: Path, content: str) -> None:
    config = _load(tmp_path, content)
    assert config["debug"] is False and config["log-level"] == "info"


@pytest.mark.parametrize(
    "encoded",
    [
        b"\xef\xbb\xbf" + b'{"debug": true}',
        b"\xff\xfe" + '{"debug": true}'.encode("utf-16-le"),
        b"\xfe\xff" + '{"debug": true}'.encode("utf-16-be"),
    ],
    ids=["utf-8-bom", "utf-16le-bom", "utf-16be-bom"],
)
def test_bom_decoding(tmp_path: Path, encoded: bytes) -> None:
    assert _load(tmp_path, encoded)["debug"] is True


def test_utf16_without_bom_is_not_json(tmp_path: Path) -> None:
    assert (
        _fail(tmp_path, '{"debug": true}'.encode("utf-16-le"))
        == "invalid JSON: invalid character '\\x00' looking for beginning of object key string"
    )


def test_invalid_utf8_without_bom(tmp_path: Path) -> None:
    raw = b'{"labels": ["a=\xff"]}'
    assert (
        _fail(tmp_path, raw)
        == f"failed to decode configuration JSON at offset {len(raw)}: encoding: invalid UTF-8"
    )
    # after a UTF-8 BOM, x/text's decoder replaces bad bytes instead
    assert _load(tmp_path, b"\xef\xbb\xbf" + raw)["label"] == ["a=\ufffd"]


# --- syntax errors: Go's encoding/json scanner -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"debug": true,', "unexpected end of JSON input"),
        ("{", "unexpected end of JSON input"),
        ('{"a": "x', "unexpected end of JSON input"),
        ("{bad", "invalid character 'b' looking for beginning of object key string"),
        ("{'debug': true}", "invalid character '\\'' looking for beginning of object key string"),
        ("{} x", "invalid character 'x' after top-level value"),
        ('{"debug": true}}', "invalid character '}' after top-level value"),
        ('{"a" 1}', "invalid character '1' after object key"),
        ('{"a": 1 "b": 2}', "invalid character '\"' after object key:value pair"),
        ('{"dns": ["1" "2"]}', "invalid character '\"' after array element"),
        ('{"debug": tru}', "invalid character '}' in literal true (expecting 'e')"),
        ('{"debug": tru', "invalid character ' ' in literal true (expecting 'e')"),
        ('{"debug": nul}', "invalid character '}' in literal null (expecting 'l')"),
        ('{"debug": fals}', "invalid character '}' in literal false (expecting 'e')"),
        ('{"mtu": NaN}', "invalid character 'N' looking for beginning of value"),
        ('{"mtu": Infinity}', "invalid character 'I' looking for beginning of value"),
        ('{"mtu": 01}', "invalid character '1' after object key:value pair"),
        ('{"mtu": -}', "invalid character '}' in numeric literal"),
        ('{"mtu": 1.}', "invalid character '}' after decimal point in numeric literal"),
        ('{"mtu": 1e}', "invalid character '}' in exponent of numeric literal"),
        ('{"mtu": +1}', "invalid character '+' looking for beginning of value"),
        ('{"a": "\\x"}', "invalid character 'x' in string escape code"),
        ('{"a": "\\u12G4"}', "invalid character 'G' in \\u hexadecimal character escape"),
        ('{"a": "x\ny"}', "invalid character '\\n' in string literal"),
        ('{"a": \xe9}', "invalid character 'Ã' looking for beginning of value"),
        ('{"a": [1,]}', "invalid character ']' looking for beginning of value"),
        ('{"a": 1,}', "invalid character '}' looking for beginning of object key string"),
    ],
)
def test_invalid_json_messages(tmp_path: Path, text: str, message: str) -> None:
    assert _fail(tmp_path, text) == f"invalid JSON: {message}"


@pytest.mark.parametrize(
    ("text", "kind"), [("[]", "array"), ('"x"', "string"), ("1", "number"), ("true", "bool")]
)
def test_top_level_must_be_an_object(tmp_path: Path, text: str, kind: str) -> None:
    assert (
        _fail(tmp_path, text)
        == f"invalid JSON: json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
    )


# --- flattening and unknown keys -----------------------------------------------------------------------


def test_flattened_unknown_key(tmp_path: Path) -> None:
    assert (
        _fail(tmp_path, {"tls": {"bogus": 1}})
        == "the following directives don't match any configuration option: bogus"
    )


def test_nested_known_key_is_checked_as_its_own_name(tmp_path: Path) -> None:
    file_cfg = read_config_file(str(_write(tmp_path, {"wrap": {"debug": True, "data-root": "/x"}})))
    assert dict(file_cfg) == {"debug": True, "data-root": "/x"}
    config = _load(tmp_path, {"wrap": {"debug": True, "data-root": "/x"}})
    # the typed decode ignores the unknown wrapper; only bools are re-set from the flattened view
    assert config["debug"] is True and config["data-root"] == "/var/lib/docker"
    assert "data-root" in config.file_keys


def test_object_for_a_plain_key_is_a_type_error(tmp_path: Path) -> None:
    assert (
        _fail(tmp_path, {"tls": {"tlsverify": True}})
        == "invalid JSON: json: cannot unmarshal object into Go struct field Config.tls of type bool"
    )


def test_flat_options_are_kept_whole(tmp_path: Path) -> None:
    config = _load(
        tmp_path, {"log-opts": {"max-size": "1k", "max-file": "3"}, "features": {"buildkit": True}}
    )
    assert config["log-opt"] == {"max-size": "1k", "max-file": "3"}
    assert config["features"] == {"buildkit": True}
    assert "max-size" not in config.file_keys


def test_unknown_keys_listed_together(tmp_path: Path) -> None:
    assert (
        _fail(tmp_path, {"bogus-key": 1, "debug": True, "another": 2})
        == "the following directives don't match any configuration option: bogus-key, another"
    )


def test_skip_validate_and_flag_name_keys_are_known(tmp_path: Path) -> None:
    config = _load(tmp_path, {"features": {}, "builder": {}, "host": ["unix:///x.sock"], "label": ["a=1"]})
    assert config["host"] == ["unix:///x.sock"] and config["label"] == ["a=1"]


def test_graph_is_an_unknown_key_in_dockerd_28(tmp_path: Path) -> None:
    """dockerd removed ``graph`` (the 20.10 deprecation path) in v23; 28 refuses it as unknown."""
    unknown = "the following directives don't match any configuration option: graph"
    assert _fail(tmp_path, {"graph": "/x"}) == unknown
    assert _fail(tmp_path, {"graph": "/x", "data-root": "/y"}) == unknown


# --- flag/file conflicts -------------------------------------------------------------------------------


def test_conflict_even_with_equal_values(tmp_path: Path) -> None:
    assert _fail(tmp_path, {"debug": True}, "--debug") == (
        "the following directives are specified both as a flag and in the configuration file: "
        "debug: (from flag: true, from file: true)"
    )


def test_conflict_named_options_print_lists(tmp_path: Path) -> None:
    message = _fail(
        tmp_path,
        {"hosts": ["unix:///x.sock"], "labels": ["b=2"]},
        "-H",
        "unix:///d.sock",
        "-H",
        "tcp://127.0.0.1:23750",
        "--label",
        "a=1",
    )
    assert message == (
        "the following directives are specified both as a flag and in the configuration file: "
        "hosts: (from flag: [unix:///d.sock tcp://127.0.0.1:23750], "
        "from file: [unix:///x.sock]), "
        "labels: (from flag: [a=1], from file: [b=2])"
    )


def test_conflicts_in_flag_name_order_with_go_values(tmp_path: Path) -> None:
    doc = {"data-root": "/root2", "max-concurrent-downloads": 1000000, "log-opts": {"a": "b"}}
    message = _fail(
        tmp_path, doc, "--max-concurrent-downloads", "7", "--log-opt", "a=c", "--data-root", "/root"
    )
    assert message == (
        "the following directives are specified both as a flag and in the configuration file: "
        "data-root: (from flag: /root, from file: /root2), "
        "log-opts: (from flag: map[a:c], from file: map[a:b]), "
        "max-concurrent-downloads: (from flag: 7, from file: 1e+06)"
    )


def test_no_conflict_for_defaults_or_runtimes(tmp_path: Path) -> None:
    config = _load(tmp_path, {"debug": True, "runtimes": {}})
    assert config["debug"] is True


def test_conflict_by_flag_name_for_a_named_option_is_not_reported(tmp_path: Path) -> None:
    """``--label`` is checked against ``labels`` only; a ``label`` key is accepted and applied."""
    config = _load(tmp_path, {"label": ["b=2"]}, "--label", "a=1")
    assert config["label"] == ["b=2"]


# --- types ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"debug": "yes"}, "json: cannot unmarshal string into Go struct field Config.debug of type bool"),
        ({"debug": 1}, "json: cannot unmarshal number into Go struct field Config.debug of type bool"),
        (
            {"data-root": 5},
            "json: cannot unmarshal number into Go struct field Config.data-root of type string",
        ),
        (
            {"data-root": ["/x"]},
            "json: cannot unmarshal array into Go struct field Config.data-root of type string",
        ),
        ({"mtu": "1500"}, "json: cannot unmarshal string into Go struct field Config.mtu of type int"),
        (
            {"hosts": "unix:///x.sock"},
            "json: cannot unmarshal string into Go struct field Config.hosts of type []string",
        ),
        ({"hosts": [1]}, "json: cannot unmarshal number into Go struct field Config.hosts of type string"),
        (
            {"log-opts": {"max-size": 5}},
            "json: cannot unmarshal number into Go struct field Config.log-opts of type string",
        ),
        (
            {"log-opts": []},
            "json: cannot unmarshal array into Go struct field Config.log-opts of type map[string]string",
        ),
    ],
)
def test_type_mismatch(tmp_path: Path, doc: object, message: str) -> None:
    assert _fail(tmp_path, doc) == f"invalid JSON: {message}"


@pytest.mark.parametrize("literal", ["1.5", "3.0", "1e2", "99999999999999999999"])
def test_int_field_takes_integer_literals_only(tmp_path: Path, literal: str) -> None:
    assert _fail(tmp_path, f'{{"max-concurrent-downloads": {literal}}}') == (
        f"invalid JSON: json: cannot unmarshal number {literal} into Go struct field "
        "Config.max-concurrent-downloads of type int"
    )


def test_int_field_accepts_an_integer(tmp_path: Path) -> None:
    assert _load(tmp_path, '{"max-concurrent-downloads": 7}')["max-concurrent-downloads"] == 7


def test_first_type_error_in_document_order(tmp_path: Path) -> None:
    assert (
        _fail(tmp_path, '{"mtu": "x", "debug": "y"}')
        == "invalid JSON: json: cannot unmarshal string into Go struct field Config.mtu of type int"
    )


# --- merge ---------------------------------------------------------------------------------------------


def test_file_wins_and_flags_fill(tmp_path: Path) -> None:
    config = _load(tmp_path, {"data-root": "/file", "labels": ["a=1"]}, "--exec-root", "/flag", "-l", "warn")
    assert config["data-root"] == "/file"
    assert config["exec-root"] == "/flag"
    assert config["log-level"] == "warn"
    assert config["label"] == ["a=1"]
    assert config.file_keys == frozenset({"data-root", "labels"})
    assert config.flags_set == frozenset({"config-file", "exec-root", "log-level"})


def test_file_false_beats_a_true_default(tmp_path: Path) -> None:
    config = _load(tmp_path, {"iptables": False, "ip-masq": False})
    assert config["iptables"] is False and config["ip-masq"] is False
    assert _load(tmp_path, {})["iptables"] is True


def test_null_and_zero_values_leave_the_flag_value(tmp_path: Path) -> None:
    config = _load(tmp_path, {"iptables": None, "shutdown-timeout": 0, "data-root": "", "dns": []})
    assert config["iptables"] is True
    assert config["shutdown-timeout"] == 15
    assert config["data-root"] == "/var/lib/docker"


# --- validation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"max-concurrent-downloads": -1}, "invalid max concurrent downloads: -1"),
        ({"max-concurrent-uploads": -2}, "invalid max concurrent uploads: -2"),
        ({"max-download-attempts": -1}, "invalid max download attempts: -1"),
        ({"mtu": -1}, "invalid default MTU: -1"),
        ({"log-level": "verbose"}, "invalid logging level: verbose"),
        ({"log-level": "warning"}, "invalid logging level: warning"),
        ({"log-format": "xml"}, "invalid log format: xml"),
        ({"labels": ["foo"]}, "bad attribute format: foo"),
        ({"hosts": ["foo://x"]}, "invalid bind address (foo://x): unsupported proto 'foo'"),
    ],
)
def test_validation_from_file_is_wrapped(tmp_path: Path, doc: object, message: str) -> None:
    assert _fail(tmp_path, doc) == f"{MERGED}{message}"


@pytest.mark.parametrize("level", ["warn", "WARN", "Debug", "trace", "panic"])
def test_valid_log_levels(tmp_path: Path, level: str) -> None:
    assert _load(tmp_path, {"log-level": level})["log-level"] == level


def test_validation_from_flags_with_a_file_is_wrapped(tmp_path: Path) -> None:
    assert (
        _fail(tmp_path, {}, "--max-concurrent-downloads=-1")
        == f"{MERGED}invalid max concurrent downloads: -1"
    )


def test_validation_without_a_file_is_bare(tmp_path: Path) -> None:
    flags = parse_args(["--log-level=verbose"])
    flags.values["config-file"] = str(tmp_path / "absent.json")
    with pytest.raises(ConfigError) as info:
        load_config(flags)
    assert str(info.value) == "invalid logging level: verbose"


def test_zero_download_attempts_is_valid(tmp_path: Path) -> None:
    assert _load(tmp_path, {}, "--max-download-attempts=0")["max-download-attempts"] == 0


# --- labels --------------------------------------------------------------------------------------------


def test_label_conflict_is_a_bare_error(tmp_path: Path) -> None:
    assert _fail(tmp_path, {"labels": ["x=1", "x=2"]}) == "BARE: conflict labels for x=2 and x=1"


def test_duplicate_labels_with_the_same_value_collapse(tmp_path: Path) -> None:
    assert _load(tmp_path, {"labels": ["x=1", "y=2", "x=1"]})["label"] == ["x=1", "y=2"]


def test_conflict_free_labels() -> None:
    assert conflict_free_labels(["a=1", "b=", "a=1"]) == ["a=1", "b="]
    with pytest.raises(ConfigError, match=r"^conflict labels for a=2 and a=1$"):
        conflict_free_labels(["a=1", "a=2"])


def test_runtimes_are_exempt_from_conflicts(tmp_path: Path) -> None:
    config = _load(
        tmp_path, {"runtimes": {"crun": {"path": "/usr/bin/crun"}}}, "--add-runtime", "kata=/bin/kata"
    )
    assert config["add-runtime"] == {"crun": {"path": "/usr/bin/crun"}}
    assert (
        _fail(tmp_path, {"runtimes": []})
        == "invalid JSON: json: cannot unmarshal array into Go struct field Config.runtimes of type "
        "map[string]system.Runtime"
    )


def test_every_reloadable_key_loads(tmp_path: Path) -> None:
    """A daemon.json holding any key SIGHUP can apply must also be accepted at start."""
    from harness.daemon.config import RELOADABLE
    from harness.daemon.flags import FLAGS

    known = {f.file_key for f in FLAGS} | {"features", "allow-nondistributable-artifacts"}
    assert known >= RELOADABLE
    _load(
        tmp_path,
        {"default-shm-size": "128M", "default-ipc-mode": "shareable", "default-cgroupns-mode": "host"},
    )


@pytest.mark.parametrize(
    ("pools", "error"),
    [  # dockerd 28.5's words (dockerd-28 target; tests/daemon/test_refd_flags_dockerd.py compares them live)
        ([{"base": "x", "size": 99}], "netip.ParsePrefix(\"x\"): no '/'"),
        (
            [{"base": 5, "size": 24}],
            "json: cannot unmarshal number into Go struct field .0.base of type netip.Prefix: "
            "JSON value must be string type",
        ),
        (
            [{"base": "10.0.0.0/8", "size": "24"}],
            "json: cannot unmarshal string into Go struct field .0.size of type int",
        ),
        (
            [{"base": "10.0.0.0/8", "size": 24.5}],
            "json: cannot unmarshal number 24.5 into Go struct field .0.size of type int",
        ),
        (
            [{"base": "10.0.0.0/8", "size": 24}, "x"],
            "json: cannot unmarshal string into .1 of type ipamutils.NetworkToSplit",
        ),
        (
            "x",
            "json: cannot unmarshal string into Go struct field Config.default-address-pools of type "
            "[]*ipamutils.NetworkToSplit",
        ),
    ],
)
def test_address_pools_decode_as_dockerd(tmp_path: Path, pools: object, error: str) -> None:
    assert _fail(tmp_path, {"default-address-pools": pools}) == f"invalid JSON: {error}"


def test_address_pools_keep_what_dockerd_keeps(tmp_path: Path) -> None:
    """Field names match case-insensitively, unknown fields and nulls are left alone, the base is not masked;
    the flag spells the same pool."""
    pools = [{"BASE": "10.97.1.0/16", "Size": 24, "other": 1}, {"base": None, "size": None}, None]
    assert _load(tmp_path, {"default-address-pools": pools})["default-address-pool"] == [
        {"base": "10.97.1.0/16", "size": 24},
        {"base": "", "size": 0},
        None,
    ]
    flag = load_config(parse_args(["--default-address-pool", "base=10.97.1.0/16,size=24"]))
    assert flag["default-address-pool"] == [{"base": "10.97.1.0/16", "size": 24}]
