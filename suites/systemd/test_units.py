"""The daemon's own units under a real systemd (PID 1 in a box): notify readiness, socket activation,
ExecReload, Restart=, stop (spec 4; issue 3).

Each scenario gets a fresh box (``systemd_box``) where the target is installed as its package installs it:
Debian's ``docker.service``/``docker.socket`` for dockerd, refd's ``refd.service``/``refd.socket`` from
``harness/daemon/systemd`` for refd; both enabled and started. The box's ``systemctl`` drives them.
"""

from __future__ import annotations

import pytest

from harness.fixtures import Observations
from harness.systemd_box import SystemdBox
from harness.wait import wait_until
from suites._box import logrus_messages, main_pid, ping


@pytest.mark.scenario(
    "systemd/unit/notify-ready",
    "A Type=notify unit MUST be started only once the daemon serves: 'systemctl restart' returns after "
    "READY=1 and the API answers at once",
    ref="spec 4.2; Debian docker.service Type=notify",
)
def test_notify_ready(systemd_box: SystemdBox, observe: Observations) -> None:
    box, unit = systemd_box, systemd_box.flavour.unit
    props = box.show(unit, "Type", "NotifyAccess")
    res = box.sh(
        f"systemctl restart {unit} && curl -sS --max-time 5 --unix-socket {box.flavour.socket} "
        "http://localhost/_ping"
    )
    observe("type", props.get("Type"))
    observe("notify_access", props.get("NotifyAccess"))
    observe("restart_exit", res.code)
    observe("ping_right_after", res.out)
    observe("active", box.sh(f"systemctl is-active {unit}").out.strip())
    assert props.get("Type") == "notify"
    assert res.code == 0 and res.out == "OK"


@pytest.mark.scenario(
    "systemd/unit/socket-activation",
    "With the service stopped, the socket unit MUST keep listening (0660 root:docker) and a client "
    "connecting MUST start the service, which serves that socket (-H fd://)",
    ref="spec 4.1; Debian docker.socket",
)
def test_socket_activation(systemd_box: SystemdBox, observe: Observations) -> None:
    box, f = systemd_box, systemd_box.flavour
    stop = box.sh(f"systemctl stop {f.unit}")
    observe("stop_exit", stop.code)
    # systemd 252 says "...can still be activated by:", 262 "...its triggering units are still active:"
    observe("stop_warns_socket_still_listens", f.socket_unit in stop.err)
    observe("after_stop", box.sh(f"systemctl is-active {f.unit} {f.socket_unit}").out.split())
    observe("socket_file", box.file_state(f.socket))
    observe("ping_starts_it", ping(box))
    observe("after_ping", box.sh(f"systemctl is-active {f.unit} {f.socket_unit}").out.split())
    observe("triggered_by", box.neutral(box.show(f.unit, "TriggeredBy").get("TriggeredBy", "")))
    observe(
        "listen_line", [box.neutral(m) for m in logrus_messages(box.journal()) if "API listen on" in m][-1:]
    )
    assert box.sh(f"systemctl is-active {f.unit}").out.strip() == "active"
    assert ping(box) == "OK"


@pytest.mark.scenario(
    "systemd/unit/reload",
    "'systemctl reload' MUST run ExecReload (SIGHUP to the main pid): the daemon keeps its pid, logs the "
    "reload and publishes a daemon reload event",
    ref="spec 2; Debian docker.service ExecReload=/bin/kill -s HUP $MAINPID",
)
def test_reload(systemd_box: SystemdBox, observe: Observations) -> None:
    box, f = systemd_box, systemd_box.flavour
    before = main_pid(box)
    cursor = box.journal_cursor()
    since = int(box.sh("date +%s").out.strip())
    res = box.sh(f"systemctl reload {f.unit}")
    ok = box.wait_until(
        f"journalctl -u {f.unit} -o cat --after-cursor='{cursor}' | grep -q 'Reloaded configuration'"
    )
    lines = logrus_messages(box.journal(after=cursor))
    events = box.sh(
        f"curl -sS --max-time 10 --unix-socket {f.socket} "
        f"'http://localhost/events?since={since}&until={since + 30}"
        "&filters=%7B%22type%22%3A%5B%22daemon%22%5D%7D'"
        f" | head -c 2000",
        timeout=40,
    )
    observe("reload_exit", res.code)
    observe("same_pid", main_pid(box) == before)
    observe("log", [m for m in lines if "reload" in m.lower()])
    observe("reload_event", '"Action":"reload"' in events.out)
    assert res.code == 0 and ok and main_pid(box) == before


@pytest.mark.scenario(
    "systemd/unit/restart-on-failure",
    "A daemon killed with SIGKILL MUST be started again by systemd (Restart=), with a new main pid",
    ref="Debian docker.service Restart=; spec 7",
)
def test_restart_after_kill(systemd_box: SystemdBox, observe: Observations) -> None:
    box, f = systemd_box, systemd_box.flavour
    before = main_pid(box)
    box.sh(f"kill -9 {before}")

    def restarted() -> bool:
        now = main_pid(box)
        return bool(now and now != before and box.sh(f"systemctl is-active {f.unit}").out.strip() == "active")

    wait_until(restarted, 30, interval=0.3)

    props = box.show(f.unit, "NRestarts", "ActiveState", "Restart")
    observe("restart_policy", props.get("Restart"))
    observe("new_pid", main_pid(box) not in (0, before))
    observe("n_restarts", props.get("NRestarts"))
    observe("active", props.get("ActiveState"))
    observe("ping", ping(box))
    observe(
        "journal",
        [box.neutral(ln) for ln in box.journal().splitlines() if "Main process exited" in ln][-1:],
    )
    assert main_pid(box) not in (0, before) and props.get("ActiveState") == "active"


@pytest.mark.scenario(
    "systemd/unit/stop",
    "'systemctl stop' MUST end the daemon cleanly: exit status 0, Result=success, the shutdown logged",
    ref="spec 7.1; Debian docker.service KillMode=process",
)
def test_stop(systemd_box: SystemdBox, observe: Observations) -> None:
    box, f = systemd_box, systemd_box.flavour
    cursor = box.journal_cursor()
    res = box.sh(f"systemctl stop {f.unit}")
    props = box.show(f.unit, "ActiveState", "Result", "ExecMainStatus", "ExecMainCode")
    messages = logrus_messages(box.journal(after=cursor))
    observe("stop_exit", res.code)
    observe("state", props.get("ActiveState"))
    observe("result", props.get("Result"))
    observe("exit_status", props.get("ExecMainStatus"))
    observe("shutdown_logged", "Daemon shutdown complete" in messages)
    assert res.code == 0 and props.get("Result") == "success" and props.get("ExecMainStatus") == "0"
