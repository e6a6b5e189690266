"""ASGI wrappers both apps get: the read-token check and "Connection: close" at shutdown.

* :func:`require_read_token` — ``GET``/``HEAD`` under ``/api/`` need
  ``Authorization: Bearer <token>`` or, on the gateway, its session cookie
  (401 JSON otherwise). It covers every
  read route, present and future; ``POST /api/events`` keeps its own ingest
  token; ``/healthz``, ``/metrics`` and the page stay open.
* :func:`close_when` — once shutdown begins, released long-polls answer at
  once; without ``Connection: close`` a keep-alive client would re-poll in
  a tight loop until the grace period ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from ..wire.auth import scope_bearer_ok, send_unauthorized

ASGIApp = Any
API_PREFIX: Final = "/api/"
_READS: Final = ("GET", "HEAD")


def require_read_token(
    app: ASGIApp, token: str | None, *, also: Callable[[dict[str, Any]], bool] | None = None
) -> ASGIApp:
    """``app`` behind the read-token check; ``app`` itself when ``token`` is unset.

    Args:
        app: The ASGI app to protect.
        token: The read token; ``None`` or empty leaves reads open.
        also: Another credential a read may carry instead of the bearer
            header (the gateway's session cookie), checked on the scope.
    """
    if not token:
        return app

    def may_read(scope: dict[str, Any]) -> bool:
        return scope_bearer_ok(scope, token) or (also is not None and also(scope))

    async def checked(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if _reads_api(scope) and not may_read(scope):
            await send_unauthorized(send, head=scope["method"] == "HEAD")
            return
        await app(scope, receive, send)

    return checked


def _reads_api(scope: dict[str, Any]) -> bool:
    return (
        scope["type"] == "http"
        and scope["method"] in _READS
        and scope["path"].startswith(API_PREFIX)
    )


def close_when(app: ASGIApp, stopping: Callable[[], bool]) -> ASGIApp:
    """``app`` whose responses carry ``Connection: close`` once ``stopping()``."""

    async def closing(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def send_closing(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and stopping():
                message = with_connection_close(message)
            await send(message)

        await app(scope, receive, send_closing)

    return closing


def with_connection_close(message: dict[str, Any]) -> dict[str, Any]:
    """A ``http.response.start`` message with ``Connection: close`` (and no other)."""
    headers = [h for h in message.get("headers", ()) if h[0].lower() != b"connection"]
    headers.append((b"connection", b"close"))
    return {**message, "headers": headers}
