"""dockerd's distribution metadata store: which registry blob a layer came from or went to.

Under ``<data-root>/image/<driver>/distribution/`` (moby ``distribution/metadata``):

    v2metadata-by-diffid/sha256/<diff hex>   [{"Digest": ..., "SourceRepository": ..., "HMAC": ...}] (<= 50)
    diffid-by-digest/sha256/<blob hex>       the layer's diff ID

A pull records each layer's compressed digest, so a later pull of another image sharing it says
``Already exists``; a push uses it to check or mount blobs instead of uploading them.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import tempfile
import threading
from dataclasses import dataclass

__all__ = ["MetadataStore", "V2Metadata", "check_hmac", "compute_hmac", "hmac_key"]

_MAX = 50


@dataclass(frozen=True)
class V2Metadata:
    digest: str
    source_repository: str
    hmac: str = ""

    def to_json(self) -> dict[str, str]:
        return {"Digest": self.digest, "SourceRepository": self.source_repository, "HMAC": self.hmac}


def hmac_key(key_input: bytes) -> bytes:
    """ComputeV2MetadataHMACKey: the digest string of the marshalled auth config."""
    return ("sha256:" + hashlib.sha256(key_input).hexdigest()).encode()


def compute_hmac(key: bytes, meta: V2Metadata) -> str:
    if not key:
        return ""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    mac.update(meta.digest.encode())
    mac.update(meta.source_repository.encode())
    return mac.hexdigest()


def check_hmac(meta: V2Metadata, key: bytes) -> bool:
    if not meta.hmac or not key:
        return not meta.hmac and not key
    return hmac.compare_digest(meta.hmac, compute_hmac(key, meta))


class MetadataStore:
    def __init__(self, root: str) -> None:
        self.root = root
        self.lock = threading.Lock()

    @classmethod
    def under(cls, image_root: str) -> MetadataStore:
        """The store of an image store rooted at ``image_root`` (``<data-root>/image/<driver>``)."""
        return cls(os.path.join(image_root, "distribution"))

    def _path(self, namespace: str, digest: str) -> str:
        algorithm, _, encoded = digest.partition(":")
        return os.path.join(self.root, namespace, algorithm, encoded)

    def _get(self, namespace: str, digest: str) -> bytes | None:
        try:
            with open(self._path(namespace, digest), "rb") as fh:
                return fh.read()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _set(self, namespace: str, digest: str, data: bytes) -> None:
        path = self._path(namespace, digest)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)

    def get_metadata(self, diff_id: str) -> list[V2Metadata]:
        raw = self._get("v2metadata-by-diffid", diff_id)
        try:
            docs = json.loads(raw) if raw else []
        except ValueError:
            return []
        return [
            V2Metadata(str(d.get("Digest", "")), str(d.get("SourceRepository", "")), str(d.get("HMAC", "")))
            for d in docs or []
            if isinstance(d, dict)
        ]

    def get_diff_id(self, digest: str) -> str | None:
        raw = self._get("diffid-by-digest", digest)
        return raw.decode() if raw else None

    def add(self, diff_id: str, meta: V2Metadata) -> None:
        with self.lock:
            entries = [m for m in self.get_metadata(diff_id) if m != meta]
            entries.append(meta)
            entries = entries[-_MAX:]
            data = json.dumps([m.to_json() for m in entries], separators=(",", ":")).encode()
            self._set("v2metadata-by-diffid", diff_id, data)
            self._set("diffid-by-digest", meta.digest, diff_id.encode())

    def tag_and_add(self, diff_id: str, key: bytes, meta: V2Metadata) -> None:
        self.add(diff_id, V2Metadata(meta.digest, meta.source_repository, compute_hmac(key, meta)))

    def remove(self, meta: V2Metadata) -> None:
        with self.lock:
            diff_id = self.get_diff_id(meta.digest)
            if diff_id is None:
                return
            entries = [m for m in self.get_metadata(diff_id) if m != meta]
            if not entries:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._path("v2metadata-by-diffid", diff_id))
                return
            data = json.dumps([m.to_json() for m in entries], separators=(",", ":")).encode()
            self._set("v2metadata-by-diffid", diff_id, data)
