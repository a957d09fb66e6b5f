"""changes: the Dockerfile instructions ``--change`` applies to an image config (import, commit)."""

from __future__ import annotations

import pytest

from harness.daemon.images.changes import ChangeError, apply_changes, empty_config


def test_changes() -> None:
    config = apply_changes(
        empty_config(),
        [
            'ENV A=1 B="two words"',
            "LABEL x=y",
            "USER 1000:1000",
            "ENTRYPOINT /bin/app --flag",
            "VOLUME /data",
            "STOPSIGNAL SIGTERM",
            "ONBUILD RUN true",
            "HEALTHCHECK CMD true",
        ],
    )
    assert config["Env"] == ["A=1", "B=two words"] and config["Labels"] == {"x": "y"}
    assert config["Entrypoint"] == ["/bin/sh", "-c", "/bin/app --flag"] and config["Cmd"] is None
    assert config["Volumes"] == {"/data": {}} and config["StopSignal"] == "SIGTERM"
    assert config["OnBuild"] == ["RUN true"] and config["Healthcheck"] == {"Test": ["CMD-SHELL", "true"]}
    assert list(config)[:3] == ["Hostname", "Domainname", "User"]
    for bad, message in [
        ("FROM x", "FROM is not a valid change command"),
        ("USER", "USER requires exactly one"),
        ("STOPSIGNAL NOPE", "Invalid signal: NOPE"),
    ]:
        with pytest.raises(ChangeError, match=message):
            apply_changes(empty_config(), [bad])
