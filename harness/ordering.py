"""Which scenarios one pytest process runs, and in what order: parts of a target and a shuffled order.

The conformance runner splits a target's scenarios into *parts* run side by side as separate pytest
processes (``--harness-part I/N``). Every part collects the same items, so each computes the same split on its
own: the items are grouped by scenario id (a parametrized scenario stays whole, so parts merge per scenario
like shards do), each group gets a cost (seconds from a previous run when the runner hands them over with
``--harness-costs``, else an estimate from the fixtures it uses) and the groups are dealt largest first to
the part with the least cost so far, so the parts end at about the same time.

``--harness-shuffle SEED`` runs the scenarios in an order drawn from ``SEED`` (the same seed gives the same
order; a parametrized scenario's runs stay together, in their order): a scenario that passes only after
another one left state behind shows up as a different verdict.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

__all__ = ["estimate_cost", "group_key", "load_costs", "part_of", "shuffle", "split"]

T = TypeVar("T")

#: estimated seconds of a scenario by the costliest fixture it uses (used when no previous run says)
_FIXTURE_COST = (("systemd_box", 8.0), ("daemon_factory", 2.0), ("registry", 2.0))
_DEFAULT_COST = 0.5


def group_key(item: Any) -> str:
    """The scenario id of a pytest item, else its node id without the parameters."""
    mark = item.get_closest_marker("scenario")
    if mark is not None and mark.args and isinstance(mark.args[0], str):
        return str(mark.args[0])
    return str(item.nodeid.split("[")[0])


def estimate_cost(item: Any) -> float:
    """A guess at an item's seconds from its fixtures: a systemd box costs most, a daemon of its own next."""
    names = set(getattr(item, "fixturenames", ()))
    for fixture, cost in _FIXTURE_COST:
        if fixture in names:
            return cost
    return _DEFAULT_COST


def load_costs(path: str) -> dict[str, float]:
    """``{scenario id: seconds}`` from a JSON object file; unreadable or malformed entries are left out."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, (int, float)) and v >= 0}


def split(
    items: Sequence[T], parts: int, key: Callable[[T], str], cost: Callable[[T], float]
) -> list[list[T]]:
    """``items`` dealt into ``parts`` lists of about equal total cost; a key's items stay together, in order.

    Deterministic: the same items give the same split (ties broken by key), whatever the process.
    """
    groups: dict[str, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    weights = {k: sum(cost(i) for i in members) for k, members in groups.items()}
    loads = [0.0] * parts
    owner: dict[str, int] = {}
    for k in sorted(groups, key=lambda k: (-weights[k], k)):
        part = min(range(parts), key=lambda p: (loads[p], p))
        owner[k] = part
        loads[part] += weights[k]
    out: list[list[T]] = [[] for _ in range(parts)]
    for item in items:  # each part keeps the collection order
        out[owner[key(item)]].append(item)
    return out


def part_of(
    items: Sequence[Any],
    index: int,
    total: int,
    key: Callable[[Any], str] | None = None,
    costs: Mapping[str, float] | None = None,
) -> list[Any]:
    """The items of part ``index`` (1-based) of ``total``, grouped by ``key`` (default: the scenario id)
    and balanced by measured ``costs`` (by that key) where known, else by estimate."""
    known = costs or {}
    by = key or group_key

    def cost(item: Any) -> float:
        measured = known.get(by(item))
        return measured if measured is not None else estimate_cost(item)

    return split(items, total, by, cost)[index - 1]


def shuffle(items: Sequence[T], seed: int, key: Callable[[T], str] | None = None) -> list[T]:
    """``items`` in the order ``seed`` draws (``random.Random(seed)``: the same on every Python 3).

    With ``key``, the groups are shuffled and each keeps its items together and in their order: the
    parametrized runs of one scenario record into one result, whose observations must not depend on the draw.
    """
    groups: dict[str, list[T]] = {}
    for n, item in enumerate(items):
        groups.setdefault(key(item) if key else str(n), []).append(item)
    order = list(groups)
    random.Random(seed).shuffle(order)
    return [item for k in order for item in groups[k]]
