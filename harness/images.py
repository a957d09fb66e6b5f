"""Test images without a registry: a busybox rootfs from Debian's ``busybox-static``.

The rootfs tarball is deterministic (sorted entries, fixed mtimes and owners), so its
sha256 names it in the cache and an unchanged recipe is never rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass

from .errors import ImageBuildError

__all__ = ["BusyboxImage", "busybox_rootfs", "find_busybox", "image_cache_dir", "save_tarball"]

RECIPE_VERSION = "1"
_DIRS = (
    "bin",
    "dev",
    "etc",
    "home",
    "proc",
    "root",
    "sys",
    "tmp",
    "usr",
    "usr/bin",
    "usr/sbin",
    "sbin",
    "var",
    "var/tmp",
    "var/www",
)
_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "etc/hostname": "busybox\n",
    "var/www/index.html": "hello from harness busybox\n",
}


def image_cache_dir() -> str:
    base = os.environ.get("HARNESS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "docker-conformance-harness"
    )
    path = os.path.join(base, "images")
    os.makedirs(path, exist_ok=True)
    return path


BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")


def find_busybox() -> str:
    """The static busybox binary, or an ImageBuildError naming the package to install."""
    dynamic = []
    for path in BUSYBOX_PATHS:
        if os.path.exists(path):
            out = (
                subprocess.run(["file", "-L", path], capture_output=True, text=True).stdout
                if shutil.which("file")
                else "statically linked"
            )
            if "dynamically" not in out:
                return path
            dynamic.append(path)
    found = f" ({', '.join(dynamic)} is dynamically linked)" if dynamic else ""
    raise ImageBuildError(
        f"a static busybox was not found at {' or '.join(BUSYBOX_PATHS)}{found}: install "
        "Debian's busybox-static (apt-get install busybox-static)"
    )


def _applets(busybox: str) -> list[str]:
    try:
        out = subprocess.run([busybox, "--list-full"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ImageBuildError(f"{busybox} --list-full failed: {exc}") from None
    names = {line.strip() for line in out.splitlines()}
    return sorted(names - {"", "bin/busybox"})


def _info(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, link
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
    return info


def _link_to_busybox(applet: str) -> str:
    """A relative symlink target from ``applet`` to bin/busybox that never climbs above the rootfs."""
    if os.path.dirname(applet) == "bin":
        return "busybox"
    return "../" * applet.count("/") + "bin/busybox"


def _recipe_key(binary: bytes) -> str:
    recipe = json.dumps([RECIPE_VERSION, _DIRS, sorted(_FILES.items())]).encode()
    return hashlib.sha256(binary + recipe).hexdigest()[:16]


def _rootfs_bytes(busybox: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in sorted(_DIRS):
            tar.addfile(_info(d, tarfile.DIRTYPE, 0o1777 if d in ("tmp", "var/tmp") else 0o755))
        with open(busybox, "rb") as fh:
            data = fh.read()
        tar.addfile(_info("bin/busybox", tarfile.REGTYPE, 0o755, len(data)), io.BytesIO(data))
        for applet in _applets(busybox):
            tar.addfile(_info(applet, tarfile.SYMTYPE, 0o777, link=_link_to_busybox(applet)))
        for name, text in sorted(_FILES.items()):
            raw = text.encode()
            tar.addfile(_info(name, tarfile.REGTYPE, 0o644, len(raw)), io.BytesIO(raw))
    return buf.getvalue()


@dataclass(frozen=True)
class BusyboxImage:
    """A cached busybox rootfs tarball and its digest."""

    path: str
    digest: str
    cmd: tuple[str, ...] = ("sh",)

    def read(self) -> bytes:
        with open(self.path, "rb") as fh:
            return fh.read()


def busybox_rootfs() -> BusyboxImage:
    """Build (or reuse) the busybox rootfs tarball; keyed by the binary and recipe hash."""
    busybox = find_busybox()
    with open(busybox, "rb") as fh:
        key = _recipe_key(fh.read())
    cache = image_cache_dir()
    path = os.path.join(cache, f"busybox-rootfs-{key}.tar")
    if not os.path.exists(path):
        data = _rootfs_bytes(busybox)
        fd, tmp = tempfile.mkstemp(dir=cache, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    with open(path, "rb") as fh:
        digest = "sha256:" + hashlib.sha256(fh.read()).hexdigest()
    return BusyboxImage(path, digest)


def _docker_arch() -> str:
    """This host's architecture in Go's GOARCH spelling (the busybox binary is this host's)."""
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "i386": "386"}.get(
        machine, machine
    )


def save_tarball(image: BusyboxImage, repo_tag: str) -> bytes:
    """A ``docker save`` (legacy layout) tarball of the rootfs as one layer, for ``docker load``."""
    layer = image.read()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": _docker_arch(),
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Cmd": list(image.cmd),
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "harness busybox-static rootfs"}],
    }
    config_raw = json.dumps(config, separators=(",", ":")).encode()
    config_name = hashlib.sha256(config_raw).hexdigest() + ".json"
    layer_dir = hashlib.sha256(diff_id.encode()).hexdigest()
    manifest = [{"Config": config_name, "RepoTags": [repo_tag], "Layers": [f"{layer_dir}/layer.tar"]}]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        entries = [
            (config_name, config_raw),
            (f"{layer_dir}/layer.tar", layer),
            ("manifest.json", json.dumps(manifest).encode()),
        ]
        tar.addfile(_info(layer_dir, tarfile.DIRTYPE, 0o755))
        for name, raw in entries:
            tar.addfile(_info(name, tarfile.REGTYPE, 0o644, len(raw)), io.BytesIO(raw))
    return buf.getvalue()
