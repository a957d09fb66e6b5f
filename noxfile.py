"""Sessions: tests (the project's own tests), conformance (main job), lint, bench.

Run from a virtualenv holding nox (``scripts/bootstrap.sh`` makes ``.venv``). Sessions
install the OS packages they need when running as root on apt systems.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.11", "3.12", "3.13"]


def _install(session: nox.Session, extras: str = "", packages: str = "conformance") -> None:
    """The project (with ``extras``) and the OS packages of set ``packages`` (``harness.ospkgs.SETS``)."""
    session.install("-e", f".{extras}")
    session.run("python", "-m", "harness.ospkgs", "--for", packages)


@nox.session
def tests(session: nox.Session) -> None:
    """Unit and integration tests of the harness, refd and the runner (with this Python). Arguments after
    ``--`` go to pytest; ``-- tests/conformance`` runs only those (pytest's testpaths is ``tests``)."""
    _install(session, "[test]", "tests")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=PYTHONS, name="tests-all")
def tests_all(session: nox.Session) -> None:
    """The same tests on every supported Python found on PATH."""
    _install(session, "[test]", "tests")
    session.run("python", "-m", "pytest", "tests", "-x", *session.posargs)


@nox.session(python="/usr/bin/python3", name="tests-system")
def tests_system(session: nox.Session) -> None:
    """The same tests on the system's own Python (Debian 12: 3.11.2, without tarfile's extraction filters;
    Debian 13: 3.13), which pyenv or another Python on PATH would hide."""
    _install(session, "[test]", "tests")
    session.run("python", "-c", "import sys; print('tests-system: Python', sys.version.split()[0])")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(name="tests-vm")
def tests_vm(session: nox.Session) -> None:
    """The vm backend's live tests (each boots qemu VMs: minutes under TCG), kept out of ``tests``."""
    _install(session, "[test]", "tests")
    session.run("python", "-m", "harness.ospkgs", "--for", "vm")
    env = {"HARNESS_VM_TESTS": "1"}
    paths = ["tests/harness/backends/test_backend_protocol.py", "tests/harness/backends/test_vm.py"]
    session.run("python", "-m", "pytest", *paths, "-k", "vm", "-rs", *session.posargs, env=env)


@nox.session
def reliability(session: nox.Session) -> None:
    """Long variants of tests/reliability (fuzzing, faults, load and TLS against dockerd too):
    reports/reliability.json and reliability.md (docs/reliability.md explains them)."""
    _install(session, "[test]", "tests")
    env = {"HARNESS_RELIABILITY": "long", "HARNESS_RELIABILITY_REPORT": "reports/reliability.json"}
    session.run("rm", "-f", "reports/reliability.json", external=True)  # runs merge into it: start afresh
    session.run("python", "-m", "pytest", "tests/reliability", *session.posargs, env=env)


@nox.session
def conformance(session: nox.Session) -> None:
    """Main job: run the suites on refd and real dockerd (by default the host's and dockerd-28 from a cached
    Debian sid rootfs), write reports/parity.*, junit.xml (and trend.md with --previous)."""
    _install(session)
    session.run("python", "-m", "conformance", *session.posargs)


@nox.session
def fresh(session: nox.Session) -> None:
    """The newcomer check: the README's two commands, verbatim, as root in a fresh Debian root per suite
    (``-- bookworm``, ``-- trixie``; default bookworm), built with the harness's rootfs code; a verdict per
    command and a check that the host is untouched (docs/guide.md, "The newcomer check")."""
    _install(session, packages="fresh")
    session.run("python", "-m", "harness.newcomer", "run", *(session.posargs or ["bookworm"]))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, mypy and the import layers (import-linter contracts in pyproject.toml; docs/architecture.md)."""
    session.install("-e", ".[dev]")
    session.run("ruff", "check", ".")
    session.run("mypy")
    session.run("lint-imports", "--no-cache", "--no-logo")


@nox.session
def bench(session: nox.Session) -> None:
    """refd vs dockerd side by side (interleaved, same run): reports/bench.json and bench.md."""
    _install(session)
    session.run("python", "-m", "bench", *session.posargs)
