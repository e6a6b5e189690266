"""The project server's Quart-Trio app: routes, JSON errors.

Routes:

* ``GET /api/events?since=<ms>&wait=<s>`` — the wire contract (DESIGN.md,
  docs/protocol.md), with gap and buffer metadata in ``X-Events-*`` headers;
  served by ``fastpath.py`` in front of this app (see :func:`create_asgi`).
* ``GET /healthz`` — liveness and buffer figures.
* ``POST /api/events`` — ingest (``ingest.py``, docs/sources.md).

Every error is a JSON object ``{"error": ..., "message": ...}`` (plus
``"parameter"`` for a bad query parameter), never an HTML page.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from ..core.errors import InvalidParameter
from ..hosting.guard import guard
from ..sources.ingest import register_ingest
from ..wire.auth import bearer_ok, unauthorized_response
from ..wire.query import error_body
from ..wire.sse import DEFAULT_KEEPALIVE_S
from .fastpath import events_fast_path
from .hub import EventHub, Source
from .metrics import SERVER_ROUTES, instrument, server_registry
from .stream import StreamStats, register_stream

log = logging.getLogger("events_trio.app")

JSON: str = "application/json"


def json_error(status: int, error: str, message: str, **extra: Any) -> Response:
    """A JSON error response: ``{"error": error, "message": message, **extra}``."""
    return Response(error_body(error, message, **extra), status, content_type=JSON)


def _encode(value: object) -> bytes:
    return msgspec.json.encode(value)


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
            (events_trio/ingest.py); ``None`` answers it with 403.
        read_token: When set, every ``GET``/``HEAD`` under ``/api/`` needs
            ``Authorization: Bearer <read_token>`` (401 otherwise);
            ``/healthz`` stays open. See :func:`require_read_token`.
        keepalive_s: Seconds between keep-alive comments on an idle
            ``GET /api/events/stream`` (events_trio/stream.py).
        stream_stats: Where open streams are counted (for metrics).

    Returns:
        The ASGI app.
    """
    app = QuartTrio("events_trio", static_folder=None)  # no static files to serve
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    register_json_errors(app)
    register_ingest(app, hub, token=ingest_token)
    require_read_token(app, read_token)
    register_stream(app, hub, keepalive_s, stream_stats or StreamStats())

    @app.get("/healthz")
    async def healthz() -> Response:
        snap = hub.buffer.snapshot()
        return Response(
            _encode(
                {
                    "status": "ok",
                    "buffered": snap.size,
                    "latest_ms": snap.latest_ms,
                    "capacity": snap.capacity,
                    "evicted": snap.evicted,
                    "lost": snap.lost,
                    "long_polls": hub.longpoll.waiting,
                }
            ),
            200,
            content_type=JSON,
        )

    @app.after_request
    async def close_when_stopping(response: Response) -> Response:
        # Once shutdown begins, released long-polls answer at once; without
        # this a keep-alive client would re-poll in a tight loop until the
        # grace period ends.
        if hub.longpoll.released:
            response.headers["Connection"] = "close"
        return response

    if sources is not None:
        owned_sources = sources

        @app.before_serving
        async def start_hub() -> None:
            await app.nursery.start(hub.run, owned_sources)

        @app.after_serving
        async def stop_hub() -> None:
            hub.stop()
            await hub.wait_stopped()

    return app


def create_asgi(
    hub: EventHub,
    *,
    sources: list[Source] | None = None,
    ingest_token: str | None = None,
    read_token: str | None = None,
    keepalive_s: float = DEFAULT_KEEPALIVE_S,
) -> Any:
    """The complete ASGI app both hosting doors serve.

    ``instrument`` (``GET /metrics``, request counts) -> ``guard`` (stack
    hazards) -> ``events_fast_path`` (``GET /api/events``)
    -> the Quart app from :func:`create_app` (everything else). Arguments as
    for :func:`create_app`.
    """
    streams = StreamStats()
    quart_app = create_app(
        hub,
        sources=sources,
        ingest_token=ingest_token,
        read_token=read_token,
        keepalive_s=keepalive_s,
        stream_stats=streams,
    )
    app = guard(events_fast_path(hub, quart_app, read_token=read_token))
    # Outermost, so every answer counts (fast path and guard included).
    return instrument(app, server_registry(hub, streams), SERVER_ROUTES)


def require_read_token(app: QuartTrio, token: str | None) -> None:
    """Answer 401 to ``GET``/``HEAD`` under ``/api/`` without the read token.

    Covers every read route of ``app``, present and future (a stream
    endpoint too); ``POST /api/events`` keeps its own ingest token and
    ``/healthz`` stays open. No-op when ``token`` is ``None`` or empty.
    """
    if not token:
        return

    @app.before_request
    async def check_read_token() -> Response | None:
        reading = request.method in ("GET", "HEAD") and request.path.startswith("/api/")
        if reading and not bearer_ok(request.headers, token):
            return unauthorized_response()
        return None


def register_json_errors(app: QuartTrio) -> None:
    """Answer errors as JSON on ``app``: bad parameters, HTTP errors, anything unexpected."""

    @app.errorhandler(InvalidParameter)
    async def invalid_parameter(error: InvalidParameter) -> Response:
        return json_error(400, "invalid_parameter", error.message, parameter=error.parameter)

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        code = error.code or 500
        name = (error.name or "error").lower().replace(" ", "_")
        response = json_error(code, name, error.description or name)
        allowed = error.get_response().headers.get("Allow")
        if allowed:
            response.headers["Allow"] = allowed
        return response

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        log.exception("unhandled error", exc_info=error)
        return json_error(500, "internal_error", "internal server error")
