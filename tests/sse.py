"""A small Server-Sent Events reader over an httpx streaming response (tests only)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import trio

#: httpcore iterates its HTTP/1.1 body generators without ``aclosing``, so a
#: streaming response closed before its end (every SSE test stops reading
#: early) leaves those generators to the garbage collector, and trio's
#: finalizer warns. The response and connection themselves are closed.
HTTPCORE_EARLY_CLOSE = pytest.mark.filterwarnings(
    r"ignore:Async generator 'http(core|x)\._.*' was garbage collected:ResourceWarning"
)


@dataclass
class Frame:
    """One SSE block: its fields in order; ``comments`` for ``:`` lines."""

    fields: list[tuple[str, str]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        """The last value of field ``name``."""
        values = [value for key, value in self.fields if key == name]
        return values[-1] if values else None

    @property
    def id(self) -> int | None:
        value = self.get("id")
        return None if value is None else int(value)

    @property
    def event(self) -> str:
        return self.get("event") or "message"

    @property
    def data(self) -> str | None:
        return self.get("data")


@asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient, path: str, **kwargs: Any
) -> AsyncIterator[tuple[httpx.Response, AsyncGenerator[Frame]]]:
    """``GET path`` as a stream: the response and its frames, both closed on exit."""
    async with (
        client.stream("GET", path, **kwargs) as response,
        aclosing(frames(response)) as stream,
    ):
        yield response, stream


async def frames(response: httpx.Response) -> AsyncGenerator[Frame]:
    """The frames of ``response`` as they arrive (ends when the stream ends)."""
    frame = Frame()
    lines = response.aiter_lines()
    async for line in lines:
        if line == "":
            if frame.fields or frame.comments:
                yield frame
            frame = Frame()
        elif line.startswith(":"):
            frame.comments.append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            frame.fields.append((name, value.removeprefix(" ")))


async def next_events(
    stream: AsyncIterator[Frame], count: int, timeout_s: float = 10.0
) -> list[Frame]:
    """The next ``count`` frames carrying data (real time, generous bound)."""
    found: list[Frame] = []
    with trio.fail_after(timeout_s):
        async for frame in stream:
            if frame.data is not None:
                found.append(frame)
                if len(found) == count:
                    break
    return found
