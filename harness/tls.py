"""TLS material minted with trustme, written as dockerd and the docker CLI expect it.

Server files for ``--tlscacert/--tlscert/--tlskey``; a client directory in
``DOCKER_CERT_PATH`` layout (ca.pem, cert.pem, key.pem); plus rogue variants (a client
certificate from another CA, an expired one) for the must-fail cases.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

__all__ = ["TLSMaterial", "mint_tls_material"]


@dataclass(frozen=True)
class TLSMaterial:
    directory: str
    ca: str
    server_cert: str
    server_key: str
    client_dir: str
    client_cert: str
    client_key: str
    rogue_client_dir: str
    expired_client_dir: str
    wrong_name_server_cert: str
    wrong_name_server_key: str

    def daemon_args(self, verify: bool = True) -> list[str]:
        args = [f"--tlscacert={self.ca}", f"--tlscert={self.server_cert}", f"--tlskey={self.server_key}"]
        return [*args, "--tlsverify"] if verify else [*args, "--tls", "--tlsverify=false"]


def _write_client(ca_cert_pem: bytes, leaf: object, directory: str) -> tuple[str, str]:
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "ca.pem"), "wb") as fh:
        fh.write(ca_cert_pem)
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    leaf.cert_chain_pems[0].write_to_path(cert)  # type: ignore[attr-defined]
    leaf.private_key_pem.write_to_path(key)  # type: ignore[attr-defined]
    return cert, key


def mint_tls_material(directory: str) -> TLSMaterial:
    """Mint a CA, server leaf (127.0.0.1, localhost) and client leaves into ``directory``."""
    import trustme

    os.makedirs(directory, exist_ok=True)
    ca = trustme.CA()
    ca_path = os.path.join(directory, "ca.pem")
    ca.cert_pem.write_to_path(ca_path)
    server = ca.issue_cert("127.0.0.1", "localhost", "::1")
    server_cert = os.path.join(directory, "server-cert.pem")
    server_key = os.path.join(directory, "server-key.pem")
    server.cert_chain_pems[0].write_to_path(server_cert)
    server.private_key_pem.write_to_path(server_key)
    wrong = ca.issue_cert("not-this-host.invalid")
    wrong_cert = os.path.join(directory, "wrong-cert.pem")
    wrong_key = os.path.join(directory, "wrong-key.pem")
    wrong.cert_chain_pems[0].write_to_path(wrong_cert)
    wrong.private_key_pem.write_to_path(wrong_key)
    client_dir = os.path.join(directory, "client")
    client_cert, client_key = _write_client(ca.cert_pem.bytes(), ca.issue_cert("client"), client_dir)
    rogue_ca = trustme.CA()
    rogue_dir = os.path.join(directory, "rogue-client")
    _write_client(ca.cert_pem.bytes(), rogue_ca.issue_cert("client"), rogue_dir)
    expired_dir = os.path.join(directory, "expired-client")
    past = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    expired = ca.issue_cert("client", not_before=past, not_after=past + datetime.timedelta(days=1))
    _write_client(ca.cert_pem.bytes(), expired, expired_dir)
    return TLSMaterial(
        directory,
        ca_path,
        server_cert,
        server_key,
        client_dir,
        client_cert,
        client_key,
        rogue_dir,
        expired_dir,
        wrong_cert,
        wrong_key,
    )
