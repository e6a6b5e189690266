"""``POST /api/events``: tools push watcher events into the project server.

The checks and decoding are ``sources/ingest.py`` (docs/sources.md); this
route reads the body, runs them and publishes on the broadcast channel
(``hub.publish``), so the events flow through the same subscriber and
buffer as the watcher's.
"""

from __future__ import annotations

import msgspec
import trio
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import RequestEntityTooLarge

from ..core.events import WatcherEvent
from ..hosting.webapp import json_error, json_response
from ..sources.ingest import (
    MAX_BODY_BYTES,
    IngestError,
    check_content_type,
    check_token,
    decode_events,
)
from ..wire.auth import WWW_AUTHENTICATE
from ..wire.defaults import EVENTS_PATH
from .hub import EventHub


async def _read_body() -> bytes:
    try:
        return await request.get_data(cache=False, as_text=False, parse_form_data=False)
    except RequestEntityTooLarge:
        raise IngestError(
            413, "payload_too_large", f"request body exceeds {MAX_BODY_BYTES} bytes"
        ) from None


def _publish_all(hub: EventHub, events: list[WatcherEvent]) -> None:
    try:
        for event in events:
            hub.publish(event)
    except trio.ClosedResourceError:
        # The hub closes its sender only at shutdown, before any event of
        # this request was published (publishing never fails halfway).
        raise IngestError(503, "shutting_down", "server is shutting down") from None


def register_ingest(app: QuartTrio, hub: EventHub, *, token: str | None) -> None:
    """Add ``POST /api/events`` to ``app``, publishing into ``hub``.

    Args:
        app: The project server app.
        hub: Where accepted events are published.
        token: The ingest token; ``None`` or empty disables ingest (403).
    """

    @app.post(EVENTS_PATH)
    async def post_events() -> Response:
        try:
            # Read first: answering with the body unread can hang or crash
            # the connection (hosting/guard.py).
            body = await _read_body()
            check_token(request.headers.get("Authorization"), token)
            check_content_type(request.mimetype)
            events = decode_events(body)
            _publish_all(hub, events)
        except IngestError as error:
            return _error_response(error)
        return json_response(msgspec.json.encode({"accepted": len(events)}), 202)


def _error_response(error: IngestError) -> Response:
    extra = {key: value for key, value in error.body().items() if key not in ("error", "message")}
    response = json_error(error.status, error.error, error.message, **extra)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = WWW_AUTHENTICATE
    return response
