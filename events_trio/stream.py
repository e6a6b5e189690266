"""``GET /api/events/stream``: the project server's buffer as Server-Sent Events.

Each event is one SSE message whose ``id:`` is its ``timestamp_ms`` and
whose ``data:`` is its JSON exactly as ``GET /api/events`` serves it. A
client resumes after a disconnect with ``Last-Event-ID`` (browsers send it
by themselves) or ``?since=``. Events a client can never get (evicted, or
lost to broadcast lag) are announced as ``event: gap`` with
``{"missed": n}``. The response carries ``X-Events-Instance`` and
``X-Events-Latest-Ms`` like ``GET /api/events``. An idle stream gets a comment every ``keepalive_s``;
shutdown (the long-poll release) ends every stream at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import msgspec
from quart import Response, request
from quart_trio import QuartTrio

from .buffer import EventBuffer
from .events import encode
from .hub import EventHub
from .query import H_INSTANCE, H_LATEST
from .sse import (
    CONTENT_TYPE,
    LAST_EVENT_ID,
    STREAM_HEADERS,
    comment_frame,
    event_frame,
    id_frame,
    resume_cursor,
    retry_frame,
)

STREAM_PATH = "/api/events/stream"


@dataclass(slots=True)
class StreamStats:
    """Live counts for metrics.

    Attributes:
        open: Streams being served.
        parked: Streams waiting in the hub's long-poll lot right now (so the
            long-poll figure can leave them out).
    """

    open: int = 0
    parked: int = 0


def buffer_batch(buffer: EventBuffer, cursor: int) -> tuple[bytes, int]:
    """Frames for everything after ``cursor``, and the cursor after them.

    A gap notice comes first when events newer than ``cursor`` were lost;
    a bare ``id:`` frame moves the client's cursor past losses stamped after
    the last event, so a reconnect is not told about them twice.
    """
    events = buffer.events_since(cursor)
    missed = buffer.missed_since(cursor)
    frames: list[bytes] = []
    if missed:
        frames.append(event_frame(msgspec.json.encode({"missed": missed}), event="gap"))
    frames.extend(event_frame(encode(e), id=e.timestamp_ms) for e in events)
    last = events[-1].timestamp_ms if events else cursor
    if buffer.latest_ms > last:
        frames.append(id_frame(buffer.latest_ms))
    return b"".join(frames), max(cursor, buffer.latest_ms)


async def buffer_frames(
    hub: EventHub, cursor: int, keepalive_s: float, stats: StreamStats
) -> AsyncIterator[bytes]:
    """The body of one stream: frames until the hub releases its long-polls."""
    stats.open += 1
    try:
        yield retry_frame()
        while True:
            frames, cursor = buffer_batch(hub.buffer, cursor)
            if frames:
                yield frames
            if hub.longpoll.released:
                return
            stats.parked += 1
            try:
                newer = await hub.longpoll.wait_newer(cursor, keepalive_s)
            finally:
                stats.parked -= 1
            if not newer and not hub.longpoll.released:
                yield comment_frame()
    finally:
        stats.open -= 1


def stream_response(
    frames: AsyncIterator[bytes], headers: Mapping[str, str] | None = None
) -> Response:
    """The ``text/event-stream`` response for ``frames``, never cut by Quart's timeout."""
    response = Response(
        frames, 200, {**STREAM_HEADERS, **(headers or {})}, content_type=CONTENT_TYPE
    )
    response.timeout = None  # a stream lives until the client or the server ends it
    return response


def register_stream(app: QuartTrio, hub: EventHub, keepalive_s: float, stats: StreamStats) -> None:
    """Add ``GET /api/events/stream`` to ``app``.

    Raises (as a 400 JSON answer):
        InvalidParameter: bad ``Last-Event-ID`` or ``since``.
    """

    @app.get(STREAM_PATH)
    async def stream() -> Response:
        cursor = resume_cursor(request.headers.get(LAST_EVENT_ID), request.args.getlist("since"))
        # The instance lets a reader tell a restarted server (docs/protocol.md).
        identity = {H_INSTANCE: hub.buffer.instance, H_LATEST: str(hub.buffer.latest_ms)}
        return stream_response(buffer_frames(hub, cursor, keepalive_s, stats), identity)
