"""``GET /api/events`` served straight from ASGI, in front of a web app.

This is the route every gateway polls, many times a second across a fleet,
and the route a consumer polls on the gateway, so it skips the framework's
per-request machinery (request context, routing, response wrappers): the
query string is parsed with the stdlib, the body comes from the caller as
bytes, and the response is two ASGI messages. Both processes serve their
``GET /api/events`` through :func:`events_route`; each supplies only the
step that turns a parsed query into headers and a body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final
from urllib.parse import parse_qs

from ..core.errors import InvalidParameter
from .defaults import EVENTS_PATH
from .query import EventsQuery, parse_events_query
from .responses import (
    JSON_HEADER,
    METHOD_NOT_ALLOWED,
    METHOD_NOT_ALLOWED_MESSAGE,
    send_error,
    send_response,
)

ASGIApp = Any
Args = Mapping[str, list[str]]
#: Turns a parsed query (and every query parameter) into headers and a JSON body.
Responder = Callable[[EventsQuery, Args], Awaitable[tuple[Iterable[tuple[str, str]], bytes]]]
#: Methods a project server accepts on ``/api/events`` (``POST`` is ingest).
READ_METHODS: Final = ("GET", "HEAD")
_names: dict[str, bytes] = {}


def events_route(respond: Responder, app: ASGIApp, *, post: bool = False) -> ASGIApp:
    """Serve ``GET``/``HEAD /api/events`` with ``respond``; pass the rest to ``app``.

    Args:
        respond: Builds the answer to one valid query.
        app: Everything else (and ``POST /api/events`` when ``post``).
        post: ``app`` takes ``POST /api/events``; otherwise it is a 405.
    """
    allow = b"GET, HEAD, POST" if post else b"GET, HEAD"

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != EVENTS_PATH:
            await app(scope, receive, send)
        elif scope["method"] in READ_METHODS:
            await answer(respond, scope, send)
        elif scope["method"] == "POST" and post:
            await app(scope, receive, send)
        else:
            await send_error(
                send,
                405,
                METHOD_NOT_ALLOWED,
                METHOD_NOT_ALLOWED_MESSAGE,
                headers=[(b"allow", allow)],
            )

    return asgi


def query_args(query_string: bytes) -> Args:
    """Query parameters decoded like werkzeug's ``request.args``: UTF-8, bad bytes replaced."""
    return parse_qs(
        query_string.decode("latin-1"), keep_blank_values=True, errors="replace", encoding="utf-8"
    )


async def answer(respond: Responder, scope: dict[str, Any], send: Any) -> None:
    """Answer one ``GET``/``HEAD /api/events``: 400 for a bad query, else ``respond``'s."""
    args = query_args(scope["query_string"])
    try:
        query = parse_events_query(args)
    except InvalidParameter as error:
        await send_error(send, 400, "invalid_parameter", error.message, parameter=error.parameter)
        return
    headers, body = await respond(query, args)
    raw = [(_name(name), value.encode()) for name, value in headers]
    await send_response(send, 200, [*raw, JSON_HEADER], body, head=scope["method"] == "HEAD")


def _name(header: str) -> bytes:
    # ASGI header names are lower-case bytes; a handful of names, encoded once.
    name = _names.get(header)
    if name is None:
        name = _names[header] = header.lower().encode()
    return name
