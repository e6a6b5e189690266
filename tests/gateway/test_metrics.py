"""``GET /metrics`` on the gateway: real project servers, a real gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import httpx
import trio

from events_trio.core.events import MergeFailure
from events_trio.gateway import GatewayConfig, RunningGateway, run_gateway
from events_trio.gateway.errors import SinkError
from events_trio.gateway.records import LogEntry
from events_trio.gateway.sinks import Sink
from tests.metrics_support import sample, scrape
from tests.sse import HTTPCORE_EARLY_CLOSE, open_stream
from tests.support import free_port

from .helpers import until
from .test_e2e import all_up, gateway_config, project_server


class BrokenSink:
    """A sink whose every delivery fails."""

    name = "broken"
    group_window_s = 0.0
    min_interval_s = 0.0

    async def resume(self, committed: int) -> int:
        return committed

    async def deliver(self, entries: Sequence[LogEntry]) -> None:
        raise SinkError("chat is down")


@asynccontextmanager
async def gateway_with(
    config: GatewayConfig, sinks: Sequence[Sink] = ()
) -> AsyncIterator[tuple[RunningGateway, httpx.AsyncClient]]:
    async with trio.open_nursery() as nursery:
        running: RunningGateway = await nursery.start(
            partial(run_gateway, config, sinks=list(sinks))
        )
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as client:
            yield running, client
        running.shutdown()


async def test_project_up_events_received_and_poll_latency(tmp_path: Path) -> None:
    async with (
        project_server() as a,
        gateway_with(gateway_config(tmp_path, a=a.url)) as (running, client),
    ):
        await all_up(running)
        before = await scrape(client)
        a.hub.publish(MergeFailure("1_story_a", "conflict"))
        a.hub.publish(MergeFailure("2_story_a", "conflict"))
        await until(lambda: running.pollers[0].status.events_received == 2)
        after = await scrape(client)
    assert sample(after, "events_trio_gateway_project_up", project="a") == 1
    assert sample(before, "events_trio_gateway_events_received_total", project="a") == 0
    assert sample(after, "events_trio_gateway_events_received_total", project="a") == 2
    polls = sample(after, "events_trio_gateway_poll_duration_seconds_count", project="a")
    assert (polls or 0) >= 2


async def test_unreachable_project_is_down_with_errors_counted(tmp_path: Path) -> None:
    config = gateway_config(tmp_path, gone=f"http://127.0.0.1:{free_port()}")
    async with gateway_with(config) as (running, client):
        await until(lambda: running.pollers[0].status.state == "down")
        text = await scrape(client)
    assert sample(text, "events_trio_gateway_project_up", project="gone") == 0
    errors = sample(text, "events_trio_gateway_poll_errors_total", project="gone")
    assert (errors or 0) >= 2


async def test_sink_backlog_and_failures_are_reported(tmp_path: Path) -> None:
    async with project_server() as a:
        config = gateway_config(tmp_path, a=a.url)
        async with gateway_with(config, [BrokenSink()]) as (running, client):
            await all_up(running)
            a.hub.publish(MergeFailure("1_story_a", "conflict"))
            await until(lambda: running.runners[0].failures >= 1)
            text = await scrape(client)
    assert sample(text, "events_trio_gateway_sink_backlog", sink="broken") == 1
    failures = sample(text, "events_trio_gateway_sink_failures_total", sink="broken")
    assert (failures or 0) >= 1


@HTTPCORE_EARLY_CLOSE
async def test_open_streams_and_requests_by_route(tmp_path: Path) -> None:
    config = gateway_config(tmp_path, gone=f"http://127.0.0.1:{free_port()}")
    async with gateway_with(config) as (_, client):
        await client.get("/api/projects")
        async with open_stream(client, "/api/events/stream") as (_, stream):
            await stream.__anext__()
            text = await scrape(client)
    assert sample(text, "events_trio_gateway_open_streams") == 1
    counted = "events_trio_http_requests_total"
    assert sample(text, counted, route="/api/projects", status="200") == 1
