"""docs/flags.md is generated from refd's flag table: every flag is in it, with a status."""

from __future__ import annotations

import re
from pathlib import Path

from harness.daemon.flags import FLAGS
from harness.flagsdoc import render, usage_by_key

DOC = Path(__file__).resolve().parents[2] / "docs" / "flags.md"


def test_every_flag_has_a_row_and_a_status() -> None:
    text = render()
    for flag in FLAGS:
        row = next(line for line in text.splitlines() if line.startswith(f"| `--{flag.name}` |"))
        assert re.search(r"\| (honoured|accepted)( \((hidden|deprecated: [^)]*)\))? \|", row), row
        assert ("(deprecated:" in row) == bool(flag.deprecated) and ("(hidden)" in row) == flag.hidden
    assert f"{len(FLAGS)} flags" in text
    assert "| `--help` |" in text and "| `--version` | `-v` |" in text


def test_usage_is_read_from_the_source() -> None:
    used = usage_by_key(["tlsverify", "dns-search", "no-such-key"])
    assert "tlsconf.py" in used["tlsverify"]
    assert any("containers/" in m for m in used["dns-search"])  # looked up through a table of keys
    assert used["no-such-key"] == []


def test_the_committed_doc_lists_every_flag() -> None:
    # (regenerate with python -m harness.flagsdoc; the "read in" column moves as refd grows)
    text = DOC.read_text()
    assert all(f"| `--{flag.name}` |" in text for flag in FLAGS)
