"""The import layers in pyproject.toml hold on the tree, and a new back-edge of each kind fails them.

Each case copies the packages and the config into a temporary directory, writes one forbidden import into a
copied file and runs ``lint-imports`` there: the run must fail and name the new edge. The unmodified copy
must pass, so a failure is the edge's, not the copy's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("harness", "conformance", "suites", "bench", "tools")


def _lint_imports() -> str:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.fail(f"lint-imports is not installed beside {sys.executable}: pip install -e '.[test]'")
    return str(exe)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("layers")
    for name in PACKAGES:
        shutil.copytree(ROOT / name, base / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", base / "pyproject.toml")
    return base


def _run(where: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_lint_imports(), "--no-cache", "--no-logo"], cwd=where, capture_output=True, text=True, timeout=300
    )


def test_the_tree_keeps_every_contract(tree: Path) -> None:
    result = _run(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("path", "line", "contract", "edge"),
    [
        (
            "harness/daemon/volumes.py",
            "from .api import volumes as _api  # a domain module reaching up into a handler",
            "refd's domain packages never import its API layer",
            "harness.daemon.volumes -> harness.daemon.api.volumes",
        ),
        (
            "harness/daemon/images/reference.py",
            "def _late() -> None:\n    from ..api.images import register  # function level counts too\n",
            "refd's domain packages never import its API layer",
            "harness.daemon.images.reference -> harness.daemon.api.images",
        ),
        (
            "harness/daemon/api/networks.py",
            "from .volumes import register as _other  # handler to handler",
            "refd's API handler modules do not import each other",
            "harness.daemon.api.networks -> harness.daemon.api.volumes",
        ),
        (
            "harness/daemon/api/plugins.py",
            "if TYPE_CHECKING:\n    from .swarm import register as _typing_only  # typing-only counts too\n",
            "refd's API handler modules do not import each other",
            "harness.daemon.api.plugins -> harness.daemon.api.swarm",
        ),
        (
            "harness/daemon/log.py",
            "import requests  # a third-party import in refd",
            "refd (harness.daemon) imports only the standard library and itself",
            "harness.daemon.log -> requests",
        ),
        (
            "harness/daemon/notify.py",
            "from harness import wait as _wait  # refd reaching into the harness",
            "refd (harness.daemon) imports only the standard library and itself",
            "harness.daemon.notify -> harness.wait",
        ),
        (
            "harness/daemon/runtime/caps.py",
            "from ..config import DaemonConfig as _cfg  # runtime reaching past the leaf utilities",
            "refd's runtime imports only the standard library and refd's leaf utilities",
            "harness.daemon.runtime.caps -> harness.daemon.config",
        ),
        (
            "harness/wait.py",
            "from conformance.parity import load_parity as _load  # the harness reaching up into the runner",
            "the runner (conformance) uses the harness; the harness never imports the runner",
            "harness.wait -> conformance.parity",
        ),
        (
            "harness/wait.py",
            "from harness.daemon.log import go_quote as _q  # the harness using refd in process, unlisted",
            "the harness, runner and bench run refd; they import it only by the listed edges",
            "harness.wait -> harness.daemon.log",
        ),
        (
            "conformance/parity.py",
            "def _late() -> None:\n    from harness.daemon import flags  # the runner reaching into refd\n",
            "the harness, runner and bench run refd; they import it only by the listed edges",
            "conformance.parity -> harness.daemon.flags",
        ),
        (
            "suites/api/test_system.py",
            "from harness.daemon import API_VERSION as _v  # a scenario importing refd",
            "scenarios reach daemons through fixtures: no refd, runner or bench imports",
            "suites.api.test_system -> harness.daemon",
        ),
    ],
)
def test_a_new_back_edge_fails(
    tree: Path, tmp_path: Path, path: str, line: str, contract: str, edge: str
) -> None:
    copy = tmp_path / "tree"
    shutil.copytree(tree, copy)
    target = copy / path
    target.write_text(target.read_text() + "\n" + line + "\n")
    result = _run(copy)
    out = " ".join(result.stdout.split())  # import-linter wraps long lines
    assert result.returncode != 0, out
    assert f"{contract} BROKEN" in out
    assert edge in out


def test_a_stale_allowed_edge_fails(tree: Path, tmp_path: Path) -> None:
    """An allowed edge into refd that no import uses any more is reported, so the list stays true."""
    copy = tmp_path / "tree"
    shutil.copytree(tree, copy)
    config = copy / "pyproject.toml"
    text = config.read_text()
    entry = '"harness.targets -> harness.daemon",'
    assert entry in text
    config.write_text(text.replace(entry, entry + ' "harness.wait -> harness.daemon.log",', 1))
    result = _run(copy)
    out = " ".join(result.stdout.split())
    assert result.returncode != 0, out
    assert "the harness, runner and bench run refd; they import it only by the listed edges BROKEN" in out
    assert "allowed import harness.wait -> harness.daemon.log matches no import" in out
