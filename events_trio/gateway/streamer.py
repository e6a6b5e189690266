"""The IO of the ``stream`` mode: one SSE connection, its bytes fed to the state machine.

Two tasks per connection: a reader feeds every chunk to
:class:`~.transports.stream_protocol.StreamProtocol` and queues the steps;
an appender takes everything queued so far and appends it in one call. So
a project that publishes faster than one group commit per window still
gets all its events into each commit, and reading never waits for the
disk.

The reader holds an idle deadline: any byte (an event or a keep-alive
comment) proves the connection alive and pushes it on; a stream silent
past it is dropped and reconnected from the cursor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

import httpx
import trio

from ..wire.defaults import STREAM_PATH
from ..wire.sse import CONTENT_TYPE, LAST_EVENT_ID
from .config import ProjectConfig
from .errors import ProjectUnreachable, StoreError
from .records import Incoming
from .sse_connection import STREAM_EXTENSION
from .tracker import Position
from .transports.records import StreamStep
from .transports.stream_protocol import StreamProtocol

#: A stream with no byte for this long is dropped (servers comment every 15 s).
DEFAULT_IDLE_DEADLINE_S: Final = 45.0


@dataclass(slots=True)
class Batch:
    """Steps queued by the reader, merged for one append."""

    records: list[Incoming] = field(default_factory=list)
    position: Position | None = None
    skipped_unknown: int = 0
    newest_event_ms: int | None = None

    def add(self, step: StreamStep) -> None:
        """Merge ``step`` into the batch."""
        self.records += step.records
        self.position = step.position
        self.skipped_unknown += step.skipped_unknown
        if step.newest_event_ms is not None:
            self.newest_event_ms = step.newest_event_ms


#: Appends one batch durably (raises the store's error on failure).
AppendBatch = Callable[[Batch], Awaitable[None]]


def stream_request(client: httpx.AsyncClient, project: ProjectConfig, cursor: int) -> httpx.Request:
    """``GET {url}/api/events/stream`` resuming after ``cursor``."""
    headers = {
        "Accept": CONTENT_TYPE,
        "Accept-Encoding": "identity",
        LAST_EVENT_ID: str(cursor),
    }
    if project.token:
        headers["Authorization"] = f"Bearer {project.token}"
    # timeout=None: the open is bounded by trio.fail_after, the body by the idle deadline.
    url = f"{project.url}{STREAM_PATH}"
    # The extension: a connection of its own, read lean (sse_connection.py).
    return client.build_request(
        "GET", url, headers=headers, timeout=None, extensions={STREAM_EXTENSION: True}
    )


@dataclass(slots=True)
class StreamOutcome:
    """How one connection ended.

    Attributes:
        error: Why it was dropped (a failure), ``None`` when the server ended it.
        delivered: Steps with something to persist were read.
    """

    error: str | None = None
    delivered: bool = False


class StreamReader:
    """Reads one open stream until it ends, fails or goes silent.

    Args:
        response: The open response (its head already accepted).
        protocol: The connection's state machine.
        append: Persists one merged batch.
        idle_s: The idle deadline.
    """

    def __init__(
        self,
        response: httpx.Response,
        protocol: StreamProtocol,
        append: AppendBatch,
        idle_s: float,
    ) -> None:
        self.response = response
        self.protocol = protocol
        self.append = append
        self.idle_s = idle_s
        self.outcome = StreamOutcome()
        self._batch = Batch()
        self._dirty = False
        self._last_position = protocol.position
        self._queued = trio.Event()
        self._done = False

    async def run(self) -> StreamOutcome:
        """Read and append until the connection ends; then flush what is queued.

        Raises:
            StoreError: an append failed (the reader is stopped with it).
        """
        failed: list[StoreError] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._append_loop, failed, nursery.cancel_scope)
            try:
                await self._read()
            finally:
                self._done = True
                self._queued.set()
        if failed:
            raise failed[0]  # plain, not inside an exception group
        return self.outcome

    async def _read(self) -> None:
        with trio.CancelScope() as idle:
            idle.deadline = trio.current_time() + self.idle_s
            try:
                async for chunk in self.response.aiter_raw():
                    idle.deadline = trio.current_time() + self.idle_s
                    if not self._take(self.protocol.feed(chunk)):
                        idle.cancel()  # stop from inside the body iterators (poller.py)
            except httpx.TransportError as error:
                self.outcome.error = f"stream broke: {type(error).__name__}"
        if idle.cancelled_caught and self.outcome.error is None:
            self.outcome.error = f"stream silent for {self.idle_s:g} s"

    def _take(self, step: StreamStep) -> bool:
        """Queue ``step``; ``False`` when the connection must end."""
        if step.records or step.position != self._last_position:
            self._batch.add(step)
            self._last_position = step.position
            self._dirty = True
            self.outcome.delivered = True
            self._queued.set()
        if step.error is not None:
            self.outcome.error = step.error
            return False
        return True

    async def _append_loop(self, failed: list[StoreError], scope: trio.CancelScope) -> None:
        while True:
            if not self._dirty:
                if self._done:
                    return
                await self._queued.wait()
                self._queued = trio.Event()
                continue
            batch, self._batch, self._dirty = self._batch, Batch(), False
            try:
                await self.append(batch)
            except StoreError as error:
                failed.append(error)
                scope.cancel()
                return


def unreachable(error: httpx.HTTPError) -> ProjectUnreachable:
    """Our error for a transport failure while opening a stream."""
    detail = str(error) or type(error).__name__
    return ProjectUnreachable(f"{type(error).__name__}: {detail}".splitlines()[0][:200])
