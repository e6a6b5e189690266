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

from collections.abc import AsyncIterator

import msgspec
from quart import Response, request
from quart_trio import QuartTrio

from ..core.buffer import EventBuffer
from ..core.events import encode
from ..hosting.webapp import stream_response
from ..wire.defaults import STREAM_PATH
from ..wire.query import H_INSTANCE, H_LATEST
from ..wire.sse import (
    LAST_EVENT_ID,
    StreamStats,
    event_frame,
    id_frame,
    resume_cursor,
    sse_stream,
)
from .hub import EventHub


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


class BufferFrames:
    """The hub's buffer as a :class:`~events_trio.wire.sse.FrameSource`."""

    def __init__(self, hub: EventHub) -> None:
        self.hub = hub

    @property
    def released(self) -> bool:
        """Whether the hub released its long-polls (shutdown began)."""
        return self.hub.longpoll.released

    async def frames_after(self, cursor: int) -> tuple[bytes, int, bool]:
        """Everything after ``cursor`` at once (the buffer is bounded)."""
        frames, cursor = buffer_batch(self.hub.buffer, cursor)
        return frames, cursor, False

    async def wait_newer(self, cursor: int, timeout_s: float) -> bool:
        """Park in the hub's long-poll lot."""
        return await self.hub.longpoll.wait_newer(cursor, timeout_s)


def buffer_frames(
    hub: EventHub, cursor: int, keepalive_s: float, stats: StreamStats
) -> AsyncIterator[bytes]:
    """The body of one stream: frames until the hub releases its long-polls."""
    return sse_stream(BufferFrames(hub), cursor, keepalive_s, stats)


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
