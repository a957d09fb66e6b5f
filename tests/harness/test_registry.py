"""The registry fixture's parts: htpasswd hashes, config, deterministic seed images, the Inbound relay."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import threading

import pytest

from harness.netns import Inbound
from harness.registry import _config_yaml, bcrypt_hash
from harness.registry_images import MT_LIST, MT_OCI_INDEX, build_seed


def test_bcrypt_hash_is_bcrypt() -> None:
    hashed = bcrypt_hash("s3cret")
    assert hashed.startswith("$2y$05$") and len(hashed) == 60


def test_config_yaml() -> None:
    text = _config_yaml("/s", 5000, ("/c.pem", "/k.pem"), "/htpasswd")
    assert "addr: 127.0.0.1:5000" in text and "rootdirectory: /s" in text
    assert "certificate: /c.pem" in text and "path: /htpasswd" in text
    assert "tls:" not in _config_yaml("/s", 1, None, None)


def test_seed_images_are_deterministic_and_consistent() -> None:
    first, second = build_seed(), build_seed()
    assert [i.digest for i in first] == [i.digest for i in second]
    for image in first:
        doc = json.loads(image.manifest)
        blobs = {b.digest for b in image.blobs}
        if image.media_type in (MT_LIST, MT_OCI_INDEX):
            children = {"sha256:" + hashlib.sha256(raw).hexdigest() for raw, _ in image.children}
            assert {m["digest"] for m in doc["manifests"]} == children
        else:
            assert doc["config"]["digest"] in blobs
            assert {layer["digest"] for layer in doc["layers"]} <= blobs
    names = {f"{i.repo}:{i.tag}" for i in first}
    assert {"library/busybox:latest", "library/alpine:3.10", "library/hello-world:latest"} <= names


@pytest.mark.skipif(os.geteuid() != 0, reason="unshare --net needs root")
def test_inbound_relays_from_a_netns_to_the_host() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"host:" + conn.recv(100))

    threading.Thread(target=serve, daemon=True).start()
    holder = subprocess.Popen(["unshare", "--net", "sh", "-c", "ip link set lo up; sleep 30"])
    try:
        netns = f"/proc/{holder.pid}/ns/net"
        for _ in range(100):
            if os.stat(netns).st_ino != os.stat("/proc/self/ns/net").st_ino:
                break
        subprocess.run(["nsenter", f"--net={netns}", "ip", "link", "set", "lo", "up"], check=True)
        inbound = Inbound(netns, ("127.0.0.1", port), ("127.0.0.1", port))
        try:
            connect = f"s=socket.create_connection(('127.0.0.1',{port}))"
            client = f"import socket;{connect};s.sendall(b'hi');print(s.recv(9))"
            out = subprocess.run(
                ["nsenter", f"--net={netns}", "python3", "-c", client],
                capture_output=True,
                text=True,
                timeout=20,
            )
            assert out.stdout.strip() == "b'host:hi'", out.stderr
        finally:
            inbound.close()
    finally:
        holder.kill()
        holder.wait()
        server.close()
