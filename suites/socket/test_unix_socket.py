"""Unix socket listeners: permissions, group, stale files, directories (spec 3.2)."""

from __future__ import annotations

import grp
import os
import stat

import pytest

from harness.fixtures import DaemonFactory, Observations
from harness.wait import ping_once


@pytest.mark.scenario(
    "socket/unix/mode-and-group",
    "The unix socket MUST be created mode 0660, owned by root and group 'docker'",
    ref="spec 3.2; moby daemon/listeners/listeners_linux.go",
)
def test_unix_socket_mode(daemon_factory: DaemonFactory, observe: Observations) -> None:
    daemon = daemon_factory()
    st = os.stat(daemon.socket_path)
    observe("is_socket", stat.S_ISSOCK(st.st_mode))
    observe("mode", oct(stat.S_IMODE(st.st_mode)))
    observe("uid", st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    observe("group", group)
    assert stat.S_IMODE(st.st_mode) == 0o660


@pytest.mark.scenario(
    "socket/unix/custom-group",
    "-G/--group MUST set the socket's group (numeric gids accepted)",
    ref="spec 3.2",
)
def test_unix_socket_numeric_group(daemon_factory: DaemonFactory, observe: Observations) -> None:
    daemon = daemon_factory(args=["--group=4242"])
    st = os.stat(daemon.socket_path)
    observe("gid", st.st_gid)
    observe("mode", oct(stat.S_IMODE(st.st_mode)))
    assert st.st_gid == 4242


@pytest.mark.scenario(
    "socket/unix/missing-group",
    "A non-default group that does not exist MUST stop start-up with 'group X not found'",
    ref="spec 3.2",
)
def test_unix_socket_missing_group(daemon_factory: DaemonFactory, observe: Observations) -> None:
    code, daemon = daemon_factory.start_expecting_exit(args=["--group=nosuchgrp"])
    observe("exit_code", code)
    observe("error", "failed to load listeners: group nosuchgrp not found" in daemon.logs())
    assert code == 1
    assert "failed to load listeners: group nosuchgrp not found" in daemon.logs()


@pytest.mark.scenario(
    "socket/unix/stale-file-replaced",
    "A regular file at the socket path MUST be replaced by the socket",
    ref="spec 3.2",
)
def test_unix_socket_replaces_file(
    daemon_factory: DaemonFactory, tmp_path: object, observe: Observations
) -> None:
    path = os.path.join(str(tmp_path), "stale.sock")
    with open(path, "w") as fh:
        fh.write("not a socket")
    daemon = daemon_factory(hosts=[f"unix://{path}"])
    observe("is_socket", stat.S_ISSOCK(os.stat(path).st_mode))
    observe("ping", ping_once(daemon.endpoints[0]))
    assert stat.S_ISSOCK(os.stat(path).st_mode)


@pytest.mark.scenario(
    "socket/unix/directory-refused",
    "A directory at the socket path MUST stop start-up with 'is a directory'",
    ref="spec 3.2",
)
def test_unix_socket_directory(
    daemon_factory: DaemonFactory, tmp_path: object, observe: Observations
) -> None:
    path = os.path.join(str(tmp_path), "dir.sock")
    os.mkdir(path)
    code, daemon = daemon_factory.start_expecting_exit(hosts=[f"unix://{path}"])
    expected = f"failed to load listeners: can't create unix socket {path}: is a directory"
    observe("exit_code", code)
    observe("message", expected in daemon.logs())
    assert code == 1
    assert expected in daemon.logs()


@pytest.mark.scenario(
    "socket/unix/removed-on-shutdown",
    "On SIGTERM the daemon MUST exit 0 and remove its socket and pidfile",
    ref="spec 3.2, 3.6, 7.1",
)
def test_unix_socket_removed(daemon_factory: DaemonFactory, observe: Observations) -> None:
    daemon = daemon_factory()
    code = daemon.stop()
    observe("exit_code", code)
    observe("socket_exists", os.path.exists(daemon.socket_path))
    observe("pidfile_exists", os.path.exists(daemon.pidfile))
    assert code == 0
    assert not os.path.exists(daemon.socket_path)
    assert not os.path.exists(daemon.pidfile)
