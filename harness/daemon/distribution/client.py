"""One repository on one registry endpoint: docker/distribution's ``registry/client`` as dockerd uses it.

``Repository.open(endpoint, path, creds, actions)`` pings ``/v2/`` (remembering its challenges; a
transport failure is a fallback error, the next endpoint is tried), then offers the calls a pull, a
push and ``docker login`` make. Registry error bodies become ``ErrcodeError``s exactly as
``HandleErrorResponse`` builds them (``manifest unknown: manifest unknown``, ``unauthorized: ...``).
"""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .auth import AuthConfig, Authorizer
from .challenges import Challenge, parse_challenges
from .errorbody import error_from_response
from .errors import DistributionError, TransportError
from .service import Endpoint
from .transport import Response, Transport

__all__ = [
    "MANIFEST_TYPES",
    "BlobMounted",
    "BlobUnknown",
    "Descriptor",
    "Fallback",
    "Repository",
]

MT_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
MT_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_CONFIG = "application/vnd.docker.container.image.v1+json"
MANIFEST_TYPES = (MT_MANIFEST, MT_LIST, MT_OCI_MANIFEST, MT_OCI_INDEX, MT_SCHEMA1_SIGNED, MT_SCHEMA1)


class Fallback(DistributionError):
    """fallbackError: this endpoint failed in a way that lets the next one be tried."""

    def __init__(self, err: DistributionError, transport_ok: bool) -> None:
        super().__init__(err.message, err.status)
        self.err = err
        self.transport_ok = transport_ok


class BlobUnknown(DistributionError):
    status = 404

    def __init__(self) -> None:
        super().__init__("unknown blob")


@dataclass
class Descriptor:
    media_type: str
    digest: str
    size: int


class BlobMounted(Exception):
    def __init__(self, source: str, descriptor: Descriptor) -> None:
        super().__init__(source)
        self.source = source
        self.descriptor = descriptor


class Repository:
    """``name`` (the path without registry host) on ``endpoint``, authorised for ``actions``."""

    def __init__(self, endpoint: Endpoint, name: str, authorizer: Authorizer, transport: Transport) -> None:
        self.endpoint = endpoint
        self.name = name
        self.authorizer = authorizer
        self.transport = transport

    @classmethod
    def open(
        cls, endpoint: Endpoint, name: str, creds: AuthConfig, actions: list[str], offline: bool = False
    ) -> Repository:
        transport = Transport(endpoint.tls)
        challenges = ping(endpoint, transport)
        scope = [f"repository:{name}:{','.join(actions)}"] if name else []
        return cls(endpoint, name, Authorizer(transport, challenges, creds, scope, offline), transport)

    # -- plumbing ---------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return f"{self.endpoint.url}/v2/{self.name}/{path}"

    def request(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]] | None = None,
        body: Any = None,
        length: int | None = None,
    ) -> Response:
        query = urllib.parse.urlsplit(url).query
        try:
            auth = self.authorizer.headers(query)
        except TransportError:
            raise
        except DistributionError as exc:
            raise TransportError(method, url, exc.message, exc) from None
        return self.transport.request(method, url, [*(headers or []), *auth], body, length)

    # -- manifests --------------------------------------------------------------------------------
    def _accept(self) -> list[tuple[str, str]]:
        return [("Accept", t) for t in MANIFEST_TYPES]

    def tag_get(self, tag: str) -> Descriptor:
        """tags.Get: HEAD the manifest (GET when HEAD gives no digest or fails)."""
        url = self.url(f"manifests/{tag}")
        resp = self.request("HEAD", url, self._accept())
        try:
            if 200 <= resp.status < 400 and resp.header("Docker-Content-Digest"):
                return _descriptor(resp)
        finally:
            resp.close()
        resp = self.request("GET", url, self._accept())
        try:
            if 200 <= resp.status < 400:
                return _descriptor(resp)
            raise error_from_response(resp)
        finally:
            resp.close()

    def manifest_get(self, ref: str) -> tuple[bytes, str]:
        resp = self.request("GET", self.url(f"manifests/{ref}"), self._accept())
        try:
            if 200 <= resp.status < 400:
                return resp.read(), resp.header("Content-Type")
            raise error_from_response(resp)
        finally:
            resp.close()

    def manifest_put(self, tag: str, raw: bytes, media_type: str) -> str:
        resp = self.request("PUT", self.url(f"manifests/{tag}"), [("Content-Type", media_type)], raw)
        try:
            if 200 <= resp.status < 400:
                return resp.header("Docker-Content-Digest")
            raise error_from_response(resp)
        finally:
            resp.close()

    def tags(self) -> list[str]:
        resp = self.request("GET", self.url("tags/list"))
        try:
            if 200 <= resp.status < 400:
                doc = json.loads(resp.read() or b"{}")
                return [str(t) for t in doc.get("tags") or []]
            raise error_from_response(resp)
        finally:
            resp.close()

    # -- blobs --------------------------------------------------------------------------------------
    def blob_stat(self, digest: str) -> Descriptor:
        resp = self.request("HEAD", self.url(f"blobs/{digest}"))
        try:
            if 200 <= resp.status < 400:
                return Descriptor(resp.header("Content-Type"), digest, max(resp.length, 0))
            if resp.status == 404:
                raise BlobUnknown()
            raise error_from_response(resp)
        finally:
            resp.close()

    def blob_open(self, digest: str) -> Response:
        """The blob's body, open (the caller closes it); BlobUnknown on 404."""
        resp = self.request("GET", self.url(f"blobs/{digest}"))
        if 200 <= resp.status < 400:
            return resp
        try:
            if resp.status == 404:
                raise BlobUnknown()
            raise error_from_response(resp)
        finally:
            resp.close()

    def blob_get(self, digest: str) -> bytes:
        resp = self.blob_open(digest)
        try:
            return resp.read()
        finally:
            resp.close()

    def upload_start(self, mount: tuple[str, str] | None = None) -> str:
        """POST blobs/uploads/ (``mount``: (digest, from repository)); the upload URL, or BlobMounted."""
        url = self.url("blobs/uploads/")
        if mount is not None:
            url += "?" + urllib.parse.urlencode({"mount": mount[0], "from": mount[1]})
        resp = self.request("POST", url, body=b"")
        try:
            if resp.status == 201 and mount is not None:
                raise BlobMounted(
                    mount[1], Descriptor(MT_LAYER, resp.header("Docker-Content-Digest") or mount[0], 0)
                )
            if resp.status == 202:
                return urllib.parse.urljoin(self.endpoint.url + "/", resp.header("Location"))
            raise error_from_response(resp)
        finally:
            resp.close()

    def upload(self, location: str, chunks: Iterator[bytes], digest_of: Any) -> int:
        """PATCH the data (chunked), then PUT ``?digest=`` (from ``digest_of()``); returns the size sent."""
        sent = [0]

        def counted() -> Iterator[bytes]:
            for chunk in chunks:
                sent[0] += len(chunk)
                yield chunk

        resp = self.request("PATCH", location, [("Content-Type", "application/octet-stream")], counted())
        try:
            if resp.status != 202:
                raise error_from_response(resp)
            location = urllib.parse.urljoin(self.endpoint.url + "/", resp.header("Location") or location)
        finally:
            resp.close()
        sep = "&" if "?" in location else "?"
        resp = self.request("PUT", f"{location}{sep}digest={digest_of()}", body=b"")
        try:
            if resp.status != 201:
                raise error_from_response(resp)
        finally:
            resp.close()
        return sent[0]

    def upload_cancel(self, location: str) -> None:
        with contextlib.suppress(DistributionError):
            self.request("DELETE", location).close()


def _descriptor(resp: Response) -> Descriptor:
    return Descriptor(resp.header("Content-Type"), resp.header("Docker-Content-Digest"), max(resp.length, 0))


def ping(endpoint: Endpoint, transport: Transport) -> list[Challenge]:
    """PingV2Registry: GET /v2/; the 401's challenges (none for another status)."""
    try:
        resp = transport.request("GET", endpoint.url + "/v2/")
    except TransportError as exc:
        raise Fallback(exc, transport_ok=False) from None
    try:
        if resp.status == 401:
            return parse_challenges(resp.headers.get_all("WWW-Authenticate") or [])
        return []
    finally:
        resp.close()


def manifest_kind(raw: bytes, content_type: str) -> tuple[str, dict[str, Any]]:
    """distribution.UnmarshalManifest: (media type, document); DistributionError when it is no manifest."""
    media = content_type.split(";")[0].strip()
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise DistributionError(f"unsupported manifest media type and no default available: {media}")
    if media in ("", "application/json", "text/plain", "application/octet-stream"):
        if doc.get("schemaVersion") == 1:
            media = MT_SCHEMA1_SIGNED
        elif doc.get("mediaType") in MANIFEST_TYPES:
            media = str(doc["mediaType"])
        elif "manifests" in doc:
            media = MT_OCI_INDEX
        elif "config" in doc:
            media = MT_OCI_MANIFEST
    if media not in MANIFEST_TYPES:
        raise DistributionError(f"unsupported manifest media type and no default available: {media}")
    return media, doc
