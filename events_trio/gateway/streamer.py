"""The IO of the ``stream`` mode: one SSE connection, its bytes fed to the state machine.

One task per connection: it feeds each chunk read to
:class:`~.transports.stream_protocol.StreamProtocol` and appends what the
chunk completed, waiting for the group commit (writer.py) before it reads
again. Frames that arrive meanwhile wait in the socket's buffer and come
back as one chunk, so a project that publishes faster than one group
commit per window still gets everything it sent during a commit into the
next one, and an event costs one wake-up of the task, not one of a reader
and one of an appender.

The reader holds an idle deadline: any byte (an event or a keep-alive
comment) proves the connection alive and pushes it on; a stream silent
past it is dropped and reconnected from the cursor. Time spent waiting
for the store does not count against it.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import trio

from ..wire.defaults import STREAM_PATH
from ..wire.sse import CONTENT_TYPE, LAST_EVENT_ID
from .config import ProjectConfig
from .errors import ProjectUnreachable, StoreError
from .sse_connection import STREAM_EXTENSION, body_chunks
from .transports.records import StreamStep
from .transports.stream_protocol import StreamProtocol

#: Appends what one step completed, durably (raises the store's error on failure).
AppendStep = Callable[[StreamStep], Awaitable[None]]


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
        append: Persists what a step completed.
        idle_s: The idle deadline.
    """

    def __init__(
        self,
        response: httpx.Response,
        protocol: StreamProtocol,
        append: AppendStep,
        idle_s: float,
    ) -> None:
        self.response = response
        self.protocol = protocol
        self.append = append
        self.idle_s = idle_s
        self.outcome = StreamOutcome()
        self._last_position = protocol.position

    async def run(self) -> StreamOutcome:
        """Read and append until the connection ends.

        Raises:
            StoreError: an append failed (reading stops with it).
        """
        failed: StoreError | None = None
        with trio.CancelScope() as idle:
            idle.deadline = trio.current_time() + self.idle_s
            try:
                async for chunk in body_chunks(self.response):
                    step = self.protocol.feed(chunk)
                    if step.records or step.position != self._last_position:
                        idle.deadline = math.inf  # the store's time is not the server's silence
                        self._last_position = step.position
                        self.outcome.delivered = True
                        try:
                            await self.append(step)
                        except StoreError as error:
                            failed = error
                            idle.cancel()  # stop from inside the body iterators (poller.py)
                    if step.error is not None:
                        self.outcome.error = step.error
                        idle.cancel()
                    idle.deadline = trio.current_time() + self.idle_s
            except httpx.TransportError as error:
                self.outcome.error = f"stream broke: {type(error).__name__}"
        if failed is not None:
            raise failed
        if idle.cancelled_caught and self.outcome.error is None:
            self.outcome.error = f"stream silent for {self.idle_s:g} s"
        return self.outcome


def unreachable(error: httpx.HTTPError) -> ProjectUnreachable:
    """Our error for a transport failure while opening a stream."""
    detail = str(error) or type(error).__name__
    return ProjectUnreachable(f"{type(error).__name__}: {detail}".splitlines()[0][:200])
