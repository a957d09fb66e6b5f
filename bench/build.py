"""The builder figures: a 10-step Dockerfile on busybox with the classic builder, refd vs dockerd.

Each target's daemon (booted once, busybox loaded) builds the same context: once with
``nocache=1`` (every step runs: step containers, a RUN, COPY, commits) and once more with the cache
warm (every step ``Using cache``), timed from the request to the end of the JSON stream. The images
are removed after each repetition.
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Callable
from typing import Any

__all__ = ["BUILD_FIGURES", "build_figures"]

BUILD_FIGURES = {
    "build10_s": ("`docker build` (classic builder) of a 10-step Dockerfile, nocache", "s"),
    "build10_cached_s": ("  the same build again, every step from the cache", "s"),
}

DOCKERFILE = """FROM busybox
ENV A=1
WORKDIR /app
COPY f /app/f
RUN echo step > /app/step
LABEL bench=1
RUN cat /app/f /app/step
EXPOSE 8080
USER nobody
CMD ["sh"]
"""


def _context() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("Dockerfile", DOCKERFILE.encode()), ("f", b"bench file\n")):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_figures(
    targets: list[Any],
    rec: Any,
    repeat: int,
    boot: Callable[[Any], tuple[Any, float]],
    teardown: Callable[[Any], None],
    progress: Callable[[str], None],
) -> None:
    from harness.client import EngineClient
    from harness.testimage import load_test_image

    context = _context()
    handles: dict[str, Any] = {}
    try:
        for target in targets:
            handles[target.name], _ = boot(target)
            load_test_image(handles[target.name].endpoint)
        for rep in range(repeat):
            progress(f"build of a 10-step Dockerfile, repetition {rep + 1}/{repeat}")
            for target in targets:
                handle = handles[target.name]

                def build(handle: Any = handle, target: Any = target) -> None:
                    client = EngineClient(handle.endpoint, timeout=600)
                    try:
                        for key, query in (
                            ("build10_s", "nocache=1&t=bench-build"),
                            ("build10_cached_s", "t=bench-build"),
                        ):
                            start = time.perf_counter()
                            resp = client.post(
                                f"/build?{query}", data=context, headers={"Content-Type": "application/x-tar"}
                            )
                            text = resp.text
                            took = time.perf_counter() - start
                            if (
                                resp.status_code != 200
                                or '"error"' in text
                                or "Successfully tagged" not in text
                            ):
                                raise RuntimeError(f"build failed: {resp.status_code} {text[-300:]}")
                            rec.add(target, key, took)
                        client.delete("/images/bench-build?force=1")
                    finally:
                        client.close()

                rec.attempt(target, "build 10 steps", build)
    finally:
        for handle in handles.values():
            teardown(handle)
