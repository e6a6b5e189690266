"""``GET /api/events/stream`` on the gateway: the merged log as Server-Sent Events.

Like the project server's stream (``server/stream.py``), over the
durable log: ``id:`` is the gateway's stamp (the log offset), ``data:`` is
the entry exactly as the gateway's ``GET /api/events`` serves it (with
``project`` and ``project_timestamp_ms``). Notices (unreachable, recovered,
missed, restarted) are sent too, as ``event: notice``. A reconnect with
``Last-Event-ID`` — also to a restarted gateway over the same state
directory — continues after the last entry received: nothing is repeated,
nothing skipped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

from quart import Response, request
from quart_trio import QuartTrio

from ..hosting.webapp import stream_response
from ..wire.defaults import STREAM_PATH
from ..wire.sse import LAST_EVENT_ID, StreamStats, event_frame, id_frame, resume_cursor, sse_stream
from .eventlog import EventLog
from .records import Page
from .tracker import MAX_STAMP_MS

#: Log entries read per step; a client far behind catches up in pages this size.
STREAM_PAGE_ENTRIES: Final = 500
NOTICE_EVENT: Final = "notice"


def page_frames(page: Page, cursor: int) -> tuple[bytes, int]:
    """Frames of one page of the log and the cursor after it."""
    frames = [
        event_frame(
            entry.body, id=entry.seq, event=NOTICE_EVENT if entry.kind == "notice" else None
        )
        for entry in page.entries
    ]
    last = page.entries[-1].seq if page.entries else cursor
    if page.covered_seq > last:
        frames.append(id_frame(page.covered_seq))
    return b"".join(frames), max(cursor, page.covered_seq)


class LogFrames:
    """The merged log as a :class:`~events_trio.wire.sse.FrameSource`."""

    def __init__(self, log_store: EventLog) -> None:
        self.log_store = log_store

    @property
    def released(self) -> bool:
        """Whether the gateway released its waiters (shutdown began)."""
        return self.log_store.watch.released

    async def frames_after(self, cursor: int) -> tuple[bytes, int, bool]:
        """One page after ``cursor``; more are ready when the page is full."""
        page = await self.log_store.read(cursor, STREAM_PAGE_ENTRIES, notices=True)
        frames, cursor = page_frames(page, cursor)
        return frames, cursor, len(page.entries) == STREAM_PAGE_ENTRIES

    async def wait_newer(self, cursor: int, timeout_s: float) -> bool:
        """Park until the log grows past ``cursor``."""
        return await self.log_store.watch.wait_newer(cursor, timeout_s)


def log_frames(
    log_store: EventLog, cursor: int, keepalive_s: float, stats: StreamStats
) -> AsyncIterator[bytes]:
    """The body of one stream: frames until the gateway releases its waiters."""
    return sse_stream(LogFrames(log_store), cursor, keepalive_s, stats)


def register_log_stream(
    app: QuartTrio, log_store: EventLog, keepalive_s: float, stats: StreamStats
) -> None:
    """Add ``GET /api/events/stream`` to the gateway ``app``."""

    @app.get(STREAM_PATH)
    async def stream() -> Response:
        cursor = resume_cursor(request.headers.get(LAST_EVENT_ID), request.args.getlist("since"))
        # Any u64 is a valid cursor; SQLite integers stop at 2^63-1 (as GET /api/events).
        cursor = min(cursor, MAX_STAMP_MS)
        return stream_response(log_frames(log_store, cursor, keepalive_s, stats))
