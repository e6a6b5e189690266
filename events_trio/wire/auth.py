"""Bearer tokens: checking them, refusing without them, and who must have one.

Both processes protect their read API with an optional **read token**
(``events-trio serve --read-token``, ``events-trio gateway --read-token``);
the project server's ingest endpoint has a token of its own. Every check
goes through :func:`bearer_matches`, which compares in constant time.

* :func:`scope_bearer_ok` — the read-token check of an ASGI ``scope``
  (``hosting/access.py`` runs it in front of both apps);
* :func:`scope_cookie` — a cookie of an ASGI ``scope`` (the gateway's
  session cookie, checked beside the bearer token);
* :func:`send_unauthorized` — the 401 it answers (:func:`unauthorized_body`);
* :func:`check_exposure` — refuses to listen beyond loopback without a read token.

Tokens never appear in a message, a log line or an error body written here.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from http.cookies import CookieError, SimpleCookie
from typing import Any, Final

from ..core.errors import ConfigError
from .responses import JSON_HEADER, error_body, send_response

UNAUTHORIZED_STATUS: Final = 401
UNAUTHORIZED_ERROR: Final = "unauthorized"
UNAUTHORIZED_MESSAGE: Final = "missing or invalid bearer token"
WWW_AUTHENTICATE: Final = 'Bearer realm="events-trio"'


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


def scope_bearer_ok(scope: dict[str, Any], token: str | None) -> bool:
    """Whether a request may read: no token configured, or the right bearer token.

    Args:
        scope: The request's ASGI scope (raw ``(name, value)`` byte headers).
        token: The configured read token; ``None`` or empty means open.
    """
    return not token or bearer_matches(_authorization(scope.get("headers", ())), token)


def _authorization(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    return _header(headers, b"authorization")


def _header(headers: Iterable[tuple[bytes, bytes]], wanted: bytes) -> bytes | None:
    for name, value in headers:
        if name.lower() == wanted:
            return value
    return None


def scope_cookie(scope: dict[str, Any], name: str) -> str | None:
    """The value of cookie ``name`` of an ASGI request, ``None`` when absent."""
    header = _header(scope.get("headers", ()), b"cookie")
    if header is None:
        return None
    cookies = SimpleCookie()
    try:
        cookies.load(header.decode("latin-1"))
    except CookieError:
        return None
    morsel = cookies.get(name)
    return None if morsel is None else morsel.value


def unauthorized_body() -> bytes:
    """The JSON body of every 401: ``{"error": "unauthorized", "message": ...}``."""
    return error_body(UNAUTHORIZED_ERROR, UNAUTHORIZED_MESSAGE)


async def send_unauthorized(send: Any, *, head: bool = False) -> None:
    """Answer an ASGI request with 401, the JSON body and ``WWW-Authenticate: Bearer``.

    Args:
        send: The ASGI ``send`` callable.
        head: The request was ``HEAD``: headers only.
    """
    headers = [(b"www-authenticate", WWW_AUTHENTICATE.encode()), JSON_HEADER]
    await send_response(send, UNAUTHORIZED_STATUS, headers, unauthorized_body(), head=head)


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


__all__ = [
    "UNAUTHORIZED_MESSAGE",
    "WWW_AUTHENTICATE",
    "bearer_matches",
    "check_exposure",
    "is_loopback",
    "scope_bearer_ok",
    "send_unauthorized",
    "unauthorized_body",
]
