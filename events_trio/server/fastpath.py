"""The project server's ``GET /api/events``: the buffer through the shared fast path.

:func:`~events_trio.wire.fastpath.events_route` parses the query and sends
the answer; this module supplies the answer: long-poll in the hub, then the
buffer's pre-encoded bytes and its metadata headers, taken in one
synchronous step so they agree. ``POST /api/events`` (ingest) falls
through to the Quart app.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from ..core.buffer import EventBuffer
from ..wire.fastpath import Args, events_route
from ..wire.query import EventsQuery, events_headers
from .hub import EventHub

ASGIApp = Any

log = logging.getLogger("events_trio.server")


def events_fast_path(hub: EventHub, app: ASGIApp) -> ASGIApp:
    """Serve ``GET``/``HEAD /api/events`` from ``hub``; pass the rest to ``app``."""

    async def respond(query: EventsQuery, args: Args) -> tuple[Iterable[tuple[str, str]], bytes]:
        return await answer(hub, query)

    return events_route(respond, app, post=True)


async def answer(hub: EventHub, query: EventsQuery) -> tuple[list[tuple[str, str]], bytes]:
    """Headers and body of one valid ``GET /api/events``."""
    if query.wait > 0 and not hub.buffer.has_newer(query.since):
        # Logged only when a request parks; no checkpoint between the line and the park.
        log.debug("long-poll parked after %d for up to %g s", query.since, query.wait)
        await hub.longpoll.wait_newer(query.since, query.wait)
    return list(buffer_headers(hub.buffer, query.since)), hub.buffer.encoded_since(query.since)


def buffer_headers(buffer: EventBuffer, since: int) -> Iterable[tuple[str, str]]:
    """The ``X-Events-*`` headers of an answer to ``since`` from ``buffer``."""
    missed = buffer.missed_since(since)
    oldest = buffer.oldest_ms if missed else None
    return events_headers(buffer.instance, buffer.latest_ms, missed, oldest)
