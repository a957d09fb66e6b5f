"""Splitting a target's scenarios into parts of about equal cost, and the shuffled order."""

from __future__ import annotations

from harness.ordering import shuffle, split


def test_split_keeps_a_key_whole_balances_cost_and_keeps_order() -> None:
    items = ["a1", "b1", "a2", "c1", "d1", "e1"]
    cost = {"a": 5.0, "b": 3.0, "c": 3.0, "d": 1.0, "e": 1.0}
    parts = split(items, 2, key=lambda i: i[0], cost=lambda i: cost[i[0]])
    assert parts == [["a1", "a2"], ["b1", "c1", "d1", "e1"]]  # a: 10 against 3 + 3 + 1 + 1 = 8
    assert sorted(i for part in parts for i in part) == sorted(items)
    again = split(list(items), 2, key=lambda i: i[0], cost=lambda i: cost[i[0]])
    assert again == parts  # deterministic: every process of a target computes the same split


def test_split_into_more_parts_than_keys_leaves_parts_empty() -> None:
    parts = split(["x", "y"], 3, key=str, cost=lambda _: 1.0)
    assert sorted(map(len, parts)) == [0, 1, 1]


def test_shuffle_is_a_permutation_fixed_by_its_seed() -> None:
    items = list(range(50))
    assert shuffle(items, 7) == shuffle(items, 7) != items
    assert sorted(shuffle(items, 7)) == items
    assert shuffle(items, 8) != shuffle(items, 7)


def test_shuffle_by_key_keeps_a_scenarios_runs_together_and_in_order() -> None:
    items = [f"{k}{i}" for k in "abcdefgh" for i in range(3)]
    out = shuffle(items, 5, key=lambda i: i[0])
    assert sorted(out) == sorted(items) and out != items
    for k in "abcdefgh":
        where = [n for n, i in enumerate(out) if i[0] == k]
        assert where == list(range(where[0], where[0] + 3))  # together
        assert [out[n] for n in where] == [f"{k}0", f"{k}1", f"{k}2"]  # in their order
