"""query: filters.Args semantics (GetBoolOrDefault, MatchKVList) shared by the handlers and the domain."""

from __future__ import annotations

import pytest

from harness.daemon.errors import ApiError
from harness.daemon.query import bool_filter, match_kv


def test_bool_filter() -> None:
    assert bool_filter({}, "dangling", True) is True
    assert bool_filter({"dangling": ["1"]}, "dangling", False) is True
    assert bool_filter({"dangling": ["false"]}, "dangling", True) is False
    for values, message in [
        ([], "invalid filter 'dangling'"),
        (["true", "0"], "invalid filter 'dangling=[true 0]'"),
    ]:
        with pytest.raises(ApiError) as info:
            bool_filter({"dangling": values}, "dangling", True)
        assert (info.value.status, info.value.message) == (400, message)


def test_match_kv() -> None:
    labels = {"a": "1", "b": ""}
    assert match_kv([], {}) is True
    assert match_kv(["a"], {}) is False
    assert match_kv(["a", "b="], labels) is True
    assert match_kv(["a=1"], labels) is True
    assert match_kv(["a=2"], labels) is False
    assert match_kv(["c"], labels) is False
