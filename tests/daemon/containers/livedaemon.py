"""A real refd for the container domain's live tests: create/start/exec through the API, torn down after."""

from __future__ import annotations

import os
import struct
import tempfile
from typing import Any

from harness.backends.base import DaemonHandle, DaemonSpec
from harness.backends.local import LocalBackend
from harness.client import EngineClient
from harness.targets import resolve_target
from harness.testimage import load_test_image
from harness.wait import wait_until

__all__ = ["LiveRefd", "running_as_root", "stdout_of"]


def stdout_of(stream: bytes) -> bytes:
    """The stdout frames of a multiplexed stream."""
    out, rest = b"", stream
    while len(rest) >= 8:
        kind, size = rest[0], struct.unpack(">I", rest[4:8])[0]
        if kind == 1:
            out += rest[8 : 8 + size]
        rest = rest[8 + size :]
    return out


class LiveRefd:
    """One refd (its own network namespace, as every harness daemon) with the busybox test image."""

    def __init__(self, prefix: str) -> None:
        self.backend = LocalBackend()
        self.handle: DaemonHandle = self.backend.start(
            resolve_target("refd"), DaemonSpec(), tempfile.mkdtemp(prefix=f"harness-refd-{prefix}-")
        )
        assert self.handle.endpoint is not None
        self.client = EngineClient(self.handle.endpoint, timeout=60)
        self.image = load_test_image(self.handle.endpoint)

    def create(self, cmd: list[str], version: str = "", **config: Any) -> Any:
        """The create answer (a requests.Response), whatever its status."""
        path = f"/{version}/containers/create" if version else "/containers/create"
        return self.client.post(path, json={"Image": self.image, "Cmd": cmd, **config})

    def start(self, cid: str) -> Any:
        return self.client.post(f"/containers/{cid}/start")

    def run(self, cmd: list[str], **config: Any) -> str:
        created = self.create(cmd, **config)
        assert created.status_code == 201, created.text
        cid = str(created.json()["Id"])
        started = self.start(cid)
        assert started.status_code == 204, started.text
        return cid

    def inspect(self, cid: str) -> dict[str, Any]:
        info = self.client.get(f"/containers/{cid}/json")
        assert info.status_code == 200, info.text
        return dict(info.json())

    def pid(self, cid: str) -> int:
        return int(self.inspect(cid)["State"]["Pid"])

    def exec(self, cid: str, cmd: list[str], **options: Any) -> tuple[int, bytes]:
        """Run ``cmd`` in ``cid`` attached; its exit code and output (stdout frames, or the raw TTY)."""
        made = self.client.post(
            f"/containers/{cid}/exec",
            json={"Cmd": cmd, "AttachStdout": True, "AttachStderr": True, **options},
        )
        assert made.status_code == 201, made.text
        exec_id = made.json()["Id"]
        tty = bool(options.get("Tty"))
        started = self.client.post(f"/exec/{exec_id}/start", json={"Detach": False, "Tty": tty})
        assert started.status_code == 200, started.text
        info = self.client.get(f"/exec/{exec_id}/json").json()
        return int(info["ExitCode"]), started.content if tty else stdout_of(started.content)

    def wait_status(self, cid: str, status: str, timeout: float = 30) -> None:
        def reached() -> bool:
            answer = self.client.get(f"/containers/{cid}/json")
            return answer.status_code == 200 and answer.json()["State"]["Status"] == status

        assert wait_until(reached, timeout, interval=0.05), f"{cid} never became {status}"

    def wait_gone(self, cid: str, timeout: float = 30) -> None:
        def gone() -> bool:
            return self.client.get(f"/containers/{cid}/json").status_code == 404

        assert wait_until(gone, timeout, interval=0.05), f"{cid} was never removed"

    def daemon_mountinfo(self) -> str:
        """The mount table of the daemon's own mount namespace (where dockerd keeps a shareable /dev/shm)."""
        with open(f"/proc/{self.handle.pid}/mountinfo") as fh:
            return fh.read()

    def close(self) -> None:
        self.client.close()
        self.backend.teardown(self.handle)


def running_as_root() -> bool:
    return os.geteuid() == 0
