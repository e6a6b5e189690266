"""Answers without a web framework: the JSON error body and raw ASGI responses.

Every error either process sends is ``{"error": code, "message": text}``
(plus ``"parameter"`` for a bad request parameter), built by
:func:`error_body`; the raw-ASGI paths (fast path, guard, metrics, access
check) answer with :func:`send_response`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgspec

JSON: Final = "application/json"
#: ``(name, value)`` of the JSON content type as ASGI header bytes.
JSON_HEADER: Final = (b"content-type", JSON.encode())
#: Our ``error`` code and ``message`` for each HTTP error the framework raises
#: (its own texts are its own and may change between releases).
HTTP_ERRORS: Final[Mapping[int, tuple[str, str]]] = {
    400: ("bad_request", "bad request"),
    404: ("not_found", "no such resource"),
    405: ("method_not_allowed", "method not allowed here"),
    408: ("request_timeout", "request timed out"),
    413: ("payload_too_large", "request body too large"),
    415: ("unsupported_media_type", "unsupported content type"),
}
METHOD_NOT_ALLOWED, METHOD_NOT_ALLOWED_MESSAGE = HTTP_ERRORS[405]

Headers = list[tuple[bytes, bytes]]


def http_error_fields(status: int) -> tuple[str, str]:
    """``(error, message)`` for an HTTP status, ours for every status we answer."""
    return HTTP_ERRORS.get(status, (f"http_{status}", f"HTTP error {status}"))


def error_body(error: str, message: str, **extra: Any) -> bytes:
    """The JSON body of every error: ``{"error": ..., "message": ..., **extra}``."""
    return msgspec.json.encode({"error": error, "message": message, **extra})


async def send_response(
    send: Any, status: int, headers: Headers, body: bytes, *, head: bool = False
) -> None:
    """Answer an ASGI request: ``headers`` plus ``content-length``, then ``body``.

    Args:
        send: The ASGI ``send`` callable.
        status: HTTP status code.
        headers: Header ``(name, value)`` byte pairs, content type included.
        body: The body (its length is sent even for ``HEAD``).
        head: The request was ``HEAD``: headers only.
    """
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def send_error(
    send: Any,
    status: int,
    error: str,
    message: str,
    *,
    headers: Sequence[tuple[bytes, bytes]] = (),
    **extra: Any,
) -> None:
    """Answer an ASGI request with the JSON error ``error``/``message``."""
    body = error_body(error, message, **extra)
    await send_response(send, status, [*headers, JSON_HEADER], body)
