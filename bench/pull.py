"""The image-distribution figure: pulling a 100 MB image from a loopback registry, refd vs dockerd.

One seeded ``docker-registry`` (``harness.registry``) serves ``library/big:latest`` (the busybox
layer plus one incompressible 100 MB layer, ``harness.registry_images.big_image``) for the whole run;
each repetition boots a fresh daemon per target (empty data-root), attaches the registry into its
network namespace and times ``POST /images/create`` from the request to the end of the stream
(download, verification, extraction, image creation).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["PULL_FIGURES", "pull_figures"]

PULL_FIGURES = {"pull_100mb_s": ("`docker pull` of a 100 MB image from a loopback registry", "s")}


def pull_figures(
    targets: list[Any],
    rec: Any,
    repeat: int,
    boot: Callable[[Any], tuple[Any, float]],
    teardown: Callable[[Any], None],
    progress: Callable[[str], None],
) -> None:
    from harness.client import EngineClient
    from harness.registry import Registry
    from harness.registry_images import big_image

    registry = Registry.start()
    try:
        registry.push(big_image())
        for rep in range(repeat):
            progress(f"pull of a 100 MB image, repetition {rep + 1}/{repeat}")
            for target in targets:
                handle, _ = boot(target)
                try:

                    def pull(handle: Any = handle, target: Any = target) -> None:
                        host = registry.attach(handle)
                        client = EngineClient(handle.endpoint, timeout=600)
                        try:
                            start = time.perf_counter()
                            resp = client.post(f"/images/create?fromImage={host}/library/big&tag=latest")
                            text = resp.text
                            took = time.perf_counter() - start
                        finally:
                            client.close()
                        if (
                            resp.status_code != 200
                            or '"error"' in text
                            or "Downloaded newer image" not in text
                        ):
                            raise RuntimeError(f"pull failed: {resp.status_code} {text[-300:]}")
                        rec.add(target, "pull_100mb_s", took)

                    rec.attempt(target, "pull 100 MB", pull)
                finally:
                    for cleanup in handle.extras.pop("cleanups", []):
                        cleanup()
                    teardown(handle)
    finally:
        registry.close()
