"""A headless Chromium driven over the Chrome DevTools Protocol, for the parity.html tests.

The browser talks CDP on a pipe (``--remote-debugging-pipe``: fd 3 in, fd 4 out, one JSON message per NUL),
so no port, no websocket library and no WebDriver are needed. Clicks are real mouse events at the element's
centre, so a hidden or covered element cannot be clicked, as for a person.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

__all__ = ["CHROMIUM_NAMES", "Browser", "BrowserError", "find_chromium"]

#: executables tried on PATH, in order, after $HARNESS_CHROMIUM
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class BrowserError(RuntimeError):
    """The browser could not be started or did not answer."""


def find_chromium() -> str | None:
    """$HARNESS_CHROMIUM, else the first of CHROMIUM_NAMES on PATH."""
    exe = os.environ.get("HARNESS_CHROMIUM")
    if exe:
        return exe
    return next((p for n in CHROMIUM_NAMES if (p := shutil.which(n)) is not None), None)


class Browser:
    """One Chromium process with one page (tab); ``events`` keeps every event the page sent."""

    def __init__(self, exe: str, profile: Path, timeout: float = 30.0) -> None:
        self.exe = exe
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self._next = 0
        self._buf = b""
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        self.log = profile / "chromium.log"
        profile.mkdir(parents=True, exist_ok=True)
        args = [
            exe,
            "--headless",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "--window-size=1400,1000",
        ]
        if os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium refuses to run its sandbox as root
        args.append("about:blank")

        def fds() -> None:
            # the pipe's ends onto the fds CDP uses, 3 in and 4 out (by way of fds >= 10, so that one end
            # sitting on 3 or 4 is not overwritten before it is copied); dup2 makes them inheritable
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child_r, from_child_w)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        with self.log.open("wb") as log:
            # close_fds=False: it would close 3 and 4 after fds() ran; Python's own fds are close-on-exec
            self.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=fds, close_fds=False
            )
        os.close(to_child_r)
        os.close(from_child_w)
        try:
            targets = self.call("Target.getTargets")["targetInfos"]
            page = next(t["targetId"] for t in targets if t["type"] == "page")
            attached = self.call("Target.attachToTarget", {"targetId": page, "flatten": True})
            self.session: str = attached["sessionId"]
            for domain in ("Page", "Runtime", "Network", "Log"):
                self.send(f"{domain}.enable")
        except BaseException:
            self.close()
            raise

    def _fail(self, what: str) -> BrowserError:
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        return BrowserError(f"{what} (Chromium {self.exe}; its log {self.log}):\n{tail}")

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._fail(f"no message from the browser within {self.timeout:.0f} s")
            ready, _, _ = select.select([self._from_child], [], [], left)
            if ready:
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    raise self._fail(f"the browser closed its DevTools pipe (exit {self.proc.poll()})")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> Any:
        """Send one command and wait for its answer (events meanwhile go to ``events``)."""
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            answer = self._read(deadline)
            if answer.get("id") == self._next:
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            if "method" in answer:
                self.events.append(answer)

    def send(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """A command to the page."""
        return self.call(method, params, self.session)

    def wait_event(self, method: str, after: int) -> dict[str, Any]:
        """The first ``method`` event at index ``after`` or later in ``events``, waiting for it."""
        deadline = time.monotonic() + self.timeout
        while True:
            found = next((e for e in self.events[after:] if e["method"] == method), None)
            if found is not None:
                return found
            message = self._read(deadline)
            if "method" in message:
                self.events.append(message)

    def open(self, url: str) -> None:
        """Navigate the page to ``url`` and wait for its load event."""
        mark = len(self.events)
        result = self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"opening {url}: {result['errorText']}")
        self.wait_event("Page.loadEventFired", mark)

    def js(self, expression: str) -> Any:
        """Evaluate ``expression`` in the page and return its value (a thrown error raises)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        """A person's click on the element ``selector`` names: scrolled into view, then a mouse press and
        release at its centre. Fails when the element is missing, not displayed, or covered by another."""
        where = self.js(
            f"""(function () {{
              var el = document.querySelector({json.dumps(selector)});
              if (el === null) {{ return 'missing'; }}
              el.scrollIntoView({{block: 'center'}});
              var r = el.getBoundingClientRect();
              if (r.width === 0 || r.height === 0) {{ return 'not displayed'; }}
              var x = r.left + r.width / 2, y = r.top + r.height / 2;
              var hit = document.elementFromPoint(x, y);
              if (hit === null || !(hit === el || el.contains(hit))) {{ return 'covered'; }}
              return [x, y];
            }})()"""
        )
        if not isinstance(where, list):
            raise AssertionError(f"cannot click {selector}: {where}")
        x, y = where
        for kind in ("mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}
            )

    def problems(self) -> list[str]:
        """Script errors and console errors the page reported so far."""
        out = []
        for e in self.events:
            if e["method"] == "Runtime.exceptionThrown":
                details = e["params"]["exceptionDetails"]
                out.append(f"exception: {details.get('exception', {}).get('description') or details['text']}")
            elif e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"):
                out.append(f"console.{e['params']['type']}: {e['params']['args']}")
            elif e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error":
                out.append(f"log: {e['params']['entry']['text']}")
        return out

    def requests(self) -> list[str]:
        """Every URL the page asked for so far."""
        sent = [e for e in self.events if e["method"] == "Network.requestWillBeSent"]
        return [e["params"]["request"]["url"] for e in sent]

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(BrowserError, OSError):
                self.call("Browser.close")
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for fd in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                os.close(fd)
