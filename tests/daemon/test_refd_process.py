"""refd as a process: start-up, the API over a raw unix socket, pidfile refusal, SIGTERM, --validate and a bad
daemon.json (spec 1.1, 1.5, 3.2, 3.6, 6.1, 6.2, 7)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="refd refuses to start without root (dockerd does too)"
)

PREFIX = "unable to configure the Docker daemon with file "


@dataclass
class Refd:
    proc: subprocess.Popen[bytes]
    root: Path
    sock: Path
    pidfile: Path
    config: Path
    stderr: Path

    def logs(self) -> str:
        return self.stderr.read_text()


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _args(root: Path, sock: Path, pidfile: Path, config: Path) -> list[str]:
    """refd's command line, run in a network namespace of its own.

    ``unshare --net`` execs refd (same pid, so the pidfile checks hold); the namespace dies with refd,
    taking its bridge and iptables rules with it even after the SIGKILL of the fixture's teardown, so the
    host keeps no ``docker0`` and no rules from these tests.
    """
    return [
        "unshare",
        "--net",
        "--",
        sys.executable,
        "-m",
        "harness.daemon",
        "-H",
        f"unix://{sock}",
        "--data-root",
        str(root / "data"),
        "--exec-root",
        str(root / "exec"),
        "--pidfile",
        str(pidfile),
        "--config-file",
        str(config),
    ]


def _run(
    root: Path, *extra: str, config: object = None, name: str = "run"
) -> subprocess.CompletedProcess[str]:
    """Run refd to completion (it is expected to exit by itself)."""
    cfg = root / f"{name}.json"
    cfg.write_text(json.dumps({} if config is None else config) if not isinstance(config, str) else config)
    args = [*_args(root, root / f"{name}.sock", root / f"{name}.pid", cfg), *extra]
    return subprocess.run(args, capture_output=True, text=True, timeout=30, env=_env(), check=False)


def _request(sock: Path, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(10)
        conn.connect(str(sock))
        conn.sendall(f"{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, _, v in (ln.partition(": ") for ln in lines[1:])}
    return int(lines[0].split(" ")[1]), headers, body


@pytest.fixture
def refd(tmp_path: Path) -> Iterator[Refd]:
    config = tmp_path / "daemon.json"
    config.write_text('{"labels": ["refd-test=1"]}')
    sock, pidfile, stderr = tmp_path / "d.sock", tmp_path / "d.pid", tmp_path / "stderr.log"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            _args(tmp_path, sock, pidfile, config),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=_env(),
        )
    daemon = Refd(proc, tmp_path, sock, pidfile, config, stderr)
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                pytest.fail(f"refd exited with {proc.returncode} before serving:\n{daemon.logs()}")
            if sock.exists():
                try:
                    if _request(sock, "GET", "/_ping")[0] == 200:
                        break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                pytest.fail(f"refd did not answer /_ping within 20 s:\n{daemon.logs()}")
            time.sleep(0.05)
        yield daemon
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_ping_and_page_not_found(refd: Refd) -> None:
    status, headers, body = _request(refd.sock, "GET", "/_ping")
    assert (status, body) == (200, b"OK")
    assert headers["api-version"] and headers["content-type"] == "text/plain; charset=utf-8"
    status, headers, body = _request(refd.sock, "GET", "/v1.41/nosuchroute")
    assert (status, body) == (404, b'{"message":"page not found"}\n')
    assert headers["content-type"] == "application/json"
    assert "api-version" not in headers  # the 404 skips the middlewares


def test_socket_mode_and_startup_lines(refd: Refd) -> None:
    assert (refd.sock.stat().st_mode & 0o777) == 0o660
    assert refd.pidfile.read_text().strip() == str(refd.proc.pid)
    logs = refd.logs()
    assert 'level=info msg="Starting up"' in logs
    assert f'level=info msg="API listen on {refd.sock}"' in logs


def test_sigterm_is_a_clean_exit(refd: Refd) -> None:
    refd.proc.send_signal(signal.SIGTERM)
    assert refd.proc.wait(20) == 0
    assert not refd.sock.exists()
    assert not refd.pidfile.exists()
    logs = refd.logs()
    assert "msg=\"Processing signal 'terminated'\"" in logs
    assert 'msg="Daemon shutdown complete"' in logs


def test_second_refd_on_the_same_pidfile_is_refused(refd: Refd) -> None:
    other_sock = refd.root / "other.sock"
    args = _args(refd.root, other_sock, refd.pidfile, refd.config)
    result = subprocess.run(args, capture_output=True, text=True, timeout=30, env=_env(), check=False)
    assert result.returncode == 1
    assert (
        f"failed to start daemon, ensure docker is not running or delete {refd.pidfile}: "
        f"process with PID {refd.proc.pid} is still running"
    ) in result.stderr.splitlines()
    assert not other_sock.exists()
    assert refd.pidfile.read_text().strip() == str(refd.proc.pid)  # the first daemon's pidfile is intact
    assert refd.proc.poll() is None
    assert _request(refd.sock, "GET", "/_ping")[0] == 200


def test_validate_ok(tmp_path: Path) -> None:
    result = _run(tmp_path, "--validate", config={"debug": True, "labels": ["a=1"]})
    assert (result.returncode, result.stderr) == (0, "configuration OK\n")
    assert not (tmp_path / "run.sock").exists() and not (tmp_path / "run.pid").exists()


def test_validate_bad_file(tmp_path: Path) -> None:
    result = _run(tmp_path, "--validate", config={"max-concurrent-downloads": -1})
    assert result.returncode == 1
    assert result.stderr == (
        f"{PREFIX}{tmp_path / 'run.json'}: merged configuration validation from file "
        "and command line flags failed: invalid max concurrent downloads: -1\n"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"debug": true,', "invalid JSON: unexpected end of JSON input"),
        ({"bogus": 1}, "the following directives don't match any configuration option: bogus"),
        (
            {"debug": "yes"},
            "invalid JSON: json: cannot unmarshal string into Go struct field Config.debug of type bool",
        ),
    ],
)
def test_bad_daemon_json_exits_1(tmp_path: Path, content: object, message: str) -> None:
    result = _run(tmp_path, config=content)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"{PREFIX}{tmp_path / 'run.json'}: {message}"]
    assert not (tmp_path / "run.sock").exists() and not (tmp_path / "run.pid").exists()


def test_bad_flag_exits_1(tmp_path: Path) -> None:
    result = _run(tmp_path, "--bogus")
    assert result.returncode == 1
    assert result.stderr.startswith(
        "Status: unknown flag: --bogus\nSee 'dockerd --help'.\n\nUsage:\tdockerd [OPTIONS]"
    )
    assert result.stderr.endswith(", Code: 125\n")
