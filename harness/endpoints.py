"""Where a daemon answers: one value that renders as a URL, SDK kwargs and DOCKER_HOST env."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from .errors import HarnessError

__all__ = ["Endpoint", "TLSFiles"]


@dataclass(frozen=True)
class TLSFiles:
    """Client TLS material in DOCKER_CERT_PATH layout (ca.pem, cert.pem, key.pem)."""

    ca: str
    cert: str | None = None
    key: str | None = None
    cert_dir: str | None = None
    verify: bool = True

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise HarnessError(
                f"TLSFiles needs both cert and key or neither (got cert={self.cert!r}, key={self.key!r})"
            )

    def docker_cert_path(self) -> str | None:
        """A directory the docker CLI and docker-py read as DOCKER_CERT_PATH, if these files form one.

        ``cert_dir`` when given; otherwise the CA's directory when it is named ``ca.pem`` and the client
        pair (if any) sits next to it as ``cert.pem``/``key.pem``.
        """
        if self.cert_dir:
            return self.cert_dir
        directory = os.path.dirname(os.path.abspath(self.ca))
        if os.path.basename(self.ca) != "ca.pem":
            return None
        if self.cert is None:
            has_pair = os.path.exists(os.path.join(directory, "cert.pem"))
            return None if has_pair else directory  # the CLI would pick up a client pair we did not choose
        same = os.path.abspath(self.cert) == os.path.join(directory, "cert.pem") and os.path.abspath(
            self.key or ""
        ) == os.path.join(directory, "key.pem")
        return directory if same else None


@dataclass(frozen=True)
class Endpoint:
    """A daemon address as seen from the harness (TCP ports may be forwarded out of a netns)."""

    kind: Literal["unix", "tcp"]
    address: str  # socket path for unix, host:port for tcp
    tls: TLSFiles | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("unix", "tcp"):
            raise HarnessError(
                f"unknown endpoint kind {self.kind!r}: expected 'unix' or 'tcp' (TLS is a tcp "
                "endpoint with TLSFiles)"
            )
        if not self.address:
            raise HarnessError(f"{self.kind} endpoint needs an address")
        if self.kind == "unix" and self.tls is not None:
            raise HarnessError(f"TLS is only spoken over tcp, not on unix socket {self.address}")
        if self.kind == "tcp":
            host, sep, port = self.address.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise HarnessError(f"tcp endpoint address must be host:port, got {self.address!r}")

    @property
    def docker_host(self) -> str:
        return f"unix://{self.address}" if self.kind == "unix" else f"tcp://{self.address}"

    def base_url(self) -> str:
        """A base URL for requests (+requests-unixsocket for unix)."""
        if self.kind == "unix":
            return "http+unix://" + quote(self.address, safe="")
        return ("https://" if self.tls else "http://") + self.address

    def env(self) -> dict[str, str]:
        """Environment for the docker CLI and docker.from_env().

        TLS files reach both clients only as a DOCKER_CERT_PATH directory; files that do not form
        one raise HarnessError (use ``cli_args()`` or ``sdk_kwargs()`` for those).
        """
        env = {"DOCKER_HOST": self.docker_host}
        if self.tls is not None:
            cert_path = self.tls.docker_cert_path()
            if cert_path is None:
                raise HarnessError(
                    f"TLS files {self.tls.ca}, {self.tls.cert}, {self.tls.key} are not in "
                    "DOCKER_CERT_PATH layout (ca.pem, cert.pem, key.pem in one directory): "
                    "set TLSFiles.cert_dir or use cli_args()/sdk_kwargs()"
                )
            env["DOCKER_CERT_PATH"] = cert_path
            if self.tls.verify:
                env["DOCKER_TLS_VERIFY"] = "1"
            else:
                env["DOCKER_TLS"] = "1"  # the CLI's switch for TLS without verification
        return env

    def sdk_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``docker.DockerClient``.

        A client built from these still honours REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE, which requests lets
        override the TLS CA given here; ``sdk_client()`` builds one that does not.
        """
        kwargs: dict[str, Any] = {"base_url": self.docker_host, "version": "auto"}
        if self.tls is not None:
            import docker.tls

            kwargs["tls"] = docker.tls.TLSConfig(
                client_cert=(self.tls.cert, self.tls.key) if self.tls.cert and self.tls.key else None,
                ca_cert=self.tls.ca,
                verify=self.tls.verify,
            )
        return kwargs

    def sdk_client(self, **overrides: Any) -> Any:
        """A ``docker.DockerClient`` for this endpoint, deaf to CA bundles and proxies in the environment.

        ``version="auto"`` is negotiated only after ``trust_env`` is off, so even the first request
        verifies the daemon against this endpoint's CA. Close it with ``client.close()``.
        """
        import docker

        kwargs = {**self.sdk_kwargs(), **overrides}
        version = kwargs.pop("version", None)
        auto = version in (None, "auto")
        client = docker.DockerClient(
            version=docker.constants.DEFAULT_DOCKER_API_VERSION if auto else version, **kwargs
        )
        client.api.trust_env = False
        from .apitrace import response_hook

        client.api.hooks["response"].append(response_hook)  # the plugin's schema checks
        if auto:
            try:
                client.api._version = client.api._retrieve_server_version()
            except BaseException:
                client.close()
                raise
        return client

    def cli_args(self) -> list[str]:
        """Global docker CLI flags selecting this endpoint."""
        args = ["-H", self.docker_host]
        if self.tls is not None:
            args += ["--tlsverify" if self.tls.verify else "--tls", f"--tlscacert={self.tls.ca}"]
            if self.tls.cert and self.tls.key:
                args += [f"--tlscert={self.tls.cert}", f"--tlskey={self.tls.key}"]
        return args
