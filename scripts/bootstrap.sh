#!/bin/sh
# Prepare a fresh Debian 12 or 13 machine (as root) to run the harness's nox sessions:
# a private virtualenv in .venv with nox, so nothing is pip-installed into the system
# Python (Debian 12's python3 is externally managed, PEP 668). OS packages the sessions
# need (docker.io, busybox-static, iptables) are installed by the sessions themselves.
set -eu
cd "$(dirname "$0")/.."
need=""
command -v python3 >/dev/null 2>&1 || need="$need python3"
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need="$need python3-venv"
command -v git >/dev/null 2>&1 || need="$need git"
if [ -n "$need" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "bootstrap: installing$need with apt-get"
        # wait for another apt or dpkg (unattended-upgrades, a parallel session) rather than fail
        apt-get -o DPkg::Lock::Timeout=600 update -qq
        # shellcheck disable=SC2086  # $need is a list of package names
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq $need
    else
        echo "bootstrap: missing$need; install them (apt-get install$need) and re-run" >&2
        exit 1
    fi
fi
python3 - <<'PY' || { echo "bootstrap: Python >= 3.11 is required" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
if [ ! -x .venv/bin/nox ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --upgrade pip
    .venv/bin/pip install --quiet "nox>=2024.3"
fi
echo "bootstrap: ready; run .venv/bin/nox -s tests or .venv/bin/nox -s conformance"
