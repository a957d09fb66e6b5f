"""The documented fixtures users' own tests and the suites use.

``daemon_factory`` boots daemons of the current ``target``; ``docker_daemon`` is a
session-wide one; ``engine``, ``docker_cli``, ``docker_client`` are ready clients;
``tls_material`` mints certificates; ``observe`` records what a scenario saw.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .backends.base import DaemonHandle, DaemonSpec
from .client import EngineClient
from .endpoints import Endpoint
from .profiles import Profile, load_profiles
from .targets import Target, resolve_target

__all__ = [
    "DaemonFactory",
    "daemon_factory",
    "docker_cli",
    "docker_client",
    "docker_daemon",
    "engine",
    "observe",
    "profile",
    "registries",
    "registry",
    "registry_auth",
    "registry_tls",
    "registry_token",
    "subresults",
    "target",
    "tls_material",
]


class DaemonFactory:
    """Boots daemons of one target in one profile on one backend and tears every one of them down."""

    def __init__(
        self, target: Target, backend_name: str, keep: bool = False, profile: Profile | None = None
    ) -> None:
        from .backends import get_backend

        self.target = target
        self.backend = get_backend(backend_name)
        self.keep = keep
        self.profile = profile
        self.handles: list[DaemonHandle] = []

    def __call__(
        self, args: list[str] | None = None, config: dict[str, Any] | str | None = None, **spec_fields: Any
    ) -> DaemonHandle:
        mirror = hub_mirror()
        args = list(args or [])
        if mirror is not None and not _sets_mirrors(args, config):
            args.append(f"--registry-mirror={mirror.url}")
        else:
            mirror = None
        if self.profile is not None:
            args, config = self.profile.apply(args, config, spec_fields.get("config_file_flag", True))
            if self.profile.netns_setup:
                spec_fields["netns_setup"] = [*self.profile.netns_setup, *spec_fields.get("netns_setup", ())]
        spec = DaemonSpec(args=args, config=config, **spec_fields)
        workdir = tempfile.mkdtemp(prefix=f"harness-{self.target.name}-", dir=_work_base())
        os.chmod(workdir, 0o755)
        try:
            handle = self.backend.start(self.target, spec, workdir)
        except BaseException:
            # the partially booted daemon is in no handle list yet: clean it here
            stub = DaemonHandle(self.target, spec, workdir, [])
            self.backend.teardown(stub, keep=self.keep)
            raise
        self.handles.append(handle)
        if mirror is not None and spec.wait:
            mirror.attach(handle)
        return handle

    def start_expecting_exit(
        self,
        args: list[str] | None = None,
        config: dict[str, Any] | str | None = None,
        timeout: float = 30.0,
        **spec_fields: Any,
    ) -> tuple[int, DaemonHandle]:
        """Boot without waiting for readiness and return the exit status (for must-fail starts)."""
        handle = self(args, config, wait=False, **spec_fields)
        return handle.wait_exit(timeout), handle

    def restart(self, handle: DaemonHandle) -> DaemonHandle:
        return self.backend.restart(handle)

    def forward(self, handle: DaemonHandle, port: int, tls: Any = None) -> Endpoint:
        return self.backend.forward(handle, port, tls)

    def close(self) -> None:
        while self.handles:
            handle = self.handles.pop()
            for cleanup in handle.extras.pop("cleanups", []):  # e.g. registry relays into its netns
                with contextlib.suppress(Exception):
                    cleanup()
            self.backend.teardown(handle, keep=self.keep)


_HUB_MIRROR: list[Any] = []


def hub_mirror() -> Any:
    """With ``HARNESS_HUB_MIRROR=1``: one seeded registry for the process, every daemon's Docker Hub mirror.

    ``DaemonFactory`` then boots each daemon with ``--registry-mirror=<its url>`` (unless the scenario sets
    mirrors itself) and attaches it, so suites written for Docker Hub (``pull busybox``) run offline.
    None when the variable is not set.
    """
    if os.environ.get("HARNESS_HUB_MIRROR", "").lower() not in ("1", "true", "yes"):
        return None
    if not _HUB_MIRROR:
        import atexit

        from .registry import Registry

        reg = Registry.start()
        try:
            reg.seed()
        except BaseException:
            reg.close()
            raise
        atexit.register(reg.close)
        _HUB_MIRROR.append(reg)
    return _HUB_MIRROR[0]


def _sets_mirrors(args: list[str], config: dict[str, Any] | str | None) -> bool:
    in_args = any(a.startswith("--registry-mirror") for a in args)
    in_file = isinstance(config, dict) and "registry-mirrors" in config
    return in_args or in_file or isinstance(config, str)


def _work_base() -> str:
    base = os.environ.get("HARNESS_WORKDIR", "/tmp")
    os.makedirs(base, exist_ok=True)
    return base


@pytest.fixture(scope="session")
def profile(request: pytest.FixtureRequest) -> Profile:
    """The daemon profile every daemon of the test boots in (parametrized from ``--profiles``)."""
    cfg = request.config.stash[_CONFIG_KEY]
    name = getattr(request, "param", None) or cfg.profiles[0]
    return load_profiles(cfg.profiles_files)[name]


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest, profile: Profile) -> Target:
    """The daemon flavour under test (parametrized from ``--targets``; each profile has its own)."""
    name = getattr(request, "param", None) or request.config.stash[_CONFIG_KEY].targets[0]
    chosen = resolve_target(name)
    chosen.check_available()
    if chosen.rootfs:  # built on first use, minutes once: show the progress through pytest's capture
        capman = request.config.pluginmanager.getplugin("capturemanager")
        with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
            chosen.prepare()
    return chosen


@pytest.fixture
def daemon_factory(
    target: Target, profile: Profile, request: pytest.FixtureRequest
) -> Iterator[DaemonFactory]:
    """Boot throwaway daemons in the test's profile: ``daemon_factory(args=[...], config={...})``."""
    cfg = request.config.stash[_CONFIG_KEY]
    factory = DaemonFactory(target, cfg.backend, cfg.keep_daemons, profile)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="session")
def _session_factory(
    target: Target, profile: Profile, request: pytest.FixtureRequest
) -> Iterator[DaemonFactory]:
    cfg = request.config.stash[_CONFIG_KEY]
    factory = DaemonFactory(target, cfg.backend, cfg.keep_daemons, profile)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="session")
def docker_daemon(_session_factory: DaemonFactory) -> DaemonHandle:
    """One daemon per target and profile for the whole session (scenarios that need no special boot)."""
    return _session_factory()


#: what a scenario on the session daemon left behind or removed (``harness.isolation``), for its record
ISOLATION_KEY = pytest.StashKey[list[str]]()


@pytest.fixture(autouse=True)
def _shared_daemon_isolation(request: pytest.FixtureRequest) -> Iterator[None]:
    """Around each scenario on the session daemon: put its state back afterwards and record what differed.

    Autouse, so it is set up before the scenario's other fixtures and torn down after them (after the
    ``containers`` cleanup, say): what is left then is what the scenario left.
    """
    if "docker_daemon" not in request.fixturenames or request.node.get_closest_marker("scenario") is None:
        yield
        return
    from .isolation import check_and_restore, snapshot

    daemon: DaemonHandle = request.getfixturevalue("docker_daemon")
    if "test_image" in request.fixturenames:
        request.getfixturevalue("test_image")  # loaded once per session: not this scenario's doing
    assert daemon.endpoint is not None
    client = EngineClient(daemon.endpoint)
    try:
        before = snapshot(client)
        yield
        request.node.stash[ISOLATION_KEY] = check_and_restore(client, before)
    finally:
        client.close()


@pytest.fixture
def engine(docker_daemon: DaemonHandle) -> Iterator[EngineClient]:
    """A raw HTTP client (requests) on the session daemon."""
    assert docker_daemon.endpoint is not None
    client = EngineClient(docker_daemon.endpoint)
    yield client
    client.close()


CLI = Callable[..., "subprocess.CompletedProcess[str]"]


def make_cli(endpoint: Endpoint, home: str) -> CLI:
    """A function running the harness's pinned docker CLI (``--docker-cli``, ``harness.dockercli``) against
    ``endpoint`` with a private config dir; never the host's ``docker`` unless ``--docker-cli`` names it."""

    def run(
        *args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        from .dockercli import DockerCLIError, resolve, selected

        try:
            docker = resolve(selected()).path
        except DockerCLIError as exc:
            pytest.fail(f"no docker CLI for this scenario: {exc}", pytrace=False)
        full_env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": home,
            "DOCKER_CONFIG": os.path.join(home, ".docker"),
            **(env or {}),
        }
        return subprocess.run(
            [docker, *endpoint.cli_args(), *args],
            input=input,
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
        )

    return run


@pytest.fixture
def docker_cli(docker_daemon: DaemonHandle, tmp_path: Any) -> CLI:
    """``docker_cli("ps", "-a")`` runs the real docker CLI on the session daemon."""
    assert docker_daemon.endpoint is not None
    return make_cli(docker_daemon.endpoint, str(tmp_path))


@pytest.fixture
def docker_client(docker_daemon: DaemonHandle) -> Iterator[Any]:
    """A docker SDK client on the session daemon."""
    assert docker_daemon.endpoint is not None
    client = docker_daemon.endpoint.sdk_client()
    yield client
    client.close()


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """trustme CA, server and client material (plus rogue and expired clients), minted per session."""
    from .tls import mint_tls_material

    return mint_tls_material(str(tmp_path_factory.mktemp("tls")))


class Observations(dict[str, Any]):
    """What a scenario saw. ``observe(key, value)`` or ``observe.update(...)``."""

    def __call__(self, key: str, value: Any) -> Any:
        self[key] = value
        return value


@pytest.fixture
def observe(request: pytest.FixtureRequest) -> Observations:
    """Record observations for the parity report (compared across targets after normalisation)."""
    store = Observations()
    request.node.stash[OBSERVATIONS_KEY] = store
    return store


OBSERVATIONS_KEY = pytest.StashKey[Observations]()
_CONFIG_KEY: pytest.StashKey[Any] = pytest.StashKey()


class SubResults(list[dict[str, Any]]):
    """Results a scenario reports under ids of their own: one per test of an upstream suite it ran.

    The plugin writes each as a scenario of the results file (``add(id, outcome, reason, ...)``), beside the
    scenario's own record, so they flow into parity, the reports, shards and merges like scenarios.
    """

    def add(
        self,
        id: str,
        outcome: str,
        reason: str = "",
        duration: float = 0.0,
        statement: str = "",
        ref: str = "",
    ) -> None:
        from .results import OUTCOMES

        if "/" not in id:
            raise ValueError(f"a result id looks like 'area/.../name', not {id!r}")
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r} of {id} is not one of {', '.join(OUTCOMES)}")
        self.append(
            {
                "id": id,
                "outcome": outcome,
                "reason": reason,
                "duration": round(float(duration), 3),
                "statement": statement,
                "ref": ref,
            }
        )


SUBRESULTS_KEY = pytest.StashKey[SubResults]()


@pytest.fixture
def subresults(request: pytest.FixtureRequest) -> SubResults:
    """Report results under ids of their own (``subresults.add("upstream/moby/image/TestX", "passed")``)."""
    store = SubResults()
    request.node.stash[SUBRESULTS_KEY] = store
    return store


@pytest.fixture(scope="session")
def test_image(docker_daemon: DaemonHandle) -> str:
    """The busybox test image (from Debian's busybox-static) loaded into the session daemon; its tag."""
    from .testimage import load_test_image

    assert docker_daemon.endpoint is not None
    return load_test_image(docker_daemon.endpoint)


# -- registries -------------------------------------------------------------------------------------------
#: the credentials of the ``registry_auth`` fixture (htpasswd basic auth)
REGISTRY_USER = ("harness", "harness-secret")


@pytest.fixture(scope="session")
def registry() -> Iterator[Any]:
    """A seeded ``docker-registry`` on host loopback (plain HTTP), for the whole session.

    ``registry.attach(handle)`` makes it reachable in a daemon's network namespace at
    ``registry.host`` (see ``harness.registry``); the seed images are ``library/busybox``,
    ``library/alpine:3.10``, ... so it also serves as a Docker Hub mirror (``registry.url``).
    """
    from .registry import Registry

    reg = Registry.start()
    try:
        reg.seed()
        yield reg
    finally:
        reg.close()


#: the variants of the seeded registry: ``Registry.start`` options by kind
REGISTRY_KINDS: dict[str, dict[str, Any]] = {
    "tls": {"tls": True},  # HTTPS with a certificate from a private CA (``ca_pem``)
    "auth": {"auth": REGISTRY_USER},  # htpasswd basic auth
    # bearer-token auth: a ``TokenServer`` (``harness.registry_token``) that knows ``REGISTRY_USER`` is the
    # realm of the registry's ``Bearer`` challenges; ``attach`` relays both
    "token": {"token_users": dict([REGISTRY_USER])},
}


@pytest.fixture(scope="session")
def registries(registry: Any) -> Iterator[Callable[[str], Any]]:
    """``registries(kind)``: the seeded content served another way (``REGISTRY_KINDS``), started on first
    use and shared for the session (``registry_tls``, ``registry_auth``, ``registry_token`` are its kinds)."""
    from .registry import Registry

    started: dict[str, Any] = {}

    def get(kind: str) -> Any:
        if kind not in started:
            started[kind] = Registry.start(storage=registry.storage, **REGISTRY_KINDS[kind])
        return started[kind]

    try:
        yield get
    finally:
        for reg in started.values():
            reg.close()


def _registry_kind(kind: str) -> Any:
    def fixture(registries: Callable[[str], Any]) -> Any:
        return registries(kind)

    fixture.__doc__ = f"``registries({kind!r})``: the seeded registry with {kind}."
    return pytest.fixture(scope="session", name=f"registry_{kind}")(fixture)


registry_tls = _registry_kind("tls")
registry_auth = _registry_kind("auth")
registry_token = _registry_kind("token")
