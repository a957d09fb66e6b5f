"""The docker CLI's plugins the scenarios drive: Debian trixie's ``docker-buildx`` and ``docker-compose``.

They come from Debian like the harness's other OS-level pieces (``harness.debpkg``: fetched through a
private apt, unpacked into the harness cache, never installed into the host) and reach the pinned
docker CLI through a private ``DOCKER_CONFIG`` whose ``config.json`` lists their directory in
``cliPluginsExtraDirs``; the host's ``/usr/libexec/docker/cli-plugins`` and ``~/.docker`` stay as they
are. With buildx installed, ``docker build`` is ``docker buildx build``.

``python -m harness.cliplugins`` fetches them ahead of time and prints their directories.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

from .debpkg import DebPkgError, fetch
from .errors import HarnessError

__all__ = ["PLUGINS", "CliPlugin", "CliPluginError", "plugin_dirs", "write_docker_config"]

SUITE = "trixie"


@dataclass(frozen=True)
class CliPlugin:
    package: str  # the Debian package
    binary: str  # its file under usr/libexec/docker/cli-plugins
    version: str  # the versions the scenarios were written against (a prefix)


PLUGINS = (
    CliPlugin("docker-buildx", "docker-buildx", "0.13"),
    CliPlugin("docker-compose", "docker-compose", "2.26"),
)


class CliPluginError(HarnessError):
    """A CLI plugin could not be fetched; the message says from where and how to fix it."""


def plugin_dirs(plugins: tuple[CliPlugin, ...] = PLUGINS) -> list[str]:
    """The cli-plugins directories holding ``plugins`` (fetched into the harness cache on first use)."""
    dirs: list[str] = []
    for plugin in plugins:
        try:
            unpacked = fetch(SUITE, plugin.package, version=plugin.version)
        except DebPkgError as exc:
            raise CliPluginError(
                f"the {plugin.binary} CLI plugin (Debian {SUITE}'s {plugin.package} {plugin.version}.x) is "
                f"needed for the BuildKit scenarios and could not be fetched: {exc}"
            ) from None
        directory = os.path.join(str(unpacked.root), "usr", "libexec", "docker", "cli-plugins")
        if not os.access(os.path.join(directory, plugin.binary), os.X_OK):
            raise CliPluginError(
                f"{unpacked.describe()} has no executable {plugin.binary} in {directory}: "
                f"remove {unpacked.path} and run again"
            )
        if directory not in dirs:
            dirs.append(directory)
    return dirs


def write_docker_config(config_dir: str, dirs: list[str]) -> str:
    """A private DOCKER_CONFIG whose CLI finds the plugins in ``dirs``; returns ``config_dir``."""
    os.makedirs(config_dir, mode=0o700, exist_ok=True)
    path = os.path.join(config_dir, "config.json")
    doc: dict[str, object] = {}
    if os.path.exists(path):
        with open(path) as fh:
            doc = json.load(fh)
    doc["cliPluginsExtraDirs"] = list(dirs)
    with open(path, "w") as fh:
        json.dump(doc, fh, indent=1)
    return config_dir


def main(argv: list[str] | None = None) -> int:
    try:
        for directory in plugin_dirs():
            print(directory)
    except HarnessError as exc:
        print(f"harness cliplugins: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
