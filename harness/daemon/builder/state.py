"""A stage's state while its instructions run, and the stages built so far (`COPY --from`, `FROM stage`)."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from ..images.imagestore import Image
from .buildargs import BuildArgs
from .stream import BuildError

__all__ = [
    "DEFAULT_PATH",
    "DEFAULT_SHELL",
    "BaseImage",
    "ScratchImage",
    "Stages",
    "State",
    "copy_config",
    "shell_of",
    "short_id",
]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ["/bin/sh", "-c"]


@dataclass
class BaseImage:
    """What a stage starts from: an image, or scratch (``id`` and ``image`` empty)."""

    id: str
    image: Image | None
    os: str = "linux"
    arch: str = ""
    variant: str = ""

    @property
    def run_config(self) -> dict[str, Any] | None:
        if self.image is None:
            return None
        cfg = self.image.config.get("config")
        return copy.deepcopy(cfg) if isinstance(cfg, dict) else None


@dataclass
class State:
    """dispatchState: the run config the instructions shape and the image the last step produced."""

    build_args: BuildArgs
    run_config: dict[str, Any] = field(default_factory=dict)
    maintainer: str = ""
    cmd_set: bool = False
    image_id: str = ""
    base: BaseImage | None = None
    stage_name: str = ""
    os: str = "linux"

    def has_from_image(self) -> bool:
        return bool(self.image_id) or (self.base is not None and self.base.id == "")

    def update_run_config(self) -> None:
        self.run_config["Image"] = self.image_id


class ScratchImage:
    """What a step container of a ``FROM scratch`` stage is created from: no layers, no config."""

    id = ""
    config: dict[str, Any] = {"rootfs": {"type": "layers"}}
    top_chain = ""
    diff_ids: list[str] = []


class Stages:
    """The finished stages' run configs, by position and by name (names are case-insensitive)."""

    def __init__(self) -> None:
        self.flat: list[dict[str, Any]] = []
        self.indexed: dict[str, dict[str, Any]] = {}

    def by_name(self, name: str) -> dict[str, Any] | None:
        return self.indexed.get(name.lower())

    def get(self, name_or_index: str) -> dict[str, Any] | None:
        found = self.by_name(name_or_index)
        if found is not None:
            return found
        if not re.fullmatch(r"[+-]?[0-9]+", name_or_index):
            return None
        index = int(name_or_index)
        if index == len(self.flat):
            raise BuildError("refers to current build stage")
        if index < 0 or index > len(self.flat):
            raise BuildError("index out of bounds")
        return self.flat[index]

    def check_name(self, name: str) -> None:
        if name and self.by_name(name) is not None:
            raise BuildError(f"{name} stage name already used")

    def commit(self, name: str, config: dict[str, Any]) -> None:
        self.check_name(name)
        if name:
            self.indexed[name.lower()] = config
        self.flat.append(config)


def copy_config(cfg: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(cfg)
    out.update(changes)
    return out


def shell_of(cfg: dict[str, Any]) -> list[str]:
    return list(cfg.get("Shell") or DEFAULT_SHELL)


def short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]
