"""Endpoint renders one address as URL, DOCKER_HOST env, CLI flags and SDK kwargs; each really connects."""

from __future__ import annotations

import gc
import os
import socket
import warnings

import docker
import docker.errors
import pytest
import requests
from docker.utils import kwargs_from_env

from harness.client import EngineClient
from harness.endpoints import Endpoint, TLSFiles
from harness.errors import HarnessError
from harness.tls import TLSMaterial


def _client_files(tls: TLSMaterial, verify: bool = True) -> TLSFiles:
    return TLSFiles(
        ca=os.path.join(tls.client_dir, "ca.pem"), cert=tls.client_cert, key=tls.client_key, verify=verify
    )


# unix -------------------------------------------------------------------------------------------------------
def test_unix_renders_everywhere() -> None:
    ep = Endpoint("unix", "/run/some dir/docker.sock")
    assert ep.docker_host == "unix:///run/some dir/docker.sock"
    assert ep.base_url() == "http+unix://%2Frun%2Fsome%20dir%2Fdocker.sock"
    assert ep.env() == {"DOCKER_HOST": "unix:///run/some dir/docker.sock"}
    assert ep.cli_args() == ["-H", "unix:///run/some dir/docker.sock"]
    assert ep.sdk_kwargs() == {"base_url": "unix:///run/some dir/docker.sock", "version": "auto"}


def test_unix_endpoint_reaches_its_server(unix_http: str) -> None:
    client = EngineClient(Endpoint("unix", unix_http))
    try:
        assert client.get("/_ping").text == "OK"
        assert client.get("/v1.41/version").json()["ApiVersion"] == "1.41"
    finally:
        client.close()


def test_unix_endpoint_without_server_fails(tmp_path: os.PathLike[str]) -> None:
    client = EngineClient(Endpoint("unix", os.path.join(tmp_path, "nobody.sock")), timeout=2)
    try:
        with pytest.raises(requests.ConnectionError):
            client.get("/_ping")
    finally:
        client.close()


# tcp --------------------------------------------------------------------------------------------------------
def test_tcp_renders_everywhere() -> None:
    ep = Endpoint("tcp", "127.0.0.1:2375")
    assert (ep.docker_host, ep.base_url()) == ("tcp://127.0.0.1:2375", "http://127.0.0.1:2375")
    assert ep.env() == {"DOCKER_HOST": "tcp://127.0.0.1:2375"}
    assert ep.cli_args() == ["-H", "tcp://127.0.0.1:2375"]
    assert Endpoint("tcp", "[::1]:2375").base_url() == "http://[::1]:2375"


def test_tcp_endpoint_reaches_its_server(tcp_http: str) -> None:
    client = EngineClient(Endpoint("tcp", tcp_http))
    try:
        assert client.get("/_ping").status_code == 200
    finally:
        client.close()


def test_tcp_endpoint_on_closed_port_fails() -> None:
    with socket.socket() as probe:  # a port that was just free and has no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = EngineClient(Endpoint("tcp", f"127.0.0.1:{port}"), timeout=2)
    try:
        with pytest.raises(requests.ConnectionError):
            client.get("/_ping")
    finally:
        client.close()


@pytest.mark.parametrize(
    ("kind", "address", "needle"),
    [
        ("http", "127.0.0.1:2375", "unknown endpoint kind"),
        ("tcp", "127.0.0.1", "host:port"),
        ("tcp", "127.0.0.1:docker", "host:port"),
        ("tcp", "127.0.0.1:70000", "host:port"),
        ("unix", "", "needs an address"),
    ],
)
def test_malformed_endpoints_are_refused(kind: str, address: str, needle: str) -> None:
    with pytest.raises(HarnessError, match=needle):
        Endpoint(kind, address)  # type: ignore[arg-type]


def test_tls_on_a_unix_socket_is_refused(tls_files: TLSMaterial) -> None:
    with pytest.raises(HarnessError, match="only spoken over tcp"):
        Endpoint("unix", "/run/docker.sock", TLSFiles(tls_files.ca))


# tls --------------------------------------------------------------------------------------------------------
def test_tls_renders_cli_flags(tls_files: TLSMaterial) -> None:
    files = _client_files(tls_files)
    ep = Endpoint("tcp", "127.0.0.1:2376", files)
    assert ep.docker_host == "tcp://127.0.0.1:2376"
    assert ep.base_url() == "https://127.0.0.1:2376"
    assert ep.cli_args() == [
        "-H",
        "tcp://127.0.0.1:2376",
        "--tlsverify",
        f"--tlscacert={files.ca}",
        f"--tlscert={files.cert}",
        f"--tlskey={files.key}",
    ]
    no_verify = Endpoint("tcp", "127.0.0.1:2376", TLSFiles(tls_files.ca, verify=False))
    assert no_verify.cli_args() == ["-H", "tcp://127.0.0.1:2376", "--tls", f"--tlscacert={tls_files.ca}"]


def test_tls_env_is_what_docker_py_reads_back(tls_files: TLSMaterial) -> None:
    ep = Endpoint("tcp", "127.0.0.1:2376", _client_files(tls_files))
    env = ep.env()
    assert env == {
        "DOCKER_HOST": "tcp://127.0.0.1:2376",
        "DOCKER_CERT_PATH": tls_files.client_dir,
        "DOCKER_TLS_VERIFY": "1",
    }
    kwargs = kwargs_from_env(environment=env)
    assert kwargs["tls"].cert == (tls_files.client_cert, tls_files.client_key)
    assert kwargs["tls"].verify and kwargs["tls"].ca_cert == os.path.join(tls_files.client_dir, "ca.pem")
    api = docker.APIClient(version="1.41", **kwargs)  # a fixed version makes no request
    try:
        assert api.base_url == "https://127.0.0.1:2376"
    finally:
        api.close()


def test_tls_env_without_verify_still_turns_tls_on(tls_files: TLSMaterial) -> None:
    env = Endpoint("tcp", "127.0.0.1:2376", _client_files(tls_files, verify=False)).env()
    assert "DOCKER_TLS_VERIFY" not in env
    assert env["DOCKER_TLS"] == "1"  # the CLI's switch; docker-py turns TLS on from DOCKER_CERT_PATH
    kwargs = kwargs_from_env(environment=env)
    assert kwargs["tls"].verify is False
    assert kwargs["tls"].cert == (tls_files.client_cert, tls_files.client_key)


def test_tls_env_refuses_files_it_cannot_express(tls_files: TLSMaterial) -> None:
    # CA from the material directory, client pair from another: no single DOCKER_CERT_PATH holds both
    files = TLSFiles(tls_files.ca, tls_files.client_cert, tls_files.client_key)
    with pytest.raises(HarnessError, match="DOCKER_CERT_PATH layout"):
        Endpoint("tcp", "127.0.0.1:2376", files).env()
    with pytest.raises(HarnessError, match="both cert and key"):
        TLSFiles(tls_files.ca, cert=tls_files.client_cert)


def test_tls_endpoint_reaches_a_server_requiring_client_certs(tls_files: TLSMaterial, tls_http: str) -> None:
    client = EngineClient(Endpoint("tcp", tls_http, _client_files(tls_files)), timeout=5)
    try:
        assert client.get("/_ping").text == "OK"
    finally:
        client.close()


def test_tls_endpoint_without_client_cert_is_refused(tls_files: TLSMaterial, tls_http: str) -> None:
    client = EngineClient(Endpoint("tcp", tls_http, TLSFiles(tls_files.ca)), timeout=5)
    try:
        with pytest.raises(requests.exceptions.RequestException):
            client.get("/_ping")
    finally:
        client.close()


# docker SDK -------------------------------------------------------------------------------------------------
def test_sdk_kwargs_build_a_working_client(unix_http: str) -> None:
    client = docker.DockerClient(**Endpoint("unix", unix_http).sdk_kwargs())
    try:
        assert client.ping() is True
        assert client.api.api_version == "1.41"  # negotiated from /version because version="auto"
    finally:
        client.close()


def test_sdk_kwargs_for_a_missing_socket_fail(tmp_path: os.PathLike[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # docker-py leaks the refused socket, not us
        with pytest.raises(docker.errors.DockerException, match="Error while fetching server API version"):
            docker.DockerClient(**Endpoint("unix", os.path.join(tmp_path, "nobody.sock")).sdk_kwargs())
        gc.collect()


@pytest.fixture
def foreign_ca_bundle(monkeypatch: pytest.MonkeyPatch, tls_files: TLSMaterial) -> None:
    """A REQUESTS_CA_BUNDLE without our CA, as CI machines often export."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", os.path.join(tls_files.rogue_client_dir, "cert.pem"))


def test_sdk_client_speaks_tls_with_the_client_pair(
    tls_files: TLSMaterial, tls_http: str, foreign_ca_bundle: None
) -> None:
    client = Endpoint("tcp", tls_http, _client_files(tls_files)).sdk_client()
    try:
        assert client.api.base_url == f"https://{tls_http}"
        assert client.api.api_version == "1.41"
        assert client.ping() is True
    finally:
        client.close()


def test_sdk_kwargs_lose_the_ca_to_requests_ca_bundle(
    tls_files: TLSMaterial, tls_http: str, foreign_ca_bundle: None
) -> None:
    """Why sdk_client() exists: requests lets REQUESTS_CA_BUNDLE override the CA in the kwargs."""
    with pytest.raises(docker.errors.DockerException, match="CERTIFICATE_VERIFY_FAILED"):
        docker.DockerClient(**Endpoint("tcp", tls_http, _client_files(tls_files)).sdk_kwargs())


def test_sdk_kwargs_speak_tls_without_a_ca_bundle(
    tls_files: TLSMaterial, tls_http: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    client = docker.DockerClient(**Endpoint("tcp", tls_http, _client_files(tls_files)).sdk_kwargs())
    try:
        assert client.ping() is True
    finally:
        client.close()


def test_sdk_client_with_a_rogue_client_pair_is_refused(tls_files: TLSMaterial, tls_http: str) -> None:
    rogue = tls_files.rogue_client_dir
    ca, cert, key = (os.path.join(rogue, name) for name in ("ca.pem", "cert.pem", "key.pem"))
    files = TLSFiles(ca, cert, key)
    with pytest.raises(docker.errors.DockerException):
        Endpoint("tcp", tls_http, files).sdk_client()
