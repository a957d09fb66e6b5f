"""refd's BuildKit: the ``/grpc`` control API and ``/session`` the buildx and compose plugins use.

Nothing here is imported at boot: the first ``/grpc`` or ``/session`` request loads it, with ``h2``
(HTTP/2 framing, imported by ``grpc.py``); ``/build/prune`` and ``/system/df`` read the build cache
(``cache.py``) without it. refd runs with ``python -S`` (no site-packages at boot, for speed), so
``require_h2`` adds the interpreter's site directories when ``h2`` is not yet importable, and says
how to install it when it is missing. Messages are refd's own
declarations (``messages.py``) over ``protowire``.
"""

from __future__ import annotations

import importlib.util
import site
import sys

__all__ = ["MissingDependency", "require_h2"]


class MissingDependency(ImportError):
    """A library BuildKit support needs is not installed; the message says how to install it."""


def require_h2() -> None:
    """Make ``h2`` importable (site directories added when refd runs without them) or say how to get it."""
    if importlib.util.find_spec("h2") is None and sys.flags.no_site:
        site.main()
    if importlib.util.find_spec("h2") is None:
        raise MissingDependency(
            f"refd's BuildKit needs the h2 package (HTTP/2), which {sys.executable} cannot import: "
            "pip install 'h2>=4.1' (or apt-get install python3-h2)"
        )
