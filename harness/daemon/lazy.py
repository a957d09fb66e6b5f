"""Modules imported on their first use, so that refd answers its first ``/_ping`` without them.

``asyncio`` (with ``ssl``, ``concurrent.futures`` and ``subprocess`` behind it) is more than half of what a
boot of refd executes before it could answer; the boot loop (:mod:`.bootloop`) serves without it. A module
that needs asyncio only inside its functions binds ``asyncio = lazy.asyncio``: the first attribute read
imports it and rebinds that name, in every refd module holding the stand-in, to the real module, so later
reads cost nothing extra.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["asyncio", "load", "ssl"]


class _Stand:
    """Stands for a module until an attribute of it is read."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(load(self._name), attr)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported on first use>"


_STANDS = {"asyncio": _Stand("asyncio"), "ssl": _Stand("ssl")}
asyncio: Any = _STANDS["asyncio"]
ssl: Any = _STANDS["ssl"]


def load(name: str) -> Any:
    """Import ``name`` and put it in place of its stand-in in every module of refd's package."""
    module = sys.modules.get(name)
    if module is None:
        __import__(name)
        module = sys.modules[name]
    stand = _STANDS.get(name)
    if stand is not None:
        prefix = __name__.rpartition(".")[0] + "."
        for mod_name, mod in list(sys.modules.items()):
            if mod_name.startswith(prefix) and mod is not None:
                space = getattr(mod, "__dict__", None)
                if space is not None:
                    for key, value in list(space.items()):
                        if value is stand:
                            space[key] = module
    return module
