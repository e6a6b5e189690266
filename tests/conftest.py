"""Shared fixtures: a real project server on 127.0.0.1 port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import trio

from events_trio.config import ServerConfig
from events_trio.server import RunningServer, run_server


class FakeClockMs:
    """A settable millisecond wall clock for deterministic stamps."""

    def __init__(self, now: int = 1_764_201_600_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock_ms() -> Iterator[FakeClockMs]:
    yield FakeClockMs()


@pytest.fixture
async def server(nursery: trio.Nursery, clock_ms: FakeClockMs) -> AsyncIterator[RunningServer]:
    """A running project server (capacity 500, pinned clock) on a free port."""
    config = ServerConfig(port=0, clock_ms=clock_ms, graceful_timeout_s=1.0)
    running: RunningServer = await nursery.start(run_server, config)
    yield running
    running.shutdown()


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client pointed at ``server``."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        yield http
