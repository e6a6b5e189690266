"""Server-Sent Events framing and resume cursors (sans-IO: the stream loop only awaits its source).

Operations:

* ``event_frame(data, id=..., event=...)`` — one SSE message as bytes.
* ``id_frame(id)`` — a message with only an ``id:``: the client's reconnect
  cursor moves on, no event is dispatched (WHATWG HTML, "dispatch the event",
  step 1 runs before the empty-data check).
* ``comment_frame(text)`` — a keep-alive comment (ignored by clients).
* ``resume_cursor(last_event_id, since)`` — where a stream starts: the
  ``Last-Event-ID`` header a reconnecting ``EventSource`` sends wins over
  ``?since=``; both parse like ``since`` on ``GET /api/events``.
* ``sse_stream(source, cursor, ...)`` — the body of one stream, for the
  project server's buffer and the gateway's log alike (the one place that
  waits, sends keep-alives and stops at shutdown).

Goals: every ``data:`` line is the event JSON exactly as ``GET /api/events``
encodes it (our JSON never contains a newline, so one line per event), and
the ``id:`` is the cursor a client would pass as ``since``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final, Protocol

from ..core.errors import InvalidParameter
from .query import SINCE_MESSAGE, parse_u64

#: Seconds between keep-alive comments on an idle stream (proxies drop
#: connections that stay silent for about a minute).
DEFAULT_KEEPALIVE_S: Final = 15.0
#: How long a browser waits before reconnecting a dropped stream (``retry:``).
RECONNECT_MS: Final = 1000
CONTENT_TYPE: Final = "text/event-stream"
#: Headers of every stream response: no caching, no proxy buffering.
STREAM_HEADERS: Final = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
LAST_EVENT_ID: Final = "Last-Event-ID"
LAST_EVENT_ID_MESSAGE: Final = (
    "Last-Event-ID must be the id of an event received: an unsigned integer of milliseconds"
)


def event_frame(data: bytes, *, id: int | None = None, event: str | None = None) -> bytes:
    """One SSE message: optional ``event:`` and ``id:`` lines, one ``data:`` line.

    Args:
        data: One line of JSON (must not contain a newline).
        id: The event's cursor (``timestamp_ms``); omitted when ``None``.
        event: The event type; omitted (``message``) when ``None``.
    """
    head = b""
    if event is not None:
        head += b"event: " + event.encode() + b"\n"
    if id is not None:
        head += b"id: %d\n" % id
    return head + b"data: " + data + b"\n\n"


def id_frame(id: int) -> bytes:
    """A message that only moves the client's reconnect cursor to ``id``."""
    return b"id: %d\n\n" % id


def retry_frame(milliseconds: int = RECONNECT_MS) -> bytes:
    """Tell the client how long to wait before reconnecting."""
    return b"retry: %d\n\n" % milliseconds


def comment_frame(text: str = "keep-alive") -> bytes:
    """A comment line: keeps the connection alive, dispatches nothing."""
    return b": " + text.encode() + b"\n\n"


def resume_cursor(last_event_id: str | None, since: list[str]) -> int:
    """The cursor a stream starts after.

    Args:
        last_event_id: The ``Last-Event-ID`` header, if sent.
        since: Every ``since`` query value given.

    Raises:
        InvalidParameter: a value is not an unsigned integer (or ``since``
            is repeated); names ``Last-Event-ID`` or ``since``.
    """
    if last_event_id is not None:
        parsed = parse_u64(last_event_id.strip())
        if parsed is None:
            raise InvalidParameter(LAST_EVENT_ID, LAST_EVENT_ID_MESSAGE)
        return parsed
    if len(since) > 1:
        raise InvalidParameter("since", f"since given more than once; {SINCE_MESSAGE}")
    if not since:
        return 0
    parsed = parse_u64(since[0])
    if parsed is None:
        raise InvalidParameter("since", SINCE_MESSAGE)
    return parsed


@dataclass(slots=True)
class StreamStats:
    """Live counts for metrics.

    Attributes:
        open: Streams being served.
        parked: Streams waiting for news right now (so the project server's
            long-poll figure can leave them out).
    """

    open: int = 0
    parked: int = 0


class FrameSource(Protocol):
    """What a stream reads: batches of frames after a cursor, and a way to wait."""

    @property
    def released(self) -> bool:
        """Whether shutdown began (every stream then ends)."""
        ...

    async def frames_after(self, cursor: int) -> tuple[bytes, int, bool]:
        """Frames after ``cursor``, the cursor after them, and whether more are ready."""
        ...

    async def wait_newer(self, cursor: int, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for something past ``cursor``; ``True`` if there is."""
        ...


async def sse_stream(
    source: FrameSource, cursor: int, keepalive_s: float, stats: StreamStats
) -> AsyncIterator[bytes]:
    """The body of one stream: frames until ``source`` is released.

    Args:
        source: The buffer or log to read.
        cursor: Where the client resumes (:func:`resume_cursor`).
        keepalive_s: Seconds of silence before a keep-alive comment.
        stats: Where the stream is counted.
    """
    stats.open += 1
    try:
        yield retry_frame()
        while True:
            frames, cursor, more = await source.frames_after(cursor)
            if frames:
                yield frames
            if more:
                continue  # a client far behind catches up page by page
            if source.released:
                return
            if not await _wait(source, cursor, keepalive_s, stats) and not source.released:
                yield comment_frame()
    finally:
        stats.open -= 1


async def _wait(source: FrameSource, cursor: int, timeout_s: float, stats: StreamStats) -> bool:
    stats.parked += 1
    try:
        return await source.wait_newer(cursor, timeout_s)
    finally:
        stats.parked -= 1
