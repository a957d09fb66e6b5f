"""``/info`` for older API versions, as moby's getInfo shapes it."""

from __future__ import annotations

import json
from typing import Any

from harness.daemon.sysinfo import info_for_version


def _doc() -> dict[str, Any]:
    return {
        "ID": "x",
        "Plugins": {"Volume": ["local"], "Log": ["json-file"], "Authorization": None},
        "RuncCommit": {"ID": "abc"},
        "InitCommit": {"ID": ""},
        "FirewallBackend": {"Driver": "iptables"},
        "Architecture": "x86_64",
    }


def test_the_newest_api_gets_the_document_as_it_is() -> None:
    assert info_for_version(_doc(), (1, 51)) == _doc()
    assert list(info_for_version(_doc(), (1, 50))) == list(_doc())


def test_before_1_50_the_bridge_nf_fields_are_merged_and_every_key_sorted() -> None:
    doc = info_for_version(_doc(), (1, 49))
    assert (doc["BridgeNfIptables"], doc["BridgeNfIp6tables"]) == (False, False)
    assert list(doc) == sorted(doc)
    assert list(doc["Plugins"]) == ["Authorization", "Log", "Volume"]
    assert doc["FirewallBackend"] == {"Driver": "iptables"}  # 1.49 has it


def test_before_1_49_no_firewall_backend_and_commits_name_what_was_expected() -> None:
    doc = info_for_version(_doc(), (1, 48))
    assert "FirewallBackend" not in doc
    assert doc["RuncCommit"] == {"Expected": "abc", "ID": "abc"}
    assert doc["InitCommit"] == {"ID": ""}  # Expected is omitempty
    json.dumps(doc)


def test_python_version_is_platforms() -> None:
    import platform

    from harness.daemon.sysinfo import python_version

    assert python_version() == platform.python_version()
