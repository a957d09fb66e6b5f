"""Conformance area upstream-moby: moby's integration tests (Debian's docker.io source) on every target."""
