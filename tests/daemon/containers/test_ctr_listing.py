"""Which containers a list and a prune pick: dockerd's filters, their 400s, the running-only default."""

from __future__ import annotations

from typing import Any

import pytest

from harness.daemon.containers.listing import listed, matches, prunable
from harness.daemon.errors import ApiError

from .conftest import make_container


def _containers(tmp: str) -> list[Any]:
    web = make_container(tmp, "a", "web", Labels={"tier": "front"}, Image="busybox")
    web.created = "2026-01-01T00:00:03Z"
    web.set_running(1)
    job = make_container(tmp, "b", "job", Labels={"tier": "batch"})
    job.created = "2026-01-01T00:00:02Z"
    job.set_running(2)
    job.set_stopped(3)
    new = make_container(tmp, "c", "new")
    new.created = "2026-01-01T00:00:01Z"
    return [web, job, new]


def _names(items: list[Any]) -> list[str]:
    return [c.name for c in items]


def test_running_ones_by_default_all_newest_first_and_limit(tmp_path: Any) -> None:
    items = _containers(str(tmp_path))
    assert _names(listed(items, {}, show_all=False, limit=-1)) == ["/web"]
    assert _names(listed(items, {}, show_all=True, limit=-1)) == ["/web", "/job", "/new"]
    assert _names(listed(items, {}, show_all=False, limit=2)) == ["/web", "/job"]  # a limit implies all
    assert _names(listed(items, {"status": ["exited"]}, show_all=False, limit=-1)) == ["/job"]


@pytest.mark.parametrize(
    ("filters", "names"),
    [
        ({"label": ["tier"]}, ["/web", "/job"]),
        ({"label": ["tier=batch"]}, ["/job"]),
        ({"name": ["^/w"]}, ["/web"]),
        ({"id": ["b"]}, ["/job"]),
        ({"exited": ["3"]}, ["/job"]),
        ({"ancestor": ["busybox"]}, ["/web"]),
        ({"health": ["none"]}, ["/web", "/job", "/new"]),
        ({"network": ["x"]}, ["/web", "/job", "/new"]),  # not a filter refd applies: matches all
    ],
)
def test_filters(tmp_path: Any, filters: dict[str, list[str]], names: list[str]) -> None:
    assert _names([c for c in _containers(str(tmp_path)) if matches(c, filters)]) == names


def test_bad_values_are_dockerds_400s(tmp_path: Any) -> None:
    c = _containers(str(tmp_path))[0]
    with pytest.raises(ApiError) as err:
        matches(c, {"status": ["up"]})
    assert err.value.message.startswith("invalid filter 'status=up': invalid value for state (up)")
    with pytest.raises(ApiError) as err:
        matches(c, {"exited": ["x"]})
    assert err.value.message == "invalid filter 'exited=x': strconv.Atoi: parsing \"x\": invalid syntax"


def test_prune_takes_stopped_ones_before_until_by_label(tmp_path: Any) -> None:
    items = _containers(str(tmp_path))
    assert _names(prunable(items, {}, None)) == ["/job", "/new"]
    until = 1767225601.5  # 2026-01-01T00:00:01.5Z
    assert _names(prunable(items, {}, until)) == ["/new"]
    assert _names(prunable(items, {"label": ["tier"]}, None)) == ["/job"]
    assert _names(prunable(items, {"label!": ["tier"]}, None)) == ["/new"]
