"""refd's --group-add lookup (moby/sys/user GetAdditionalGroups): names from /etc/group, numbers as given."""

from __future__ import annotations

import pytest

from harness.daemon.runtime.users import UserLookupError, additional_groups

GROUP = "root:x:0:\nwheel:x:10:root\nstaff:x:50:\nbig:x:4294967296:\n"


def test_names_and_numbers_resolve_sorted_and_once() -> None:
    assert additional_groups(["staff", "wheel", "777", 10, "50"], GROUP) == (10, 50, 777)
    assert additional_groups(["777"], None) == (777,)  # no /etc/group: numbers still do
    assert additional_groups([], GROUP) == ()


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (["nosuch"], "unable to find group nosuch: no matching entries in group file"),
        (["staff", "nosuch"], "unable to find group nosuch: no matching entries in group file"),
        (["2147483648"], "uids and gids must be in range 0-2147483647"),
        (["big"], "uids and gids must be in range 0-2147483647"),
    ],
)
def test_unknown_names_and_out_of_range_ids_are_refused(entries: list[int | str], message: str) -> None:
    with pytest.raises(UserLookupError, match=message):
        additional_groups(entries, GROUP)
