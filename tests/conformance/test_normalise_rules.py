"""Every normalisation rule: values it must change, values it must leave alone, and the recursive walk."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from conformance.normalise import RULES, Rule, normalise, rule_table

ID = "4f3a" * 16
SHORT = ID[:12]
UUID = "123e4567-e89b-12d3-a456-426614174000"
RULE = {r.name: r for r in RULES}

# (rule name, key, input, expected)
MUST_CHANGE: list[tuple[str, str | None, Any, Any]] = [
    ("id", None, ID, "<id>"),
    ("id", None, f"sha256:{ID}", "sha256:<id>"),
    ("id", None, f"container {ID} is running", "container <id> is running"),
    ("id", None, "0" * 64, "<id>"),
    ("short-id", None, SHORT, "<short-id>"),
    ("short-id", None, f"{SHORT}.local", "<short-id>.local"),
    ("short-id", None, "/containers/" + SHORT + "/json", "/containers/<short-id>/json"),
    ("uuid", None, UUID, "<uuid>"),
    ("uuid", None, UUID.upper(), "<uuid>"),
    ("timestamp", None, "2026-11-27T19:00:00Z", "<time>"),
    ("timestamp", None, "2026-11-27T19:00:00.123456789Z", "<time>"),
    ("timestamp", None, "2026-11-27T19:00:00+01:00", "<time>"),
    ("timestamp", None, 'time="2026-11-27T19:00:00.5-05:00" level=info', 'time="<time>" level=info'),
    ("timestamp", None, "Fri, 27 Nov 2026 19:00:00 GMT", "<time>"),
    ("epoch", "time", 1764270000, "<time>"),
    ("epoch", "timeNano", 1764270000123456789, "<time>"),
    ("epoch", "Created", 1764270000, "<time>"),
    ("epoch", "created", 1764270000.5, "<time>"),
    ("epoch", "Time", "1764270000", "<time>"),
    ("tmp-path", None, "/tmp/refd-x1/run/docker.sock", "<tmp>/docker.sock"),
    ("tmp-path", None, "unix:///tmp/refd-x1/docker.sock", "unix://<tmp>/docker.sock"),
    ("tmp-path", None, "/tmp", "<tmp>"),
    ("tmp-path", None, "/home/ci/pytest-of-ci/pytest-7/test_ping0/daemon.json", "<tmp>/daemon.json"),
    ("tmp-path", None, "/tmp/pytest-of-root/pytest-12/test_a0/data", "<tmp>/data"),
    ("tmp-path", None, "open /tmp/a/b.json: no such file", "open <tmp>/b.json: no such file"),
    ("tmp-path", None, "-v /tmp/src:/data", "-v <tmp>/src:/data"),
    ("port", None, "127.0.0.1:43127", "127.0.0.1:<port>"),
    ("port", None, "tcp://[::1]:2376", "tcp://[::1]:<port>"),
    ("port", None, "http://localhost:8080/v1.51/_ping", "http://localhost:<port>/v1.51/_ping"),
    ("port", None, "listening on 0.0.0.0:2375", "listening on 0.0.0.0:<port>"),
    ("server-header", None, "Docker/28.5.2 (linux)", "Docker/<version> (linux)"),
    ("server-header", None, "Docker/28.5.2-refd (linux)", "Docker/<version> (linux)"),
]

MUST_NOT_CHANGE: list[tuple[str, str | None, Any]] = [
    ("id", None, ID[:63]),
    ("id", None, ID + "a"),
    ("id", None, ID.upper()),
    ("short-id", None, SHORT[:11]),
    ("short-id", None, SHORT + "0"),
    ("short-id", None, "busybox:latest"),
    ("short-id", None, "deadbeefcafe" + "x"),
    ("uuid", None, "123e4567-e89b-12d3-a456-42661417400"),
    ("timestamp", None, "0001-01-01T00:00:00Z"),
    ("timestamp", None, "2026-11-27"),
    ("timestamp", None, "19:00:00"),
    ("epoch", "time", 0),
    ("epoch", "time", True),
    ("epoch", "Size", 1764270000),
    ("epoch", None, 1764270000),
    ("epoch", "Created", "yesterday"),
    ("tmp-path", None, "/var/tmp/x"),
    ("tmp-path", None, "/tmpfs/x"),
    ("tmp-path", None, "/var/lib/docker"),
    ("tmp-path", None, "tmp/x"),
    ("port", None, "10.0.0.1:2375"),
    ("port", None, "127.0.0.1"),
    ("port", None, "localhost"),
    ("port", None, "127.0.0.10:99"),
    ("server-header", None, "Docker/28.5.2 (windows)"),
    ("server-header", None, "nginx/1.25"),
]


def test_every_rule_has_a_name_a_description_and_cases() -> None:
    names = [r.name for r in RULES]
    assert len(names) == len(set(names))
    assert all(r.description for r in RULES)
    assert {c[0] for c in MUST_CHANGE} == set(names)
    assert {c[0] for c in MUST_NOT_CHANGE} == set(names)
    assert rule_table() == [{"name": r.name, "description": r.description} for r in RULES]


@pytest.mark.parametrize(("name", "key", "value", "expected"), MUST_CHANGE)
def test_rule_changes(name: str, key: str | None, value: Any, expected: Any) -> None:
    assert RULE[name](value, key) == expected
    wrapped = {key: value} if key is not None else value
    assert normalise(wrapped) == ({key: expected} if key is not None else expected)


@pytest.mark.parametrize(("name", "key", "value"), MUST_NOT_CHANGE)
def test_rule_leaves_alone(name: str, key: str | None, value: Any) -> None:
    result = RULE[name](value, key)
    assert result == value
    assert type(result) is type(value)


def test_uuid_wins_over_short_id() -> None:
    assert normalise(f"id={UUID}") == "id=<uuid>"


def test_walks_dicts_lists_and_tuples_without_mutating_the_input() -> None:
    observations = {
        "status": 200,
        "ok": True,
        "nothing": None,
        "headers": {"Server": "Docker/28.5.2 (linux)", "Date": "Fri, 27 Nov 2026 19:00:00 GMT"},
        "events": [{"id": ID, "time": 1764270000, "timeNano": 1764270000000000001}],
        "pair": (SHORT, 3),
    }
    before = copy.deepcopy(observations)
    assert normalise(observations) == {
        "status": 200,
        "ok": True,
        "nothing": None,
        "headers": {"Server": "Docker/<version> (linux)", "Date": "<time>"},
        "events": [{"id": "<id>", "time": "<time>", "timeNano": "<time>"}],
        "pair": ["<short-id>", 3],
    }
    assert observations == before


def test_keys_are_normalised_and_collisions_keep_every_entry() -> None:
    other = "9" * 64
    assert normalise({"Containers": {ID: {"Name": "a"}, other: {"Name": "b"}}}) == {
        "Containers": {"<id>": {"Name": "a"}, "<id>#2": {"Name": "b"}}
    }


def test_custom_rule_list() -> None:
    upper = Rule("upper", "uppercase strings", lambda v, k: v.upper() if isinstance(v, str) else v)
    assert normalise({"a": ["x", 1]}, rules=[upper]) == {"A": ["X", 1]}
