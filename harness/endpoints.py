"""Where a daemon answers: one value that renders as a URL, SDK kwargs and DOCKER_HOST env."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

__all__ = ["Endpoint", "TLSFiles"]


@dataclass(frozen=True)
class TLSFiles:
    """Client TLS material in DOCKER_CERT_PATH layout (ca.pem, cert.pem, key.pem)."""

    ca: str
    cert: str | None = None
    key: str | None = None
    cert_dir: str | None = None
    verify: bool = True


@dataclass(frozen=True)
class Endpoint:
    """A daemon address as seen from the harness (TCP ports may be forwarded out of a netns)."""

    kind: Literal["unix", "tcp"]
    address: str  # socket path for unix, host:port for tcp
    tls: TLSFiles | None = None

    @property
    def docker_host(self) -> str:
        return f"unix://{self.address}" if self.kind == "unix" else f"tcp://{self.address}"

    def base_url(self) -> str:
        """A base URL for requests (+requests-unixsocket for unix)."""
        if self.kind == "unix":
            return "http+unix://" + quote(self.address, safe="")
        return ("https://" if self.tls else "http://") + self.address

    def env(self) -> dict[str, str]:
        """Environment for the docker CLI and docker.from_env()."""
        env = {"DOCKER_HOST": self.docker_host}
        if self.tls is not None:
            if self.tls.cert_dir:
                env["DOCKER_CERT_PATH"] = self.tls.cert_dir
            if self.tls.verify:
                env["DOCKER_TLS_VERIFY"] = "1"
        return env

    def sdk_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``docker.DockerClient``."""
        kwargs: dict[str, Any] = {"base_url": self.docker_host, "version": "auto"}
        if self.tls is not None:
            import docker.tls

            kwargs["tls"] = docker.tls.TLSConfig(
                client_cert=(self.tls.cert, self.tls.key) if self.tls.cert and self.tls.key else None,
                ca_cert=self.tls.ca, verify=self.tls.verify)
        return kwargs

    def cli_args(self) -> list[str]:
        """Global docker CLI flags selecting this endpoint."""
        args = ["-H", self.docker_host]
        if self.tls is not None:
            args += ["--tlsverify" if self.tls.verify else "--tls", f"--tlscacert={self.tls.ca}"]
            if self.tls.cert and self.tls.key:
                args += [f"--tlscert={self.tls.cert}", f"--tlskey={self.tls.key}"]
        return args
