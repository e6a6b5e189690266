"""The project server's ``GET /metrics`` figures (served by ``hosting/metrics.py``).

:class:`ServerCollector` reads the buffer and the hub when scraped (nothing
to keep in step).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..wire.defaults import EVENTS_PATH, METRICS_PATH, STREAM_PATH
from ..wire.sse import StreamStats
from .hub import EventHub

SERVER_ROUTES: Final = (EVENTS_PATH, STREAM_PATH, "/healthz", METRICS_PATH)


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
