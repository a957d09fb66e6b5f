"""Shared helpers of the classic-builder scenarios (``test_build*.py``, ``test_commit.py``).

Contexts are tars built here with fixed owners, modes and mtimes, so both daemons hash the same
bytes (COPY's ``file:<tarsum>`` in the history is compared, as ``<tarsum:NAME>``). A build's
JSON stream is recorded as the concatenated ``stream`` text of stdout, the stderr text (the
``\\x1b[91m`` wrapped writes) apart (their interleaving is timing), and the other lines (``aux``,
``errorDetail``) in order. ``cleanup`` removes the containers and images a scenario created, so
builds never feed other scenarios' caches.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from harness.client import EngineClient

__all__ = [
    "Built",
    "Cleanup",
    "V",
    "build",
    "context_tar",
    "image_summary",
    "slice_hash",
    "subst",
    "tarsum",
]

V = "/v1.41"  # served by dockerd 20.10 too
MTIME = 1_600_000_000
_ESC = re.compile(r"\x1b\[91m(.*?)\x1b\[0m", re.S)


def context_tar(files: dict[str, Any], compress: str = "") -> bytes:
    """A build context: ``name: bytes|str`` files (mode 0644), ``name/: None`` dirs (0755),
    ``name: ("link", target)`` symlinks, ``name: (mode, data)`` files with a mode."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, value in files.items():
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mtime, info.uid, info.gid = MTIME, 0, 0
            if value is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(value, tuple) and value[0] == "link":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, value[1], 0o777
                tar.addfile(info)
            else:
                mode, data = value if isinstance(value, tuple) else (0o644, value)
                raw = data.encode() if isinstance(data, str) else data
                info.size, info.mode = len(raw), mode
                tar.addfile(info, io.BytesIO(raw))
    data = buf.getvalue()
    if compress == "gzip":
        return gzip.compress(data, mtime=0)
    if compress == "bzip2":
        import bz2

        return bz2.compress(data)
    if compress == "xz":
        import lzma

        return lzma.compress(data)
    return data


def tarsum(name: str, data: bytes | str, mode: int = 0o644) -> str:
    """The tarsum v1 dockerd computes for a regular file of ``context_tar``."""
    return _tarsum_v1(name, data.encode() if isinstance(data, str) else data, mode, "0")


def dir_tarsum(name: str) -> str:
    """The tarsum v1 dockerd computes for a directory (``name`` ends in /, mode 0755) of ``context_tar``."""
    return _tarsum_v1(name, b"", 0o755, "5")


def _tarsum_v1(name: str, raw: bytes, mode: int, typeflag: str) -> str:
    h = hashlib.sha256()
    for key, value in [
        ("name", name),
        ("mode", str(mode)),
        ("uid", "0"),
        ("gid", "0"),
        ("size", str(len(raw))),
        ("typeflag", typeflag),
        ("linkname", ""),
        ("uname", ""),
        ("gname", ""),
        ("devmajor", "0"),
        ("devminor", "0"),
    ]:
        h.update((key + value).encode())
    h.update(raw)
    return h.hexdigest()


def slice_hash(prefix: str, items: list[str]) -> str:
    """hashStringSlice: COPY's hash of several sources (``multi``) or of a directory (``dir``)."""
    return prefix + ":" + hashlib.sha256(",".join(items).encode()).hexdigest()


@dataclass
class Built:
    status: int
    content_type: str
    lines: list[Any] = field(default_factory=list)
    body: str = ""

    @property
    def stdout(self) -> str:
        text = "".join(d["stream"] for d in self.lines if isinstance(d, dict) and list(d) == ["stream"])
        return _ESC.sub("", text)

    @property
    def stderr(self) -> str:
        text = "".join(d["stream"] for d in self.lines if isinstance(d, dict) and list(d) == ["stream"])
        return "".join(_ESC.findall(text))

    @property
    def others(self) -> list[Any]:
        return [d for d in self.lines if not (isinstance(d, dict) and list(d) == ["stream"])]

    @property
    def image_id(self) -> str:
        """The last aux ID (or the quiet build's only line)."""
        found = ""
        for d in self.lines:
            if isinstance(d, dict) and isinstance(d.get("aux"), dict) and "ID" in d["aux"]:
                found = str(d["aux"]["ID"])
            elif isinstance(d, dict) and str(d.get("stream", "")).startswith("sha256:"):
                found = str(d["stream"]).strip()
        return found

    def errors(self) -> list[str]:
        """The error messages the stream carried (a build fails inside a 200 stream)."""
        return [
            str(d.get("error") or d.get("errorDetail", {}).get("message"))
            for d in self.others
            if isinstance(d, dict) and ("error" in d or "errorDetail" in d)
        ]

    def ok(self) -> str:
        """Check the build ran to the end (200, no error in the stream, an image ID); returns the ID."""
        assert self.status == 200, self.body
        assert not self.errors(), self.errors()
        assert self.image_id.startswith("sha256:"), self.lines
        return self.image_id

    def failed(self, message: str) -> str:
        """Check the build failed in its stream with an error containing ``message``; returns the error."""
        assert self.status == 200, self.body
        errors = self.errors()
        assert errors and message in errors[-1], (message, errors, self.stdout[-500:])
        return errors[-1]

    def refused(self, status: int, message: str) -> str:
        """Check the build was refused before it started: an HTTP error whose message contains ``message``."""
        assert self.status == status, (self.status, self.body or self.lines)
        got = str(json.loads(self.body).get("message", ""))
        assert message in got, (message, got)
        return got

    def record(self, subs: dict[str, str] | None = None) -> dict[str, Any]:
        """What a scenario observes of a build (``subs``: texts to replace by placeholders)."""
        out: dict[str, Any] = {"status": self.status}
        if self.status != 200:
            out["body"] = self.body
        else:
            out.update(stdout=self.stdout, stderr=self.stderr, others=self.others)
        text = json.dumps(out)
        for old, new in (subs or {}).items():
            text = text.replace(old, new)
        return dict(json.loads(text))


def build(
    engine: EngineClient,
    files: dict[str, Any] | None = None,
    *,
    raw: bytes | None = None,
    api: str = V,
    headers: dict[str, str] | None = None,
    **query: Any,
) -> Built:
    """POST /build with a context; ``query`` values may be lists (repeated keys) or dicts (JSON)."""
    params: list[tuple[str, str]] = []
    for key, value in query.items():
        if isinstance(value, list):
            params += [(key, str(v)) for v in value]
        elif isinstance(value, dict):
            params.append((key, json.dumps(value)))
        elif isinstance(value, bool):
            params.append((key, "1" if value else "0"))
        else:
            params.append((key, str(value)))
    body = raw if raw is not None else context_tar(files or {})
    resp = engine.post(
        f"{api}/build?{urllib.parse.urlencode(params)}",
        data=body,
        headers={"Content-Type": "application/x-tar", **(headers or {})},
        timeout=300,
    )
    built = Built(resp.status_code, resp.headers.get("Content-Type", ""), body=resp.text.strip())
    if resp.status_code == 200:
        for line in resp.text.splitlines():
            if line.strip():
                built.lines.append(json.loads(line))
    else:
        built.body = resp.text.strip()
    return built


def subst(obj: Any, subs: dict[str, str]) -> Any:
    """``obj`` with each ``subs`` key replaced by its placeholder in every string."""
    text = json.dumps(obj)
    for old, new in subs.items():
        text = text.replace(old, new)
    return json.loads(text)


def image_summary(
    engine: EngineClient, ref: str, version: str = V, subs: dict[str, str] | None = None
) -> dict[str, Any]:
    """Config, layer count, author, comment and the history (newest first) of an image."""
    return dict(subst(_image_summary(engine, ref, version), subs or {}))


def _image_summary(engine: EngineClient, ref: str, version: str) -> dict[str, Any]:
    resp = engine.get(f"{version}/images/{ref}/json")
    if resp.status_code != 200:
        return {"status": resp.status_code, "body": resp.text.strip()}
    doc = resp.json()
    history = engine.get(f"{version}/images/{ref}/history").json()
    return {
        "Config": doc["Config"],
        "Layers": len((doc.get("RootFS") or {}).get("Layers") or []),
        "Author": doc.get("Author"),
        "Comment": doc.get("Comment"),
        "Os": doc.get("Os"),
        "Architecture": doc.get("Architecture"),
        "history": [
            {
                "CreatedBy": h["CreatedBy"],
                "Size": h["Size"],
                "Comment": h["Comment"],
                "Id": "<missing>" if h["Id"] == "<missing>" else "<id>",
                "Tags": h["Tags"],
            }
            for h in history
        ],
    }


class Cleanup:
    """Containers and images that appeared during a scenario, removed afterwards."""

    def __init__(self, engine: EngineClient) -> None:
        self.engine = engine
        self.images = self._images()
        self.containers = self._containers()

    def _images(self) -> set[str]:
        return {i["Id"] for i in self.engine.get(f"{V}/images/json?all=1").json()}

    def _containers(self) -> set[str]:
        return {c["Id"] for c in self.engine.get(f"{V}/containers/json?all=1").json()}

    def new_containers(self) -> list[dict[str, Any]]:
        return [
            c for c in self.engine.get(f"{V}/containers/json?all=1").json() if c["Id"] not in self.containers
        ]

    def close(self) -> None:
        for cid in self._containers() - self.containers:
            self.engine.delete(f"{V}/containers/{cid}?force=1&v=1")
        for _ in range(3):
            left = self._images() - self.images
            if not left:
                break
            for image_id in left:
                self.engine.delete(f"{V}/images/{image_id}?force=1")


@pytest.fixture
def cleanup(engine: EngineClient, test_image: str) -> Iterator[Cleanup]:
    tracker = Cleanup(engine)
    yield tracker
    tracker.close()
