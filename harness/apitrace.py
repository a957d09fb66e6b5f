"""A tap on the HTTP responses the harness's clients receive, for the schema checks of the pytest plugin.

``EngineClient`` and ``Endpoint.sdk_client()`` register ``response_hook`` on their requests sessions; while
the plugin runs a scenario it installs a sink with ``set_sink`` and every response read in full is handed to
it as a ``Response`` record. Streamed responses (``stream=True``: attach, follow, hijacked connections) are
reported without a body, never read here. Without a sink (no scenario running, or ``--schema off``) the hook
does nothing. Kept free of imports beyond the standard library: refd never loads it, clients pay nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Response", "Sink", "response_hook", "set_sink"]


@dataclass(frozen=True)
class Response:
    """What the sink sees of one response: request method and path (with query), status, headers, body."""

    method: str
    path: str
    status: int
    headers: Mapping[str, str]
    body: bytes | None  # None when streamed (not read)


Sink = Callable[[Response], None]

_lock = threading.Lock()
_sink: Sink | None = None


def set_sink(sink: Sink | None) -> Sink | None:
    """Install ``sink`` (None removes it); returns the previous one."""
    global _sink
    with _lock:
        previous, _sink = _sink, sink
    return previous


def response_hook(response: Any, *args: Any, **kwargs: Any) -> Any:
    """A requests ``response`` hook: hand the response to the current sink (never raises, never consumes
    a streamed body)."""
    sink = _sink
    if sink is None:
        return response
    try:
        request = response.request
        streamed = bool(kwargs.get("stream")) and not getattr(response, "_content_consumed", False)
        sink(
            Response(
                method=str(request.method or "GET"),
                path=str(request.path_url),
                status=int(response.status_code),
                headers=dict(response.headers),
                body=None if streamed else bytes(response.content or b""),
            )
        )
    except Exception:  # a broken check must never break the scenario's request
        pass
    return response
