"""The seed images a harness registry serves, built from busybox-static, and a small registry v2 pusher.

No public registry is reachable, so the images real suites pull from Docker Hub (``busybox``,
``alpine:3.10``, ``alpine:latest``, ``hello-world``) are made here from the busybox rootfs of
``harness.images`` and pushed over the registry API v2 (blob uploads and manifest PUTs). Every blob
is deterministic (gzip without a timestamp, fixed configs), so digests are stable across sessions.

``SEED`` names what is pushed: schema 2 images (one or two layers sharing the busybox base layer), an
OCI image, and a manifest list / OCI index with an amd64 and an arm64 entry for platform selection.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import ssl
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from .errors import HarnessError
from .images import busybox_rootfs

__all__ = [
    "SEED",
    "Blob",
    "SeedImage",
    "big_image",
    "build_seed",
    "push_image",
]

MT_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_EPOCH = "1970-01-01T00:00:00Z"


@dataclass(frozen=True)
class Blob:
    data: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    def descriptor(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "size": len(self.data), "digest": self.digest}


@dataclass
class SeedImage:
    """One repository:tag: its manifest (or index) and every blob it needs (child manifests too)."""

    repo: str
    tag: str
    manifest: bytes
    media_type: str
    blobs: list[Blob] = field(default_factory=list)
    children: list[tuple[bytes, str]] = field(default_factory=list)  # manifests an index refers to

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.manifest).hexdigest()


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def _tar(files: dict[str, tuple[bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, (data, mode) in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _config(
    layers: list[bytes], cmd: list[str], arch: str, history: list[str], extra: dict[str, object] | None = None
) -> bytes:
    doc = {
        "architecture": arch,
        "config": {"Cmd": cmd, "Env": [_PATH_ENV], **(extra or {})},
        "created": _EPOCH,
        "history": [{"created": _EPOCH, "created_by": h} for h in history],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(t).hexdigest() for t in layers]},
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def _image(
    repo: str,
    tag: str,
    layers: list[bytes],
    cmd: list[str],
    history: list[str],
    oci: bool = False,
    arch: str = "",
) -> SeedImage:
    from .images import _docker_arch

    config = Blob(_config(layers, cmd, arch or _docker_arch(), history), MT_OCI_CONFIG if oci else MT_CONFIG)
    layer_blobs = [Blob(_gzip(t), MT_OCI_LAYER if oci else MT_LAYER) for t in layers]
    media = MT_OCI_MANIFEST if oci else MT_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": media,
        "config": config.descriptor(),
        "layers": [b.descriptor() for b in layer_blobs],
    }
    raw = json.dumps(manifest, indent=3).encode()
    return SeedImage(repo, tag, raw, media, [config, *layer_blobs])


def _index(repo: str, tag: str, images: list[tuple[SeedImage, str]], oci: bool) -> SeedImage:
    media = MT_OCI_INDEX if oci else MT_LIST
    doc = {
        "schemaVersion": 2,
        "mediaType": media,
        "manifests": [
            {
                "mediaType": img.media_type,
                "size": len(img.manifest),
                "digest": img.digest,
                "platform": {"architecture": arch, "os": "linux"},
            }
            for img, arch in images
        ],
    }
    blobs = {b.digest: b for img, _ in images for b in img.blobs}
    return SeedImage(
        repo,
        tag,
        json.dumps(doc, indent=3).encode(),
        media,
        list(blobs.values()),
        [(img.manifest, img.media_type) for img, _ in images],
    )


def build_seed() -> list[SeedImage]:
    """The seed images (see module doc); deterministic for one busybox binary."""
    from .images import _docker_arch

    base = busybox_rootfs().read()
    alpine_release = _tar({"etc/alpine-release": (b"3.10.9\n", 0o644)})
    alpine_latest = _tar({"etc/alpine-release": (b"3.20.0\n", 0o644)})
    hello = _tar({"hello": (b"#!/bin/sh\necho 'Hello from Docker!'\n", 0o755)})
    base_hist = "harness busybox-static rootfs"
    arm = "arm64" if _docker_arch() != "arm64" else "amd64"
    busybox = _image("library/busybox", "latest", [base], ["sh"], [base_hist])
    multi_native = _image("library/multiarch", "native", [base], ["sh"], [base_hist])
    multi_foreign = _image(
        "library/multiarch", "foreign", [base, alpine_release], ["sh"], [base_hist, arm], arch=arm
    )
    oci_native = _image("library/ociindex", "native", [base], ["sh"], [base_hist], oci=True)
    oci_foreign = _image(
        "library/ociindex", "foreign", [base, alpine_release], ["sh"], [base_hist, arm], oci=True, arch=arm
    )
    return [
        busybox,
        _image("library/busybox", "1.36", [base], ["sh"], [base_hist]),
        _image("library/alpine", "3.10", [base, alpine_release], ["/bin/sh"], [base_hist, "alpine 3.10"]),
        _image("library/alpine", "latest", [base, alpine_latest], ["/bin/sh"], [base_hist, "alpine latest"]),
        _image("library/hello-world", "latest", [base, hello], ["/hello"], [base_hist, "hello"]),
        _image("library/ocibox", "latest", [base], ["sh"], [base_hist], oci=True),
        _index(
            "library/multiarch", "latest", [(multi_foreign, arm), (multi_native, _docker_arch())], oci=False
        ),
        _index("library/ociindex", "latest", [(oci_foreign, arm), (oci_native, _docker_arch())], oci=True),
    ]


SEED = (
    "busybox:latest",
    "busybox:1.36",
    "alpine:3.10",
    "alpine:latest",
    "hello-world:latest",
    "ocibox:latest (OCI manifest)",
    "multiarch:latest (manifest list: another architecture first, then this host's)",
    "ociindex:latest (OCI index, the same)",
)


def big_image(size: int = 100 * 1000 * 1000, repo: str = "library/big", tag: str = "latest") -> SeedImage:
    """An image with one incompressible layer of about ``size`` bytes on busybox (for benchmarks)."""
    import random

    payload = random.Random(20240611).randbytes(size)  # deterministic, incompressible
    data = _tar({"big.bin": (payload, 0o644)})
    return _image(
        repo, tag, [busybox_rootfs().read(), data], ["sh"], ["harness busybox-static rootfs", "big"]
    )


# -- pushing -------------------------------------------------------------------------------------------
class _Pusher:
    def __init__(self, base_url: str, auth: tuple[str, str] | None, ctx: ssl.SSLContext | None) -> None:
        self.base = base_url.rstrip("/")
        self.headers: dict[str, str] = {}
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
        if ctx is not None:
            handlers.append(urllib.request.HTTPSHandler(context=ctx))
        self.opener = urllib.request.build_opener(*handlers)

    def request(
        self, method: str, url: str, data: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        if not url.startswith("http"):
            url = self.base + url
        req = urllib.request.Request(
            url, data=data, method=method, headers={**self.headers, **(headers or {})}
        )
        try:
            with self.opener.open(req, timeout=120) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def blob(self, repo: str, blob: Blob) -> None:
        status, _, _ = self.request("HEAD", f"/v2/{repo}/blobs/{blob.digest}")
        if status == 200:
            return
        status, headers, body = self.request("POST", f"/v2/{repo}/blobs/uploads/", b"")
        if status != 202:
            raise HarnessError(f"registry {self.base}: starting an upload to {repo}: {status} {body[:200]!r}")
        location = urllib.parse.urljoin(self.base + "/", headers["Location"])
        sep = "&" if "?" in location else "?"
        status, _, body = self.request(
            "PUT",
            f"{location}{sep}digest={blob.digest}",
            blob.data,
            {"Content-Type": "application/octet-stream"},
        )
        if status != 201:
            raise HarnessError(
                f"registry {self.base}: uploading {blob.digest} to {repo}: {status} {body[:200]!r}"
            )

    def manifest(self, repo: str, ref: str, raw: bytes, media_type: str) -> None:
        status, _, body = self.request(
            "PUT", f"/v2/{repo}/manifests/{ref}", raw, {"Content-Type": media_type}
        )
        if status != 201:
            raise HarnessError(f"registry {self.base}: PUT manifest {repo}:{ref}: {status} {body[:300]!r}")


def push_image(
    base_url: str,
    image: SeedImage,
    auth: tuple[str, str] | None = None,
    ctx: ssl.SSLContext | None = None,
    repo: str | None = None,
) -> str:
    """Push ``image`` (blobs, child manifests, then the tag) to the registry at ``base_url``; its digest."""
    pusher = _Pusher(base_url, auth, ctx)
    name = repo or image.repo
    for blob in image.blobs:
        pusher.blob(name, blob)
    for raw, media_type in image.children:
        pusher.manifest(name, "sha256:" + hashlib.sha256(raw).hexdigest(), raw, media_type)
    pusher.manifest(name, image.tag, image.manifest, image.media_type)
    return image.digest
