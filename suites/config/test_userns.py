"""User namespaces (``--userns-remap``): the remapped user's subordinate ids, the remapped data-root, and
containers whose root is an unprivileged host user. Each scenario boots its own daemon."""

from __future__ import annotations

import os
import stat
from typing import Any

import pytest

from harness.client import EngineClient
from harness.fixtures import DaemonFactory, Observations
from harness.testimage import load_test_image


def _host_ids(pid: int) -> dict[str, Any]:
    """A process as the host sees it: its real uid and gid, and its uid_map."""
    with open(f"/proc/{pid}/status") as fh:
        status = dict(line.split(":", 1) for line in fh if ":" in line)
    with open(f"/proc/{pid}/uid_map") as fh:
        uid_map = [line.split() for line in fh]
    return {"uid": int(status["Uid"].split()[0]), "gid": int(status["Gid"].split()[0]), "uid_map": uid_map}


def _owner(path: str) -> str:
    st = os.stat(path)
    return f"{st.st_uid}:{st.st_gid} {stat.S_IMODE(st.st_mode):o}"


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except FileNotFoundError:
        return ""


@pytest.mark.profiles(exclude=("vfs",), reason="reads the written file from the overlay2 upper directory")
@pytest.mark.scenario(
    "config/userns/remap-default",
    "--userns-remap=default MUST create dockremap with 65536 subordinate ids from 100000 in the daemon's own "
    "/etc/subuid and /etc/subgid (never the host's), keep its state under <data-root>/100000.100000 (both "
    "directories 0710, group 100000), say name=userns in /info, run a container's root as host uid 100000 "
    "(uid_map 0 100000 65536) with the files it writes owned by 100000:100000, and --userns=host as root",
    ref="dockerd --userns-remap; moby daemon/daemon_unix.go setupRemappedRoot, pkg/idtools",
)
def test_remap_default(daemon_factory: DaemonFactory, observe: Observations) -> None:
    host_files = {path: _read(path) for path in ("/etc/subuid", "/etc/subgid", "/etc/passwd")}
    daemon = daemon_factory(args=["--userns-remap=default"])
    assert daemon.endpoint is not None
    client = EngineClient(daemon.endpoint, timeout=60)
    image = load_test_image(daemon.endpoint)
    with open(daemon.pidfile) as fh:
        daemon_pid = int(fh.read().strip())
    info = client.get("/info").json()
    remapped = os.path.join(daemon.data_root, "100000.100000")
    seen = observe(
        "daemon",
        {
            "security_options": [o for o in info["SecurityOptions"] if o == "name=userns"],
            "docker_root_dir": info["DockerRootDir"] == remapped,
            "subuid": _read(f"/proc/{daemon_pid}/root/etc/subuid").splitlines(),
            "subgid": _read(f"/proc/{daemon_pid}/root/etc/subgid").splitlines(),
            "host_files_untouched": all(_read(path) == text for path, text in host_files.items()),
            "layout": {"data-root": _owner(daemon.data_root), "remapped": _owner(remapped)},
        },
    )
    processes: dict[str, Any] = {}
    for name, userns in (("remapped", ""), ("host", "host")):
        created = client.post(
            f"/containers/create?name=userns-{name}",
            json={
                "Image": image,
                "Cmd": ["sh", "-c", "touch /made && sleep 60"],
                "HostConfig": {"UsernsMode": userns},
            },
        )
        assert created.status_code == 201, created.text
        assert client.post(f"/containers/userns-{name}/start").status_code == 204
        doc = client.get(f"/containers/userns-{name}/json").json()
        upper = doc["GraphDriver"]["Data"]["UpperDir"]
        ex = client.post(
            f"/containers/userns-{name}/exec",
            json={"Cmd": ["sh", "-c", "while [ ! -e /made ]; do :; done; id -u"], "AttachStdout": True},
        ).json()["Id"]
        inside = client.post(f"/exec/{ex}/start", json={"Detach": False, "Tty": True}).text.strip()
        processes[name] = {
            **_host_ids(int(doc["State"]["Pid"])),
            "uid_inside": inside,
            "made_owner": _owner(os.path.join(upper, "made")).split()[0],
            "userns_mode": doc["HostConfig"]["UsernsMode"],
        }
        client.delete(f"/containers/userns-{name}?force=1")
    observe("containers", processes)
    client.close()
    assert seen == {
        "security_options": ["name=userns"],
        "docker_root_dir": True,
        "subuid": ["dockremap:100000:65536"],
        "subgid": ["dockremap:100000:65536"],
        "host_files_untouched": True,
        "layout": {"data-root": "0:100000 710", "remapped": "0:100000 710"},
    }
    assert processes == {
        "remapped": {
            "uid": 100000,
            "gid": 100000,
            "uid_map": [["0", "100000", "65536"]],
            "uid_inside": "0",
            "made_owner": "100000:100000",
            "userns_mode": "",
        },
        "host": {
            "uid": 0,
            "gid": 0,
            "uid_map": [["0", "0", "4294967295"]],
            "uid_inside": "0",
            "made_owner": "0:0",
            "userns_mode": "host",
        },
    }
