"""The tutorial's daemon steps: the client-server picture, the systemd service, running the daemon by hand,
its sockets, the flags cheat sheet, debugging, and the start-up flow.

Every scenario boots a fresh box (``systemd_box``: systemd as PID 1, the target installed as its package
installs it) and types the tutorial's commands as root in it, ``docker`` words rendered for refd by
``box.flavour.subst`` (``systemctl stop docker`` -> ``systemctl stop refd``, ``dockerd`` -> ``refd``).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from harness.fixtures import Observations
from harness.systemd_box import SystemdBox
from suites._box import api_json, hand_run, logrus_messages, main_pid, ping
from suites.tutorial._text import OPENSSL_CORRECTED

HAND_SOCKET = "/var/run/docker.sock"  # dockerd's default -H, and refd's


def _lines(text: str, *starts: str) -> list[str]:
    """The lines starting with one of ``starts``, without systemd's quoting (252 and 262 differ)."""
    found = []
    for line in text.splitlines():
        line = line.strip().replace("'", "").replace('"', "").rstrip(".")
        if line.startswith(starts):
            found.append(line)
    return found


def _stop_service(box: SystemdBox) -> int:
    """The walkthrough's "Stop systemd first", corrected: the socket unit too (see stop-then-run)."""
    return box.sh(box.flavour.subst("sudo systemctl stop docker.socket docker")).code


@pytest.mark.scenario(
    "tutorial/architecture/client-server",
    "The docker CLI MUST be a client of the daemon's REST API: 'docker version' shows the client and the "
    "server, and the same answer comes from the API over the unix socket",
    ref="tutorial: Docker is a client-server system",
)
def test_client_server(systemd_box: SystemdBox, observe: Observations) -> None:
    box, f = systemd_box, systemd_box.flavour
    cli = box.sh("docker version", env=f.cli_env)
    api = api_json(box, "/version") or {}
    server_api = box.sh("docker version --format '{{.Server.APIVersion}}'", env=f.cli_env).out.strip()
    components = box.sh(
        "docker version --format '{{range .Server.Components}}{{.Name}} {{end}}'", env=f.cli_env
    ).out.split()
    observe("exit_code", cli.code)
    observe(
        "sections", [ln.split(":")[0] for ln in cli.out.splitlines() if re.match(r"^(Client|Server)\b", ln)]
    )
    observe("api_answers_like_cli", bool(server_api) and api.get("ApiVersion") == server_api)
    observe("engine_component", "Engine" in components)
    # the picture's next boxes: dockerd -> containerd -> runc
    observe("containerd_component", "containerd" in components)
    observe("runc_component", "runc" in components)
    assert cli.code == 0 and "Server" in cli.out and api.get("ApiVersion") == server_api


@pytest.mark.scenario(
    "tutorial/service/systemctl-commands",
    "The table's commands (start, stop, restart, status, enable, disable) MUST drive the daemon's unit: "
    "each exits 0 and leaves the state it names",
    ref="tutorial: Docker Daemon as a Systemd Service",
)
def test_systemctl_commands(systemd_box: SystemdBox, observe: Observations) -> None:
    box, f = systemd_box, systemd_box.flavour
    states: dict[str, Any] = {}
    for action in ("start", "stop", "restart", "status", "enable", "disable"):
        res = box.sh(f.subst(f"sudo systemctl {action} docker"))
        active = box.sh(f"systemctl is-active {f.unit}").out.strip()
        enabled = box.sh(f"systemctl is-enabled {f.unit}").out.strip()
        entry: dict[str, Any] = {"exit": res.code, "active": active, "enabled": enabled}
        if action == "stop":
            entry["warns_socket_still_listens"] = f.socket_unit in res.err
        if action == "status":
            state = re.search(r"Active: (\S+ \(\S+\))", res.out)
            pid = re.search(r"Main PID: \d+ \((\S+)\)", res.out)
            entry["active_line"] = state.group(1) if state else ""
            entry["main_pid_name"] = f.neutral(pid.group(1)) if pid else ""
            entry["triggered_by"] = f.neutral(" ".join(_lines(res.out, "TriggeredBy:")))
        if action in ("enable", "disable"):
            entry["symlinks"] = [
                box.neutral(ln) for ln in _lines(res.out + res.err, "Created symlink", "Removed")
            ]
        states[action] = entry
    observe("commands", states)
    assert all(s["exit"] == 0 for s in states.values())
    assert states["stop"]["active"] == "inactive" and states["restart"]["active"] == "active"
    assert states["disable"]["enabled"] == "disabled"


@pytest.mark.scenario(
    "tutorial/service/journalctl-follow",
    "'journalctl -u docker -f' MUST show the daemon's own log lines in real time (a restart appears as it "
    "happens), tagged with the daemon's name",
    ref="tutorial: sudo journalctl -u docker -f",
)
def test_journalctl_follow(systemd_box: SystemdBox, observe: Observations) -> None:
    box, f = systemd_box, systemd_box.flavour
    box.sh(f"(timeout 30 {f.subst('sudo journalctl -u docker -f')} -n 0 > /root/follow.log 2>&1 &)")
    box.sh("sleep 1")  # journalctl attaches to the journal before the restart
    box.sh(f.subst("sudo systemctl restart docker"))
    seen = box.wait_until("grep -q 'API listen on' /root/follow.log", timeout=20)
    text = box.read("/root/follow.log")
    starting = next((ln for ln in text.splitlines() if 'msg="Starting up"' in ln), "")
    shape = re.sub(r"^\w{3} \d+ \d\d:\d\d:\d\d ", "<syslog-time> ", starting)
    observe("restart_seen_live", seen)
    observe("starting_up_line", box.neutral(shape))
    observe(
        "messages",
        [box.neutral(m) for m in logrus_messages(text) if m in ("Starting up",) or "API listen" in m],
    )
    assert seen and starting


@pytest.mark.scenario(
    "tutorial/manual/stop-then-run",
    "Running the daemon by hand while the service runs MUST fail on the pidfile; 'systemctl stop docker' "
    "alone MUST leave the socket unit able to start the service again; with both stopped, the daemon run by "
    "hand MUST serve the default socket",
    ref="tutorial: Running Docker Daemon Manually; spec 3.6; Debian docker.socket",
)
def test_stop_then_run(systemd_box: SystemdBox, observe: Observations) -> None:
    box, f = systemd_box, systemd_box.flavour
    clash = box.sh(f.subst("sudo dockerd"), timeout=30)
    last = (clash.out + clash.err).strip().splitlines()[-1:] or [""]
    observe(
        "while_service_runs", {"exit": clash.code, "last_line": re.sub(r"\d+", "<n>", box.neutral(last[0]))}
    )
    # as written: "sudo systemctl stop docker", then any client of the socket starts the service again
    stop = box.sh(f.subst("sudo systemctl stop docker"))
    client = box.sh("docker ps", env=f.cli_env)
    observe(
        "stop_as_written",
        {
            "exit": stop.code,
            "warns_socket_still_listens": f.socket_unit in stop.err,
            "a_client_restarts_it": box.sh(f"systemctl is-active {f.unit}").out.strip() == "active",
            "client_exit": client.code,
        },
    )
    # corrected: stop the socket unit as well
    stop = box.sh(f.subst("sudo systemctl stop docker.socket docker"))
    client = box.sh("docker ps", env=f.cli_env)
    observe(
        "stop_corrected",
        {
            "exit": stop.code,
            "states": box.sh(f"systemctl is-active {f.unit} {f.socket_unit}").out.split(),
            "client_exit": client.code,
        },
    )
    run = hand_run(box, f.subst("sudo dockerd"))
    try:
        listen = [box.neutral(m) for m in logrus_messages(run.log()) if "API listen on" in m]
        ps = box.sh("docker ps")
        observe("started", run.ready_after is not None)
        observe("listen", listen)
        observe("docker_ps", {"exit": ps.code, "header": ps.out.split()[:2]})
    finally:
        observe("exit_after_sigterm", run.stop())
    assert clash.code != 0 and run.ready_after is not None and ps.code == 0


@pytest.mark.scenario(
    "tutorial/manual/debug",
    "'dockerd --debug' MUST log at debug level, including each API request the CLI makes",
    ref="tutorial: sudo dockerd --debug; spec 5.1",
)
def test_manual_debug(systemd_box: SystemdBox, observe: Observations) -> None:
    box, f = systemd_box, systemd_box.flavour
    _stop_service(box)
    run = hand_run(box, f.subst("sudo dockerd --debug"))
    try:
        box.sh("docker ps")
        box.wait_until(f"grep -q 'containers/json' {run.log_path}", timeout=5)
        log = run.log()
    finally:
        run.stop()
    request_line = next(
        (
            ln
            for ln in log.splitlines()
            if "containers/json" in ln and "level=debug" in ln and "Registering" not in ln
        ),
        "",
    )
    observe("debug_lines", bool(logrus_messages(log, "debug")))
    # 28.5: msg="handling GET request" method=GET module=api request-url=/v1.50/containers/json ...
    observe("request_line", re.sub(r'^time="[^"]*" ', "", re.sub(r"/v1\.\d+/", "/v<api>/", request_line)))
    assert run.ready_after is not None and request_line


@pytest.mark.scenario(
    "tutorial/manual/hosts",
    "'dockerd --host=tcp://0.0.0.0:2375 --host=unix:///var/run/docker.sock' MUST serve both, plain TCP "
    "with the insecure-binding warnings and a 15 s pause before serving",
    ref="tutorial: sudo dockerd --host=...; spec 3.3",
)
def test_manual_hosts(systemd_box: SystemdBox, observe: Observations) -> None:
    box, f = systemd_box, systemd_box.flavour
    _stop_service(box)
    run = hand_run(box, f.subst("sudo dockerd --host=tcp://0.0.0.0:2375 --host=unix:///var/run/docker.sock"))
    try:
        log = run.log()
        tcp = box.sh("curl -sS --max-time 10 http://127.0.0.1:2375/containers/json")
        info = box.sh("docker -H tcp://127.0.0.1:2375 info --format '{{json .Warnings}}'")
    finally:
        run.stop()
    observe("paused_15s", (run.ready_after or 0) >= 15)
    # (the box's cgroup warnings, "WARNING: No memory limit support" and the like, are not the step's)
    observe(
        "warnings",
        [
            m
            for m in logrus_messages(log, "warning")
            if not m.startswith(("WARNING: No ", "Your kernel does not"))
        ],
    )
    observe("listen", sorted(m for m in logrus_messages(log) if "API listen on" in m))
    observe("curl_tcp", tcp.out)
    observe(
        "info_warnings",
        [w.split("\n")[0] for w in (_json(info.out) or []) if "2375" in w],
    )
    assert run.ready_after is not None and tcp.out.strip() == "[]"


@pytest.mark.scenario(
    "tutorial/sockets/unix-curl",
    "'curl --unix-socket /var/run/docker.sock http://localhost/containers/json' MUST return the container "
    "list as JSON; the socket is 0660 root:docker and no TCP port listens by default",
    ref="tutorial: Docker Sockets - Unix & TCP",
)
def test_unix_curl(systemd_box: SystemdBox, observe: Observations) -> None:
    box, f = systemd_box, systemd_box.flavour
    res = box.sh(f"curl --unix-socket {f.tutorial_socket} http://localhost/containers/json")
    mode = box.sh(f"stat -L -c '%A %U %G' {f.tutorial_socket}").out.strip()
    ps = box.sh("docker ps", env=f.cli_env)
    tcp = box.sh("curl -sS --max-time 5 http://127.0.0.1:2375/containers/json")
    observe("curl_exit", res.code)
    observe("curl_body", res.out)
    observe("socket_mode", mode)
    observe("docker_ps", {"exit": ps.code, "header": ps.out.split()[:2]})
    observe("tcp_2375_curl_exit", tcp.code)
    assert res.code == 0 and res.out.strip() == "[]"


def _json(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except ValueError:
        return None


def _info(box: SystemdBox, socket: str = HAND_SOCKET) -> dict[str, Any]:
    return api_json(box, "/info", socket) or {}


def _tls_curl(box: SystemdBox, client: bool) -> str:
    certs = "--cert /root/certs/cert.pem --key /root/certs/key.pem " if client else ""
    res = box.sh(f"curl -sS --max-time 5 --cacert /root/certs/ca.pem {certs}https://127.0.0.1:2376/_ping")
    return res.out if res.code == 0 else "refused"


@pytest.mark.scenario(
    "tutorial/flags/cheat-sheet",
    "Each flag of the cheat sheet MUST do what the table says, visible in /info, the listeners or the log",
    ref="tutorial: Docker Daemon Flags Cheat Sheet; spec 1",
)
def test_flags_cheat_sheet(systemd_box: SystemdBox, observe: Observations) -> None:
    box, f = systemd_box, systemd_box.flavour
    _stop_service(box)
    box.sh(OPENSSL_CORRECTED)
    box.write("/root/custom.json", '{"labels": ["tutorial=custom-config-file"]}\n')
    tls = (
        "--tlscacert=/root/certs/ca.pem --tlscert=/root/certs/server-cert.pem "
        "--tlskey=/root/certs/server-key.pem"
    )
    both = f"--host=unix://{HAND_SOCKET} --host=tcp://127.0.0.1:2376"
    seen: dict[str, Any] = {}

    def run(flag: str, args: str, check: Any, ready_socket: str = HAND_SOCKET) -> None:
        hand = hand_run(box, f.subst(f"sudo dockerd {args}"), ready_socket=ready_socket, timeout=40)
        try:
            seen[flag] = (
                check(hand) if hand.ready_after is not None else f"did not start: {hand.log()[-300:]}"
            )
        finally:
            hand.stop()

    run("--debug", "--debug", lambda h: {"Debug": _info(box).get("Debug")})
    run(
        "--host",
        "--host=unix:///run/alt.sock",
        lambda h: {"ping": ping(box, "/run/alt.sock")},
        "/run/alt.sock",
    )
    run("--config-file", "--config-file=/root/custom.json", lambda h: {"Labels": _info(box).get("Labels")})
    run(
        "--tlsverify",
        f"--tlsverify {tls} {both}",
        lambda h: {"with_cert": _tls_curl(box, True), "without_cert": _tls_curl(box, False)},
    )
    run(
        "--tls",
        f"--tls {tls} {both}",
        lambda h: {"with_cert": _tls_curl(box, True), "without_cert": _tls_curl(box, False)},
    )
    run(
        "--insecure-registry",
        "--insecure-registry=myregistry.local:5000",
        lambda h: {
            "index": (_info(box).get("RegistryConfig") or {})
            .get("IndexConfigs", {})
            .get("myregistry.local:5000")
        },
    )
    run(
        "--data-root", "--data-root=/srv/docker", lambda h: {"DockerRootDir": _info(box).get("DockerRootDir")}
    )
    run("--storage-driver", "--storage-driver=overlay2", lambda h: {"Driver": _info(box).get("Driver")})
    aufs = box.sh(f.subst("sudo dockerd --storage-driver=aufs"), timeout=40)
    aufs_errors = [m for m in logrus_messages(aufs.out + aufs.err) if "aufs" in m]
    seen["--storage-driver=aufs"] = {
        "exit": aufs.code,
        "says": re.sub(r"\d+", "<n>", ((aufs.out + aufs.err).strip().splitlines() or [""])[-1]),
        "logged_aufs": bool(aufs_errors),
    }
    for level in ("debug", "error"):
        run(
            f"--log-level={level}",
            f"--log-level={level}",
            lambda h: {
                "info_lines": bool(logrus_messages(h.log(), "info")),
                "debug_lines": bool(logrus_messages(h.log(), "debug")),
            },
        )
    observe("flags", seen)
    assert seen["--debug"] == {"Debug": True}
    assert seen["--tlsverify"] == {"with_cert": "OK", "without_cert": "refused"}
    assert seen["--storage-driver"] == {"Driver": "overlay2"}


@pytest.mark.scenario(
    "tutorial/flags/example",
    "The cheat sheet's example (unix + tcp://0.0.0.0:2376, overlay2, --debug) MUST start, serving plain "
    "HTTP on 2376 (no TLS flag: the port number does not turn TLS on) after the insecure-binding pause",
    ref="tutorial: Docker Daemon Flags Cheat Sheet, Example; spec 3.3",
)
def test_flags_example(systemd_box: SystemdBox, observe: Observations) -> None:
    box, f = systemd_box, systemd_box.flavour
    _stop_service(box)
    command = (
        "sudo dockerd --host=unix:///var/run/docker.sock \\\n"
        "             --host=tcp://0.0.0.0:2376 \\\n"
        "             --storage-driver=overlay2 \\\n"
        "             --debug"
    )
    run = hand_run(box, f.subst(command))
    try:
        info = _info(box)
        plain = box.sh("curl -sS --max-time 5 http://127.0.0.1:2376/_ping")
        cli = box.sh("docker -H tcp://127.0.0.1:2376 ps")
    finally:
        run.stop()
    observe("paused_15s", (run.ready_after or 0) >= 15)
    observe("driver", info.get("Driver"))
    observe("debug", info.get("Debug"))
    observe("plain_http_on_2376", plain.out)
    observe("docker_ps_plain_tcp", {"exit": cli.code, "header": cli.out.split()[:2]})
    assert run.ready_after is not None and plain.out == "OK" and info.get("Driver") == "overlay2"


@pytest.mark.scenario(
    "tutorial/debugging/journalctl-xe",
    "When the daemon fails to start, 'journalctl -u docker -xe' MUST show the daemon's own reason "
    "(here a daemon.json with a trailing comma) and systemd's explanation",
    ref="tutorial: Debugging the Docker Daemon; spec 1.6",
)
def test_journalctl_xe(systemd_box: SystemdBox, observe: Observations) -> None:
    box, f = systemd_box, systemd_box.flavour
    # the commonest slip: a trailing comma (JSON has none)
    box.write("/etc/docker/daemon.json", '{\n  "debug": true,\n}\n')
    restart = box.sh(f.subst("sudo systemctl restart docker"))
    journal = box.sh(f.subst("sudo journalctl -u docker -xe --no-pager"))
    reason = [ln for ln in journal.out.splitlines() if "daemon.json" in ln]
    observe("restart_exit", restart.code)
    observe("reason", [re.sub(r"^.*?: (?=unable)", "", box.neutral(ln)) for ln in reason][-1:])
    observe("explained", "░░" in journal.out)
    assert restart.code != 0 and reason


@pytest.mark.scenario(
    "tutorial/debugging/lsof",
    "'lsof -i -P -n | grep dockerd' MUST show the daemon's TCP listener under the daemon's name; lsof -i "
    "lists no unix socket, 'lsof /var/run/docker.sock' does",
    ref="tutorial: sudo lsof -i -P -n | grep dockerd",
)
def test_lsof(systemd_box: SystemdBox, observe: Observations) -> None:
    box, f = systemd_box, systemd_box.flavour
    _stop_service(box)
    run = hand_run(box, f.subst("sudo dockerd -H unix:///var/run/docker.sock -H tcp://127.0.0.1:2375"))
    try:
        grep = box.sh(f.subst("sudo lsof -i -P -n | grep dockerd"))
        unix_in_i = box.sh("sudo lsof -i -P -n | grep -c docker.sock")
        by_path = box.sh("sudo lsof /var/run/docker.sock")
    finally:
        run.stop()
    rows = [ln.split() for ln in grep.out.splitlines()]
    observe("grep_exit", grep.code)
    observe("rows", [[f.neutral(r[0]), r[2], r[4], " ".join(r[7:])] for r in rows if len(r) >= 9])
    observe("unix_socket_in_lsof_i", unix_in_i.out.strip())
    # (systemd is listed too when its docker.socket had bound that path: the package's, not the daemon's)
    observe(
        "by_path_lists_daemon",
        "<daemon>" in {f.neutral(ln.split()[0]) for ln in by_path.out.splitlines()[1:]},
    )
    assert grep.code == 0 and any(r[-1] == "(LISTEN)" for r in rows)


@pytest.mark.scenario(
    "tutorial/lifecycle/startup-flow",
    "As the picture shows, systemd MUST start the daemon (MainPID is the daemon), the socket MUST be the "
    "unit's, and a container MUST run through it",
    ref="tutorial: Visual Flow - Daemon Startup & Communication",
)
def test_startup_flow(systemd_box: SystemdBox, observe: Observations) -> None:
    from harness.images import busybox_rootfs, save_tarball

    box, f = systemd_box, systemd_box.flavour
    pid = main_pid(box)
    comm = box.sh(f"ps -o comm= -p {pid}").out.strip()
    listen = box.show(f.socket_unit, "Listen").get("Listen", "")
    box.write("/root/busybox.tar", save_tarball(busybox_rootfs(), "busybox:latest"))
    load = box.sh("docker load -i /root/busybox.tar", env=f.cli_env)
    run = box.sh("docker run --rm busybox echo hello from a container", env=f.cli_env, timeout=90)
    observe("main_pid_is_daemon", f.neutral(comm))
    observe("socket_unit_listens", f.neutral(listen))
    observe("image_loaded", load.code == 0)
    observe(
        "container_output", run.out.strip() if run.code == 0 else f"exit {run.code}: {run.err.strip()[-300:]}"
    )
    assert f.neutral(comm) == "<daemon>" and run.code == 0
