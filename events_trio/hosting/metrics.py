"""``GET /metrics`` and request counting, for either process.

Each app gets its own ``CollectorRegistry`` (never the process-global one),
so several servers in one process — tests, the demo — do not collide.
:func:`instrument` is an ASGI wrapper, outermost, so every request counts
(the ``/api/events`` fast path and the guard's early answers too), by route
and status; it serves ``GET /metrics`` itself. What each process reports
besides lives with it (``server/metrics.py``, ``gateway/metrics.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

from ..wire.defaults import METRICS_PATH
from ..wire.responses import (
    METHOD_NOT_ALLOWED,
    METHOD_NOT_ALLOWED_MESSAGE,
    send_error,
    send_response,
)

ASGIApp = Any
#: Route label of every path that is not a known route (bounded label values).
OTHER_ROUTE: Final = "other"
Scrape = Callable[[], Awaitable[None]]


def new_request_counter(registry: CollectorRegistry) -> Counter:
    """``events_trio_http_requests_total{route, status}`` in ``registry``."""
    return Counter(
        "events_trio_http_requests",
        "HTTP requests answered, by route and status code",
        ("route", "status"),
        registry=registry,
    )


class RequestMetrics:
    """Requests answered (by route and status) and in progress (by route).

    Label lookups take a lock each; the hot path reuses the children.
    """

    def __init__(self, registry: CollectorRegistry, routes: Collection[str]) -> None:
        self.routes = routes
        self._requests = new_request_counter(registry)
        self._in_progress = Gauge(
            "events_trio_http_requests_in_progress",
            "HTTP requests being answered (long-polls and streams included), by route",
            ("route",),
            registry=registry,
        )
        self._gauges: dict[str, Any] = {}
        self._counters: dict[tuple[str, int], Any] = {}

    def route(self, path: str) -> str:
        """The route label of ``path``: itself if known, else ``other``."""
        return path if path in self.routes else OTHER_ROUTE

    def gauge(self, route: str) -> Any:
        """The in-progress gauge of ``route``."""
        child = self._gauges.get(route)
        if child is None:
            child = self._gauges[route] = self._in_progress.labels(route)
        return child

    def counter(self, route: str, status: int) -> Any:
        """The answered counter of ``route`` and ``status``."""
        child = self._counters.get((route, status))
        if child is None:
            child = self._counters[route, status] = self._requests.labels(route, str(status))
        return child


class _StatusSend:
    """An ASGI ``send`` that remembers the response status (500 if none starts)."""

    __slots__ = ("send", "status")

    def __init__(self, send: Any) -> None:
        self.send = send
        self.status = 500

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self.send(message)


def instrument(
    app: ASGIApp,
    registry: CollectorRegistry,
    routes: Collection[str],
    before_scrape: Scrape | None = None,
) -> ASGIApp:
    """Count ``app``'s requests by route and status; serve ``GET /metrics``.

    Requests in progress are a gauge by route: open long-polls and streams
    show there on both processes.

    Args:
        app: The ASGI app to wrap.
        registry: Where the request metrics go, and what ``/metrics`` shows.
        routes: Paths used as route labels as they are; others are ``other``.
        before_scrape: Awaited before each scrape (figures that need I/O).
    """
    metrics = RequestMetrics(registry, routes)

    async def scrape(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if before_scrape is not None:
            await before_scrape()
        await serve_metrics(scope, send, registry)

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        handler = scrape if scope["path"] == METRICS_PATH else app
        await _counted(metrics, handler, scope, receive, _StatusSend(send))

    return asgi


async def _counted(
    metrics: RequestMetrics,
    handler: ASGIApp,
    scope: dict[str, Any],
    receive: Any,
    send: _StatusSend,
) -> None:
    route = metrics.route(scope["path"])
    metrics.gauge(route).inc()
    try:
        await handler(scope, receive, send)
    finally:
        metrics.gauge(route).dec()
        metrics.counter(route, send.status).inc()


async def serve_metrics(scope: dict[str, Any], send: Any, registry: CollectorRegistry) -> None:
    """Answer ``GET``/``HEAD /metrics`` from ``registry``; other methods get 405."""
    if scope["method"] not in ("GET", "HEAD"):
        allow = [(b"allow", b"GET, HEAD")]
        await send_error(send, 405, METHOD_NOT_ALLOWED, METHOD_NOT_ALLOWED_MESSAGE, headers=allow)
        return
    headers = [(b"content-type", CONTENT_TYPE_LATEST.encode())]
    body = generate_latest(registry)
    await send_response(send, 200, headers, body, head=scope["method"] == "HEAD")
