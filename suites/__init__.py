"""Conformance scenarios run against every target by `nox -s conformance`."""
