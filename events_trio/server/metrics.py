"""``GET /metrics``: Prometheus text format over a per-app registry.

Each app gets its own ``CollectorRegistry`` (never the process-global one),
so several servers in one process — tests, the demo — do not collide.

* :func:`instrument` — an ASGI wrapper, outermost, so every request counts
  (the ``/api/events`` fast path and the guard's early answers too), by
  route and status; it serves ``GET /metrics`` itself.
* :class:`ServerCollector` — the project server's figures, read from the
  buffer and the hub when scraped (nothing to keep in step).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterator
from typing import Any, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..wire.query import error_body
from .hub import EventHub
from .stream import StreamStats

ASGIApp = Any
METRICS_PATH: Final = "/metrics"
#: Route label of every path that is not a known route (bounded label values).
OTHER_ROUTE: Final = "other"
SERVER_ROUTES: Final = ("/api/events", "/api/events/stream", "/healthz", METRICS_PATH)


def new_request_counter(registry: CollectorRegistry) -> Counter:
    """``events_trio_http_requests_total{route, status}`` in ``registry``."""
    return Counter(
        "events_trio_http_requests",
        "HTTP requests answered, by route and status code",
        ("route", "status"),
        registry=registry,
    )


def instrument(
    app: ASGIApp,
    registry: CollectorRegistry,
    routes: Collection[str],
    before_scrape: Callable[[], Awaitable[None]] | None = None,
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
    requests = new_request_counter(registry)
    in_progress = Gauge(
        "events_trio_http_requests_in_progress",
        "HTTP requests being answered (long-polls and streams included), by route",
        ("route",),
        registry=registry,
    )

    def label(path: str) -> str:
        return path if path in routes else OTHER_ROUTE

    # Label lookups take a lock each; the hot path reuses the children.
    gauges: dict[str, Any] = {}
    counters: dict[tuple[str, int], Any] = {}

    def gauge(route: str) -> Any:
        child = gauges.get(route)
        if child is None:
            child = gauges[route] = in_progress.labels(route)
        return child

    def counter(route: str, status: int) -> Any:
        child = counters.get((route, status))
        if child is None:
            child = counters[route, status] = requests.labels(route, str(status))
        return child

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        status = 500  # a response that never starts counts as an error

        async def counted_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        route = label(scope["path"])
        gauge(route).inc()
        try:
            if scope["path"] == METRICS_PATH:
                if before_scrape is not None:
                    await before_scrape()
                await _serve_metrics(scope, counted_send, registry)
            else:
                await app(scope, receive, counted_send)
        finally:
            gauge(route).dec()
            counter(route, status).inc()

    return asgi


async def _serve_metrics(scope: dict[str, Any], send: Any, registry: CollectorRegistry) -> None:
    if scope["method"] in ("GET", "HEAD"):
        status, body = 200, generate_latest(registry)
        headers = [(b"content-type", CONTENT_TYPE_LATEST.encode())]
    else:
        status = 405
        body = error_body("method_not_allowed", "The method is not allowed for the requested URL.")
        headers = [(b"content-type", b"application/json"), (b"allow", b"GET, HEAD")]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


class ServerCollector:
    """The project server's buffer, long-poll and stream figures.

    Args:
        hub: The hub whose buffer and long-polls are reported.
        streams: Live stream counts.
    """

    def __init__(self, hub: EventHub, streams: StreamStats) -> None:
        self.hub = hub
        self.streams = streams

    def collect(self) -> Iterator[Metric]:
        """Called by the registry on every scrape."""
        snap = self.hub.buffer.snapshot()
        yield CounterMetricFamily(
            "events_trio_events_stored", "Events stored in the buffer", self.hub.buffer.pushed_total
        )
        yield CounterMetricFamily(
            "events_trio_events_evicted", "Events evicted from a full buffer", snap.evicted
        )
        yield CounterMetricFamily(
            "events_trio_events_lagged",
            "Events lost to broadcast lag before they reached the buffer",
            snap.lost,
        )
        yield GaugeMetricFamily("events_trio_events_buffered", "Events in the buffer", snap.size)
        parked = max(0, self.hub.longpoll.waiting - self.streams.parked)
        yield GaugeMetricFamily("events_trio_open_long_polls", "Long-polls waiting", parked)
        yield GaugeMetricFamily("events_trio_open_streams", "Open SSE streams", self.streams.open)


def server_registry(hub: EventHub, streams: StreamStats) -> CollectorRegistry:
    """A fresh registry holding the project server's collector."""
    registry = CollectorRegistry()
    registry.register(ServerCollector(hub, streams))
    return registry
