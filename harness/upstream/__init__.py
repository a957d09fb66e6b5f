"""moby's own integration tests as a conformance area (``--suite upstream-moby``; docs/upstream-moby.md).

``build`` makes the test binaries from Debian's docker.io source package (cached), ``frozen`` the images the
suite expects, ``run`` runs a binary in a booted daemon's namespaces, ``gotest`` reads its test2json events,
``skips`` finds the tests that would start a dockerd of their own.
"""
