"""The project server's Quart-Trio app: routes, JSON errors.

Routes:

* ``GET /api/events?since=<ms>&wait=<s>`` — the wire contract (DESIGN.md,
  docs/protocol.md), with gap and buffer metadata in ``X-Events-*`` headers.
* ``GET /healthz`` — liveness and buffer figures.

Every error is a JSON object ``{"error": ..., "message": ...}`` (plus
``"parameter"`` for a bad query parameter), never an HTML page.
"""

from __future__ import annotations

import logging
from typing import Any

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from .errors import InvalidParameter
from .hub import EventHub, Source
from .query import events_headers, parse_events_query

log = logging.getLogger("events_trio.app")

JSON: str = "application/json"


def json_error(status: int, error: str, message: str, **extra: Any) -> Response:
    """A JSON error response: ``{"error": error, "message": message, **extra}``."""
    return Response(
        _encode({"error": error, "message": message, **extra}), status, content_type=JSON
    )


def _encode(value: object) -> bytes:
    import msgspec

    return msgspec.json.encode(value)


def create_app(hub: EventHub, *, sources: list[Source] | None = None) -> QuartTrio:
    """Build the project server app over ``hub``.

    Args:
        hub: The event hub whose buffer the routes serve.
        sources: When given, the app owns the hub: its lifespan starts
            ``hub.run(sources)`` in ``app.nursery`` and stops it on shutdown
            (the ``hypercorn events_trio.asgi:app`` door). When ``None`` the
            caller runs the hub (``run_server``).

    Returns:
        The ASGI app.
    """
    app = QuartTrio("events_trio")
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    _register_errors(app)

    @app.get("/api/events")
    async def get_events() -> Response:
        query = parse_events_query(request.args.to_dict(flat=False))
        if query.wait > 0 and not hub.buffer.has_newer(query.since):
            await hub.longpoll.wait_newer(query.since, query.wait)
        # Body and headers come from one synchronous step: they agree.
        body = hub.buffer.encoded_since(query.since)
        return Response(body, 200, list(events_headers(hub.buffer, query.since)), content_type=JSON)

    @app.get("/healthz")
    async def healthz() -> Response:
        snap = hub.buffer.snapshot()
        return Response(
            _encode({"status": "ok", "buffered": snap.size, "latest_ms": snap.latest_ms}),
            200,
            content_type=JSON,
        )

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


def _register_errors(app: QuartTrio) -> None:
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
