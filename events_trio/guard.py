"""An ASGI wrapper that handles the stack's known hazards before Quart runs.

* A ``Host`` header werkzeug cannot parse (a label over 63 characters,
  characters outside a hostname) makes werkzeug raise before Quart's error
  handlers run, which would be a 500. We answer 400 JSON ourselves.
* A response sent before the request body was read (404, 405, 401, 413 on a
  POST) leaves unread bytes on a keep-alive connection, and the next request
  on it can hang. Before such a response starts, a small body (up to
  ``DRAIN_LIMIT_BYTES``, arriving within ``DRAIN_TIMEOUT_S``) is allowed to
  arrive so the connection stays usable (closing with unread bytes makes
  the kernel reset it, which can destroy the response itself); a larger one
  gets ``Connection: close``.
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec
import trio

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Any
Send = Any
ASGIApp = Any

_LABEL: Final = re.compile(rb"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?")
_IPV6: Final = re.compile(rb"[0-9A-Fa-f:.]+")
_PORT: Final = re.compile(rb"[0-9]{1,5}")
_MAX_LABEL: Final = 63
_MAX_HOST: Final = 255
DRAIN_LIMIT_BYTES: Final = 64 * 1024
DRAIN_TIMEOUT_S: Final = 1.0


def valid_host(value: bytes) -> bool:
    """Whether a ``Host`` header is a hostname, IPv4 or [IPv6], with an optional port.

    Labels are checked one by one (no nested regex quantifiers, so no
    catastrophic backtracking on hostile input).
    """
    if len(value) > _MAX_HOST:
        return False
    if value.startswith(b"["):
        address, bracket, port = value[1:].partition(b"]")
        if not bracket or not _IPV6.fullmatch(address):
            return False
        return not port or (port[:1] == b":" and _PORT.fullmatch(port[1:]) is not None)
    host, colon, port = value.partition(b":")
    if colon and not _PORT.fullmatch(port):
        return False
    if not host:
        return not colon
    labels = host[:-1].split(b".") if host.endswith(b".") else host.split(b".")
    return all(len(label) <= _MAX_LABEL and _LABEL.fullmatch(label) for label in labels)


def _bad_host(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"host":
            return not valid_host(value)
    return False


def guard(app: ASGIApp) -> ASGIApp:
    """Wrap ``app`` (any ASGI app) with the hazard handling described above."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        if _bad_host(scope):
            await _reject_host(send)
            return
        if not _has_body(scope):  # most requests (every poll): nothing to track
            await app(scope, receive, send)
            return
        body_read = trio.Event()

        async def tracked_receive() -> Message:
            message: Message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_read.set()
            return message

        async def tracked_send(message: Message) -> None:
            if (
                message["type"] == "http.response.start"
                and not body_read.is_set()
                and not await _body_arrives(scope, body_read)
            ):
                message = _with_connection_close(message)
            await send(message)

        await app(scope, tracked_receive, tracked_send)

    return guarded


def _has_body(scope: Scope) -> bool:
    return _declared_length(scope) != 0


def _declared_length(scope: Scope) -> int | None:
    """The request's Content-Length (``None`` when chunked or unknown)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
        if name == b"transfer-encoding":
            return None
    return 0


async def _body_arrives(scope: Scope, body_read: trio.Event) -> bool:
    """Wait briefly for a small body to be read in full; ``True`` if it was.

    Quart reads the body in a task of its own for the whole request, so the
    bytes are consumed there; this only waits for the last of them.
    """
    declared = _declared_length(scope)
    if declared is not None and declared > DRAIN_LIMIT_BYTES:
        return False
    with trio.move_on_after(DRAIN_TIMEOUT_S):
        await body_read.wait()
    return body_read.is_set()


def _with_connection_close(message: Message) -> Message:
    headers = [h for h in message.get("headers", ()) if h[0].lower() != b"connection"]
    headers.append((b"connection", b"close"))
    return {**message, "headers": headers}


async def _reject_host(send: Send) -> None:
    body = msgspec.json.encode(
        {"error": "bad_request", "message": "invalid Host header", "parameter": "Host"}
    )
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
