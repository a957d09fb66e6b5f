"""The runner's terminal output: progress while each target's pytest runs, and the summary at the end.

Two flavours with the same methods: ``PlainUI`` writes plain lines (pytest's own output streams through, as in
a CI log) and ``RichUI`` draws a progress bar per target with ``rich`` (failures printed as they happen,
pytest's lines other than its progress dots shown dimmed above the bars) and the summary as tables.
``make_ui`` picks rich when asked, or in ``auto`` mode when ``rich`` is importable and the output is a
terminal (not ``TERM=dumb``); otherwise plain. Progress comes from the events ``conformance.progress`` writes
(the runner tails them, see ``ProgressTail``); the summary only reads the parity document.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from conformance.parity import Parity
from conformance.report import diff_text
from harness.results import OUTCOMES

__all__ = ["UI_MODES", "PlainUI", "ProgressTail", "RichUI", "Tally", "make_ui", "rich_available"]

UI_MODES = ("auto", "rich", "plain")
VERDICT_KEYS = ("match", "diverge", "known", "missing", "skipped")
#: a line of pytest -q progress: outcome letters, then maybe ``[ 42%]``
_DOTS = re.compile(r"[.sFEXx]*\s*(\[\s*\d+%\])?\s*")


def rich_available() -> bool:
    try:
        import rich.progress  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class Tally:
    """What one target's progress events said so far."""

    total: int | None = None
    done: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    current: str = ""

    def add(self, event: Mapping[str, Any]) -> None:
        kind = event.get("event")
        if kind == "collected":
            self.total = int(event.get("count", 0))
        elif kind == "start":
            self.current = str(event.get("id", ""))
        elif kind == "done":
            self.done += 1
            outcome = str(event.get("outcome", "passed"))
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            self.current = ""

    def counts(self) -> str:
        return ", ".join(f"{n} {k}" for k, n in self.outcomes.items() if n)


class ProgressTail:
    """Follows a progress file in a thread and hands each event to ``callback``."""

    def __init__(self, path: Path, callback: Callable[[dict[str, Any]], None], interval: float = 0.2) -> None:
        self.path = path
        self.callback = callback
        self.interval = interval
        self._stop = threading.Event()
        self._offset = 0
        self._partial = ""
        self._thread = threading.Thread(target=self._loop, name=f"progress-{path.name}", daemon=True)

    def __enter__(self) -> ProgressTail:
        self.path.unlink(missing_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._read()  # whatever came after the last poll
        self.path.unlink(missing_ok=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._read()

    def _read(self) -> None:
        try:
            with self.path.open("r", encoding="utf-8", errors="replace") as fh:
                fh.seek(self._offset)
                chunk = fh.read()
                self._offset = fh.tell()
        except OSError:
            return
        lines = (self._partial + chunk).split("\n")
        self._partial = lines.pop()
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                with contextlib.suppress(Exception):  # drawing progress must never break a run
                    self.callback(event)


class _LineSink(io.StringIO):
    """A text stream that hands each complete line to ``callback`` (pytest's output in rich mode)."""

    def __init__(self, callback: Callable[[str], None]) -> None:
        super().__init__()
        self._callback = callback
        self._buffer = ""

    def write(self, text: str) -> int:
        self._buffer += text
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self._callback(line)
        return len(text)

    def flush(self) -> None:
        pass


# -- the summary, as data both flavours format


@dataclass(frozen=True)
class _TargetRow:
    label: str
    version: str
    outcomes: dict[str, int]
    verdicts: dict[str, int] | None
    schema: str


def _schema_text(parity: Parity, name: str, schema: Mapping[str, Any]) -> str:
    if schema["error"]:
        return "off (swagger unavailable)"
    if schema["mode"] in ("", "off"):
        return ""
    own = "" if name == parity.reference else f" ({schema['own_findings']} not on the reference)"
    return f"{schema['checked']} checked, {schema['findings']} finding(s){own}"


def _rows(parity: Parity) -> list[_TargetRow]:
    """One row per target; per target and daemon profile (``refd @no-bridge``) when there are profiles."""
    summary = parity.summary()
    profiles = parity.profile_names()
    rows = []
    for profile in profiles if profiles not in ([], ["default"]) else [""]:
        for t in parity.targets:
            s = summary["profiles"][profile][t.name] if profile else summary["targets"][t.name]
            label = f"{t.name} (reference)" if t.name == parity.reference else t.name
            rows.append(
                _TargetRow(
                    label=f"{label} @{profile}" if profile else label,
                    version=t.target.version or "?",
                    outcomes=s["outcomes"],
                    verdicts=s["verdicts"],
                    # the swagger checks are per target: shown once
                    schema=_schema_text(parity, t.name, summary["targets"][t.name]["schema"])
                    if not profile or profile == profiles[0]
                    else "",
                )
            )
    return rows


def _failures(parity: Parity) -> list[tuple[str, str, str, str]]:
    """(target, scenario, outcome, first line of the reason (+ a note when a known divergence excuses it))."""
    out = []
    for sc in parity.scenarios:
        excused = {n: v.reason for n, v in sc.verdicts.items() if v.verdict == "known"}
        if excused:
            excused[parity.reference] = next(iter(excused.values()))
        for n, r in sc.results.items():
            if r.outcome in ("failed", "error"):
                note = f" (expected, a known divergence: {excused[n][:120]})" if n in excused else ""
                if n in sc.expected_failures:
                    note = f" (expected: {sc.expected_failures[n][:120]})"
                out.append((n, sc.id, r.outcome, (r.reason.splitlines() or [""])[0][:160] + note))
    return out


def _unexplained(parity: Parity) -> list[tuple[str, str, str, str]]:
    out = []
    for sc, n, v in parity.unexplained():
        lines = diff_text(v, parity.reference, n).splitlines()
        more = f" (+{len(lines) - 3} more)" if len(lines) > 3 else ""
        out.append((n, sc.id, v.verdict, "; ".join(lines[:3]) + more))
    return out


def _trend_lines(parity: Parity, limit: int = 20) -> list[str]:
    trend = parity.trend
    if trend is None:
        return []
    lines = [f"trend since {trend.previous.get('source') or 'the previous report'}: {trend.headline()}"]
    if trend.reference_changed:
        lines.append(f"  (the reference changed: {trend.previous.get('reference')} -> {trend.reference})")
    for label, title, changes in (
        ("new failure", "new failures", trend.new_failures),
        ("new divergence", "new divergences", trend.new_divergences),
        ("fixed", "fixed", trend.fixed),
        ("resolved", "resolved divergences", trend.resolved_divergences),
    ):
        for c in changes[:limit]:
            note = " (excused by a known divergence)" if c.expected else ""
            detail = f": {c.detail}" if c.detail else ""
            lines.append(f"  {label}: {c.target}  {c.scenario}  {c.before} -> {c.after}{note}{detail}")
        if len(changes) > limit:
            lines.append(f"  ... and {len(changes) - limit} more {title} (trend.md)")
    return lines


def _stale_lines(parity: Parity, limit: int = 10) -> list[str]:
    """The stale known divergences, the first ``limit`` of them (a subset run leaves many stale)."""
    stale = parity.stale()
    lines = [
        f"stale known divergence: {k.entry.scenario} on {', '.join(k.entry.targets)} (explained nothing)"
        for k in stale[:limit]
    ]
    if len(stale) > limit:
        lines.append(
            f"... and {len(stale) - limit} more stale known divergences (all in parity.md; a run of a subset "
            "of the scenarios or targets leaves entries for the others stale)"
        )
    return lines


def _counts(counts: Mapping[str, int], keys: Sequence[str]) -> str:
    return ", ".join(f"{counts[k]} {k}" for k in keys)


# -- plain


class PlainUI:
    """Plain lines: what a CI log or a pipe gets."""

    rich = False

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tallies: dict[str, Tally] = {}
        self._lock = threading.Lock()

    def plan(self, targets: Sequence[str]) -> None:
        self.tallies = {t: Tally() for t in targets}

    def target_started(self, target: str, command: Sequence[str]) -> None:
        self.tallies.setdefault(target, Tally())
        self.out.write(f"conformance: target {target}: {shlex.join(command)}\n")
        self.out.flush()

    def pytest_stream(self, target: str) -> TextIO:
        return self.out

    def event(self, target: str, event: Mapping[str, Any]) -> None:
        with self._lock:
            self.tallies.setdefault(target, Tally()).add(event)

    def target_finished(self, target: str, returncode: int, seconds: float) -> None:
        tally = self.tallies.get(target, Tally())
        counts = f": {tally.counts()}" if tally.done else ""
        self.out.write(
            f"conformance: target {target} finished in {seconds:.1f} s (pytest exit {returncode}){counts}\n"
        )
        self.out.flush()

    def stop(self) -> None:
        """End the progress display (before the summary, and on every way out of a run)."""

    def note(self, text: str) -> None:
        self.out.write(f"conformance: {text}\n")
        self.out.flush()

    def summary(self, parity: Parity, warnings: Sequence[str], written: Sequence[Path]) -> None:
        w = self.out.write
        w(
            f"\nconformance: {len(parity.targets)} target(s), {len(parity.scenarios)} scenario(s), "
            f"reference {parity.reference}\n"
        )
        rows = _rows(parity)
        width = max(len(r.label) for r in rows)
        for r in rows:
            line = f"  {r.label:<{width}}  {r.version}: {_counts(r.outcomes, OUTCOMES)}"
            if r.verdicts is not None:
                line += f"; parity: {_counts(r.verdicts, VERDICT_KEYS)}"
            if r.schema:
                line += f"; schema: {r.schema}"
            w(line + "\n")
        failed = _failures(parity)
        if failed:
            w(f"failed scenarios ({len(failed)}):\n")
            for n, sid, outcome, reason in failed:
                w(f"  {n}  {sid}  {outcome}: {reason}\n")
        unexplained = _unexplained(parity)
        if unexplained:
            w(f"unexplained divergences ({len(unexplained)}):\n")
            for n, sid, verdict, text in unexplained:
                w(f"  {n}  {sid}  {verdict}: {text}\n")
        for line in _stale_lines(parity):
            w(line + "\n")
        for line in _trend_lines(parity):
            w(line + "\n")
        for warning in warnings:
            w(f"warning: {warning}\n")
        if written:
            w("reports: " + ", ".join(str(p) for p in written) + "\n")
        self.out.flush()

    def trend(self, parity: Parity, written: Sequence[Path]) -> None:
        for line in _trend_lines(parity):
            self.out.write(line + "\n")
        if written:
            self.out.write("reports: " + ", ".join(str(p) for p in written) + "\n")
        self.out.flush()

    def result(self, text: str, ok: bool) -> None:
        self.out.write(f"{text}\n")
        self.out.flush()


# -- rich


class RichUI(PlainUI):
    """A progress bar per target and summary tables, with ``rich``."""

    rich = True

    def __init__(self, out: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        super().__init__(out)
        self.console = Console(file=out, highlight=False, soft_wrap=False)
        self.progress = Progress(
            TextColumn("[bold]{task.fields[target]}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[counts]}"),
            TextColumn("[dim]{task.fields[current]}"),
            console=self.console,
            refresh_per_second=4,
        )
        self._tasks: dict[str, Any] = {}
        self._started = False

    def _task(self, target: str) -> Any:
        if target not in self._tasks:
            self._tasks[target] = self.progress.add_task(
                target, total=None, start=False, target=target, counts="[dim]waiting", current=""
            )
        return self._tasks[target]

    def plan(self, targets: Sequence[str]) -> None:
        super().plan(targets)
        for t in targets:
            self._task(t)
        if not self._started:
            self.progress.start()
            self._started = True

    def target_started(self, target: str, command: Sequence[str]) -> None:
        self.tallies.setdefault(target, Tally())
        self.console.print(f"[dim]conformance: target {target}: {shlex.join(command)}", soft_wrap=True)
        task = self._task(target)
        self.progress.start_task(task)
        self.progress.update(task, counts="[dim]collecting", current="")

    def pytest_stream(self, target: str) -> TextIO:
        return _LineSink(lambda line: self._pytest_line(target, line))

    def _pytest_line(self, target: str, line: str) -> None:
        if not line.strip() or _DOTS.fullmatch(line):
            return
        from rich.text import Text

        self.console.print(Text(f"{target}| {line}", style="dim"), soft_wrap=True)

    def _counts_markup(self, tally: Tally) -> str:
        colours = {"passed": "green", "failed": "red", "error": "red", "skipped": "yellow"}
        parts = [f"[{colours.get(k, 'white')}]{n} {k}[/]" for k, n in tally.outcomes.items() if n]
        return " ".join(parts) or "[dim]starting"

    def event(self, target: str, event: Mapping[str, Any]) -> None:
        with self._lock:
            tally = self.tallies.setdefault(target, Tally())
            tally.add(event)
            task = self._task(target)
            self.progress.update(
                task,
                total=tally.total,
                completed=tally.done,
                counts=self._counts_markup(tally),
                current=tally.current,
            )
            if event.get("event") == "done" and event.get("outcome") in ("failed", "error"):
                from rich.text import Text

                text = Text()
                text.append("  ✗ ", style="bold red")
                text.append(f"{target}  {event.get('id', '')}  {event.get('outcome')}")
                if event.get("reason"):
                    text.append(f": {event['reason']}", style="dim")
                self.console.print(text, soft_wrap=True)

    def target_finished(self, target: str, returncode: int, seconds: float) -> None:
        tally = self.tallies.get(target, Tally())
        task = self._task(target)
        done = "[green]done" if returncode in (0, 1) else f"[red]pytest exit {returncode}"
        total = tally.total if tally.total is not None else tally.done
        self.progress.update(task, total=total, completed=tally.done, current=done)
        self.progress.stop_task(task)

    def stop(self) -> None:
        if self._started:
            self.progress.stop()
            self._started = False

    def note(self, text: str) -> None:
        self.console.print(f"[dim]conformance:[/] {text}", soft_wrap=True)

    def summary(self, parity: Parity, warnings: Sequence[str], written: Sequence[Path]) -> None:
        from rich.table import Table
        from rich.text import Text

        self.stop()
        table = Table(
            title=f"conformance: {len(parity.targets)} target(s), {len(parity.scenarios)} scenario(s), "
            f"reference {parity.reference}",
            title_justify="left",
        )
        table.add_column("target", no_wrap=True)
        table.add_column("version", no_wrap=True)
        for o in OUTCOMES:
            table.add_column(
                {"passed": "pass", "failed": "fail", "skipped": "skip", "error": "err"}.get(o, o),
                justify="right",
            )
        table.add_column("parity")
        table.add_column("schema")
        colours = {"failed": "red", "error": "red", "diverge": "yellow", "missing": "yellow", "known": "cyan"}

        def num(key: str, n: int) -> Text:
            return Text(str(n), style=colours.get(key, "") if n else "dim")

        for r in _rows(parity):
            verdicts = Text("—", style="dim")
            if r.verdicts is not None:
                verdicts = Text(" · ").join(
                    Text(f"{r.verdicts[k]} {k}", style=colours.get(k, ""))
                    for k in VERDICT_KEYS
                    if r.verdicts[k]
                )
            table.add_row(r.label, r.version, *(num(o, r.outcomes[o]) for o in OUTCOMES), verdicts, r.schema)
        self.console.print()
        self.console.print(table)
        failed = _failures(parity)
        if failed:
            self.console.print(f"[bold red]failed scenarios ({len(failed)}):")
            for n, sid, outcome, reason in failed:
                self.console.print(Text(f"  {n}  {sid}  {outcome}: {reason}"), soft_wrap=True)
        unexplained = _unexplained(parity)
        if unexplained:
            self.console.print(f"[bold yellow]unexplained divergences ({len(unexplained)}):")
            for n, sid, verdict, text in unexplained:
                self.console.print(Text(f"  {n}  {sid}  {verdict}: {text}"), soft_wrap=True)
        for line in _stale_lines(parity):
            self.console.print(Text(line, style="dim"), soft_wrap=True)
        self._trend(parity)
        for warning in warnings:
            self.console.print(Text(f"warning: {warning}", style="yellow"), soft_wrap=True)
        if written:
            self.console.print(
                Text("reports: " + ", ".join(str(p) for p in written), style="dim"), soft_wrap=True
            )

    def _trend(self, parity: Parity) -> None:
        from rich.text import Text

        for i, line in enumerate(_trend_lines(parity)):
            style = "bold" if i == 0 else ("red" if line.lstrip().startswith("new ") else "")
            self.console.print(Text(line, style=style), soft_wrap=True)

    def trend(self, parity: Parity, written: Sequence[Path]) -> None:
        from rich.text import Text

        self._trend(parity)
        if written:
            self.console.print(
                Text("reports: " + ", ".join(str(p) for p in written), style="dim"), soft_wrap=True
            )

    def result(self, text: str, ok: bool) -> None:
        self.stop()
        self.console.print(f"[bold {'green' if ok else 'red'}]{text}")


def make_ui(mode: str, out: TextIO, env: Mapping[str, str] | None = None) -> tuple[PlainUI, str]:
    """The UI for ``mode`` (auto, rich, plain) and a note when rich was asked for but cannot be had."""
    env = os.environ if env is None else env
    if mode == "plain":
        return PlainUI(out), ""
    if not rich_available():
        note = "rich is not installed; plain output (pip install rich)" if mode == "rich" else ""
        return PlainUI(out), note
    if mode == "rich":
        return RichUI(out), ""
    try:
        tty = out.isatty()
    except (AttributeError, ValueError):
        tty = False
    if tty and env.get("TERM", "") != "dumb":
        return RichUI(out), ""
    return PlainUI(out), ""
