"""Bearer tokens: checking them, refusing without them, and who must have one.

Both processes protect their read API with an optional **read token**
(``events-trio serve --read-token``, ``events-trio gateway --read-token``);
the project server's ingest endpoint has a token of its own. Every check
goes through :func:`bearer_matches`, which compares in constant time.

* :func:`bearer_ok` — a Quart route's check (``request.headers``);
* :func:`scope_bearer_ok` — the same for a raw ASGI ``scope``;
* :func:`unauthorized_response` / :func:`send_unauthorized` — the 401 both answer;
* :func:`check_exposure` — refuses to listen beyond loopback without a read token.

Tokens never appear in a message, a log line or an error body written here.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import os
from collections.abc import Iterable
from typing import Any, Final, Protocol

import msgspec
from quart import Response

from ..core.errors import ConfigError

UNAUTHORIZED_STATUS: Final = 401
UNAUTHORIZED_ERROR: Final = "unauthorized"
UNAUTHORIZED_MESSAGE: Final = "missing or invalid bearer token"
WWW_AUTHENTICATE: Final = 'Bearer realm="events-trio"'
_JSON: Final = "application/json"


class HeaderMap(Protocol):
    """Anything with ``get(name)`` returning a header value (werkzeug's ``Headers``)."""

    def get(self, key: str, /) -> str | None: ...


def bearer_matches(authorization: str | bytes | None, token: str) -> bool:
    """Whether an ``Authorization`` value is ``Bearer <token>`` (scheme in any case).

    The comparison is :func:`hmac.compare_digest` over bytes (it refuses
    non-ASCII ``str``); header values arrive as latin-1.
    """
    if isinstance(authorization, bytes):
        authorization = authorization.decode("latin-1")
    scheme, _, given = (authorization or "").strip().partition(" ")
    offered = given.strip().encode("latin-1", "replace")
    return scheme.lower() == "bearer" and hmac.compare_digest(offered, token.encode())


def bearer_ok(headers: HeaderMap, token: str | None) -> bool:
    """Whether a request may read: no token configured, or the right bearer token.

    Args:
        headers: The request's headers (``quart.request.headers``).
        token: The configured read token; ``None`` or empty means open.
    """
    return not token or bearer_matches(headers.get("Authorization"), token)


def scope_bearer_ok(scope: dict[str, Any], token: str | None) -> bool:
    """:func:`bearer_ok` for an ASGI ``scope`` (raw ``(name, value)`` byte headers)."""
    return not token or bearer_matches(_authorization(scope.get("headers", ())), token)


def _authorization(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name.lower() == b"authorization":
            return value
    return None


def unauthorized_body() -> bytes:
    """The JSON body of every 401: ``{"error": "unauthorized", "message": ...}``."""
    return msgspec.json.encode({"error": UNAUTHORIZED_ERROR, "message": UNAUTHORIZED_MESSAGE})


def unauthorized_response() -> Response:
    """A Quart ``Response``: 401, the JSON body, ``WWW-Authenticate: Bearer``."""
    headers = {"WWW-Authenticate": WWW_AUTHENTICATE}
    return Response(unauthorized_body(), UNAUTHORIZED_STATUS, headers, content_type=_JSON)


async def send_unauthorized(send: Any, *, head: bool = False) -> None:
    """Answer an ASGI request with the same 401 as :func:`unauthorized_response`.

    Args:
        send: The ASGI ``send`` callable.
        head: The request was ``HEAD``: headers only.
    """
    body = unauthorized_body()
    headers = [
        (b"www-authenticate", WWW_AUTHENTICATE.encode()),
        (b"content-type", _JSON.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": UNAUTHORIZED_STATUS, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


# --- exposure ------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """Whether ``host`` is ``localhost``, in 127.0.0.0/8 or ``::1`` (brackets allowed)."""
    bare = host.strip().removeprefix("[").removesuffix("]")
    if bare.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False  # a hostname or "" (every interface): assume reachable


def check_exposure(
    host: str, read_token: str | None, *, allow_unauthenticated: bool, flag: str
) -> None:
    """Refuse to serve events beyond loopback without a read token.

    Args:
        host: The interface about to be bound.
        read_token: The configured read token.
        allow_unauthenticated: The operator's explicit opt-out.
        flag: How the operator sets the token, for the message
            (``--read-token or EVENTS_TRIO_READ_TOKEN``).

    Raises:
        ConfigError: one line saying why and what to do.
    """
    if read_token or allow_unauthenticated or is_loopback(host):
        return
    shown = host or "every interface"
    raise ConfigError(
        f"refusing to listen on {shown} without a read token: anyone who can reach it "
        f"could read every event; set {flag}, bind 127.0.0.1, "
        "or pass --allow-unauthenticated"
    )


def add_access_arguments(parser: argparse.ArgumentParser, *, env: str) -> None:
    """Add ``--read-token`` and ``--allow-unauthenticated`` (``serve``, ``gateway``).

    The token's default comes from the variable ``env``; ``--help`` names
    the variable, never its value.
    """
    parser.add_argument(
        "--read-token",
        default=os.environ.get(env) or None,
        help=f"require 'Authorization: Bearer TOKEN' to read events (default: ${env}; "
        "prefer the variable, flags show in ps)",
    )
    parser.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="serve on a non-loopback interface without a read token",
    )


__all__ = [
    "UNAUTHORIZED_MESSAGE",
    "WWW_AUTHENTICATE",
    "HeaderMap",
    "add_access_arguments",
    "bearer_matches",
    "bearer_ok",
    "check_exposure",
    "is_loopback",
    "scope_bearer_ok",
    "send_unauthorized",
    "unauthorized_body",
    "unauthorized_response",
]
