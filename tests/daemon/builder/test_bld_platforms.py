"""Platform specifiers as containerd v1.0.0-rc.4's platforms.Parse reads them (what dockerd 28.5 is built
with), normalized: moby's TestImportWithCustomPlatformReject and TestImagePullPlatformInvalid texts."""

from __future__ import annotations

import pytest

from harness.daemon.builder.platforms import parse_platform
from harness.daemon.goformat import go_arch

OS_PATTERN = r'"^([A-Za-z0-9_-]+)(?:\\(([A-Za-z0-9_.%-]*)((?:\\+[A-Za-z0-9_.%-]+)*)\\))?$"'


@pytest.mark.parametrize(
    ("text", "platform"),
    [
        ("linux/amd64", ("linux", "amd64", "")),
        ("Linux/X86_64", ("linux", "amd64", "")),
        ("linux/arm64/v8", ("linux", "arm64", "")),
        ("linux/arm", ("linux", "arm", "v7")),
        ("linux/arm/6", ("linux", "arm", "v6")),
        ("armel", ("linux", "arm", "v6")),
        ("macos/arm64", ("darwin", "arm64", "")),
        ("windows(10.0.17763)/amd64", ("windows", "amd64", "")),
        ("linuxDifferentOS/amd64", ("linuxdifferentos", "amd64", "")),  # two parts: no OS check
    ],
)
def test_specifiers(text: str, platform: tuple[str, str, str]) -> None:
    assert parse_platform(text) == platform


def test_a_lone_os_takes_this_machines_architecture() -> None:
    assert parse_platform("macos") == ("darwin", go_arch(), "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nintendo64", '"nintendo64": unknown operating system or architecture: invalid argument'),
        ("foobar", '"foobar": unknown operating system or architecture: invalid argument'),
        (
            "       ",
            f'"       " is an invalid OS component of "       ": OSAndVersion specifier component must match '
            f"{OS_PATTERN}: invalid argument",
        ),
        (
            "/",
            f'"" is an invalid OS component of "/": OSAndVersion specifier component must match '
            f"{OS_PATTERN}: invalid argument",
        ),
        (
            "linux/a b",
            '"a b" is an invalid component of "linux/a b": platform specifier component must match '
            '"^[A-Za-z0-9_.-]+$": invalid argument',
        ),
        ("linux/*", '"linux/*": wildcards not yet supported: invalid argument'),
        ("a/b/c/d", '"a/b/c/d": cannot parse platform specifier: invalid argument'),
    ],
)
def test_refusals_are_containerds_words(text: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_platform(text)
    assert str(err.value) == message
