"""parity.html in a real browser (headless Chromium over CDP): any divergence is two clicks away.

The page is built by ``python -m conformance report`` from a small synthetic results set holding one
divergence of each kind (unexplained, known, stale, refd-only, schema finding) and opened from disk, offline.
For each kind a person's two clicks (a count in the summary table or a link in a divergence list, then the
target's cell) must open the panel with that scenario's observed values and diff, and the filters must hide
what they should. ``nox -s tests`` installs Debian's chromium (noxfile OS_PACKAGES); without it the tests fail
in CI and as root, and skip only for a non-root developer.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cf_browser import Browser, find_chromium
from cf_factories import checked, finding, results, scenario

from conformance import htmlreport
from conformance.runner import main as conformance_main
from harness.results import dump_results

REF, TGT = "dockerd-28", "refd"
KNOWN_REASON = "refd speaks API 1.41 on this route; dockerd 28 answers 1.51"
STALE_REASON = "refd used to drop the Labels of a config"
REFD_ONLY = "refd-only: only refd loads an OCI layout directory"
FINDING = "null where the swagger expects object (refd's own)"
KNOWN_TOML = f"""
[[divergence]]
scenario = "api/known"
targets = ["{TGT}"]
reason = "{KNOWN_REASON}"
link = "https://example.invalid/known"

[[divergence]]
scenario = "config/stale"
targets = ["{TGT}"]
reason = "{STALE_REASON}"
"""

#: kind -> (scenario, the first click, what the opened refd cell must show)
CASES = {
    "unexplained": (
        "api/unexplained",
        f'button.pick[data-focus="{TGT}:verdict:diverge"]',
        ['"No such container: abc"', '"no such container: abc"', "/message", "parity vs dockerd-28: diverge"],
    ),
    "unexplained-from-list": (
        "api/unexplained",
        'a[data-row="sc-api/unexplained"]',
        ['"No such container: abc"', "/message"],
    ),
    "known": (
        "api/known",
        f'button.pick[data-focus="{TGT}:verdict:known"]',
        [f"known divergence: {KNOWN_REASON}", '"1.41"', '"1.51"', "/headers/Api-Version"],
    ),
    "stale": (
        "config/stale",
        'a[data-row="sc-config/stale"]',
        ["stale known divergence", STALE_REASON, '"Labels"', '"team": "blue"'],
    ),
    "refd-only": (
        "api/refd-only",
        f'button.pick[data-focus="{TGT}:verdict:skipped"]',
        [REFD_ONLY, '"loaded": "oci-layout"'],
    ),
    "schema": (
        "socket/schema",
        f'button.pick[data-focus="{TGT}:schema"]',
        [FINDING, "/Options", "GET /volumes/{name}", '"Options": null'],
    ),
}


def _results_set(directory: Path) -> None:
    """Two targets, three areas, one scenario per kind of divergence and two that match."""
    ref = results(
        REF,
        scenario("api/ok", status=200),
        scenario("api/unexplained", status=404, message="No such container: abc"),
        scenario("api/known", headers={"Api-Version": "1.51"}),
        scenario("api/refd-only", "skipped", REFD_ONLY),
        scenario("config/stale", Labels={"team": "blue"}),
        scenario("config/ok", created=True),
        checked(scenario("socket/schema", Options=None)),
        schema="report",
    )
    tgt = results(
        TGT,
        scenario("api/ok", status=200),
        scenario("api/unexplained", status=404, message="no such container: abc"),
        scenario("api/known", headers={"Api-Version": "1.41"}),
        scenario("api/refd-only", loaded="oci-layout"),
        scenario("config/stale", Labels={"team": "blue"}),
        scenario("config/ok", created=True),
        checked(scenario("socket/schema", Options=None), finding(message=FINDING)),
        version="28.5.2-refd",
        schema="report",
    )
    for r in (ref, tgt):
        dump_results(r, directory / f"{r.target.name}.json")
    (directory / "known.toml").write_text(KNOWN_TOML)


def _build(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    _results_set(directory)
    code = conformance_main(
        ["report", str(directory), "--known", str(directory / "known.toml"), "--ui", "plain"]
    )
    assert code == 1  # the unexplained divergence fails the run, as it should
    page = directory / "parity.html"
    assert page.is_file()
    return page


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    exe = find_chromium()
    if exe is None:
        why = (
            "no headless browser for the parity.html tests: $HARNESS_CHROMIUM is unset and none of chromium, "
            "chromium-browser, google-chrome is on PATH; `nox -s tests` installs Debian's chromium when run "
            "as root (python -m harness.ospkgs chromium), else apt-get install chromium"
        )
        if os.environ.get("CI") or os.geteuid() == 0:
            pytest.fail(why)  # in CI and as root the session could have installed it: not a skip
        pytest.skip(why)
    b = Browser(exe, tmp_path_factory.mktemp("chromium"))
    # offline: a page that needs the network breaks here, and every request it makes is recorded
    b.send(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    yield b
    b.close()


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("report"))


def _open(browser: Browser, page: Path) -> None:
    mark = len(browser.events)
    browser.open("about:blank")
    browser.open(page.as_uri())
    del browser.events[:mark]  # problems and requests of this page only


def _visible_rows(browser: Browser) -> list[str]:
    rows = browser.js(
        "Array.prototype.map.call(document.querySelectorAll('#matrix > tbody > tr'),"
        " function (r) { return [r.id, r.offsetParent !== null]; })"
    )
    return [rid.removeprefix("sc-") for rid, shown in rows if shown]


def _cell(sid: str, target: str) -> str:
    return f'tr[id="sc-{sid}"] > td[data-target="{target}"]'


def _cell_text(browser: Browser, sid: str, target: str) -> tuple[bool, str]:
    """Whether the cell's panel is open, and its rendered text (a closed panel renders only its summary)."""
    got = browser.js(
        f"(function () {{ var td = document.querySelector({json.dumps(_cell(sid, target))});"
        " return [td.querySelector('details').open, td.innerText]; })()"
    )
    return bool(got[0]), str(got[1])


def two_clicks(browser: Browser, sid: str, first: str, expected: list[str]) -> None:
    """The first click must leave ``sid`` visible, the second (on refd's cell) must open its panel showing
    ``expected``; the panel is closed and shows none of it before."""
    is_open, before = _cell_text(browser, sid, TGT)
    assert not is_open and not any(e in before for e in expected), before
    browser.click(first)
    shown = _visible_rows(browser)
    assert sid in shown, f"{sid} is hidden after clicking {first}"
    focus = re.search(r'data-focus="([^"]+)"', first)
    if focus is not None:  # a count: only the rows it counts stay
        cells = browser.js(
            "Array.prototype.map.call(document.querySelectorAll('#matrix > tbody > tr:not([hidden])'),"
            " function (r) { return r.dataset.cells.split(' '); })"
        )
        assert len(cells) == len(shown) and all(focus.group(1) in c for c in cells), (first, shown)
        assert len(shown) < browser.js("document.querySelectorAll('#matrix > tbody > tr').length")
    browser.click(f"{_cell(sid, TGT)} > details > summary")
    is_open, after = _cell_text(browser, sid, TGT)
    assert is_open, f"the {TGT} cell of {sid} did not open"
    missing = [e for e in expected if e not in after]
    assert not missing, f"the opened cell of {sid} lacks {missing}:\n{after}"
    assert not browser.problems()


@pytest.mark.parametrize("kind", list(CASES))
def test_each_divergence_is_two_clicks_away(browser: Browser, page: Path, kind: str) -> None:
    sid, first, expected = CASES[kind]
    _open(browser, page)
    two_clicks(browser, sid, first, expected)


def test_a_count_shows_only_the_rows_it_counts_until_show_all(browser: Browser, page: Path) -> None:
    _open(browser, page)
    everything = _visible_rows(browser)
    assert len(everything) == 7
    for focus, rows in (
        (f"{TGT}:verdict:diverge", ["api/unexplained"]),
        (f"{TGT}:verdict:match", ["api/ok", "config/ok", "config/stale", "socket/schema"]),
        (f"{REF}:outcome:skipped", ["api/refd-only"]),
        (f"{TGT}:schema", ["socket/schema"]),
    ):
        browser.click(f'button.pick[data-focus="{focus}"]')
        assert sorted(_visible_rows(browser)) == rows, focus
        assert browser.js("document.getElementById('count').textContent") == f"{len(rows)} of 7 scenarios"
    browser.click("#focus-clear")
    assert _visible_rows(browser) == everything


def test_filters_hide_what_they_should(browser: Browser, page: Path) -> None:
    _open(browser, page)
    browser.click('input[data-group="area"][value="api"]')
    assert sorted(_visible_rows(browser)) == ["config/ok", "config/stale", "socket/schema"]
    browser.click('input[data-group="area"][value="api"]')
    browser.click('input[data-group="outcome"][value="passed"]')
    assert _visible_rows(browser) == ["api/refd-only"]  # the only row with an outcome other than passed
    browser.click('button[data-group="outcome"][data-set="all"]')
    browser.click('input[data-group="verdict"][value="match"]')
    assert sorted(_visible_rows(browser)) == ["api/known", "api/refd-only", "api/unexplained"]
    # a link to a filtered-out row brings it back
    browser.click('a[data-row="sc-config/stale"]')
    assert "config/stale" in _visible_rows(browser) and len(_visible_rows(browser)) == 7
    assert not browser.problems()


def test_the_page_needs_no_network(browser: Browser, page: Path) -> None:
    _open(browser, page)
    assert browser.requests() == [page.as_uri()]  # offline, and nothing but the page itself was asked for
    loads = browser.js(
        "Array.prototype.map.call(document.querySelectorAll('[src], link[href], object, embed, iframe'),"
        " function (e) { return e.outerHTML.slice(0, 120); })"
    )
    assert loads == []
    text = page.read_text()
    assert not re.search(r"@import|url\(", text)
    # the only absolute URLs are known-divergence links a person may follow
    assert re.findall(r"https?://[^\"'<\s]+", text) == ["https://example.invalid/known"] * text.count(
        "https://example.invalid/known"
    )
    assert not browser.problems()


def test_a_broken_page_fails_these_checks(
    browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The must-fail case: the same checks on a page whose filter does nothing, and on one whose script
    throws, fail."""
    sid, first, expected = CASES["unexplained"]
    monkeypatch.setattr(htmlreport, "_JS", htmlreport._JS.replace("row.hidden = !ok;", ""))
    _open(browser, _build(tmp_path / "no-filter"))
    browser.click(f'button.pick[data-focus="{TGT}:verdict:diverge"]')
    assert len(_visible_rows(browser)) == 7  # nothing hidden: a filter test would catch it
    monkeypatch.setattr(htmlreport, "_JS", htmlreport._JS.replace("var focusBox", "var focusBox = nope.x"))
    _open(browser, _build(tmp_path / "throws"))
    with pytest.raises(AssertionError):
        two_clicks(browser, sid, first, expected)
    assert any("nope is not defined" in p for p in browser.problems())
