"""BuildKit through the classic ``POST /build?version=2``: the context uploaded as the request's archive.

dockerd's builder-next takes such a build without a client session: the Dockerfile frontend reads the
context and the Dockerfile from the uploaded archive. refd's frontend asks its session for them
(``fetch_dir``), so :class:`UploadSession` answers from the extracted archive instead, and has no
secrets, credentials or ssh agents to give. The result goes to the image store (the ``moby`` exporter,
tagged with the ``t`` names); progress comes back as dockerd streams it on ``/build``: one
``moby.buildkit.trace`` aux message (a base64 ``StatusResponse``) per update, then ``moby.image.id``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import shutil
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING, Any

from .control import BuildFailed
from .session import SessionError

if TYPE_CHECKING:
    from .control import Controller

__all__ = ["UploadSession", "build_from_upload"]


class UploadSession:
    """What the frontend asks a client session for, answered from an uploaded context."""

    def __init__(self, context: str, dockerfile_dir: str) -> None:
        self.id = ""
        self.name = "upload"
        self.shared_key = ""
        self.context = context
        self.dockerfile_dir = dockerfile_dir

    async def fetch_dir(
        self,
        dir_name: str,
        dest: str,
        excludes: list[str] | None = None,
        follow: list[str] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Copy ``context`` (less ``excludes``) or the Dockerfile's directory (only the ``follow`` names)."""
        if dir_name == "context":
            sent = await asyncio.to_thread(_copy_tree, self.context, dest, excludes or [])
        elif dir_name == "dockerfile":
            sent = await asyncio.to_thread(_copy_named, self.dockerfile_dir, dest, follow or [])
        else:
            raise SessionError(f"no local directory {dir_name!r}: this build's context was uploaded")
        if progress is not None:
            progress(sent)
        return sent

    async def secret(self, secret_id: str) -> bytes | None:
        return None

    async def credentials(self, host: str) -> tuple[str, str]:
        return "", ""

    async def ssh_stream(self, ssh_id: str) -> Any:
        raise SessionError(f"unset ssh forward key {ssh_id}")

    async def check_agent(self, ssh_id: str) -> None:
        raise SessionError(f"unset ssh forward key {ssh_id}")


def _copy_tree(src: str, dest: str, excludes: list[str]) -> int:
    from ..builder.context import PatternMatcher

    matcher = PatternMatcher(excludes) if excludes else None
    size = 0
    for dirpath, dirnames, filenames in os.walk(src):
        rel_dir = os.path.relpath(dirpath, src)
        for name in list(dirnames) + filenames:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if matcher is not None and matcher.matches_or_parent_matches(rel):
                if name in dirnames:
                    dirnames.remove(name)
                continue
            source, target = os.path.join(src, rel), os.path.join(dest, rel)
            if os.path.islink(source):
                os.symlink(os.readlink(source), target)
            elif os.path.isdir(source):
                os.makedirs(target, exist_ok=True)
                shutil.copystat(source, target)
            else:
                shutil.copy2(source, target)
                size += os.lstat(source).st_size
    return size


def _copy_named(src: str, dest: str, names: list[str]) -> int:
    size = 0
    for name in names:
        source = os.path.join(src, name)
        if os.path.isfile(source):
            shutil.copy2(source, os.path.join(dest, name))
            size += os.path.getsize(source)
    return size


def _aux(ident: str, value: Any) -> bytes:
    return json.dumps({"id": ident, "aux": value}, separators=(",", ":")).encode() + b"\n"


async def build_from_upload(
    ctl: Controller, context: str, attrs: dict[str, str], tags: list[str]
) -> AsyncGenerator[bytes, None]:
    """Run the Dockerfile frontend on an extracted upload; yields dockerd's /build stream lines."""
    from .exporter import export
    from .frontend import run_dockerfile
    from .messages import Exporter, SolveRequest

    build = ctl.build(secrets.token_hex(13))
    filename = attrs.get("filename") or "Dockerfile"
    dockerfile_dir = os.path.join(context, os.path.dirname(filename))
    attrs = {**attrs, "filename": os.path.basename(filename)}
    session = UploadSession(context, dockerfile_dir)

    async def solve() -> str:
        try:
            async with ctl.lock:
                result = await run_dockerfile(ctl, build, session, attrs)  # type: ignore[arg-type]
            exporter = Exporter(Type="moby", Attrs={"name": ",".join(tags)} if tags else {})
            response = await export(ctl, build, result, [exporter], SolveRequest())
            return response.get("containerimage.digest", "")
        finally:
            ctl.end(build)

    task = asyncio.ensure_future(solve())
    try:
        async for message in build.progress.stream():
            yield _aux("moby.buildkit.trace", base64.b64encode(message.encode()).decode())
        try:
            image_id = await task
        except (BuildFailed, SessionError) as exc:
            text = str(exc)
            error = {"errorDetail": {"message": text}, "error": text}
            yield json.dumps(error, separators=(",", ":")).encode() + b"\n"
            return
        yield _aux("moby.image.id", {"ID": image_id})
    finally:
        if not task.done():
            task.cancel()
