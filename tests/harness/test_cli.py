"""``harness boot``: prints DOCKER_HOST, serves until SIGTERM, tears down; bad target fails clearly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from harness.wait import wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="booting a daemon needs root")


def test_boot_prints_env_and_tears_down() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "boot", "refd"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("export DOCKER_HOST=unix://")
        socket_path = line.strip().split("unix://", 1)[1]
        assert os.path.exists(socket_path)
        comment = proc.stdout.readline()
        workdir = comment.split(" in ", 1)[1].split(";", 1)[0]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert wait_until(lambda: not os.path.exists(workdir), 5, interval=0.1), workdir

    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_boot_unknown_target_fails_with_the_known_names() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "harness.cli", "boot", "nosuch"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert "unknown target" in result.stderr and "refd" in result.stderr


def test_a_failed_boot_leaves_no_work_directory(tmp_path: object) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "harness.cli", "boot", "refd", "--arg=--no-such-flag"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert result.returncode == 1, result.stderr
    assert "no-such-flag" in result.stderr
    assert os.listdir(str(tmp_path)) == []
