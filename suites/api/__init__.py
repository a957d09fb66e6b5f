"""Conformance scenarios: api area."""
