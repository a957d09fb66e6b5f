"""Small pieces of the builder: build args, EXPOSE specs, platforms, destinations, cache comparison."""

from __future__ import annotations

import pytest

from harness.daemon.builder.buildargs import BuildArgs
from harness.daemon.builder.cache import compare_configs
from harness.daemon.builder.copy import hash_string_slice, normalize_dest
from harness.daemon.builder.metadata import parse_port_specs
from harness.daemon.builder.platforms import parse_platform
from harness.daemon.builder.stream import BuildError


def test_build_args_defaults_overrides_and_warning() -> None:
    args = BuildArgs({"A": "from-cli", "HTTP_PROXY": "p", "UNUSED": "u", "NOVAL": None})
    args.add_meta("M", "meta")
    args.add("A", "default")
    args.add("B", "b")
    args.add("M", None)
    assert args.all_allowed() == {"A": "from-cli", "B": "b", "M": "meta", "HTTP_PROXY": "p"}
    assert args.filter_allowed(["B=env"]) == ["A=from-cli", "M=meta", "HTTP_PROXY=p"]
    assert not args.referenced_or_not_builtin("HTTP_PROXY")
    assert args.unused_warning() == "[Warning] One or more build-args [NOVAL UNUSED] were not consumed\n"


def test_port_specs() -> None:
    assert parse_port_specs(["80", "8000-8001/udp", "53/sctp"]) == [
        "80/tcp",
        "8000/udp",
        "8001/udp",
        "53/sctp",
    ]
    for bad, message in [("abc", "Invalid containerPort: abc"), ("80/xyz", "Invalid proto: xyz")]:
        with pytest.raises(BuildError, match=message):
            parse_port_specs([bad])


def test_platforms() -> None:
    assert parse_platform("linux/amd64") == ("linux", "amd64", "")
    assert parse_platform("linux/arm64/v8") == ("linux", "arm64", "")
    assert parse_platform("x86_64") == ("linux", "amd64", "")
    with pytest.raises(ValueError, match='"foo": unknown operating system or architecture: invalid argument'):
        parse_platform("foo")


def test_destinations_and_hashes() -> None:
    assert normalize_dest("", "rel") == "/rel"
    assert normalize_dest("/w", "rel/") == "/w/rel/"
    assert normalize_dest("/w", "/abs") == "/abs"
    assert hash_string_slice("multi", ["a", "b"]).startswith("multi:")


def test_cache_comparison_ignores_hostname_and_image() -> None:
    a = {"Hostname": "x", "Image": "i", "Cmd": ["sh"], "Env": ["A=b"], "Labels": {}}
    b = {"Hostname": "y", "Image": "j", "Cmd": ["sh"], "Env": ["A=b"], "Labels": None}
    assert compare_configs(a, b)
    assert not compare_configs(a, {**b, "Cmd": ["bash"]})
    assert not compare_configs(a, {**b, "Healthcheck": {"Test": ["NONE"]}})
