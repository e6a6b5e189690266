"""Shared fixtures: a real project server on 127.0.0.1 port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import trio

from events_trio.server.config import ServerConfig
from events_trio.server.run import RunningServer, run_server
from tests.postgres import PgServer
from tests.support import FakeClockMs


@pytest.fixture
def clock_ms() -> FakeClockMs:
    return FakeClockMs()


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


#: The ingest token of ``ingest_server``.
INGEST_TOKEN = "s3cret-token"


@pytest.fixture
async def ingest_server(
    nursery: trio.Nursery, clock_ms: FakeClockMs
) -> AsyncIterator[RunningServer]:
    """Like ``server``, with ``POST /api/events`` enabled for :data:`INGEST_TOKEN`."""
    config = ServerConfig(
        port=0, clock_ms=clock_ms, graceful_timeout_s=1.0, ingest_token=INGEST_TOKEN
    )
    running: RunningServer = await nursery.start(run_server, config)
    yield running
    running.shutdown()


@pytest.fixture
async def ingest_client(ingest_server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client for ``ingest_server`` that sends the right bearer token."""
    headers = {"Authorization": f"Bearer {INGEST_TOKEN}"}
    async with httpx.AsyncClient(base_url=ingest_server.url, timeout=10, headers=headers) as http:
        yield http


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One throwaway PostgreSQL for the whole run (started on first use)."""
    server = PgServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The URL of a new, empty database on ``pg_server`` (one per test)."""
    return pg_server.create_database()
