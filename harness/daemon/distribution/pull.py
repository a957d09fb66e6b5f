"""``docker pull``: moby ``distribution/pull.go``, ``pull_v2.go`` and ``xfer/download.go`` on refd's store.

Endpoints are tried in order (mirrors, then the registry; HTTPS, then HTTP for an insecure one); an
endpoint that fails to talk HTTP, or a mirror that answers with a registry error, falls back to the
next. A tag is resolved with a manifest HEAD, the manifest fetched by digest; a manifest list or OCI
index picks this platform's entry. If the image config is already in the store nothing is
downloaded; otherwise layers whose blob digest is known (``distribution/`` metadata) and present say
``Already exists``, the others are downloaded ``max-concurrent-downloads`` at a time (``Waiting``
beyond that), each verified against its digest and retried up to ``max-download-attempts`` times
(``Retrying in N seconds``), then extracted bottom-up. Progress lines are dockerd's, in its order.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..errors import ApiError
from ..goformat import go_arch
from ..images.layerstore import chain_ids
from ..images.reference import Named, tag_name_only
from ..images.service import ImageService
from .auth import AuthConfig
from .client import (
    MT_LIST,
    MT_MANIFEST,
    MT_OCI_INDEX,
    MT_OCI_MANIFEST,
    MT_SCHEMA1,
    MT_SCHEMA1_SIGNED,
    BlobUnknown,
    Fallback,
    Repository,
    manifest_kind,
)
from .errorbody import Unexpected
from .errors import DistributionError, DoNotRetry, ErrcodeError, NotFound, TransportError
from .metadata import V2Metadata
from .options import TransferOptions
from .progress import ProgressOutput, Reader
from .service import Endpoint

__all__ = [
    "PullOptions",
    "continue_on_error",
    "log_pull_event",
    "pull",
    "pull_endpoints",
    "pull_image",
    "schema1_message",
    "translate_pull_error",
]

_SUPPORTED_PREFIXES = ("application/vnd.oci.image", "application/vnd.docker")
_SUPPORTED_EXACT = ("application/octet-stream", "application/json", "text/html", "")
_IMAGE_CONFIG_TYPES = (
    "application/vnd.docker.container.image.v1+json",
    "application/vnd.oci.image.config.v1+json",
    "application/octet-stream",
    "application/json",
    "text/html",
    "",
)
_PLUGIN_CONFIG = "application/vnd.docker.plugin.v1+json"


class InvalidParameter(DistributionError):
    status = 400


@dataclass(kw_only=True)
class PullOptions(TransferOptions):
    platform: tuple[str, str, str] | None = None  # os, architecture, variant
    max_attempts: int = 5

    @classmethod
    def from_config(
        cls,
        config: Any,
        store: ImageService,
        out: ProgressOutput,
        creds: AuthConfig,
        platform: tuple[str, str, str] | None = None,
        log: Any = None,
        cancelled: threading.Event | None = None,
    ) -> PullOptions:
        """A pull with the daemon's registry settings and ``max-concurrent-downloads`` /
        ``max-download-attempts``; DistributionError (400) when the registry settings are invalid."""
        return cls._from_daemon(
            config,
            store,
            out,
            creds,
            log,
            cancelled,
            platform=platform,
            max_concurrent=int(config["max-concurrent-downloads"] or 3),
            max_attempts=int(config["max-download-attempts"] or 5),
        )


# -- errors ---------------------------------------------------------------------------------------------
class ImageConfigPullError(DistributionError):
    def __init__(self, err: DistributionError) -> None:
        super().__init__(f"error pulling image configuration: {err.message}", err.status)
        self.err = err


class UnsupportedMediaType(DistributionError):
    status = 400

    def __init__(self, media_type: str) -> None:
        super().__init__(f"unsupported media type {media_type}")


def continue_on_error(err: DistributionError, mirror: bool) -> bool:
    """continueOnError: may the next endpoint be tried after ``err``?"""
    if isinstance(err, ErrcodeError):
        return mirror
    if isinstance(err, Unexpected):
        return True
    if isinstance(err, ImageConfigPullError):
        return mirror
    if isinstance(err, UnsupportedMediaType):
        return False
    return "no such process" not in err.message


def translate_pull_error(err: DistributionError, ref: Named) -> DistributionError:
    """translatePullError: registry not-found codes become moby's notFoundError texts (404)."""
    if isinstance(err, DoNotRetry):
        return translate_pull_error(err.err, ref)
    if isinstance(err, Fallback):
        return translate_pull_error(err.err, ref)
    if isinstance(err, ErrcodeError):
        if err.code == "DENIED":
            return NotFound(
                f"pull access denied for {ref.familiar_name()}, repository does not exist or may require "
                f"'docker login': {err.message}",
                err,
            )
        if err.code == "MANIFEST_UNKNOWN":
            return NotFound(f"manifest for {ref.familiar_string()} not found: {err.message}", err)
        if err.code == "NAME_UNKNOWN":
            return NotFound(f"repository {ref.familiar_name()} not found: {err.message}", err)
    return err


def _retry_on_error(err: DistributionError) -> DistributionError:
    """retryOnError: which errors end a download at once."""
    if isinstance(err, ErrcodeError) and err.code in (
        "UNAUTHORIZED",
        "UNSUPPORTED",
        "DENIED",
        "TOOMANYREQUESTS",
        "NAME_UNKNOWN",
    ):
        return DoNotRetry(err)
    if isinstance(err, TransportError) and isinstance(err.inner, DistributionError):
        inner = err.inner
        if inner.message in (
            "no basic auth credentials",
            "authorization server did not include a token in the response",
        ):
            return DoNotRetry(inner)
        return _retry_on_error(inner)
    if isinstance(err, Unexpected | UnsupportedMediaType | BlobUnknown):
        return DoNotRetry(err)
    if "no space left on device" in err.message:
        return DoNotRetry(err)
    return err


# -- endpoints --------------------------------------------------------------------------------------------
def pull_endpoints(
    opts: PullOptions,
    ref: Named,
    fn: Callable[[Named, Endpoint], None],
) -> Named:
    """pullEndpoints: call ``fn`` per endpoint until one succeeds; raises the translated error."""
    repo_name = ref.trim()
    if repo_name.familiar_name() == "scratch":
        raise DistributionError("'scratch' is a reserved name", 403)
    endpoints = opts.service.endpoints(ref.domain, mirrors=True)
    confirmed_tls: set[str] = set()
    last: DistributionError | None = None
    for endpoint in endpoints:
        if endpoint.scheme != "https" and endpoint.host in confirmed_tls:
            opts.debug(f"Skipping non-TLS endpoint {endpoint.url} for host/port that appears to use TLS")
            continue
        opts.debug(f"Trying to pull {repo_name.familiar_name()} from {endpoint.url}")
        try:
            fn(repo_name, endpoint)
            return repo_name
        except DistributionError as err:
            if opts.cancelled.is_set():
                raise
            fallback = isinstance(err, Fallback)
            transport_ok = err.transport_ok if isinstance(err, Fallback) else True
            if not fallback and continue_on_error(err, endpoint.mirror):
                fallback = True
            if fallback:
                if transport_ok and endpoint.scheme == "https":
                    confirmed_tls.add(endpoint.host)
                last = err.err if isinstance(err, Fallback) else err
                opts.info(f"Attempting next endpoint for pull after error: {last.message}")
                continue
            opts.error(f"Not continuing with pull after error: {err.message}")
            raise translate_pull_error(err, ref) from None
    if last is None:
        last = DistributionError(f"no endpoints found for {ref.familiar_string()}")
    raise translate_pull_error(last, ref)


def pull(opts: PullOptions, ref: Named) -> Named:
    """Pull ``ref`` (tagged, digested, or name only for all tags); returns the repository name pulled."""

    def attempt(repo_name: Named, endpoint: Endpoint) -> None:
        _Puller(opts, repo_name, endpoint).pull(ref)

    return pull_endpoints(opts, ref, attempt)


def pull_image(opts: PullOptions, ref: Named) -> Named:
    """PullImage: ``pull``, then, when a platform was asked for, a warning in the stream if the image
    found is of another one (a single-architecture image is kept whatever its platform)."""
    pulled = pull(opts, ref)
    if opts.platform is not None:
        _platform_warning(opts, ref, opts.platform)
    return pulled


def _platform_warning(opts: PullOptions, ref: Named, platform: tuple[str, str, str]) -> None:
    try:
        image = opts.store.resolve(ref.string())
    except ApiError:
        return
    config = image.config
    have = (
        str(config.get("os") or ""),
        str(config.get("architecture") or ""),
        str(config.get("variant") or ""),
    )
    want_os, want_arch, want_variant = platform
    same = have[0] == want_os and _norm_arch(have[1]) == _norm_arch(want_arch)
    if same and want_variant and have[2] and have[2] != want_variant:
        same = False
    if not same:
        opts.out.message(
            "",
            f"WARNING: image with reference {ref.string()} was found but its platform "
            f"({_format_platform(have)}) does not match the specified platform "
            f"({_format_platform(platform)})",
        )


def _format_platform(platform: tuple[str, ...]) -> str:
    """platforms.FormatAll."""
    return "/".join(x for x in platform if x)


def log_pull_event(store: ImageService, ref: Named, pulled: Named) -> None:
    """LogImageEvent(FamiliarString(ref), FamiliarName(repo), "pull"): labels of the image when found."""
    attrs: dict[str, str] = {}
    with contextlib.suppress(ApiError):
        image = store.resolve(ref.familiar_string())
        attrs.update({str(k): str(v) for k, v in image.labels.items()})
    attrs["name"] = pulled.familiar_name()
    store.event("pull", ref.familiar_string(), attrs)


# -- one endpoint -------------------------------------------------------------------------------------------
def _check_supported(media_type: str) -> None:
    lower = media_type.lower()
    if lower.startswith("application/vnd.docker.ai."):
        raise InvalidParameter(
            'AI models are not yet supported by the Engine, please use "docker model pull/run" instead'
        )
    if lower in _SUPPORTED_EXACT or any(lower == p or lower.startswith(p + ".") for p in _SUPPORTED_PREFIXES):
        return
    raise UnsupportedMediaType(media_type)


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


@dataclass
class _Layer:
    digest: str
    media_type: str
    size: int
    diff_id: str = ""
    path: str = ""
    done: Future[str] | None = None

    @property
    def id(self) -> str:
        return _short(self.digest)


class _Puller:
    def __init__(self, opts: PullOptions, repo_name: Named, endpoint: Endpoint) -> None:
        self.opts = opts
        self.repo_name = repo_name
        self.endpoint = endpoint
        self.repo: Repository | None = None

    def pull(self, ref: Named) -> None:
        self.repo = Repository.open(self.endpoint, self.repo_name.path, self.opts.creds, ["pull"])
        if ref.tag or ref.digest:
            updated = self.pull_tag(ref)
        else:
            updated = False
            for tag in self.repo.tags():
                try:
                    updated = self.pull_tag(Named(ref.domain, ref.path, tag)) or updated
                except Fallback as exc:
                    raise exc.err from None
        status = "Downloaded newer image for " if updated else "Image is up to date for "
        self.opts.out.message("", "Status: " + status + ref.familiar_string())

    # -- a tag or digest ----------------------------------------------------------------------------
    def pull_tag(self, ref: Named) -> bool:
        assert self.repo is not None
        opts = self.opts
        if ref.digest:
            digest, media, tag_or_digest = ref.digest, "", ref.string()
        else:
            desc = self.repo.tag_get(ref.tag)
            digest, media, tag_or_digest = desc.digest, desc.media_type, ref.tag
        raw, content_type = self.repo.manifest_get(digest)
        kind, doc = manifest_kind(raw, content_type or media)
        if kind == MT_MANIFEST:
            config_type = str((doc.get("config") or {}).get("mediaType") or "")
            if config_type not in _IMAGE_CONFIG_TYPES:
                klass = "plugin" if config_type == _PLUGIN_CONFIG else "unknown"
                raise InvalidParameter(f'Encountered remote "{config_type}"({klass}) when fetching')
        opts.out.message(tag_or_digest, "Pulling from " + self.repo_name.path)
        if kind in (MT_SCHEMA1, MT_SCHEMA1_SIGNED):
            raise InvalidParameter(schema1_message(ref))
        if kind in (MT_MANIFEST, MT_OCI_MANIFEST):
            image_id, manifest_digest = self.pull_schema2(ref, raw, doc)
        elif kind in (MT_LIST, MT_OCI_INDEX):
            image_id, manifest_digest = self.pull_list(ref, raw, doc)
        else:
            raise InvalidParameter("unsupported manifest format")
        opts.out.message("", "Digest: " + manifest_digest)
        store = opts.store
        old = store.references.get(ref)
        digest_ref = Named(ref.domain, ref.path, "", manifest_digest)
        if old is not None and old == image_id:
            self._add_digest(digest_ref, image_id)
            return False
        if ref.digest:
            store.references.add(Named(ref.domain, ref.path, "", ref.digest), image_id)
        else:
            self._add_digest(digest_ref, image_id)
            store.references.add(tag_name_only(ref), image_id)
        return True

    def _add_digest(self, digest_ref: Named, image_id: str) -> None:
        old = self.opts.store.references.get(digest_ref)
        if old is not None:
            if old != image_id:
                self.opts.error(
                    f"Image ID for digest {digest_ref.digest} changed from {old} to {image_id}, cannot update"
                )
            return
        self.opts.store.references.add(digest_ref, image_id)

    def _manifest_digest(self, ref: Named, raw: bytes) -> str:
        actual = "sha256:" + hashlib.sha256(raw).hexdigest()
        if ref.digest and ref.digest != actual:
            message = f"manifest verification failed for digest {ref.digest}"
            self.opts.error(message)
            raise DistributionError(message)
        return ref.digest or actual

    def pull_schema2(self, ref: Named, raw: bytes, doc: dict[str, Any]) -> tuple[str, str]:
        manifest_digest = self._manifest_digest(ref, raw)
        config = doc.get("config") or {}
        layers = [d for d in doc.get("layers") or [] if isinstance(d, dict)]
        return self.pull_layers(config, layers), manifest_digest

    def pull_list(self, ref: Named, raw: bytes, doc: dict[str, Any]) -> tuple[str, str]:
        assert self.repo is not None
        list_digest = self._manifest_digest(ref, raw)
        want_os, want_arch, want_variant = self.opts.platform or ("linux", go_arch(), "")
        entries = [m for m in doc.get("manifests") or [] if isinstance(m, dict)]
        matches = []
        for entry in entries:
            plat = entry.get("platform")
            if not plat:
                matches.append(entry)
                continue
            if plat.get("os") != want_os or _norm_arch(plat.get("architecture", "")) != _norm_arch(want_arch):
                continue
            if want_variant and plat.get("variant") and plat.get("variant") != want_variant:
                continue
            matches.append(entry)
        for entry in matches:
            child_digest = str(entry.get("digest") or "")
            child_raw, child_type = self.repo.manifest_get(child_digest)
            kind, child = manifest_kind(child_raw, child_type or str(entry.get("mediaType") or ""))
            child_ref = Named(ref.domain, ref.path, "", child_digest)
            if kind in (MT_SCHEMA1, MT_SCHEMA1_SIGNED):
                raise InvalidParameter(schema1_message(ref))
            if kind in (MT_MANIFEST, MT_OCI_MANIFEST):
                image_id, _ = self.pull_schema2(child_ref, child_raw, child)
                return image_id, list_digest
            if kind in (MT_LIST, MT_OCI_INDEX):
                try:
                    image_id, _ = self.pull_list(child_ref, child_raw, child)
                    return image_id, list_digest
                except DistributionError as exc:
                    if not exc.message.startswith("no matching manifest for"):
                        continue
                    raise
        platform = "/".join(p for p in (want_os, want_arch, want_variant) if p)
        raise DistributionError(f"no matching manifest for {platform} in the manifest list entries")

    # -- layers -------------------------------------------------------------------------------------
    def pull_layers(self, config_desc: dict[str, Any], layer_descs: list[dict[str, Any]]) -> str:
        assert self.repo is not None
        opts = self.opts
        store = opts.store
        config_digest = str(config_desc.get("digest") or "")
        with store.lock:
            if config_digest in store.images:
                return config_digest
        _check_supported(str(config_desc.get("mediaType") or ""))
        layers = []
        for desc in layer_descs:
            digest = str(desc.get("digest") or "")
            if ":" not in digest:
                raise DistributionError(
                    f'could not validate layer digest "{digest}": invalid checksum digest format'
                )
            _check_supported(str(desc.get("mediaType") or ""))
            layers.append(_Layer(digest, str(desc.get("mediaType") or ""), int(desc.get("size") or 0)))
        try:
            config_raw = self._fetch_config(config_digest)
        except DistributionError as exc:
            raise ImageConfigPullError(exc) from None
        try:
            config = json.loads(config_raw)
            diff_ids = [str(d) for d in (config.get("rootfs") or {}).get("diff_ids") or []]
            if not isinstance(config.get("rootfs"), dict):
                raise ValueError
        except (ValueError, AttributeError):
            raise DistributionError("invalid rootfs in image configuration") from None
        with store.layers.pinned() as pin:
            downloaded = self._download(layers, pin)
            if downloaded != diff_ids:
                raise DistributionError("layers from manifest don't match image configuration")
            image = store.images.create(config_raw)
        return image.id

    def _fetch_config(self, digest: str) -> bytes:
        assert self.repo is not None
        delay = 0.25
        last: DistributionError | None = None
        for attempt in range(5):
            try:
                raw = self.repo.blob_get(digest)
                break
            except DistributionError as exc:
                err = _retry_on_error(exc)
                last = err
                if isinstance(err, DoNotRetry) or attempt == 4:
                    raise DistributionError(
                        f"download failed after attempts={attempt + 1}: {err.message}", err.status
                    ) from None
                time.sleep(delay)
                delay *= 2
        else:  # pragma: no cover - the loop always breaks or raises
            raise last or DistributionError("config download failed")
        if "sha256:" + hashlib.sha256(raw).hexdigest() != digest:
            message = f"image config verification failed for digest {digest}"
            self.opts.error(message)
            raise DistributionError(message)
        return raw

    def _download(self, layers: list[_Layer], pin: Callable[[str], None]) -> list[str]:
        """LayerDownloadManager.Download: the diff IDs of the registered stack, bottom first."""
        opts = self.opts
        store = opts.store
        out = opts.out
        chain = ""
        known: list[str] = []
        todo: list[_Layer] = []
        missing = False
        for layer in layers:
            if not missing:
                missing = True
                diff_id = opts.metadata.get_diff_id(layer.digest)
                if diff_id:
                    want = chain_ids([chain, diff_id])[-1] if chain else diff_id
                    with store.lock:
                        exists = want in store.layers
                        if exists:
                            pin(want)
                    if exists:
                        opts.debug(f"Layer already exists: {layer.id}")
                        out.update(layer.id, "Already exists")
                        self._registered(diff_id, layer)
                        chain = want
                        known.append(diff_id)
                        missing = False
                        continue
            out.update(layer.id, "Pulling fs layer")
            todo.append(layer)
        if not todo:
            return known
        pool = ThreadPoolExecutor(max_workers=max(1, opts.max_concurrent), thread_name_prefix="pull")
        by_digest: dict[str, _Layer] = {}
        try:
            started = 0
            for layer in todo:
                first = by_digest.get(layer.digest)
                if first is not None:
                    layer.done = first.done  # the same blob twice: downloaded once
                    continue
                by_digest[layer.digest] = layer
                if started >= opts.max_concurrent:
                    out.update(layer.id, "Waiting")
                started += 1
                layer.done = pool.submit(self._fetch_layer, layer)
            diff_ids = list(known)
            for layer in todo:
                assert layer.done is not None
                path = layer.done.result()
                chain = self._register(layer, path, chain, pin)
                diff_ids.append(store.layers.get(chain).diff_id)
            return diff_ids
        except BaseException:
            opts.cancelled.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            for layer in todo:
                if layer.path:
                    with contextlib.suppress(OSError):
                        os.unlink(layer.path)

    def _fetch_layer(self, layer: _Layer) -> str:
        opts = self.opts
        attempt = 1
        while True:
            try:
                return self._fetch_once(layer)
            except DistributionError as exc:
                err = _retry_on_error(exc)
                if opts.cancelled.is_set():
                    raise err from None
                if isinstance(err, DoNotRetry) or attempt >= opts.max_attempts:
                    opts.error(f"Download failed after {attempt} attempts: {err.message}")
                    raise err from None
                opts.info(f"Download failed, retrying ({attempt}/{opts.max_attempts}): {err.message}")
                delay = attempt * 5
                attempt += 1
                while delay > 0:
                    opts.out.update(layer.id, f"Retrying in {delay} second{'s' if delay != 1 else ''}")
                    if opts.cancelled.wait(opts.retry_wait):
                        raise DistributionError("download cancelled during retry delay") from None
                    delay -= 1

    def _fetch_once(self, layer: _Layer) -> str:
        assert self.repo is not None
        opts = self.opts
        opts.debug(f'pulling blob "{layer.digest}"')
        resp = self.repo.blob_open(layer.digest)
        fd, path = tempfile.mkstemp(prefix="GetImageBlob", dir=opts.store.tmp_root)
        layer.path = path
        digest = hashlib.sha256()
        try:
            size = max(resp.length, 0)
            reader = Reader(resp, opts.out, size, layer.id, "Downloading")
            with os.fdopen(fd, "wb") as fh:
                try:
                    while True:
                        if opts.cancelled.is_set():
                            raise DistributionError("context canceled")
                        chunk = reader.read(32 * 1024)
                        if not chunk:
                            break
                        fh.write(chunk)
                        digest.update(chunk)
                        if size and reader.current >= size:
                            break  # Go's body reader returns the last bytes with io.EOF: one final update
                except OSError as exc:
                    raise DistributionError(f"read tcp: {exc}") from None
                finally:
                    reader.close()
        finally:
            resp.close()
        opts.out.update(layer.id, "Verifying Checksum")
        if "sha256:" + digest.hexdigest() != layer.digest:
            message = f"filesystem layer verification failed for digest {layer.digest}"
            opts.error(message)
            raise DoNotRetry(DistributionError(message))
        opts.out.update(layer.id, "Download complete")
        return path

    def _register(self, layer: _Layer, path: str, parent: str, pin: Callable[[str], None]) -> str:
        opts = self.opts
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            reader = Reader(fh, opts.out, size, layer.id, "Extracting")
            try:
                registered = opts.store.layers.register(reader, parent, pin)  # type: ignore[arg-type]
            except Exception as exc:  # any unpack failure is dockerd's "failed to register layer"
                raise DistributionError(f"failed to register layer: {exc}") from None
            finally:
                reader.close()
        opts.out.update(layer.id, "Pull complete")
        self._registered(registered.diff_id, layer)
        return registered.chain_id

    def _registered(self, diff_id: str, layer: _Layer) -> None:
        self.opts.metadata.add(diff_id, V2Metadata(layer.digest, self.repo_name.name))


def _norm_arch(arch: str) -> str:
    return {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64"}.get(arch, arch)


def schema1_message(ref: Named) -> str:
    return (
        "Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has been removed. "
        f"Suggest the author of {ref.string()} to upgrade the image to the OCI Format or Docker Image "
        "manifest v2, schema 2. More information at https://docs.docker.com/go/deprecated-image-specs/"
    )
