"""The gateway's ``GET /metrics`` figures (served by ``hosting/metrics.py``).

Per project: ``up``, poll latency (a histogram, measured on the shared HTTP
client from request start to response headers, so a long-poll's wait is
included), events received and failed polls. Per sink: backlog (log entries
past its offset, counted up to ``BACKLOG_CAP``) and failed deliveries.
Open SSE streams. Everything but the latency is read from the live
status objects when scraped.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from typing import Final

import httpx
import trio
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..wire.defaults import EVENTS_PATH, METRICS_PATH, STREAM_PATH
from ..wire.sse import StreamStats
from .eventlog import EventLog
from .poller import Poller
from .sinks import SinkRunner

GATEWAY_ROUTES: Final = (
    "/",
    EVENTS_PATH,
    STREAM_PATH,
    "/api/projects",
    "/api/session",
    "/api/stories",
    "/api/summary",
    "/healthz",
    METRICS_PATH,
)
#: A sink's backlog is counted up to this many entries (one bounded read per scrape).
BACKLOG_CAP: Final = 10_000
#: Poll latency buckets in seconds: quick answers up to a full long-poll wait.
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class GatewayMetrics:
    """The gateway's registry and what feeds it.

    Args:
        log_store: The merged log (for sink backlogs).
        pollers: One per project; their HTTP client gets timing hooks.
        runners: One per sink.
    """

    def __init__(
        self, log_store: EventLog, pollers: Sequence[Poller], runners: Sequence[SinkRunner]
    ) -> None:
        self.log_store = log_store
        self.pollers = pollers
        # reversed: when two projects share a URL, the first one wins, as in the scan.
        self._by_events_url = {
            f"{p.project.url}/api/events": p.project.name for p in reversed(pollers)
        }
        self.runners = runners
        self.streams = StreamStats()
        self.backlog: dict[str, int] = {}
        self.registry = CollectorRegistry()
        self.poll_seconds = Histogram(
            "events_trio_gateway_poll_duration_seconds",
            "Time from a poll's request to its response headers (long-poll wait included)",
            ("project",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_GatewayCollector(self))
        self._started: weakref.WeakKeyDictionary[httpx.Request, float] = weakref.WeakKeyDictionary()
        for client in {id(p.client): p.client for p in pollers}.values():
            client.event_hooks["request"].append(self._on_request)
            client.event_hooks["response"].append(self._on_response)

    async def _on_request(self, request: httpx.Request) -> None:
        self._started[request] = trio.current_time()

    async def _on_response(self, response: httpx.Response) -> None:
        started = self._started.pop(response.request, None)
        project = self._project_of(str(response.request.url))
        if started is not None and project is not None:
            self.poll_seconds.labels(project).observe(trio.current_time() - started)

    def _project_of(self, url: str) -> str | None:
        # A poll's URL is its project's events URL plus the query: one dict
        # lookup instead of a scan of every poller on every response (at
        # 1,000 projects the scan cost more than the rest of the hook).
        name = self._by_events_url.get(url.partition("?")[0])
        if name is not None:
            return name
        for poller in self.pollers:
            if url.startswith(f"{poller.project.url}/api/events"):
                return poller.project.name
        return None

    async def refresh(self) -> None:
        """Count each sink's backlog (called before every scrape)."""
        for runner in self.runners:
            page = await self.log_store.read(runner.offset, BACKLOG_CAP)
            self.backlog[runner.sink.name] = len(page.entries)


class _GatewayCollector:
    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        statuses = [poller.status for poller in self.metrics.pollers]
        up = GaugeMetricFamily(
            "events_trio_gateway_project_up",
            "1 when the project's last poll succeeded",
            labels=("project",),
        )
        received = CounterMetricFamily(
            "events_trio_gateway_events_received",
            "Project events appended to the merged log",
            labels=("project",),
        )
        errors = CounterMetricFamily(
            "events_trio_gateway_poll_errors", "Failed polls", labels=("project",)
        )
        for status in statuses:
            up.add_metric([status.name], 1.0 if status.state == "up" else 0.0)
            received.add_metric([status.name], status.events_received)
            errors.add_metric([status.name], status.failures)
        yield from (up, received, errors)
        backlog = GaugeMetricFamily(
            "events_trio_gateway_sink_backlog",
            f"Log entries not yet delivered to the sink (counted up to {BACKLOG_CAP})",
            labels=("sink",),
        )
        failures = CounterMetricFamily(
            "events_trio_gateway_sink_failures", "Failed sink deliveries", labels=("sink",)
        )
        for runner in self.metrics.runners:
            backlog.add_metric([runner.sink.name], self.metrics.backlog.get(runner.sink.name, 0))
            failures.add_metric([runner.sink.name], runner.failures)
        yield from (backlog, failures)
        yield GaugeMetricFamily(
            "events_trio_gateway_open_streams", "Open SSE streams", self.metrics.streams.open
        )
