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
* ``SseParser().feed(chunk)`` — the reverse: bytes in, :class:`SseMessage`
  records out (the gateway reading a project server's stream).

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


# -- parsing (the client side: the gateway reads project servers' streams) --

#: Longest line a parser buffers (a whole event is one ``data:`` line).
MAX_LINE_BYTES: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SseMessage:
    """One dispatched SSE message.

    Attributes:
        event: The ``event:`` field (``None``: the default ``message``).
        data: The ``data:`` lines joined with newlines; ``None`` when the
            message had no ``data:`` line (an ``id:``-only frame).
        id: The ``id:`` field as sent, ``None`` when absent.
    """

    event: str | None
    data: bytes | None
    id: str | None


class SseLineTooLong(ValueError):
    """A line grew past ``MAX_LINE_BYTES`` without ending."""


class SseParser:
    """Incremental ``text/event-stream`` parser (WHATWG HTML, "event stream interpretation").

    Fed bytes as they arrive, in chunks of any size; returns each message
    completed by a blank line. Comments (``:`` lines, keep-alives) and
    ``retry:`` dispatch nothing; an unfinished message at the end of a
    connection is never returned (as a browser drops it), so a cut
    mid-frame loses nothing a reconnect with ``Last-Event-ID`` does not
    resend. Lines end in LF, CRLF or CR.
    """

    def __init__(self) -> None:
        self._pending = bytearray()
        self._event: str | None = None
        self._data: list[bytes] | None = None
        self._id: str | None = None
        self._skip_lf = False

    def feed(self, chunk: bytes) -> list[SseMessage]:
        """Parse ``chunk``; returns the messages it completes, in order.

        Raises:
            SseLineTooLong: a line is longer than ``MAX_LINE_BYTES``.
        """
        if self._skip_lf and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the second half of a CRLF split between chunks
        self._skip_lf = False
        if b"\r" in chunk:
            self._skip_lf = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        pending = self._pending
        pending += chunk
        messages: list[SseMessage] = []
        start = 0
        while (end := pending.find(b"\n", start)) >= 0:
            message = self._line(bytes(pending[start:end]))
            if message is not None:
                messages.append(message)
            start = end + 1
        del pending[:start]
        if len(pending) > MAX_LINE_BYTES:
            raise SseLineTooLong(f"an event stream line is longer than {MAX_LINE_BYTES} bytes")
        return messages

    def _line(self, line: bytes) -> SseMessage | None:
        if not line:
            return self._dispatch()
        if line.startswith(b":"):
            return None  # a comment
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            if self._data is None:
                self._data = []
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id" and b"\0" not in value:
            self._id = value.decode("utf-8", "replace")
        return None  # retry: and unknown fields are ignored

    def _dispatch(self) -> SseMessage | None:
        event, data, id_ = self._event, self._data, self._id
        self._event = self._data = self._id = None
        if data is None and id_ is None:
            return None
        return SseMessage(event, None if data is None else b"\n".join(data), id_)
