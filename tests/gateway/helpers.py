"""Fakes and helpers for the gateway tests.

* :class:`FakeProject` — an in-process project server behind
  ``httpx.MockTransport`` (the true outside edge of the poller): parses the
  query and builds its headers with the real server's wire module
  (``events_trio/wire/query.py``) and long-polls like ours without the event
  stream (``/api/events/stream`` answers 404, so pollers use
  ``/api/events``), or behaves like the Rust original (``rust=True``:
  ignores ``wait``, sends no ``X-Events-*`` headers).
* :class:`InlineLog` — the SQLite log on ``:memory:`` run inline (no worker
  thread), so MockClock's autojump never races a thread.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import trio

from events_trio.core.events import StoredEvent, StoredMergeFailure, encode
from events_trio.gateway.config import ProjectConfig
from events_trio.gateway.poller import Poller, PollerSettings
from events_trio.gateway.records import LogEntry, Notice
from events_trio.gateway.store import SqliteCore, SqliteLog, as_store_error
from events_trio.gateway.tracker import Position
from events_trio.server.config import ServerConfig
from events_trio.server.run import RunningServer, run_server
from events_trio.wire.fastpath import query_args
from events_trio.wire.query import events_headers, parse_events_query
from events_trio.wire.responses import JSON

T = TypeVar("T")
BASE_MS = 1_764_201_600_000


class ManualClockMs:
    """A settable millisecond wall clock."""

    def __init__(self, now: int = BASE_MS) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class InlineLog(SqliteLog):
    """:class:`SqliteLog` on an in-memory database, called without threads.

    The group commit window is 0 unless asked (``window_s``), so the exact
    virtual times the poller tests assert are not shifted by it.
    """

    def __init__(
        self, clock_ms: Callable[[], int] = lambda: BASE_MS, *, window_s: float = 0.0
    ) -> None:
        super().__init__(SqliteCore(Path(":memory:"), clock_ms), window_s=window_s)

    async def _run(self, fn: Callable[[], T]) -> T:
        await trio.lowlevel.checkpoint()
        with as_store_error():
            return fn()

    def entries(self) -> list[LogEntry]:
        """Everything in the log."""
        return self.core.read(0, 1_000_000).entries

    def texts(self) -> list[str]:
        """Notice messages and story ids, in log order."""
        return [_text(entry) for entry in self.entries()]


def _text(entry: LogEntry) -> str:
    payload = entry.payload()
    return payload.message if isinstance(payload, Notice) else payload.story_id


def failure(story: str, stamp: int) -> StoredMergeFailure:
    """A stored merge failure (the simplest event)."""
    return StoredMergeFailure(story, "conflict", stamp)


@dataclass
class FakeProject:
    """A project server in-process.

    Attributes:
        events: The buffer (ascending stamps).
        instance: ``X-Events-Instance`` (changes on :meth:`restart`).
        rust: Behave like the Rust original.
        fail_with: When set, answer every request this way (status or exception).
        missed: Value of ``X-Events-Missed`` (long-poll mode; sent only when
            not 0, as the real server does).
        requests: Trio time and ``since`` of every ``/api/events`` request.
        stream_requests: How many times ``/api/events/stream`` was asked for.
    """

    events: list[StoredEvent] = field(default_factory=list)
    instance: str = field(default_factory=lambda: secrets.token_hex(4))
    rust: bool = False
    fail_with: int | Exception | None = None
    hang: bool = False
    missed: int = 0
    extra_raw: list[bytes] = field(default_factory=list)
    requests: list[tuple[float, int]] = field(default_factory=list)
    stream_requests: int = 0
    _changed: trio.Event = field(default_factory=trio.Event)

    def publish(self, event: StoredEvent) -> None:
        """Add an event and wake long-polls."""
        self.events.append(event)
        self._changed.set()
        self._changed = trio.Event()

    def restart(self, events: list[StoredEvent]) -> None:
        """A new instance with a fresh buffer."""
        self.instance = secrets.token_hex(4)
        self.events = []
        for event in events:
            self.publish(event)

    def transport(self) -> httpx.MockTransport:
        """The transport a poller's client uses."""
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/stream"):
            self.stream_requests += 1
            return httpx.Response(404, json={"error": "not_found", "message": "no stream"})
        query = parse_events_query(query_args(request.url.query))
        since, wait = query.since, query.wait
        self.requests.append((trio.current_time(), since))
        if self.hang:
            await trio.sleep_forever()
        if isinstance(self.fail_with, Exception):
            raise self.fail_with
        if self.fail_with is not None:
            return httpx.Response(self.fail_with, content=b"oops")
        if not self.rust and wait > 0 and not self._newer(since):
            with trio.move_on_after(wait):
                await self._changed.wait()
        return self._answer(since)

    def _newer(self, since: int) -> list[StoredEvent]:
        return [e for e in self.events if e.timestamp_ms > since]

    def _answer(self, since: int) -> httpx.Response:
        items = [encode(e) for e in self._newer(since)] + self.extra_raw
        self.extra_raw = []  # one-shot, like a misbehaving answer
        body = b"[" + b",".join(items) + b"]"
        headers: dict[str, str] = {"Content-Type": JSON}
        if not self.rust:
            latest = max([0, *(e.timestamp_ms for e in self.events)])
            oldest = self.events[0].timestamp_ms if self.events else None
            headers |= dict(events_headers(self.instance, latest, self.missed, oldest))
            self.missed = 0  # reported once, as a real server does for one cursor
        return httpx.Response(200, content=body, headers=headers)


def settings(**changes: Any) -> PollerSettings:
    """Poller timings used by the tests (interval 2 s, wait 25 s, backoff 1..8 s)."""
    base = PollerSettings(
        interval_s=2.0, wait_s=25.0, timeout_s=10.0, backoff_initial_s=1.0, backoff_max_s=8.0
    )
    return dataclasses.replace(base, **changes)


def make_poller(
    log: InlineLog,
    client: httpx.AsyncClient,
    *,
    position: Position | None = None,
    **changes: Any,
) -> Poller:
    """A poller of project ``billing`` writing to ``log``, jitter off."""
    project = ProjectConfig("billing", "http://billing.test")
    return Poller(project, client, log, settings(**changes), position=position, rand=lambda: 0.0)


async def until(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    """Poll ``condition`` in real time (real sockets, files); fail after ``timeout_s``."""
    with trio.fail_after(timeout_s):
        # Outside state (a socket peer, a file) has no trio.Event to wait on.
        while not condition():  # noqa: ASYNC110
            await trio.sleep(0.01)


@asynccontextmanager
async def project_server() -> AsyncIterator[RunningServer]:
    """A real project server on 127.0.0.1 port 0, shut down on exit."""
    async with trio.open_nursery() as nursery:
        server: RunningServer = await nursery.start(
            run_server, ServerConfig(port=0, graceful_timeout_s=0.2)
        )
        yield server
        server.shutdown()
