"""docs/tutorial.md's generated blocks: filled from a parity report, prose untouched, idempotent."""

from __future__ import annotations

from pathlib import Path

from cf_factories import results, scenario

from conformance.parity import Parity, build_parity
from conformance.tutorial import main, render_doc

DOC = """# Tour

<!-- tutorial:summary -->
old summary
<!-- /tutorial:summary -->

Hand-written prose stays.

<!-- tutorial:result tutorial/tls/as-written -->
stale
<!-- /tutorial:result -->

<!-- tutorial:result tutorial/not/run -->
<!-- /tutorial:result -->
"""


def _parity() -> Parity:
    ref = results("dockerd-28", scenario("tutorial/tls/as-written", error="x509: legacy Common Name"))
    refd = results(
        "refd", scenario("tutorial/tls/as-written", error="x509: something else"), version="28.5.2-refd"
    )
    return build_parity([refd, ref], [], generated="2026-11-28")


def test_blocks_are_generated_and_prose_kept(tmp_path: Path) -> None:
    parity = _parity()
    text = render_doc(DOC, parity, tmp_path, tmp_path)
    assert "Hand-written prose stays." in text and "stale" not in text and "old summary" not in text
    assert "| dockerd-28 | 28.5.2 | passed | reference |" in text
    assert "| refd | 28.5.2-refd | passed | DIVERGES (`/error`)" in text
    assert '"error": "x509: legacy Common Name"' in text  # the reference's observations
    assert "[`tutorial/tls/as-written`](#result-tutorial-tls-as-written)" in text
    assert '<a id="result-tutorial-tls-as-written"></a>' in text
    assert "*Not in this report" in text and "`tutorial/not/run`" in text
    assert "([scenario](suites/tutorial/test_x.py))" in text
    assert render_doc(text, parity, tmp_path, tmp_path) == text


def test_main_writes_then_checks(tmp_path: Path) -> None:
    import json

    doc = tmp_path / "tutorial.md"
    doc.write_text(DOC)
    report = tmp_path / "parity.json"
    report.write_text(json.dumps(_parity().to_dict()))
    assert main(["--parity", str(report), "--doc", str(doc), "--check"]) == 1
    assert main(["--parity", str(report), "--doc", str(doc)]) == 0
    assert main(["--parity", str(report), "--doc", str(doc), "--check"]) == 0
    assert main(["--parity", str(tmp_path / "missing.json"), "--doc", str(doc)]) == 2
