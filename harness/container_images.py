"""Images for the container backend, made without any registry and cached by their rootfs recipe hash.

A ``dockerd-N`` target's image is its cached debootstrap rootfs (``harness.rootfs``) imported as a single
layer (``tar -C root -c . | POST /images/create?fromSrc=-``). ``refd`` and the host's ``dockerd`` share one
more rootfs made the same way: Debian bookworm with ``python3`` added to the dockerd packages (bookworm's
Python is 3.11, the oldest the project supports; its ``docker.io`` is the host's 20.10), and ``python3-h2``,
the HTTP/2 library refd's BuildKit loads on the first ``/grpc`` or ``/session`` request.

An image is tagged ``harness/<recipe>:<rootfs hash>-i<IMAGE_VERSION>`` and labelled with the rootfs entry it
came from, so an engine that already holds the tag (the container backend's private engine keeps its
data-root in the cache) never imports it again. The project source is not in any image: refd runs from the
tree the harness runs from, bind-mounted read-only at the same path.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

from .errors import HarnessError, TargetUnavailable
from .rootfs import BASE_PACKAGES, Recipe, RootfsEntry, build, cache_root, locate
from .targets import Target

__all__ = [
    "IMAGE_VERSION",
    "PYTHON_RECIPE",
    "ensure_image",
    "ensure_rootfs",
    "image_tag",
    "python_rootfs",
    "rootfs_for",
]

#: bump when the way a rootfs becomes an image changes (not what it holds: the rootfs hash covers that)
IMAGE_VERSION = "1"
#: the rootfs refd (and the host's ``dockerd`` target) run from inside a container
PYTHON_RECIPE = Recipe("container-python", "bookworm", (*BASE_PACKAGES, "python3", "python3-h2"))
#: where Python lives in that image (refd's ``sys.executable`` inside the container)
IMAGE_PYTHON = "/usr/bin/python3"
LABEL_ROOTFS = "org.docker-conformance-harness.rootfs"


def python_rootfs() -> RootfsEntry:
    """The cache entry of :data:`PYTHON_RECIPE` on this host, built or not."""
    like = locate("dockerd-20.10")  # same arch and docker gid as every other entry
    path = os.path.join(
        cache_root(), f"{PYTHON_RECIPE.suite}-{PYTHON_RECIPE.digest(like.arch, like.docker_gid)}"
    )
    return RootfsEntry(PYTHON_RECIPE, path, like.arch, like.docker_gid)


def rootfs_for(target: Target) -> RootfsEntry:
    """The rootfs a target's image is made from (built or not)."""
    if target.rootfs:
        return locate(target.rootfs)
    if target.kind in ("refd", "dockerd"):
        return python_rootfs()
    raise TargetUnavailable(
        target.name,
        "the container backend boots daemons; this target is one that already runs",
        "use the local backend for it, or pick refd or a dockerd target",
    )


@contextlib.contextmanager
def _flock(path: str, shared: bool, out: IO[str] | None, what: str) -> Iterator[None]:
    """The rootfs entry's lock, as ``harness.rootfs`` takes it (exclusive to build, shared to read)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(out, f"waiting for {path} ({what})")
            fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)


def _say(out: IO[str] | None, text: str) -> None:
    if out is not None:
        out.write(f"harness container image: {text}\n")
        out.flush()


def ensure_rootfs(target: Target, out: IO[str] | None = sys.stderr) -> RootfsEntry:
    """The built rootfs for ``target``'s image, building it first (debootstrap, about a minute) if needed."""
    if target.rootfs:
        target.prepare(out)
        return locate(target.rootfs)
    entry = rootfs_for(target)
    if entry.is_built():
        return entry
    with _flock(entry.lock_path, False, out, "another session is building it"):
        if not entry.is_built():
            _say(
                out, f"building the {PYTHON_RECIPE.suite} + python3 rootfs for {target.name} in {entry.path}"
            )
            build(entry, out=out)
    return entry


def image_tag(entry: RootfsEntry) -> str:
    """``harness/dockerd-28:35bd44d6d57f59ea-i1``: the recipe name and the rootfs hash."""
    digest = entry.name.rsplit("-", 1)[-1]
    return f"harness/{entry.recipe.target}:{digest}-i{IMAGE_VERSION}"


def _has_image(client: Any, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def ensure_image(client: Any, entry: RootfsEntry, out: IO[str] | None = sys.stderr) -> str:
    """Import ``entry``'s tree into the engine behind ``client`` (a docker SDK client) unless it has it."""
    tag = image_tag(entry)
    if _has_image(client, tag):
        return tag
    if not entry.is_built():
        raise HarnessError(f"rootfs {entry.path} is not built; nothing to import as {tag}")
    repository, _, version = tag.rpartition(":")
    started = time.monotonic()
    _say(out, f"importing {entry.root} as {tag} (once per engine)")
    # shared: `python -m harness.rootfs clean` must not remove the tree while it is read
    with _flock(entry.lock_path, True, out, "the rootfs is being rebuilt or cleaned"):
        tar = subprocess.Popen(
            ["tar", "-C", entry.root, "--numeric-owner", "--one-file-system", "-c", "."],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert tar.stdout is not None and tar.stderr is not None
        try:
            answer = client.api.import_image_from_stream(
                tar.stdout,
                repository=repository,
                tag=version,
                changes=[f"LABEL {LABEL_ROOTFS}={entry.name}"],
            )
        except Exception as exc:
            tar.kill()
            raise HarnessError(f"importing {entry.root} as {tag} failed: {exc}") from exc
        finally:
            tar.stdout.close()
            err = tar.stderr.read().decode(errors="replace").strip()
            tar.stderr.close()
            code = tar.wait()
    if code != 0:
        raise HarnessError(f"tar of {entry.root} failed (exit {code}): {err or '(no output)'}")
    if not _has_image(client, tag):
        raise HarnessError(f"the engine did not keep {tag} after the import: {str(answer).strip()[:500]}")
    _say(out, f"{tag} ready ({time.monotonic() - started:.1f}s)")
    return tag
