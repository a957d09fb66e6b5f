"""refd's lifecycle helpers that need no running daemon."""

from __future__ import annotations

import uuid

from harness.daemon.daemon import random_uuid


def test_engine_ids_are_version_4_uuids() -> None:
    ids = {random_uuid() for _ in range(200)}
    assert len(ids) == 200
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)
