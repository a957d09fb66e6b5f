"""``-H`` normalisation and errors (spec 3.1); the tables follow moby v28.5.2 ``opts/hosts_test.go``."""

from __future__ import annotations

import pytest

from harness.daemon.hosts import (
    DEFAULT_HOST,
    DEFAULT_TCP_HOST,
    DEFAULT_TLS_HOST,
    HostError,
    normalize_hosts,
    parse_host,
    validate_host_flag,
)

VALID = {
    "": DEFAULT_HOST,
    " ": DEFAULT_HOST,
    "fd://": "fd://",
    "fd://something": "fd://something",
    "tcp://host:": "tcp://host:2375",
    "tcp://": DEFAULT_TCP_HOST,
    "tcp://:": DEFAULT_TCP_HOST,
    "tcp://:5555": "tcp://localhost:5555",
    "tcp://127.0.0.1": "tcp://127.0.0.1:2375",
    "tcp://[::1]": "tcp://[::1]:2375",
    "tcp://[::1]:": "tcp://[::1]:2375",
    "tcp://[::1]:5555": "tcp://[::1]:5555",
    "tcp://0.0.0.0:5555": "tcp://0.0.0.0:5555",
    "tcp://192.168:5555": "tcp://192.168:5555",
    "tcp://0.0.0.0:1234567890": "tcp://0.0.0.0:1234567890",
    "tcp://docker.com:5555": "tcp://docker.com:5555",
    "tcp://user@h:1": "tcp://h:1",
    "tcp://h?q=1": "tcp://h:2375",
    "tcp://1.2.3.4:5:6": "tcp://[1.2.3.4:5]:6",
    "unix://": "unix:///var/run/docker.sock",
    "unix://path/to/socket": "unix://path/to/socket",
    "unix:///run/docker.sock": "unix:///run/docker.sock",
    "npipe://": "npipe:////./pipe/docker_engine",
    ":": DEFAULT_TCP_HOST,
    ":5555": "tcp://localhost:5555",
    "1.2.3.4:5": "tcp://1.2.3.4:5",
    "0.0.0.1:": "tcp://0.0.0.1:2375",
    "[0:0:0:0:0:0:0:1]": "tcp://[0:0:0:0:0:0:0:1]:2375",
    "localhost": "tcp://localhost:2375",
}

INVALID = {
    "something with spaces": "invalid bind address (something with spaces): "
    'parse "tcp://something with spaces": invalid character " " in host name',
    "://": "invalid bind address (://): unsupported proto ''",
    "foo://x": "invalid bind address (foo://x): unsupported proto 'foo'",
    "udp://127.0.0.1:5555": "invalid bind address (udp://127.0.0.1:5555): unsupported proto 'udp'",
    "tcp://:abc": 'invalid bind address (tcp://:abc): parse "tcp://:abc": invalid port ":abc" after host',
    "tcp://invalid:port": 'invalid bind address (tcp://invalid:port): parse "tcp://invalid:port": '
    'invalid port ":port" after host',
    "tcp:a.b.c.d": 'invalid bind address (tcp:a.b.c.d): parse "tcp://tcp:a.b.c.d": '
    'invalid port ":a.b.c.d" after host',
    "tcp://host/path": "invalid bind address (tcp://host/path): should not contain a path element",
    "tcp://:5555/": "invalid bind address (tcp://:5555/): should not contain a path element",
    "tcp://[::1]:/": "invalid bind address (tcp://[::1]:/): should not contain a path element",
    " tcp://:5555/path ": "invalid bind address (tcp://:5555/path): should not contain a path element",
    "localhost:5555/path": "invalid bind address (localhost:5555/path): should not contain a path element",
    "tcp://unix:///run/docker.sock": "invalid bind address (tcp://unix:///run/docker.sock): "
    "should not contain a path element",
    "tcp://h:0": "invalid bind address (tcp://h:0): invalid port: 0",
    "tcp://[::1": "invalid bind address (tcp://[::1): parse \"tcp://[::1\": missing ']' in host",
    "tcp://[::1]x": 'invalid bind address (tcp://[::1]x): parse "tcp://[::1]x": invalid port "x" after host',
    "unix://tcp://127.0.0.1": "invalid bind address (unix://tcp://127.0.0.1): invalid unix address: tcp://127.0.0.1",
    "unix://unix://tcp://127.0.0.1": "invalid bind address (unix://unix://tcp://127.0.0.1): "
    "invalid unix address: unix://tcp://127.0.0.1",
    "unix://unix:///x": "invalid bind address (unix://unix:///x): invalid unix address: unix:///x",
}


@pytest.mark.parametrize(("value", "expected"), VALID.items())
def test_parse_host(value: str, expected: str) -> None:
    assert parse_host(value, default_to_tls=False) == expected


@pytest.mark.parametrize(("value", "message"), INVALID.items())
def test_parse_host_errors(value: str, message: str) -> None:
    with pytest.raises(HostError) as info:
        parse_host(value, default_to_tls=False)
    assert str(info.value) == message


def test_empty_defaults_to_tls_port_only_for_the_empty_host() -> None:
    assert parse_host("", default_to_tls=True) == DEFAULT_TLS_HOST == "tcp://localhost:2376"
    # a tcp host without a port keeps 2375 even with TLS on (spec 3.1)
    assert parse_host("tcp://127.0.0.1", default_to_tls=True) == "tcp://127.0.0.1:2375"
    assert parse_host("tcp://", default_to_tls=True) == "tcp://localhost:2375"


def test_normalize_hosts_defaults_dedupes_and_sorts() -> None:
    assert normalize_hosts([], default_to_tls=False) == ["unix:///var/run/docker.sock"]
    assert normalize_hosts([], default_to_tls=True) == ["tcp://localhost:2376"]
    hosts = ["unix:///b.sock", "tcp://127.0.0.1", "unix:///a.sock", "tcp://127.0.0.1:2375", "unix:///b.sock"]
    assert normalize_hosts(hosts, default_to_tls=False) == [
        "tcp://127.0.0.1:2375",
        "unix:///a.sock",
        "unix:///b.sock",
    ]


def test_normalize_hosts_refuses_a_bad_entry() -> None:
    with pytest.raises(HostError, match=r"unsupported proto 'foo'"):
        normalize_hosts(["unix:///a.sock", "foo://x"], default_to_tls=False)


def test_validate_host_flag_keeps_what_the_user_typed() -> None:
    assert validate_host_flag("tcp://127.0.0.1") == "tcp://127.0.0.1"
    assert validate_host_flag("") == ""
    message = r"^invalid bind address \(tcp://h/p\): should not contain a path element$"
    with pytest.raises(HostError, match=message):
        validate_host_flag("tcp://h/p")
