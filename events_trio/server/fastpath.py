"""``GET /api/events`` served straight from ASGI, in front of the Quart app.

This is the route every gateway polls, many times a second across a fleet,
so it skips Quart's per-request machinery (request context, routing,
response wrappers): the query string is parsed with the stdlib, the body is
the buffer's pre-encoded bytes, and the response is two ASGI messages.
Behaviour is the wire contract of ``query.py`` — the same parameters,
errors, long-poll and headers; everything else falls through to Quart.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import parse_qs

from ..core.errors import InvalidParameter
from ..wire.auth import scope_bearer_ok, send_unauthorized
from ..wire.query import (
    H_INSTANCE,
    H_LATEST,
    H_MISSED,
    H_OLDEST,
    H_WAIT,
    error_body,
    events_headers,
    parse_events_query,
)
from .hub import EventHub

ASGIApp = Any
EVENTS_PATH: Final = "/api/events"
_JSON: Final = (b"content-type", b"application/json")
ALLOWED: Final = b"GET, HEAD, POST"
#: ASGI header names (lower-case bytes) of the metadata headers.
_NAMES: Final = {
    name: name.lower().encode() for name in (H_INSTANCE, H_LATEST, H_MISSED, H_OLDEST, H_WAIT)
}


def events_fast_path(hub: EventHub, app: ASGIApp, *, read_token: str | None = None) -> ASGIApp:
    """Serve ``GET``/``HEAD /api/events`` from ``hub``; pass the rest to ``app``.

    With ``read_token`` set, a request without ``Authorization: Bearer
    <read_token>`` gets 401 before its query is even parsed.
    """

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != EVENTS_PATH:
            await app(scope, receive, send)
        elif scope["method"] in ("GET", "HEAD"):
            if not scope_bearer_ok(scope, read_token):
                await send_unauthorized(send, head=scope["method"] == "HEAD")
                return
            status, headers, body = await respond(hub, scope["query_string"])
            await _send(
                send, status, headers, b"" if scope["method"] == "HEAD" else body, len(body)
            )
        elif scope["method"] == "POST":
            await app(scope, receive, send)  # ingest
        else:
            body = error_body(
                "method_not_allowed", "The method is not allowed for the requested URL."
            )
            await _send(send, 405, [(b"allow", ALLOWED)], body, len(body))

    return asgi


async def respond(
    hub: EventHub, query_string: bytes
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, extra headers and body for one ``GET /api/events``."""
    # Decoded like werkzeug's request.args: UTF-8, undecodable bytes replaced.
    args = parse_qs(
        query_string.decode("latin-1"), keep_blank_values=True, errors="replace", encoding="utf-8"
    )
    try:
        query = parse_events_query(args)
    except InvalidParameter as error:
        return 400, [], error_body("invalid_parameter", error.message, parameter=error.parameter)
    if query.wait > 0 and not hub.buffer.has_newer(query.since):
        await hub.longpoll.wait_newer(query.since, query.wait)
    # Body and headers come from one synchronous step: they agree.
    body = hub.buffer.encoded_since(query.since)
    headers = [(_NAMES[k], v.encode()) for k, v in events_headers(hub.buffer, query.since)]
    if hub.longpoll.released:
        # Shutting down: released long-polls answer at once, so a keep-alive
        # client must not re-poll in a tight loop until the grace period ends.
        headers.append((b"connection", b"close"))
    return 200, headers, body


async def _send(
    send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes, length: int
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, _JSON, (b"content-length", str(length).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
