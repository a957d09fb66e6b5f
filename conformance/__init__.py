"""Conformance runner, results, parity and reports.

Reads serialised per-target results written by the harness pytest plugin, compares targets scenario by
scenario, and writes parity reports. It drives pytest but never boots a daemon itself. Submodules are the API
(``harness.results``, ``.normalise``, ``.parity``, ``.report``, ``.runner``); this package re-exports
nothing so that importing a single submodule stays cheap.
"""

__all__: list[str] = []
