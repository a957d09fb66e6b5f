"""Conformance scenarios: socket area."""
