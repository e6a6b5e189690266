"""An ASGI wrapper that handles the stack's known hazards before Quart runs.

* A request head over :data:`MAX_HEAD_BYTES` or with more than
  :data:`MAX_HEADER_COUNT` headers gets 431 JSON (and ``Connection:
  close``). h11 refuses a head over 16 KiB only while it is *incomplete*,
  so one that arrives in a single read would pass; this makes the limit
  the same however the bytes are split.
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
from dataclasses import dataclass
from typing import Any, Final

import trio

from ..wire.responses import JSON_HEADER, error_body, send_response
from .access import with_connection_close

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
#: Largest request line plus headers, in bytes (h11's ``max_incomplete_event_size``).
MAX_HEAD_BYTES: Final = 16 * 1024
#: Most header fields in one request.
MAX_HEADER_COUNT: Final = 100
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


@dataclass(frozen=True, slots=True)
class _Head:
    """What the guard needs of a request head, gathered in one pass."""

    size: int  # bytes of request target and header lines
    count: int  # header fields
    host: bytes | None
    length: int | None  # Content-Length; 0 without a body; None chunked or unreadable


def _read_head(scope: Scope) -> _Head:
    headers = scope.get("headers", ())
    size = len(scope.get("raw_path", b"")) + len(scope.get("query_string", b""))
    host: bytes | None = None
    length: int | None = 0
    for name, value in headers:
        size += len(name) + len(value) + 4
        if name == b"host" and host is None:
            host = value
        elif name == b"content-length" and length == 0:
            length = int(value) if value.strip().isdigit() else None
        elif name == b"transfer-encoding":
            length = None
    return _Head(size, len(headers), host, length)


def guard(app: ASGIApp) -> ASGIApp:
    """Wrap ``app`` (any ASGI app) with the hazard handling described above."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        head = _read_head(scope)
        if head.count > MAX_HEADER_COUNT or head.size > MAX_HEAD_BYTES:
            await _reject(send, 431, "request_header_fields_too_large", HEAD_MESSAGE)
        elif head.host is not None and not valid_host(head.host):
            await _reject_host(send)
        elif head.length == 0:  # most requests (every poll): no body to track
            await app(scope, receive, send)
        else:
            body = _BodyTracker(receive, send, head.length)
            await app(scope, body.receive, body.send)

    return guarded


class _BodyTracker:
    """``receive``/``send`` of a request with a body: the response waits briefly for it.

    Args:
        receive: The request's ASGI ``receive``.
        send: The request's ASGI ``send``.
        declared: ``Content-Length`` (``None``: chunked or unreadable).
    """

    def __init__(self, receive: Receive, send: Send, declared: int | None) -> None:
        self._receive = receive
        self._send = send
        self._declared = declared
        self._read = trio.Event()

    async def receive(self) -> Message:
        """Receive, noting when the body has been read in full."""
        message: Message = await self._receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self._read.set()
        return message

    async def send(self, message: Message) -> None:
        """Send; a response started before the body arrived gets ``Connection: close``."""
        if (
            message["type"] == "http.response.start"
            and not self._read.is_set()
            and not await _body_arrives(self._declared, self._read)
        ):
            message = with_connection_close(message)
        await self._send(message)


async def _body_arrives(declared: int | None, body_read: trio.Event) -> bool:
    """Wait briefly for a small body to be read in full; ``True`` if it was.

    Quart reads the body in a task of its own for the whole request, so the
    bytes are consumed there; this only waits for the last of them.
    """
    if declared is not None and declared > DRAIN_LIMIT_BYTES:
        return False
    with trio.move_on_after(DRAIN_TIMEOUT_S):
        await body_read.wait()
    return body_read.is_set()


HEAD_MESSAGE: Final = (
    f"request line and headers must stay within {MAX_HEAD_BYTES} bytes "
    f"and {MAX_HEADER_COUNT} header fields"
)


async def _reject_host(send: Send) -> None:
    await _reject(send, 400, "bad_request", "invalid Host header", parameter="Host")


async def _reject(send: Send, status: int, error: str, message: str, **extra: str) -> None:
    headers = [JSON_HEADER, (b"connection", b"close")]
    await send_response(send, status, headers, error_body(error, message, **extra))
