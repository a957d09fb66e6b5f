"""The walkthrough's own words: the commands and files of ``docs/tutorial.md``'s source, verbatim.

Each constant is copied from the tutorial as published; the ``*_CORRECTED`` ones are the project's
corrections, which ``docs/tutorial.md`` explains step by step. A scenario renders a command for its daemon
with ``box.flavour.subst()`` (``docker`` -> ``refd`` for refd's units; identity for dockerd).
"""

from __future__ import annotations

__all__ = [
    "EXAMPLE_DAEMON_JSON",
    "OPENSSL_AS_WRITTEN",
    "OPENSSL_CORRECTED",
    "OVERRIDE_AS_WRITTEN",
    "TLS_DAEMON_JSON",
    "UNIT_EXAMPLE",
]

#: "The Daemon Configuration File", Example
EXAMPLE_DAEMON_JSON = """{
  "debug": true,
  "log-driver": "json-file",
  "log-opts": {
    "max-size": "10m",
    "max-file": "3"
  },
  "storage-driver": "overlay2",
  "insecure-registries": ["myregistry.local:5000"],
  "hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2376"],
  "tlsverify": true,
  "tlscacert": "/etc/docker/ca.pem",
  "tlscert": "/etc/docker/server-cert.pem",
  "tlskey": "/etc/docker/server-key.pem"
}
"""

#: "TLS Encryption for Remote Access", step 1
OPENSSL_AS_WRITTEN = """mkdir -p ~/certs
cd ~/certs

# CA key and certificate
openssl genrsa -out ca-key.pem 4096
openssl req -x509 -new -nodes -key ca-key.pem -days 365 -out ca.pem -subj "/CN=docker-ca"

# Server key and cert
openssl genrsa -out server-key.pem 4096
openssl req -new -key server-key.pem -out server.csr -subj "/CN=$(hostname)"
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out server-cert.pem -days 365

# Client key and cert
openssl genrsa -out key.pem 4096
openssl req -new -key key.pem -out client.csr -subj "/CN=client"
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out cert.pem -days 365
"""

#: step 1 corrected as Docker's own "Protect the Docker daemon socket" does it: the server certificate
#: names the host (and the address clients dial) in subjectAltName, and each leaf says what it is for
OPENSSL_CORRECTED = """mkdir -p ~/certs
cd ~/certs

# CA key and certificate
openssl genrsa -out ca-key.pem 4096
openssl req -x509 -new -nodes -key ca-key.pem -days 365 -out ca.pem -subj "/CN=docker-ca"

# Server key and cert: the names clients dial go in subjectAltName
openssl genrsa -out server-key.pem 4096
openssl req -new -key server-key.pem -out server.csr -subj "/CN=$(hostname)"
echo "subjectAltName = DNS:$(hostname),IP:127.0.0.1" > extfile.cnf
echo "extendedKeyUsage = serverAuth" >> extfile.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out server-cert.pem \\
  -days 365 -extfile extfile.cnf

# Client key and cert
openssl genrsa -out key.pem 4096
openssl req -new -key key.pem -out client.csr -subj "/CN=client"
echo "extendedKeyUsage = clientAuth" > extfile-client.cnf
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out cert.pem \\
  -days 365 -extfile extfile-client.cnf
"""

#: "TLS Encryption for Remote Access", step 2
TLS_DAEMON_JSON = """{
  "hosts": ["tcp://0.0.0.0:2376", "unix:///var/run/docker.sock"],
  "tlsverify": true,
  "tlscacert": "/etc/docker/ca.pem",
  "tlscert": "/etc/docker/server-cert.pem",
  "tlskey": "/etc/docker/server-key.pem"
}
"""

#: "How systemd Calls Docker Daemon": the override typed into ``systemctl edit docker``
OVERRIDE_AS_WRITTEN = """[Service]
ExecStart=
ExecStart=/usr/bin/dockerd --debug -H tcp://0.0.0.0:2376
"""

#: "How systemd Calls Docker Daemon": the [Service] section the tutorial shows as docker.service's
UNIT_EXAMPLE = {
    "ExecStart": "/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock",
    "ExecReload": "/bin/kill -s HUP $MAINPID",
    "LimitNOFILE": "1048576",
    "LimitNPROC": "1048576",
    "LimitCORE": "infinity",
    "TimeoutStartSec": "0",
    "Delegate": "yes",
    "KillMode": "process",
    "Restart": "on-failure",
}
