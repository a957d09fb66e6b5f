"""sd_notify: ``READY=1`` when serving starts, ``STOPPING=1`` at shutdown (spec 4.2).

A no-op without ``NOTIFY_SOCKET``; an abstract socket is written ``@name``.
"""

from __future__ import annotations

import os
import socket

__all__ = ["notify"]


def notify(state: str) -> bool:
    """Send one datagram to $NOTIFY_SOCKET; returns whether it was sent."""
    target = os.environ.get("NOTIFY_SOCKET")
    if not target:
        return False
    address = "\0" + target[1:] if target.startswith("@") else target
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), address)
        return True
    except OSError:
        return False
