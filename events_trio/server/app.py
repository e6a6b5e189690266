"""The project server's Quart-Trio app: routes, JSON errors.

Routes:

* ``GET /api/events?since=<ms>&wait=<s>`` — the wire contract
  (docs/protocol.md), with gap and buffer metadata in ``X-Events-*``
  headers; served by ``fastpath.py`` in front of the Quart routes.
* ``GET /api/events/stream`` — the buffer as Server-Sent Events (``stream.py``).
* ``GET /healthz`` — liveness and buffer figures.
* ``POST /api/events`` — ingest (``ingest.py``, docs/sources.md).

Every error is a JSON object ``{"error": ..., "message": ...}`` (plus
``"parameter"`` for a bad query parameter), never an HTML page.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from quart import Response
from quart_trio import QuartTrio

from ..hosting.access import close_when, require_read_token
from ..hosting.guard import guard
from ..hosting.metrics import instrument
from ..hosting.webapp import json_response, new_app
from ..sources.ingest import MAX_BODY_BYTES
from ..wire.sse import DEFAULT_KEEPALIVE_S, StreamStats
from .fastpath import events_fast_path
from .hub import EventHub, Source
from .ingest import register_ingest
from .metrics import SERVER_ROUTES, server_registry
from .stream import register_stream

ASGIApp = Any
APP_NAME: Final = "events_trio"


def create_app(
    hub: EventHub,
    *,
    sources: list[Source] | None = None,
    ingest_token: str | None = None,
    read_token: str | None = None,
    keepalive_s: float = DEFAULT_KEEPALIVE_S,
    stream_stats: StreamStats | None = None,
) -> QuartTrio:
    """Build the project server app over ``hub``.

    Args:
        hub: The event hub whose buffer the routes serve.
        sources: When given, the app owns the hub: its lifespan starts
            ``hub.run(sources)`` in ``app.nursery`` and stops it on shutdown
            (the ``hypercorn events_trio.asgi:app`` door). When ``None`` the
            caller runs the hub (``run_server``).
        ingest_token: Enables ``POST /api/events`` for this bearer token
            (server/ingest.py); ``None`` answers it with 403.
        read_token: When set, every ``GET``/``HEAD`` under ``/api/`` needs
            ``Authorization: Bearer <read_token>`` (401 otherwise);
            ``/healthz`` stays open (hosting/access.py).
        keepalive_s: Seconds between keep-alive comments on an idle
            ``GET /api/events/stream`` (server/stream.py).
        stream_stats: Where open streams are counted (for metrics).

    Returns:
        The ASGI app.
    """
    app = new_app(APP_NAME)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    register_ingest(app, hub, token=ingest_token)
    register_stream(app, hub, keepalive_s, stream_stats or StreamStats())
    register_healthz(app, hub)
    if sources is not None:
        own_hub(app, hub, sources)
    app.asgi_app = require_read_token(events_fast_path(hub, app.asgi_app), read_token)  # type: ignore[method-assign]
    return app


def register_healthz(app: QuartTrio, hub: EventHub) -> None:
    """Add ``GET /healthz``: liveness and buffer figures."""

    @app.get("/healthz")
    async def healthz() -> Response:
        return json_response(msgspec.json.encode(health(hub)))


def health(hub: EventHub) -> dict[str, object]:
    """What ``GET /healthz`` answers."""
    snap = hub.buffer.snapshot()
    return {
        "status": "ok",
        "buffered": snap.size,
        "latest_ms": snap.latest_ms,
        "capacity": snap.capacity,
        "evicted": snap.evicted,
        "lost": snap.lost,
        "long_polls": hub.longpoll.waiting,
    }


def own_hub(app: QuartTrio, hub: EventHub, sources: list[Source]) -> None:
    """Run ``hub`` (and ``sources``) in ``app``'s lifespan."""

    @app.before_serving
    async def start_hub() -> None:
        await app.nursery.start(hub.run, sources)

    @app.after_serving
    async def stop_hub() -> None:
        hub.stop()
        await hub.wait_stopped()


def create_asgi(
    hub: EventHub,
    *,
    sources: list[Source] | None = None,
    ingest_token: str | None = None,
    read_token: str | None = None,
    keepalive_s: float = DEFAULT_KEEPALIVE_S,
) -> ASGIApp:
    """The complete ASGI app both hosting doors serve.

    ``instrument`` (``GET /metrics``, request counts) -> ``close_when``
    (``Connection: close`` once stopping) -> ``guard`` (stack hazards) -> the
    app from :func:`create_app` (read-token check, ``GET /api/events`` fast
    path, Quart routes). Arguments as for :func:`create_app`.
    """
    streams = StreamStats()
    app = create_app(
        hub,
        sources=sources,
        ingest_token=ingest_token,
        read_token=read_token,
        keepalive_s=keepalive_s,
        stream_stats=streams,
    )
    stopping = close_when(guard(app), lambda: hub.longpoll.released)
    # Outermost, so every answer counts (fast path and guard included).
    return instrument(stopping, server_registry(hub, streams), SERVER_ROUTES)
