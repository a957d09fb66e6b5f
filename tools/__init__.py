"""Project tooling that runs in ``nox -s lint`` (not installed with the package)."""
