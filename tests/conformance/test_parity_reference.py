"""The default reference is the newest dockerd target: refd follows the newest dockerd."""

from __future__ import annotations

import pytest

from conformance.parity import ParityError, pick_reference


def test_newest_dockerd_is_the_default_reference() -> None:
    names = ["refd", "dockerd", "dockerd-28"]
    versions = {"refd": "28.5.2-refd", "dockerd": "20.10.24+dfsg1", "dockerd-28": "28.5.2+dfsg4"}
    assert pick_reference(names, None, versions) == "dockerd-28"


def test_without_versions_the_first_dockerd_is_the_reference() -> None:
    assert pick_reference(["refd", "dockerd-26", "dockerd-28"]) == "dockerd-26"
    assert pick_reference(["refd"]) == "refd"


def test_an_explicit_reference_must_be_a_target() -> None:
    assert pick_reference(["refd", "dockerd"], "refd", {"refd": "1", "dockerd": "2"}) == "refd"
    with pytest.raises(ParityError, match="not among the targets"):
        pick_reference(["refd"], "dockerd-28")
