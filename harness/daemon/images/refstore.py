"""The reference store: tags and digests naming images (moby ``reference/store.go``).

One file, ``<data-root>/image/<driver>/repositories.json``, rewritten whole (atomically) on every
change, in dockerd's shape: ``{"Repositories": {"busybox": {"busybox:latest": "sha256:..."}}}``
(familiar name -> familiar reference -> image ID). A tag reference is kept without its digest and
a digest reference without its tag. ``restore`` forgets references to images that are gone.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from ..fsutil import atomic_write
from ..goformat import go_json, sorted_keys
from .reference import Named, parse_normalized_named, tag_name_only

__all__ = ["ReferenceStore"]


class ReferenceStore:
    """Tag and digest references -> image IDs (thread-safe)."""

    def __init__(self, path: str, lock: threading.RLock | None = None) -> None:
        self.path = path
        self.lock = lock or threading.RLock()
        self._repos: dict[str, dict[str, str]] = {}  # familiar name -> familiar reference -> image ID

    def restore(self, exists: Callable[[str], bool]) -> None:
        """Read the file back, keeping only references to images that ``exists``."""
        try:
            with open(self.path, "rb") as fh:
                data = json.load(fh)
        except (FileNotFoundError, json.JSONDecodeError):
            data = {}
        for name, refs in (data.get("Repositories") or {}).items():
            kept = {r: i for r, i in (refs or {}).items() if exists(i)}
            if kept:
                self._repos[name] = kept

    def _save(self) -> None:
        doc = {"Repositories": {name: sorted_keys(refs) for name, refs in sorted(self._repos.items())}}
        atomic_write(self.path, go_json(doc), 0o600)

    @staticmethod
    def _key(ref: Named) -> Named:
        """The stored form: a digest reference without its tag, a tag reference without a digest."""
        return Named(ref.domain, ref.path, "", ref.digest) if ref.is_canonical else tag_name_only(ref)

    # -- lookups -----------------------------------------------------------------------------------
    def get(self, ref: Named) -> str | None:
        """The image ID a tag or digest reference points to (``None``: no such reference)."""
        key = self._key(ref)
        with self.lock:
            return self._repos.get(key.familiar_name(), {}).get(key.familiar_string())

    def references(self, image_id: str) -> list[Named]:
        """Tags and digests of an image, sorted as dockerd sorts them (by full reference string)."""
        with self.lock:
            refs = [
                parse_normalized_named(r)
                for repo in self._repos.values()
                for r, i in repo.items()
                if i == image_id
            ]
        return sorted(refs, key=lambda r: r.string())

    def by_name(self, name: Named) -> list[tuple[Named, str]]:
        """(reference, image ID) of every tag and digest under the repository ``name``, sorted."""
        with self.lock:
            refs = dict(self._repos.get(name.familiar_name(), {}))
        return sorted(((parse_normalized_named(r), i) for r, i in refs.items()), key=lambda a: a[0].string())

    def repo_tags(self, image_id: str) -> list[str]:
        return [r.familiar_string() for r in self.references(image_id) if r.is_tagged and not r.is_canonical]

    def repo_digests(self, image_id: str) -> list[str]:
        return [r.familiar_string() for r in self.references(image_id) if r.is_canonical]

    # -- changes -----------------------------------------------------------------------------------
    def add(self, ref: Named, image_id: str) -> str | None:
        """AddTag/AddDigest with force: returns the image the reference was moved away from, if any."""
        name, key = ref.familiar_name(), ref.familiar_string()
        with self.lock:
            repo = self._repos.setdefault(name, {})
            old = repo.get(key)
            repo[key] = image_id
            self._save()
        return old if old != image_id else None

    def delete(self, ref: Named) -> bool:
        """Remove a reference (a digest reference's tag, if any, is ignored); False if there was none."""
        key = self._key(ref)
        name, text = key.familiar_name(), key.familiar_string()
        with self.lock:
            repo = self._repos.get(name)
            if not repo or text not in repo:
                return False
            del repo[text]
            if not repo:
                del self._repos[name]
            self._save()
        return True
