"""DaemonSpec, DaemonHandle and NotifyListener: the values every backend shares."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.backends.base import DaemonHandle, DaemonSpec, NotifyListener
from harness.endpoints import Endpoint
from harness.errors import HarnessError
from harness.targets import Target
from harness.wait import wait_until

FAKE = Target("fake", "dockerd", ("/bin/true",))


def test_config_text() -> None:
    assert DaemonSpec().config_text() is None
    assert json.loads(DaemonSpec(config={"debug": True}).config_text() or "") == {"debug": True}
    assert DaemonSpec(config='{"debug": tru').config_text() == '{"debug": tru'  # broken JSON kept verbatim


def test_handle_files_live_in_the_workdir(tmp_path: Path) -> None:
    handle = DaemonHandle(FAKE, DaemonSpec(), str(tmp_path), [])
    assert [handle.data_root, handle.exec_root, handle.pidfile, handle.config_path, handle.socket_path] == [
        str(tmp_path / n) for n in ("root", "exec", "daemon.pid", "daemon.json", "docker.sock")
    ]


def test_a_handle_never_started_says_so(tmp_path: Path) -> None:
    handle = DaemonHandle(FAKE, DaemonSpec(), str(tmp_path), [])
    assert handle.returncode is None and handle.logs() == "" and handle.stdout() == ""
    with pytest.raises(HarnessError, match="never started"):
        _ = handle.pid
    with pytest.raises(HarnessError, match="never started"):
        handle.wait_exit()
    with pytest.raises(HarnessError, match="never started"):
        handle.stop()
    with pytest.raises(HarnessError, match="no endpoint"):
        handle.url("/_ping")


def test_endpoint_for(tmp_path: Path) -> None:
    unix = Endpoint("unix", "/x.sock")
    handle = DaemonHandle(FAKE, DaemonSpec(), str(tmp_path), [], endpoint=unix, endpoints=[unix])
    assert handle.endpoint_for("unix") is unix
    assert handle.url("/_ping") == "http+unix://%2Fx.sock/_ping"
    with pytest.raises(HarnessError, match=r"fake has no tcp endpoint \(has: unix:///x.sock\)"):
        handle.endpoint_for("tcp")


def test_wait_for_log_finds_late_lines_and_times_out(tmp_path: Path) -> None:
    handle = DaemonHandle(FAKE, DaemonSpec(), str(tmp_path), [])
    Path(handle.stderr_path).write_text("booting\n")

    def later() -> None:
        time.sleep(0.1)
        with open(handle.stderr_path, "a") as fh:
            fh.write('level=info msg="API listen on /x.sock"\n')

    writer = threading.Thread(target=later)
    writer.start()
    try:
        assert handle.wait_for_log("API listen on", 5) == 'level=info msg="API listen on /x.sock"'
    finally:
        writer.join()
    offset = len(handle.logs())
    with pytest.raises(HarnessError, match=r"log line containing 'API listen on' did not appear within 0.2s"):
        handle.wait_for_log("API listen on", 0.2, start=offset)  # only lines after the offset count
    assert handle.log_tail(1) == 'level=info msg="API listen on /x.sock"'


def test_stop_and_kill_a_real_process(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    handle = DaemonHandle(FAKE, DaemonSpec(), str(tmp_path), [], process=proc)
    try:
        assert handle.returncode is None
        with pytest.raises(HarnessError, match=r"did not exit within 0.1s"):
            handle.wait_exit(0.1)
        assert handle.stop(10) == -15
        handle.signal(9)  # a no-op once it exited
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_notify_listener_collects_datagrams(tmp_path: Path) -> None:
    listener = NotifyListener(str(tmp_path / "notify.sock"))
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"READY=1", listener.path)
            sender.sendto(b"STATUS=serving\nMAINPID=1", listener.path)
        assert wait_until(lambda: len(listener.payloads()) == 2, 5)
        assert listener.payloads() == ["READY=1", "STATUS=serving\nMAINPID=1"]
    finally:
        listener.close()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender, pytest.raises(OSError):
        sender.sendto(b"STOPPING=1", listener.path)  # closed: nobody receives any more
    assert os.path.exists(listener.path)


def test_a_local_daemon_is_reached_and_inspected_on_this_host(tmp_path: Path) -> None:
    handle = DaemonHandle(FAKE, DaemonSpec(), str(tmp_path), [])
    assert handle.reach("127.0.0.1", 18080) == ("127.0.0.1", 18080)
    (tmp_path / "root" / "vfs").mkdir(parents=True)
    (tmp_path / "root" / "file").write_text("")
    assert handle.is_dir(os.path.join(handle.data_root, "vfs"))
    assert not handle.is_dir(os.path.join(handle.data_root, "file"))
    assert not handle.is_dir(os.path.join(handle.data_root, "missing"))
