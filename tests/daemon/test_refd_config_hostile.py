"""daemon.json values dockerd 28.5 refuses at load that refd accepted.

Found by tests/reliability/test_rel_config.py booting both daemons with the same hostile files;
the expected texts were recorded from dockerd 28.5.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from harness.daemon.__main__ import main


def _validate(tmp_path: Path, doc: object) -> tuple[int, str]:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps(doc))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["--config-file", str(path), "--validate"])
    return code, err.getvalue().strip().replace(str(path), "FILE")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"dns": ["x"]}, "invalid JSON: invalid IP address: x"),
        ({"dns": ["1.1.1.1", "::1", "300.1.1.1"]}, "invalid JSON: invalid IP address: 300.1.1.1"),
        (
            {"registry-mirrors": ["::"]},
            "merged configuration validation from file and command line flags failed: invalid mirror: "
            "no scheme specified for \"::\": must use either 'https://' or 'http://'",
        ),
    ],
)
def test_refused_as_dockerd_refuses(tmp_path: Path, doc: object, message: str) -> None:
    assert _validate(tmp_path, doc) == (1, f"unable to configure the Docker daemon with file FILE: {message}")


def test_good_values_pass(tmp_path: Path) -> None:
    assert (
        _validate(tmp_path, {"dns": ["1.1.1.1", "fe80::1"], "registry-mirrors": ["https://m.example"]})[0]
        == 0
    )
