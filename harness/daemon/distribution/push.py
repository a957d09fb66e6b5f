"""``docker push``: moby ``distribution/push.go``, ``push_v2.go`` and ``xfer/upload.go`` on refd's store.

Each layer (top first: ``Preparing``) is checked against the target repository using the
``distribution/`` metadata (``Layer already exists``), mounted from another repository of the same
registry that is known to hold it (``Mounted from library/alpine``), or gzip-compressed and uploaded
(``Pushing`` progress, ``Pushed``), ``max-concurrent-uploads`` at a time. Then the config blob and a
schema 2 manifest (Go's three-space indented JSON) are put under the tag, and the stream ends with
``<tag>: digest: sha256:... size: N`` and an ``aux`` line.
"""

from __future__ import annotations

import hashlib
import json
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..images.layerstore import chain_ids
from ..images.reference import Named, ReferenceError, parse_normalized_named
from ..images.service import ImageService
from .auth import AuthConfig
from .client import (
    MT_CONFIG,
    MT_LAYER,
    MT_MANIFEST,
    BlobMounted,
    BlobUnknown,
    Descriptor,
    Fallback,
    Repository,
)
from .errors import DistributionError, DoNotRetry, ErrcodeError
from .metadata import V2Metadata, check_hmac, hmac_key
from .options import TransferOptions
from .progress import ProgressOutput, Reader
from .pull import _retry_on_error, continue_on_error

__all__ = ["PushOptions", "push_image"]

_SMALL = 100 * (1 << 10)
_MIDDLE = 10 * (1 << 20)
_MAX_UPLOAD_ATTEMPTS = 5


@dataclass(kw_only=True)
class PushOptions(TransferOptions):
    max_concurrent: int = 5

    @classmethod
    def from_config(
        cls,
        config: Any,
        store: ImageService,
        out: ProgressOutput,
        creds: AuthConfig,
        log: Any = None,
        cancelled: threading.Event | None = None,
    ) -> PushOptions:
        """A push with the daemon's registry settings and ``max-concurrent-uploads``;
        DistributionError (400) when the registry settings are invalid."""
        return cls._from_daemon(
            config,
            store,
            out,
            creds,
            log,
            cancelled,
            max_concurrent=int(config["max-concurrent-uploads"] or 5),
        )


def push_image(opts: PushOptions, ref: Named) -> None:
    """Push ``ref`` (a tag, or every tag of a name); errors are DistributionErrors with dockerd's text."""
    repo_name = ref.trim()
    endpoints = opts.service.endpoints(ref.domain, mirrors=False)
    opts.out.message("", f"The push refers to repository [{repo_name.name}]")
    store = opts.store
    associations = store.references.by_name(repo_name)
    if not associations:
        raise DistributionError(f"An image does not exist locally with the tag: {repo_name.familiar_name()}")
    confirmed: set[str] = set()
    last: DistributionError | None = None
    for endpoint in endpoints:
        if endpoint.scheme != "https" and endpoint.host in confirmed:
            continue
        opts.debug(f"Trying to push {repo_name.name} to {endpoint.url}")
        try:
            _Pusher(opts, ref, repo_name, endpoint).push()
            return
        except Fallback as exc:
            if opts.cancelled.is_set():
                raise exc.err from None
            if exc.transport_ok and endpoint.scheme == "https":
                confirmed.add(endpoint.host)
            last = exc.err
            opts.info(f"Attempting next endpoint for push after error: {last.message}")
            continue
    raise last or DistributionError(f"no endpoints found for {repo_name.name}")


@dataclass
class _Layer:
    diff_id: str
    chain: str
    size: int
    remote: Descriptor | None = None
    checked: set[str] = field(default_factory=set)

    @property
    def id(self) -> str:
        return self.diff_id.split(":", 1)[-1][:12]


class _Pusher:
    def __init__(self, opts: PushOptions, ref: Named, repo_name: Named, endpoint: Any) -> None:
        self.opts = opts
        self.ref = ref
        self.repo_name = repo_name
        self.endpoint = endpoint
        self.repo: Repository | None = None
        self.remote_layers: dict[str, Descriptor] = {}
        self.lock = threading.Lock()
        self.key = hmac_key(opts.creds.hmac_key_input())
        self.has_auth = bool(opts.creds.registry_token or (opts.creds.username and opts.creds.password))

    def push(self) -> None:
        self.repo = Repository.open(self.endpoint, self.repo_name.path, self.opts.creds, ["push", "pull"])
        try:
            self._push_repository()
        except Fallback:
            raise
        except DistributionError as err:
            if continue_on_error(err, False):
                raise Fallback(err, transport_ok=True) from None
            raise

    def _push_repository(self) -> None:
        store = self.opts.store
        if self.ref.tag:
            image_id = store.references.get(self.ref)
            if image_id is None:
                raise DistributionError(f"tag does not exist: {self.ref.familiar_string()}")
            self._push_tag(self.ref, image_id)
            return
        if self.ref.digest:
            raise DistributionError("cannot push a digest reference")
        pushed = 0
        associations = store.references.by_name(self.repo_name)
        for named, image_id in associations:
            if named.tag and not named.digest:
                pushed += 1
                self._push_tag(named, image_id)
        if not pushed:
            raise DistributionError(f"no tags to push for {self.repo_name.familiar_name()}")

    def _push_tag(self, ref: Named, image_id: str) -> None:
        assert self.repo is not None
        opts = self.opts
        store = opts.store
        with store.lock:
            image = store.images.get(image_id)
            if image is None:
                raise DistributionError(
                    f"could not find image from tag {ref.familiar_string()}: image not found"
                )
            chains = chain_ids(image.diff_ids)
            layers = [
                _Layer(store.layers.get(c).diff_id, c, store.layers.get(c).size) for c in reversed(chains)
            ]
        with store.layers.pinned() as pin:
            for layer in layers:
                pin(layer.chain)
            self._upload_all(layers)
        layer_descs = [
            {"mediaType": MT_LAYER, "size": lay.remote.size, "digest": lay.remote.digest}
            for lay in reversed(layers)
            if lay.remote is not None
        ]
        config_digest = image.id
        try:
            stat = self.repo.blob_stat(config_digest)
            config_size = stat.size or len(image.raw)
        except BlobUnknown:
            location = self.repo.upload_start()
            self.repo.upload(location, iter([image.raw]), lambda: config_digest)
            config_size = len(image.raw)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "size": config_size, "digest": config_digest},
            "layers": layer_descs,
        }
        raw = json.dumps(manifest, indent=3).encode()
        try:
            self.repo.manifest_put(ref.tag, raw, MT_MANIFEST)
        except DistributionError as exc:
            if exc.message == "tag invalid":
                raise DistributionError(
                    "[DEPRECATED] support for pushing manifest v2 schema1 images has been removed. "
                    "More information "
                    f"at https://docs.docker.com/registry/spec/deprecated-schema-v1/: {exc.message}"
                ) from None
            raise
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        opts.out.message("", f"{ref.tag}: digest: {digest} size: {len(raw)}")
        digest_ref = Named(ref.domain, ref.path, "", digest)
        if store.references.get(digest_ref) is None:
            store.references.add(digest_ref, image_id)
        opts.out.aux({"Tag": ref.tag, "Digest": digest, "Size": len(raw)})

    # -- uploads --------------------------------------------------------------------------------------
    def _upload_all(self, layers: list[_Layer]) -> None:
        opts = self.opts
        unique: dict[str, _Layer] = {}
        for layer in layers:
            opts.out.update(layer.id, "Preparing")
            unique.setdefault(layer.diff_id, layer)
        pool = ThreadPoolExecutor(max_workers=max(1, opts.max_concurrent), thread_name_prefix="push")
        try:
            futures = []
            for i, layer in enumerate(unique.values()):
                if i >= opts.max_concurrent:
                    opts.out.update(layer.id, "Waiting")
                futures.append(pool.submit(self._upload_with_retries, layer))
            for fut in futures:
                fut.result()
        except BaseException:
            opts.cancelled.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        for layer in layers:
            layer.remote = unique[layer.diff_id].remote

    def _upload_with_retries(self, layer: _Layer) -> None:
        opts = self.opts
        retries = 0
        while True:
            try:
                layer.remote = self._upload(layer)
                return
            except DistributionError as exc:
                if opts.cancelled.is_set():
                    raise
                retries += 1
                if isinstance(exc, DoNotRetry) or retries == _MAX_UPLOAD_ATTEMPTS:
                    if opts.log is not None:
                        opts.log.error(f"Upload failed: {exc.message}")
                    raise
                if opts.log is not None:
                    opts.log.error(f"Upload failed, retrying: {exc.message}")
                delay = retries * 5
                while delay > 0:
                    opts.out.update(layer.id, f"Retrying in {delay} second{'s' if delay != 1 else ''}")
                    if opts.cancelled.wait(opts.retry_wait):
                        raise DistributionError("upload cancelled during retry delay") from None
                    delay -= 1

    def _limits(self, layer: _Layer) -> tuple[int, int, bool]:
        if layer.size > _MIDDLE:
            return 4, 3, True
        if layer.size > _SMALL:
            return 3, 1, False
        return 1, 1, False

    def _upload(self, layer: _Layer) -> Descriptor:
        assert self.repo is not None
        opts = self.opts
        with self.lock:
            known = self.remote_layers.get(layer.diff_id)
        if known is not None:
            opts.out.update(layer.id, "Layer already exists")
            return known
        max_mounts, max_checks, check_other = self._limits(layer)
        metas = opts.metadata.get_metadata(layer.diff_id)
        if metas:
            found = self._already_exists(layer, True, 1, metas)
            if found is not None:
                return found
        location: str | None = None
        unauthorized = False
        for meta in self._mount_candidates(max_mounts, metas):
            source = _path_of(meta.source_repository)
            try:
                new_location = self.repo.upload_start(mount=(meta.digest, source))
            except BlobMounted:
                opts.out.update(layer.id, f"Mounted from {source}")
                try:
                    stat = self.repo.blob_stat(meta.digest)
                    desc = Descriptor(MT_LAYER, meta.digest, stat.size)
                except DistributionError:
                    desc = Descriptor(MT_LAYER, meta.digest, 0)
                with self.lock:
                    self.remote_layers[layer.diff_id] = desc
                opts.metadata.tag_and_add(
                    layer.diff_id, self.key, V2Metadata(meta.digest, self.repo_name.name)
                )
                return desc
            except DistributionError as exc:
                if isinstance(exc, ErrcodeError) and exc.code == "UNAUTHORIZED":
                    unauthorized = True
                new_location = None
            if (not unauthorized or self.has_auth) and (check_hmac(meta, self.key) or not meta.hmac):
                opts.metadata.remove(meta)
            if new_location is not None:
                if location is not None:
                    self.repo.upload_cancel(location)
                location = new_location
        if max_checks - len(layer.checked) > 0:
            found = self._already_exists(layer, check_other, max_checks - len(layer.checked), metas)
            if found is not None:
                return found
        if location is None:
            try:
                location = self.repo.upload_start()
            except DistributionError as exc:
                raise _retry_on_error(exc) from None
        return self._upload_blob(layer, location)

    def _upload_blob(self, layer: _Layer, location: str) -> Descriptor:
        assert self.repo is not None
        opts = self.opts
        digest = hashlib.sha256()
        reader = Reader(
            _TarStream(opts.store.layers.tar(layer.chain)), opts.out, layer.size, layer.id, "Pushing"
        )

        def compressed() -> Iterator[bytes]:
            comp = zlib.compressobj(6, zlib.DEFLATED, 31)
            try:
                while True:
                    if opts.cancelled.is_set():
                        raise DistributionError("context canceled")
                    data = reader.read(32 * 1024)
                    if not data:
                        break
                    out = comp.compress(data)
                    if out:
                        digest.update(out)
                        yield out
                tail = comp.flush()
                digest.update(tail)
                yield tail
            finally:
                reader.close()

        try:
            size = self.repo.upload(location, compressed(), lambda: "sha256:" + digest.hexdigest())
        except DistributionError as exc:
            raise _retry_on_error(exc) from None
        pushed = "sha256:" + digest.hexdigest()
        opts.out.update(layer.id, "Pushed")
        opts.metadata.tag_and_add(layer.diff_id, self.key, V2Metadata(pushed, self.repo_name.name))
        desc = Descriptor(MT_LAYER, pushed, size)
        with self.lock:
            self.remote_layers[layer.diff_id] = desc
        return desc

    def _sorted(self, metas: list[V2Metadata]) -> list[V2Metadata]:
        """sortV2MetadataByLikenessAndAge: newest first, HMAC matches, then shared path components."""
        mine = self.repo_name.name.split("/")

        def matching(path: str) -> int:
            parts = path.split("/")
            i = 0
            while i < len(parts) and i < len(mine) and parts[i] == mine[i]:
                i += 1
            return i

        items = list(reversed(metas))
        return sorted(items, key=lambda m: (not check_hmac(m, self.key), -matching(m.source_repository)))

    def _mount_candidates(self, limit: int, metas: list[V2Metadata]) -> list[V2Metadata]:
        domain = self.repo_name.domain
        out = [
            m
            for m in metas
            if _domain_of(m.source_repository) == domain and m.source_repository != self.repo_name.name
        ]
        return self._sorted(out)[:limit]

    def _already_exists(
        self, layer: _Layer, check_other: bool, limit: int, metas: list[V2Metadata]
    ) -> Descriptor | None:
        assert self.repo is not None
        opts = self.opts
        candidates = [
            m
            for m in metas
            if not (m.source_repository and not check_other and m.source_repository != self.repo_name.name)
        ]
        digests: list[V2Metadata] = []
        for meta in self._sorted(candidates):
            if len(digests) >= limit:
                break
            if meta.digest in layer.checked or any(d.digest == meta.digest for d in digests):
                continue
            digests.append(meta)
        for meta in digests:
            try:
                stat = self.repo.blob_stat(meta.digest)
            except BlobUnknown:
                layer.checked.add(meta.digest)
                if meta.source_repository == self.repo_name.name:
                    opts.metadata.remove(meta)
                continue
            except DistributionError:
                layer.checked.add(meta.digest)
                continue
            layer.checked.add(meta.digest)
            if meta.source_repository != self.repo_name.name or not check_hmac(meta, self.key):
                opts.metadata.tag_and_add(
                    layer.diff_id, self.key, V2Metadata(meta.digest, self.repo_name.name)
                )
            desc = Descriptor(MT_LAYER, meta.digest, stat.size)
            opts.out.update(layer.id, "Layer already exists")
            with self.lock:
                self.remote_layers[layer.diff_id] = desc
            return desc
        return None


def _domain_of(name: str) -> str:
    try:
        return parse_normalized_named(name).domain
    except ReferenceError:
        return ""


def _path_of(name: str) -> str:
    try:
        return parse_normalized_named(name).path
    except ReferenceError:
        return name


class _TarStream:
    """A file-like over the layer tar's chunks (tar-split reassembly)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.buf = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self.buf) < n:
            try:
                self.buf += next(self.chunks)
            except StopIteration:
                break
        if n < 0:
            out, self.buf = self.buf, b""
        else:
            out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if callable(close):
            close()
