"""Signal names and numbers as docker's API takes them (``KILL``, ``SIGKILL``, ``9``)."""

from __future__ import annotations

import signal

from ..errors import invalid

__all__ = ["SIGNALS", "parse_signal"]

#: signal names without their ``SIG`` prefix -> numbers (this platform's, as moby's signal.SignalMap)
SIGNALS = {
    name[3:]: int(getattr(signal, name))
    for name in dir(signal)
    if name.startswith("SIG") and not name.startswith("SIG_") and isinstance(getattr(signal, name), int)
}


def parse_signal(text: str | int | None, default: int = signal.SIGKILL) -> int:
    """docker's signal parsing: a number, ``KILL`` or ``SIGKILL``; unknown names are a 400."""
    if text in (None, ""):
        return default
    if isinstance(text, int):
        return text
    raw = str(text)
    if raw.isdigit():
        if int(raw) == 0 or int(raw) > 64:
            raise invalid(f"invalid signal: {raw}")
        return int(raw)
    name = raw.upper().removeprefix("SIG")
    if name not in SIGNALS:
        raise invalid(f"invalid signal: {raw}")
    return SIGNALS[name]
