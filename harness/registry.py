"""A real image registry for the sessions: Debian's ``docker-registry`` (distribution 2.8) on host loopback.

``Registry`` runs ``docker-registry serve`` on a free ``127.0.0.1`` port with its own storage, optionally
with TLS (a trustme CA and leaf) and htpasswd basic auth, waits until ``/v2/`` answers, and stops it on
``close()`` (always: the fixtures and ``harness registry`` call it in ``finally``). Several registries can
share one storage directory (plain, TLS and auth variants of one seeded store).

Daemons boot in their own network namespaces, where the host's loopback is not reachable.
``Registry.attach(handle)`` makes the registry reachable *inside* a daemon's namespace through an
``Inbound`` relay (``harness.netns``): by default at the same ``127.0.0.1:<port>`` as on the host, so the
registry's address is one name everywhere (and, being loopback, insecure by dockerd's default rules);
``attach(handle, host="192.0.2.10")`` puts it on a non-loopback address of the namespace's ``lo``, which
dockerd treats as a secure registry unless ``insecure-registries`` lists it. ``trust(handle, ...)`` writes
the registry's CA where the daemon reads ``certs.d``.

``seed()`` pushes the busybox-built images of ``harness.registry_images`` (as ``library/...``, so the
registry serves as a Docker Hub mirror).

    reg = Registry.start(storage, tls=True, auth=("user", "pass"))
    reg.seed()
    address = reg.attach(handle)           # "127.0.0.1:41234" inside the daemon's netns
    reg.close()
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from .errors import HarnessError

__all__ = ["REGISTRY_BINARY", "Registry", "RegistryError", "bcrypt_hash", "ensure_registry_binary"]

REGISTRY_BINARY = "/usr/bin/docker-registry"
#: the non-loopback address ``attach(..., secure=True)`` uses inside a daemon's namespace (TEST-NET-1)
SECURE_ADDRESS = "192.0.2.10"


class RegistryError(HarnessError):
    """The registry could not be started, seeded or attached."""


def ensure_registry_binary() -> str:
    """The docker-registry binary, installed with apt-get (as ``harness.ospkgs``) when missing."""
    if not os.path.exists(REGISTRY_BINARY):
        from .ospkgs import ensure

        if ensure(["docker-registry"]) != 0 or not os.path.exists(REGISTRY_BINARY):
            raise RegistryError(
                f"{REGISTRY_BINARY} is missing: install Debian's docker-registry "
                "(apt-get install docker-registry)"
            )
    return REGISTRY_BINARY


def bcrypt_hash(password: str) -> str:
    """A ``$2y$`` bcrypt hash (what the registry's htpasswd auth accepts), from libcrypt."""
    name = ctypes.util.find_library("crypt")
    if not name:
        raise RegistryError("libcrypt was not found: cannot write an htpasswd file")
    lib = ctypes.CDLL(name)
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt.restype = ctypes.c_char_p
    salt = lib.crypt_gensalt(b"$2y$", 5, None, 0)
    hashed = lib.crypt(password.encode(), salt) if salt else None
    if not hashed or not hashed.startswith(b"$2"):
        raise RegistryError("libcrypt cannot make bcrypt hashes here")
    return str(hashed.decode())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config_yaml(
    storage: str,
    port: int,
    tls: tuple[str, str] | None,
    htpasswd: str | None,
    token: dict[str, Any] | None = None,
) -> str:
    """docker-registry's config.yml (distribution's configuration), written with PyYAML."""
    import yaml

    http: dict[str, Any] = {
        "addr": f"127.0.0.1:{port}",
        "secret": secrets.token_hex(16),
        "headers": {"X-Content-Type-Options": ["nosniff"]},
    }
    if tls is not None:
        http["tls"] = {"certificate": tls[0], "key": tls[1]}
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": storage},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": http,
    }
    if htpasswd is not None:
        config["auth"] = {"htpasswd": {"realm": "basic-realm", "path": htpasswd}}
    elif token is not None:
        config["auth"] = {"token": token}
    return str(yaml.safe_dump(config, sort_keys=False))


@dataclass
class Registry:
    """One running ``docker-registry serve``; ``url`` is its base URL on host loopback."""

    directory: str
    storage: str
    port: int
    process: subprocess.Popen[bytes] | None
    tls: bool = False
    auth: tuple[str, str] | None = None
    ca_pem: bytes = b""
    token: Any = None  # harness.registry_token.TokenServer when the registry wants bearer tokens
    _inbound: list[Any] = field(default_factory=list)
    _owns_storage: bool = False

    # -- lifecycle --------------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        storage: str | None = None,
        tls: bool = False,
        auth: tuple[str, str] | None = None,
        timeout: float = 20.0,
        token_users: dict[str, str] | None = None,
    ) -> Registry:
        """Start ``docker-registry serve``; ``auth``: htpasswd basic auth; ``token_users``: bearer tokens
        from a ``TokenServer`` (``harness.registry_token``) that knows these users."""
        binary = ensure_registry_binary()
        directory = tempfile.mkdtemp(prefix="harness-registry-")
        owns = storage is None
        storage = storage or os.path.join(directory, "storage")
        os.makedirs(storage, exist_ok=True)
        tls_files: tuple[str, str] | None = None
        ca_pem = b""
        if tls:
            import trustme

            ca = trustme.CA()
            leaf = ca.issue_cert("127.0.0.1", "localhost", SECURE_ADDRESS)
            tls_files = (os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem"))
            leaf.cert_chain_pems[0].write_to_path(tls_files[0])
            leaf.private_key_pem.write_to_path(tls_files[1])
            ca_pem = ca.cert_pem.bytes()
            with open(os.path.join(directory, "ca.crt"), "wb") as fh:
                fh.write(ca_pem)
        htpasswd = None
        if auth is not None:
            htpasswd = os.path.join(directory, "htpasswd")
            with open(htpasswd, "w") as fh:
                fh.write(f"{auth[0]}:{bcrypt_hash(auth[1])}\n")
        token = None
        if token_users is not None:
            from .registry_token import TokenServer

            token = TokenServer(directory, token_users)
        last = ""
        for _ in range(5):  # a free port can be taken between probing and binding: try another
            port = _free_port()
            config = os.path.join(directory, "config.yml")
            with open(config, "w") as fh:
                fh.write(
                    _config_yaml(storage, port, tls_files, htpasswd, token.auth_config() if token else None)
                )
            log = open(os.path.join(directory, "registry.log"), "ab")  # noqa: SIM115 - handed to the child
            try:
                proc = subprocess.Popen(
                    [binary, "serve", config],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": directory},
                )
            finally:
                log.close()
            reg = cls(directory, storage, port, proc, tls, auth, ca_pem, token, _owns_storage=owns)
            try:
                reg._wait_ready(timeout)
                return reg
            except RegistryError as exc:
                last = str(exc)
                reg.close(remove=False)
        if token is not None:
            token.close()
        shutil.rmtree(directory, ignore_errors=True)
        raise RegistryError(f"docker-registry did not start: {last}")

    def _wait_ready(self, timeout: float) -> None:
        from .wait import wait_until

        def exited() -> bool:
            return self.process is not None and self.process.poll() is not None

        if wait_until(lambda: self.get_status("/v2/") in (200, 401), timeout, interval=0.05, abort=exited):
            return
        if exited():
            assert self.process is not None
            raise RegistryError(f"docker-registry exited with {self.process.returncode}: {self.log_tail()}")
        raise RegistryError(f"GET {self.url}/v2/ did not answer within {timeout:.0f} s: {self.log_tail()}")

    def log_tail(self, lines: int = 10) -> str:
        try:
            with open(os.path.join(self.directory, "registry.log"), errors="replace") as fh:
                return "".join(fh.readlines()[-lines:]).strip()
        except OSError:
            return ""

    def close(self, remove: bool = True) -> None:
        """Stop relays and the registry process; remove its files (and storage it made itself)."""
        for inbound in self._inbound:
            inbound.close()
        self._inbound.clear()
        if self.token is not None:
            self.token.close()
        proc = self.process
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if remove:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- addresses --------------------------------------------------------------------------------
    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``: the address on the host and, once attached, in a daemon's netns."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def ca_path(self) -> str:
        return os.path.join(self.directory, "ca.crt")

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        return ssl.create_default_context(cadata=self.ca_pem.decode())

    def get_status(self, path: str) -> int:
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=self.ssl_context())
        )
        try:
            with opener.open(self.url + path, timeout=2) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (OSError, ValueError):
            return 0

    # -- content ----------------------------------------------------------------------------------
    def seed(self) -> list[str]:
        """Push the seed images (``harness.registry_images.SEED``); their ``repo:tag`` names."""
        from .registry_images import build_seed, push_image

        names = []
        for image in build_seed():
            push_image(self.url, image, self.auth, self.ssl_context())
            names.append(f"{image.repo}:{image.tag}")
        return names

    def push(self, image: Any, repo: str | None = None) -> str:
        from .registry_images import push_image

        return push_image(self.url, image, self.auth, self.ssl_context(), repo)

    # -- daemons ------------------------------------------------------------------------------------
    def attach(self, handle: Any, host: str = "127.0.0.1") -> str:
        """Make the registry reachable at ``host:<port>`` inside the daemon's network namespace.

        Returns that ``host:port``. The relay lives as long as this registry (or until ``close``).
        """
        from .netns import Inbound, add_address

        netns = _netns_file(handle)
        if not host.startswith("127."):
            add_address(netns, host)
        relays = [Inbound(netns, ("127.0.0.1", self.port), (host, self.port))]
        if self.token is not None:  # the token realm (http://127.0.0.1:<port>/token) must answer there too
            with contextlib.suppress(OSError):  # already relayed into this namespace
                relays.append(Inbound(netns, ("127.0.0.1", self.token.port), ("127.0.0.1", self.token.port)))
        self._inbound.extend(relays)
        inbound = relays[0]

        def detach() -> None:  # DaemonFactory runs it before the daemon's teardown
            for relay in relays:
                relay.close()
                with contextlib.suppress(ValueError):
                    self._inbound.remove(relay)

        handle.extras.setdefault("cleanups", []).append(detach)
        return inbound.address

    def trust(self, handle: Any, host: str | None = None) -> str:
        """Write this registry's CA as ``certs.d/<host>/ca.crt`` where the daemon reads it; returns the path.

        refd and dockerd read ``/etc/docker/certs.d`` at each pull. A daemon running from a cached rootfs
        (the dockerd-N targets) sees its own ``/etc``: the file is written through ``/proc/<pid>/root``.
        A daemon sharing the host's ``/`` gets a private tmpfs on ``/etc/docker/certs.d`` in its own
        mount namespace first, so nothing is written to the host's ``/etc``.
        """
        name = host or self.host
        pid = handle.pid
        root = f"/proc/{pid}/root"
        theirs, ours = os.stat(os.path.join(root, "etc")), os.stat("/etc")
        if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
            _private_certs_dir(pid)
        target = os.path.join(root, "etc/docker/certs.d", name)
        os.makedirs(target, exist_ok=True)
        path = os.path.join(target, "ca.crt")
        with open(path, "wb") as fh:
            fh.write(self.ca_pem)
        return path


def _netns_file(handle: Any) -> str:
    """The daemon's netns: the local backend's kept ``<workdir>/ns/net``, else /proc/<pid>/ns/net."""
    kept = os.path.join(handle.workdir, "ns", "net")
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as fh:
        real = os.path.realpath(kept)
        if any(line.split()[4] == real and " - nsfs " in line for line in fh):
            return kept
    path = handle.netns_path or f"/proc/{handle.pid}/ns/net"
    if not path or not os.path.exists(path):
        raise RegistryError(f"the daemon (pid {handle.pid}) has no network namespace to attach a registry to")
    return str(path)


def _private_certs_dir(pid: int) -> None:
    """A tmpfs on /etc/docker/certs.d inside the mount namespace of ``pid`` (once)."""
    script = (
        "grep -q ' /etc/docker/certs.d ' /proc/self/mountinfo || "
        "{ mkdir -p /etc/docker/certs.d && "
        "mount -t tmpfs -o mode=0755,size=1m harness-certs /etc/docker/certs.d; }"
    )
    proc = subprocess.run(
        ["nsenter", f"--mount=/proc/{pid}/ns/mnt", "sh", "-c", script], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RegistryError(f"a private certs.d for pid {pid}: {proc.stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    """``harness registry``: run a seeded registry on host loopback until interrupted."""
    import argparse
    import sys
    import threading

    parser = argparse.ArgumentParser(
        prog="harness registry",
        description="run Debian's docker-registry on 127.0.0.1 seeded with the busybox-built test images",
    )
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a certificate from a private CA")
    parser.add_argument("--auth", metavar="USER:PASSWORD", help="require htpasswd basic auth")
    parser.add_argument("--storage", metavar="DIR", help="storage directory (default: a temporary one)")
    parser.add_argument("--no-seed", action="store_true", help="do not push the seed images")
    opts = parser.parse_args(argv)
    auth = None
    if opts.auth:
        user, sep, password = opts.auth.partition(":")
        if not sep or not user:
            parser.error("--auth takes USER:PASSWORD")
        auth = (user, password)
    stop = threading.Event()
    for signo in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signo, lambda *_: stop.set())
    try:
        reg = Registry.start(opts.storage, tls=opts.tls, auth=auth)
    except HarnessError as exc:
        print(f"harness registry: {exc}", file=sys.stderr)
        return 1
    try:
        names = [] if opts.no_seed else reg.seed()
        print(f"export REGISTRY={reg.host}")
        print(f"export REGISTRY_URL={reg.url}")
        if reg.tls:
            print(f"export REGISTRY_CA={reg.ca_path}")
        if names:
            print(f"# seeded: {', '.join(names)}")
        print(
            f"# storage {reg.storage}; use it as a Docker Hub mirror with --registry-mirror={reg.url} "
            "(daemons booted by 'harness boot --registry' reach it in their own network namespace); "
            "Ctrl-C or SIGTERM stops it",
            flush=True,
        )
        while not stop.wait(0.5):
            if reg.process is not None and reg.process.poll() is not None:
                print(f"harness registry: docker-registry exited: {reg.log_tail()}", file=sys.stderr)
                return 1
        return 0
    finally:
        reg.close()
