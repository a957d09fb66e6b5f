"""``GET /distribution/{name}/json`` and ``GET /images/search``, as dockerd 28 answers them.

Distribution inspect opens the repository on every endpoint that answers its ping (mirrors included)
and returns the first manifest found: its descriptor and, for a list/index, each entry's platform,
for an image manifest the platform of its config. Search asks the index (``index.docker.io``, or the
registry named in the term) the v1 search API.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from ..images.reference import Named, tag_name_only
from .auth import AuthConfig
from .client import (
    MT_LIST,
    MT_MANIFEST,
    MT_OCI_INDEX,
    MT_SCHEMA1,
    MT_SCHEMA1_SIGNED,
    Fallback,
    Repository,
    manifest_kind,
)
from .errors import DistributionError
from .pull import schema1_message
from .service import INDEX_HOSTNAME, INDEX_NAME, ServiceConfig
from .transport import Transport

__all__ = ["inspect", "search_index"]


def inspect(service: ServiceConfig, ref: Named, creds: AuthConfig) -> dict[str, Any]:
    if ref.familiar_name() == "scratch":
        raise DistributionError("'scratch' is a reserved name", 400)
    repos: list[Repository] = []
    last: DistributionError | None = None
    for endpoint in service.endpoints(ref.domain, mirrors=True):
        try:
            repos.append(Repository.open(endpoint, ref.path, creds, ["pull"]))
        except Fallback as exc:
            last = exc.err
    if not repos:
        raise last or DistributionError("no endpoints")
    for repo in repos:
        try:
            return _fetch(repo, ref)
        except DistributionError as exc:
            last = exc
    assert last is not None
    raise last


def _fetch(repo: Repository, ref: Named) -> dict[str, Any]:
    size = 0
    media = ""
    if ref.digest:
        digest = ref.digest
    else:
        desc = repo.tag_get(tag_name_only(ref).tag)
        digest, media, size = desc.digest, desc.media_type, desc.size
    raw, content_type = repo.manifest_get(digest)
    kind, doc = manifest_kind(raw, content_type or media)
    descriptor: dict[str, Any] = {"mediaType": kind, "digest": digest, "size": size or len(raw)}
    platforms: list[dict[str, Any]] | None = None
    if kind in (MT_LIST, MT_OCI_INDEX):
        platforms = []
        for entry in doc.get("manifests") or []:
            plat = (entry or {}).get("platform") or {}
            item: dict[str, Any] = {"architecture": plat.get("architecture", ""), "os": plat.get("os", "")}
            if plat.get("os.version"):
                item["os.version"] = plat["os.version"]
            if plat.get("os.features"):
                item["os.features"] = plat["os.features"]
            if plat.get("variant"):
                item["variant"] = plat["variant"]
            platforms.append(item)
    elif kind == MT_MANIFEST:
        try:
            config = json.loads(repo.blob_get(str((doc.get("config") or {}).get("digest") or "")))
        except (DistributionError, ValueError):
            config = None
        if isinstance(config, dict) and (config.get("os") or config.get("architecture")):
            item = {"architecture": config.get("architecture", ""), "os": config.get("os", "")}
            if config.get("variant"):
                item["variant"] = config["variant"]
            platforms = [item]
    elif kind in (MT_SCHEMA1, MT_SCHEMA1_SIGNED):
        raise DistributionError(schema1_message(ref), 400)
    return {"Descriptor": descriptor, "Platforms": platforms}


def search_index(service: ServiceConfig, term: str, limit: str, creds: AuthConfig) -> list[dict[str, Any]]:
    """The v1 search of the index the term names (Docker Hub by default)."""
    index, _, remote = term.partition("/")
    if not remote or ("." not in index and ":" not in index and index != "localhost"):
        index, remote = INDEX_NAME, term
    host = INDEX_HOSTNAME if index == INDEX_NAME else index
    n = limit or "25"
    secure = service.is_secure(host)
    scheme = "https"
    url = f"{scheme}://{host}/v1/search?" + urllib.parse.urlencode({"q": remote, "n": n})
    resp = Transport(service.tls_context(host if index != INDEX_NAME else "", secure)).request("GET", url)
    try:
        if resp.status != 200:
            raise DistributionError(f"Unexpected status code {resp.status}")
        doc = json.loads(resp.read() or b"{}")
    finally:
        resp.close()
    return list(doc.get("results") or [])
