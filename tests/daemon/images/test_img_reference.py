"""reference: docker reference parsing, normalisation and messages as distribution/reference v0.6."""

from __future__ import annotations

import pytest

from harness.daemon.images.reference import (
    DigestReference,
    ReferenceError,
    familiar_match,
    parse_any_reference,
    parse_digest,
    parse_normalized_named,
    tag_name_only,
    with_tag,
)

HEX = "f0fb494ed18423e71a37cc7d2fb932bb33a3a017fec3072e880b62915b2b0bae"


@pytest.mark.parametrize(
    "text,full,familiar",
    [
        ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("user/repo", "docker.io/user/repo:latest", "user/repo:latest"),
        ("library/a/b", "docker.io/library/a/b:latest", "library/a/b:latest"),
        ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
        ("localhost:5000/x:v1", "localhost:5000/x:v1", "localhost:5000/x:v1"),
        ("example.com/a/b:tag", "example.com/a/b:tag", "example.com/a/b:tag"),
        ("Example.com/a", "Example.com/a:latest", "Example.com/a:latest"),
        (f"busybox@sha256:{HEX}", f"docker.io/library/busybox@sha256:{HEX}", f"busybox@sha256:{HEX}"),
        (f"busybox:1@sha256:{HEX}", f"docker.io/library/busybox:1@sha256:{HEX}", f"busybox:1@sha256:{HEX}"),
        ("a__b-c.d", "docker.io/library/a__b-c.d:latest", "a__b-c.d:latest"),
    ],
)
def test_normalisation(text: str, full: str, familiar: str) -> None:
    ref = tag_name_only(parse_normalized_named(text))
    assert ref.string() == full
    assert ref.familiar_string() == familiar


@pytest.mark.parametrize(
    "text,message",
    [
        ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase"),
        ("user/Repo", "invalid reference format: repository name (user/Repo) must be lowercase"),
        ("", "invalid reference format"),
        ("a:b:c", "invalid reference format"),
        ("-bad", "invalid reference format"),
        ("bad-", "invalid reference format"),
        ("a/", "invalid reference format"),
        (HEX, f"invalid repository name ({HEX}), cannot specify 64-byte hexadecimal strings"),
        ("busybox@sha256:abc", "invalid reference format"),
        ("busybox@sha256:" + "a" * 40, "invalid checksum digest length"),
        ("busybox@md5:" + "a" * 32, "unsupported digest algorithm"),
        ("a" * 256, "repository name must not be more than 255 characters"),
        ("busybox:" + "t" * 129, "invalid reference format"),
    ],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(ReferenceError) as info:
        parse_normalized_named(text)
    assert str(info.value) == message


def test_any_reference_ids() -> None:
    assert parse_any_reference(HEX) == DigestReference(f"sha256:{HEX}")
    assert parse_any_reference(f"sha256:{HEX}") == DigestReference(f"sha256:{HEX}")
    short = parse_any_reference("f0fb494ed184")
    assert not isinstance(short, DigestReference) and short.string() == "docker.io/library/f0fb494ed184"


def test_digest_parsing() -> None:
    assert parse_digest(f"sha256:{HEX}") == f"sha256:{HEX}"
    for text, message in [
        ("sha256", "invalid checksum digest format"),
        (f"sha256:{HEX[:-1]}", "invalid checksum digest length"),
        ("sha256:" + "G" * 64, "invalid checksum digest format"),
        ("foo:bar", "unsupported digest algorithm"),
    ]:
        with pytest.raises(ReferenceError, match=message):
            parse_digest(text)


def test_with_tag() -> None:
    assert with_tag(parse_normalized_named("busybox"), "v1").familiar_string() == "busybox:v1"
    with pytest.raises(ReferenceError, match=r"^invalid tag format$"):
        with_tag(parse_normalized_named("busybox"), "x:y")


@pytest.mark.parametrize(
    "pattern,text,matches",
    [
        ("busy*", "busybox:latest", True),
        ("busybox", "busybox:latest", True),
        ("busybox:l*", "busybox:latest", True),
        ("*", "user/repo:latest", False),
        ("*/*", "user/repo:latest", True),
        ("bus?box", "busybox", True),
        ("[a-c]usybox", "busybox", True),
        ("[^b]usybox", "busybox", False),
        ("other", "busybox", False),
    ],
)
def test_familiar_match(pattern: str, text: str, matches: bool) -> None:
    assert familiar_match(pattern, tag_name_only(parse_normalized_named(text))) is matches


def test_familiar_match_bad_pattern() -> None:
    with pytest.raises(ReferenceError, match="syntax error in pattern"):
        familiar_match("[", parse_normalized_named("busybox"))
