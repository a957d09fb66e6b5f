"""The images a build starts from: a local image, an earlier stage's result, or a pull.

``BaseImages.image_or_stage`` answers FROM; ``get_image`` answers ``COPY --from`` too. A name that
is not local is pulled with the build's registry credentials (``X-Registry-Config``), the pull's
progress written into the build's stream, as dockerd's GetImageAndReleasableLayer does.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..errors import ApiError
from ..goformat import go_arch
from ..images.imagestore import Image
from ..images.service import ImageService
from .options import BuildOptions
from .platforms import Platform, format_platform, image_platform, platform_matches
from .state import BaseImage, Stages
from .stream import BuildError, BuildOutput

if TYPE_CHECKING:
    from ..daemon import Daemon

__all__ = ["BaseImages"]


class BaseImages:
    def __init__(self, daemon: Daemon, options: BuildOptions, out: BuildOutput) -> None:
        self.daemon = daemon
        self.store: ImageService = daemon.images
        self.options = options
        self.out = out

    async def image_or_stage(self, name: str, platform: Platform | None, results: Stages) -> BaseImage:
        """What ``FROM name`` starts from (``scratch``: nothing, for the platform asked)."""
        local_only = False
        stage = results.by_name(name)
        if stage is not None:
            name = str(stage.get("Image") or "")
            local_only = True
        platform = platform or self.options.platform
        if name == "scratch":
            p = platform or ("linux", go_arch(), "")
            return BaseImage("", None, p[0], p[1], p[2])
        image = await self.get_image(name, local_only, platform)
        return BaseImage(
            image.id,
            image,
            str(image.config.get("os") or "linux"),
            str(image.config.get("architecture") or go_arch()),
            str(image.config.get("variant") or ""),
        )

    async def from_image(self, ref: str, results: Stages) -> Image | None:
        """What ``COPY --from=ref`` copies out of: a stage's result (None: scratch) or an image."""
        stage = results.get(ref)
        if stage is not None:
            image_id = str(stage.get("Image") or "")
            if not image_id:
                return None
            return await self.get_image(image_id, True, self.options.platform)
        return await self.get_image(ref, False, self.options.platform)

    async def get_image(self, name: str, local_only: bool, platform: Platform | None) -> Image:
        """GetImageAndReleasableLayer: a local image (or stage result), else a pull.

        A local image of another platform is still used unless it must be local (a stage): dockerd's
        GetImage reports the mismatch as not-found but returns the image, which the builder takes.
        """
        if not (self.options.pull and not local_only):
            try:
                image = self.store.resolve(name)
                if platform is not None and not platform_matches(image, platform) and local_only:
                    raise ApiError(
                        404,
                        f"image with reference {name} was found but its platform "
                        f"({format_platform(image_platform(image))}) does not match the specified "
                        f"platform ({format_platform(platform)})",
                    )
                return image
            except ApiError as exc:
                if local_only or exc.status != 404:
                    raise BuildError(exc.message, exc.status) from None
        return await self.pull(name, platform)

    async def pull(self, name: str, platform: Platform | None) -> Image:
        from ..distribution.auth import AuthConfig
        from ..distribution.errors import DistributionError
        from ..distribution.progress import ProgressOutput
        from ..distribution.pull import PullOptions, pull
        from ..images.reference import ReferenceError, parse_normalized_named, tag_name_only

        try:
            ref = tag_name_only(parse_normalized_named(name))
        except ReferenceError as exc:
            raise BuildError(str(exc)) from None
        creds = self.auth_for(ref.domain)

        def work() -> Image:
            opts = PullOptions.from_config(
                self.daemon.config,
                self.store,
                ProgressOutput(self.out.raw),
                creds if creds is not None else AuthConfig(),
                platform,
                log=self.daemon.log,
            )
            pulled = pull(opts, ref)
            return self.store.resolve(pulled.familiar_string())

        try:
            image = await asyncio.to_thread(work)
        except DistributionError as exc:
            raise BuildError(exc.message, exc.status) from None
        except ApiError as exc:
            raise BuildError(exc.message, exc.status) from None
        return image

    def auth_for(self, domain: str) -> Any:
        """The build's credentials for a registry, looked up as the CLI keys them."""
        from ..distribution.auth import AuthConfig

        configs = self.options.auth_configs or {}
        keys = [domain, f"https://{domain}", f"http://{domain}"]
        if domain == "docker.io":
            keys = ["https://index.docker.io/v1/", "index.docker.io", "docker.io", *keys]
        for key in keys:
            doc = configs.get(key)
            if isinstance(doc, dict):
                return AuthConfig.from_dict(doc)
        return None
