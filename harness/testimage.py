"""Load the busybox test image into a daemon through the API (``POST /images/load``), no registry needed."""

from __future__ import annotations

import json

from .client import EngineClient
from .endpoints import Endpoint
from .errors import ImageBuildError

__all__ = ["TEST_IMAGE", "load_test_image"]

TEST_IMAGE = "busybox:latest"


def load_test_image(endpoint: Endpoint, tag: str = TEST_IMAGE) -> str:
    """Build (cached) and load the busybox image as ``tag``; returns the tag."""
    from .images import busybox_rootfs, save_tarball

    archive = save_tarball(busybox_rootfs(), tag)
    client = EngineClient(endpoint, timeout=120)
    try:
        resp = client.post(
            "/images/load?quiet=1", data=archive, headers={"Content-Type": "application/x-tar"}
        )
        if resp.status_code != 200:
            raise ImageBuildError(
                f"loading the test image into {endpoint.docker_host} failed: "
                f"{resp.status_code} {resp.text.strip()}"
            )
        for line in resp.text.splitlines():
            if line.strip() and "error" in json.loads(line):
                raise ImageBuildError(f"loading the test image failed: {line.strip()}")
        check = client.get(f"/images/{tag}/json")
        if check.status_code != 200:
            raise ImageBuildError(f"the test image {tag} is missing after load: {check.text.strip()}")
    finally:
        client.close()
    return tag
