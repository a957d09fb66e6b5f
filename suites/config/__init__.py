"""Conformance scenarios: config area."""
