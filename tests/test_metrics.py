"""``GET /metrics`` on the project server, scraped over HTTP."""

from __future__ import annotations

import httpx
import trio

from events_trio.core.events import MergeFailure
from events_trio.server.config import ServerConfig
from events_trio.server.run import RunningServer, run_server
from tests.metrics_support import sample, scrape
from tests.sse import HTTPCORE_EARLY_CLOSE, open_stream
from tests.support import FakeClockMs, until


async def start(nursery: trio.Nursery, **changes: object) -> RunningServer:
    config = ServerConfig(port=0, clock_ms=FakeClockMs(), graceful_timeout_s=0.5).replace(**changes)
    server: RunningServer = await nursery.start(run_server, config)
    return server


def publish(server: RunningServer, count: int) -> None:
    for n in range(count):
        server.hub.publish(MergeFailure(f"{n}_story_x", "conflict"))


async def test_stored_events_are_counted(server: RunningServer, client: httpx.AsyncClient) -> None:
    assert sample(await scrape(client), "events_trio_events_stored_total") == 0
    publish(server, 3)
    await until(lambda: server.hub.buffer.pushed_total == 3)
    text = await scrape(client)
    assert sample(text, "events_trio_events_stored_total") == 3
    assert sample(text, "events_trio_events_buffered") == 3


async def test_evicted_events_are_counted(nursery: trio.Nursery) -> None:
    server = await start(nursery, capacity=1)
    publish(server, 3)
    await until(lambda: server.hub.buffer.pushed_total == 3)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        assert sample(await scrape(client), "events_trio_events_evicted_total") == 2
    server.shutdown()


async def test_events_lost_to_broadcast_lag_are_counted(nursery: trio.Nursery) -> None:
    server = await start(nursery, channel_capacity=2)
    publish(server, 5)  # synchronously: the subscriber falls 3 behind
    await until(lambda: server.hub.buffer.pushed_total == 2)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        assert sample(await scrape(client), "events_trio_events_lagged_total") == 3
    server.shutdown()


async def test_requests_are_counted_by_route_and_status_fast_path_included(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/api/events")
    await client.get("/api/events", params={"since": "-1"})
    await client.get("/nowhere")
    counted = "events_trio_http_requests_total"
    expected = {("/api/events", "200"): 1, ("/api/events", "400"): 1, ("other", "404"): 1}
    # A request is counted just after its last byte is sent, so the client can
    # read the response a moment before the count moves: scrape until it has.
    with trio.fail_after(10):
        while True:
            text = await scrape(client)
            found = {key: sample(text, counted, route=key[0], status=key[1]) for key in expected}
            if found == expected:
                break
            await trio.sleep(0.01)


async def test_each_server_has_its_own_registry(nursery: trio.Nursery) -> None:
    first, second = await start(nursery), await start(nursery)
    publish(first, 2)
    await until(lambda: first.hub.buffer.pushed_total == 2)
    async with httpx.AsyncClient(base_url=second.url, timeout=10) as client:
        assert sample(await scrape(client), "events_trio_events_stored_total") == 0
    first.shutdown()
    second.shutdown()


@HTTPCORE_EARLY_CLOSE
async def test_open_streams_and_long_polls_are_gauges(
    server: RunningServer, client: httpx.AsyncClient, nursery: trio.Nursery
) -> None:
    nursery.start_soon(client.get, "/api/events?wait=30")
    async with open_stream(client, "/api/events/stream") as (_, stream):
        await stream.__anext__()
        await until(lambda: server.hub.longpoll.waiting == 2)
        text = await scrape(client)
    assert sample(text, "events_trio_open_streams") == 1
    assert sample(text, "events_trio_open_long_polls") == 1
    assert sample(text, "events_trio_http_requests_in_progress", route="/api/events") == 1
    server.hub.longpoll.release_all()
