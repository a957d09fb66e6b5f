"""Shared helpers of the BuildKit scenarios (``test_buildkit*.py``): the real buildx and compose plugins.

``bx`` runs the pinned docker CLI with Debian trixie's buildx and compose plugins (``harness.cliplugins``)
on the session daemon with the busybox test image loaded (``test_image``: ``FROM busybox`` is local in any
part and order), after checking that buildx's default builder is the daemon's own (``docker``
driver, running): were it not, buildx would start a ``docker-container`` builder pulling
``moby/buildkit`` from the internet, and the scenario fails loudly instead. Builds are recorded as
their step names (``#N`` lines of ``--progress=plain``: a step is named once, ``CACHED`` marks a cache
hit) and their images as config and history. ``cleanup`` (from ``_build``) removes the images a
scenario made; ``prune`` empties the build cache before and after, so the cache state is the same
on every target.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.cliplugins import plugin_dirs, write_docker_config
from harness.fixtures import make_cli

__all__ = ["CLI", "bx", "image_record", "plugins", "progress_steps", "write_context"]

CLI = Callable[..., Any]
_STEP = re.compile(r"^#(\d+) (\[.+|exporting .+|importing .+|resolve .+)$")


@pytest.fixture(scope="session")
def plugins() -> list[str]:
    """The buildx and compose plugin directories (fetched from Debian into the harness cache)."""
    return plugin_dirs()


@pytest.fixture
def bx(docker_daemon: Any, test_image: str, tmp_path: Path, plugins: list[str]) -> Iterator[CLI]:
    """The docker CLI with the plugins, on the session daemon's own BuildKit (the ``docker`` driver).

    Requests ``test_image``: the scenarios build ``FROM busybox``, which must be the local test image in
    whatever part and order a scenario runs (not there, BuildKit would pull it from Docker Hub).
    """
    home = tmp_path / "home"
    write_docker_config(str(home / ".docker"), plugins)
    cli = make_cli(docker_daemon.endpoint, str(home))
    inspect = cli("buildx", "inspect", timeout=60)
    driver = re.search(r"^Driver:\s+(\S+)", inspect.stdout, re.M)
    status = re.search(r"^Status:\s+(\S+)", inspect.stdout, re.M)
    if inspect.returncode != 0 or driver is None or driver.group(1) != "docker":
        pytest.fail(
            "buildx's default builder is not the daemon's BuildKit (docker driver): "
            f"{inspect.stdout.strip() or inspect.stderr.strip()}; buildx would start a docker-container "
            "builder that pulls moby/buildkit, which these scenarios never use"
        )
    assert status is not None and status.group(1) == "running", inspect.stdout
    cli("buildx", "prune", "-af", timeout=120)
    yield cli
    cli("buildx", "prune", "-af", timeout=120)


def write_context(root: Path, files: dict[str, str | tuple[int, str]]) -> Path:
    """A build context directory: ``name: text`` files (0644) or ``name: (mode, text)``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, value in files.items():
        mode, text = value if isinstance(value, tuple) else (0o644, value)
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.chmod(path, mode)
    return root


def progress_steps(output: str) -> list[str]:
    """The steps of a ``--progress=plain`` build in order, ``CACHED`` appended to cache hits."""
    names: dict[str, str] = {}
    order: list[str] = []
    cached: set[str] = set()
    for line in output.splitlines():
        match = _STEP.match(line)
        if match is not None and match.group(1) not in names:
            names[match.group(1)] = match.group(2)
            order.append(match.group(1))
            continue
        number, _, rest = line.partition(" ")
        if rest == "CACHED":
            cached.add(number.lstrip("#"))
    return [names[n] + (" CACHED" if n in cached else "") for n in order]


def image_record(bx: CLI, ref: str) -> dict[str, Any]:
    """What an image built by BuildKit is: its config, its history (texts, empty layers), its layer count."""
    result = bx("image", "inspect", ref)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)[0]
    history = bx("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Size}}|{{.Comment}}", ref)
    return {
        "config": {k: v for k, v in (doc.get("Config") or {}).items() if v not in (None, "", [], {})},
        "layers": len(doc["RootFS"]["Layers"]),
        "parent": doc.get("Parent"),
        "comment": doc.get("Comment"),
        "history": history.stdout.splitlines(),
    }
