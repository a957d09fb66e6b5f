"""Conformance scenarios: systemd area."""
