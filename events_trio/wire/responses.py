"""Answers without a web framework: the JSON error body and raw ASGI responses.

Every error either process sends is ``{"error": code, "message": text}``
(plus ``"parameter"`` for a bad request parameter), built by
:func:`error_body`; the raw-ASGI paths (fast path, guard, metrics, access
check) answer with :func:`send_response`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec

JSON: Final = "application/json"
#: ``(name, value)`` of the JSON content type as ASGI header bytes.
JSON_HEADER: Final = (b"content-type", JSON.encode())
METHOD_NOT_ALLOWED: Final = "method_not_allowed"
METHOD_NOT_ALLOWED_MESSAGE: Final = "The method is not allowed for the requested URL."

Headers = list[tuple[bytes, bytes]]


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
