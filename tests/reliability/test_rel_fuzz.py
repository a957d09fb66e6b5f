"""Fuzz every Engine API operation of the swagger against refd: no 5xx for client mistakes, no crash, no hang.

Each operation gets its own hypothesis run (``scale(12, 300)`` examples). Requests go to a refd that holds a
running and a created container, the test image, a volume, a network and an exec, so path parameters reach
real objects as well as missing ones. A failure is a 5xx answer (refd logs it as a handler error), a
connection closed without a status line, a head not sent within the deadline, or refd gone; all of them are
collected, and the test fails at the end with the smallest request of each kind.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from harness.backends.base import DaemonHandle
from harness.client import EngineClient
from harness.testimage import load_test_image

from .conftest import LONG, scale
from .swaggerfuzz import Answer, FuzzRequest, Operation, Pool, operations, request_strategy, send

EXAMPLES = scale(12, 300)
HEADER_DEADLINE = 20.0


def _swagger() -> dict[str, Any]:
    from harness.swagger import SchemaUnavailable, SwaggerStore

    try:
        store = SwaggerStore()
        spec = store.spec(store._key_for("1.51"))
    except (SchemaUnavailable, OSError) as exc:
        pytest.skip(f"moby's swagger is unavailable: {exc}")
    return dict(spec.doc)


SPEC = None


def _ops() -> list[Operation]:
    global SPEC
    try:
        SPEC = _swagger()
    except pytest.skip.Exception:
        return []
    return operations(SPEC)


OPS = _ops()


#: 5xx answers that are not client mistakes: the daemon could not reach a remote (a registry, an import
#: URL). The requests only name a closed loopback port; dockerd 28.5 answers 500 to the same requests.
SERVER_SIDE = {
    "POST /images/create": re.compile(r'^(Get "[^"]*": |failed to GET )'),
    "GET /images/search": re.compile(r'^Get "[^"]*": '),
    "GET /distribution/{name}/json": re.compile(r'^Get "[^"]*": '),
    "POST /auth": re.compile(r'^Get "[^"]*": '),
    # version=2 with a remote context: refd's BuildKit takes an uploaded one only (a missing feature)
    "POST /build": re.compile(r"^refd's BuildKit on POST /build takes an uploaded context only"),
}
_PLUGIN_REFERENCE = re.compile(
    r"^(invalid reference format|invalid repository name \(.*\), cannot specify 64-byte hexadecimal strings$"
    r"|repository name must not be more than 255 characters$|cannot use digest in plugin tag$)",
    re.S,
)
#: 5xx answers dockerd 28.5 gives to the same client mistakes, with the same text (refd matches them)
DOCKERD_5XX = {
    # docker save: a bad reference or a missing image id is a 500 in dockerd (image/tarexport)
    "GET /images/{name}/get": re.compile(
        r"^(invalid reference format|failed to get digest |repository name must not be more than 255)"
    ),
    "GET /images/get": re.compile(
        r"^(invalid reference format|failed to get digest |repository name must not be more than 255)"
    ),
    # list limit, stop/restart timeouts: strconv.Atoi'd and its error returned as is
    "GET /containers/json": re.compile(r"^strconv.Atoi: parsing "),
    "POST /containers/{id}/stop": re.compile(r"^strconv.Atoi: parsing "),
    "POST /containers/{id}/restart": re.compile(r"^strconv.Atoi: parsing "),
    # docker update: the kernel refusing a value (dockerd passes runc's error on)
    "POST /containers/{id}/update": re.compile(r"^Cannot update container \w+: runc did not terminate"),
    # exec: DetachKeys that do not parse are a plain error in dockerd 28
    "POST /containers/{id}/exec": re.compile(r"^Invalid escape keys \(.*\) provided$"),
    # the classic builder: a context without the Dockerfile, or not a tar
    "POST /build": re.compile(
        r"^(Cannot locate specified Dockerfile|unexpected EOF|strconv.ParseInt: parsing "
        r"|remoteURL \(.*\) could not be recognized as URL)"
    ),
    # docker top: ps refusing its arguments ("ps: " and its first stderr line)
    "GET /containers/{id}/top": re.compile(r"^ps: "),
    # a container path past NAME_MAX/PATH_MAX: "lstat <path>: file name too long"
    "GET /containers/{id}/archive": re.compile(r"^lstat /.*: (file name too long|invalid argument)$", re.S),
    "HEAD /containers/{id}/archive": re.compile(r"^lstat /.*: (file name too long|invalid argument)$", re.S),
    "PUT /containers/{id}/archive": re.compile(r"^lstat /.*: (file name too long|invalid argument)$", re.S),
    # a volume name past NAME_MAX: "create <name>: error while creating volume root path ..."
    "POST /volumes/create": re.compile(r"^create .*: error while creating volume root path '", re.S),
    # image prune: an until filter that is not a time ("failed to parse value as time or duration")
    "POST /images/prune": re.compile(r"^(failed to parse value as time or duration|more than one until)"),
    # postAuth decodes the body without the JSON middleware: its errors are 500s
    "POST /auth": re.compile(r"^(EOF|json: |invalid character |unexpected )"),
    # service and task logs check the streams before asking for a swarm (daemon/cluster/services.go)
    "GET /services/{id}/logs": re.compile(r"^Bad parameters: you must choose at least one stream$"),
    "GET /tasks/{id}/logs": re.compile(r"^Bad parameters: you must choose at least one stream$"),
    # managed plugins: a reference that does not parse (distribution's errors, plain ones in dockerd: 500;
    # each text seen on dockerd-28, scenario api/plugins/references-checked), an enable timeout no integer
    "GET /plugins/privileges": _PLUGIN_REFERENCE,
    "POST /plugins/pull": _PLUGIN_REFERENCE,
    "POST /plugins/{name}/upgrade": _PLUGIN_REFERENCE,
    "POST /plugins/create": re.compile(
        r"^(failed to parse reference .*: (invalid reference format|invalid repository name \("
        r"|repository name must not be more than 255)|canonical references are not permitted$)",
        re.S,
    ),
    "POST /plugins/{name}/enable": re.compile(r"^strconv.Atoi: parsing "),
}
#: swarm-mode operations on a node in no swarm: dockerd 28.5's 503s (errdefs.Unavailable), with these texts
SWARM_UNAVAILABLE = re.compile(
    r'^(This node is not a swarm manager\. Use "docker swarm init" or "docker swarm join" to connect'
    r" this node to swarm and try again\.|This node is not part of a swarm"
    r"|volume update only valid for cluster volumes, but swarm is unavailable)$"
)
SWARM_PATHS = ("/swarm", "/nodes", "/services", "/tasks", "/secrets", "/configs")
#: a well-formed init or join, where dockerd would make or join a swarm: refd's documented 503 (it has no
#: swarm mode; docs/refd.md), only after dockerd's own checks of the request have passed
NO_SWARM_MODE = re.compile(r"^refd has no swarm mode: this node cannot (init|join) a swarm ")
#: managed plugins need a plugin registry and rootfs refd lacks: a missing feature (501), not a mistake
PLUGINS_MISSING = re.compile(r"^managed plugins are not implemented by refd ")


def _message(ans: Answer) -> str:
    try:
        return str(json.loads(ans.body.decode("utf-8", "replace").strip() or "{}").get("message", ""))
    except (ValueError, AttributeError):
        return ans.body.decode("utf-8", "replace")


def server_side(op: Operation, ans: Answer) -> bool:
    if op.method == "HEAD" and ans.status == 500 and op.id in DOCKERD_5XX:
        return True  # no body to tell the reason by: the GET twin's text is checked
    body = _message(ans)
    path = op.id.split(" ", 1)[1]
    if ans.status == 503 and op.id in ("POST /swarm/init", "POST /swarm/join") and NO_SWARM_MODE.match(body):
        return True
    if ans.status == 503 and (path.startswith(SWARM_PATHS) or op.id == "PUT /volumes/{name}"):
        return bool(SWARM_UNAVAILABLE.match(body))
    if ans.status == 501 and path.startswith("/plugins"):
        return bool(PLUGINS_MISSING.match(body))
    return ans.status == 500 and any(
        bool(table.get(op.id) and table[op.id].match(body)) for table in (SERVER_SIDE, DOCKERD_5XX)
    )


class Ledger:
    def __init__(self) -> None:
        self.sent = 0
        self.statuses: Counter[int] = Counter()
        self.failures: dict[str, list[tuple[FuzzRequest, Answer]]] = {}
        self.server_side = 0
        self.crashes = 0
        self.slowest = 0.0
        self.per_op: dict[str, float] = {}

    def record(self, op: Operation, req: FuzzRequest, ans: Answer) -> bool:
        """Count the answer; True if it is a failure."""
        self.sent += 1
        self.slowest = max(self.slowest, ans.elapsed)
        self.per_op[op.id] = self.per_op.get(op.id, 0.0) + ans.elapsed
        if ans.status is not None:
            self.statuses[ans.status] += 1
        if ans.status is not None and ans.status >= 500 and server_side(op, ans):
            self.server_side += 1
            return False
        if ans.status is None or ans.status >= 500:
            self.failures.setdefault(op.id, []).append((req, ans))
            return True
        return False


def _reseed(client: EngineClient, image: str, pool: Pool) -> None:
    """(Re)create what the fuzzing may have stopped, renamed or removed: same names, fresh ids."""
    for name, cmd, run in (("fuzz-running", ["sleep", "3600"], True), ("fuzz-created", None, False)):
        found = client.get(f"/containers/{name}/json")
        if found.status_code != 200:
            body: dict[str, Any] = {"Image": image}
            if cmd:
                body["Cmd"] = cmd
            client.delete(f"/containers/{name}?force=1")
            found = client.post(f"/containers/create?name={name}", json=body)
            assert found.status_code == 201, found.text
            found = client.get(f"/containers/{name}/json")
        info = found.json()
        if run and info["State"]["Paused"]:
            client.post(f"/containers/{name}/unpause")
        elif run and not info["State"]["Running"]:
            assert client.post(f"/containers/{name}/start").status_code in (204, 304)
    running = client.get("/containers/fuzz-running/json").json()["Id"]
    created = client.get("/containers/fuzz-created/json").json()["Id"]
    pool.containers = [running, "fuzz-running", created[:12], "fuzz-created"]
    client.post("/volumes/create", json={"Name": "fuzz-vol"})
    client.post("/networks/create", json={"Name": "fuzz-net"})
    made = client.post(f"/containers/{running}/exec", json={"Cmd": ["true"]})
    pool.execs = [made.json()["Id"]] if made.status_code == 201 else pool.execs


@pytest.fixture(scope="module")
def seeded(refd: DaemonHandle) -> Iterator[tuple[EngineClient, str, Pool]]:
    assert refd.endpoint is not None
    image = load_test_image(refd.endpoint)
    client = EngineClient(refd.endpoint)
    image_id = client.get(f"/images/{image}/json").json()["Id"]
    pool = Pool(
        images=[image, "busybox", image_id, image_id[7:19], "sha256:" + "0" * 64],
        volumes=["fuzz-vol"],
        networks=["fuzz-net", "bridge", "none", "host"],
    )
    try:
        yield client, image, pool
    finally:
        client.close()


@pytest.fixture(scope="module")
def ledger(figures: dict[str, Any]) -> Iterator[Ledger]:
    led = Ledger()
    start = time.monotonic()
    yield led
    fig = figures.setdefault(
        "fuzz", {"operations": 0, "requests": 0, "statuses": {}, "5xx": 0, "failures": 0}
    )
    fig["operations"] = len(OPS)
    fig["requests"] += led.sent
    fig["5xx"] += sum(n for s, n in led.statuses.items() if s >= 500)
    fig["5xx_server_side"] = fig.get("5xx_server_side", 0) + led.server_side
    slow = sorted(led.per_op.items(), key=lambda kv: -kv[1])[:5]
    fig["slowest_operations_s"] = {k: round(v, 1) for k, v in slow}
    fig["failures"] += sum(len(v) for v in led.failures.values())
    fig["hangs"] = fig.get("hangs", 0) + sum(a.status is None for v in led.failures.values() for _, a in v)
    fig["crashes"] = fig.get("crashes", 0) + led.crashes
    statuses = Counter({int(k): v for k, v in fig["statuses"].items()}) + led.statuses
    fig["statuses"] = {str(k): v for k, v in sorted(statuses.items())}
    fig["seconds"] = round(fig.get("seconds", 0) + time.monotonic() - start, 1)
    fig["slowest_head_s"] = round(max(fig.get("slowest_head_s", 0), led.slowest), 2)


@pytest.mark.skipif(not OPS, reason="moby's swagger is unavailable")
@pytest.mark.parametrize("op", OPS, ids=[o.id for o in OPS])
def test_operation_survives_fuzzing(
    refd: DaemonHandle, seeded: tuple[EngineClient, str, Pool], ledger: Ledger, op: Operation
) -> None:
    address = refd.socket_path
    client, image, pool = seeded
    if client.get(f"/images/{image}/json").status_code != 200:  # pruned or deleted by an earlier operation
        load_test_image(client.endpoint)
    _reseed(client, image, pool)
    assert SPEC is not None
    failed: list[tuple[FuzzRequest, Answer]] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=not LONG,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
    )
    @given(req=request_strategy(op, SPEC, pool))
    def fuzz(req: FuzzRequest) -> None:
        ans = send(address, req, HEADER_DEADLINE)
        if ledger.record(op, req, ans):
            failed.append((req, ans))

    fuzz()
    if refd.returncode is not None:
        ledger.crashes += 1
    assert refd.returncode is None, f"refd exited ({refd.returncode}):\n{refd.log_tail(40)}"
    assert send(address, FuzzRequest("GET", "/_ping", (), b"")).status == 200
    if failed:
        failed.sort(key=lambda f: len(f[0].describe()))
        lines = [
            f"{ans.status} {ans.error} {ans.body[:300]!r}\n    {req.describe()}" for req, ans in failed[:5]
        ]
        pytest.fail(f"{len(failed)} of the fuzzed requests failed:\n" + "\n".join(lines))


def test_refd_logged_no_traceback(refd: DaemonHandle, ledger: Ledger) -> None:
    """Runs after the fuzzing (file order): refd's log holds no Python traceback."""
    logs = refd.logs()
    assert "Traceback (most recent call last)" not in logs, logs[logs.find("Traceback") - 2000 :][:6000]
