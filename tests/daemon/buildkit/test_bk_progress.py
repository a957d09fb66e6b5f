"""The Status stream: a late reader still gets the whole build; a cache hit reads CACHED."""

from __future__ import annotations

import asyncio

from harness.daemon.buildkit.progress import Progress


def test_late_reader_gets_everything_until_close() -> None:
    async def main() -> list[str]:
        progress = Progress()
        step = progress.step("[1/2] RUN x").start()
        step.log(1, b"out\n")
        seen: list[str] = []

        async def read() -> None:
            async for message in progress.stream():
                for v in message.vertexes:
                    seen.append(f"vertex {v.name} cached={v.cached} done={v.completed is not None}")
                for log in message.logs:
                    seen.append(f"log {bytes(log.msg)!r}")
                for s in message.statuses:
                    seen.append(f"status {s.name} {s.current} done={s.completed is not None}")

        reader = asyncio.ensure_future(read())  # starts after some updates: it still sees them
        step.done()
        cached = progress.step("[2/2] COPY a b")
        cached.cached()
        sub = cached.status("transferring context:")
        sub.done(33)
        progress.close()
        await asyncio.wait_for(reader, 5)
        return seen

    assert asyncio.run(main()) == [
        "vertex [1/2] RUN x cached=False done=False",
        "vertex [1/2] RUN x cached=False done=False",
        "log b'out\\n'",
        "vertex [1/2] RUN x cached=False done=True",
        "vertex [2/2] COPY a b cached=False done=False",
        "vertex [2/2] COPY a b cached=True done=True",
        "status transferring context: 0 done=False",
        "status transferring context: 33 done=True",
    ]
