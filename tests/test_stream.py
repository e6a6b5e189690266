"""``GET /api/events/stream`` on the project server, over real Hypercorn."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
import trio

from events_trio.core.events import MergeFailure
from events_trio.server.config import ServerConfig
from events_trio.server.run import RunningServer, run_server
from tests.sse import HTTPCORE_EARLY_CLOSE, Frame, next_events, open_stream
from tests.support import FakeClockMs

pytestmark = HTTPCORE_EARLY_CLOSE

STREAM = "/api/events/stream"


def failures(*stories: str) -> list[MergeFailure]:
    return [MergeFailure(story, "conflict") for story in stories]


async def start(nursery: trio.Nursery, **changes: object) -> RunningServer:
    config = ServerConfig(port=0, clock_ms=FakeClockMs(), graceful_timeout_s=1.0).replace(**changes)
    server: RunningServer = await nursery.start(run_server, config)
    return server


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield client


def stories(found: list[Frame]) -> list[str]:
    return [msgspec.json.decode(frame.data or "")["story_id"] for frame in found]


async def test_events_arrive_in_order_as_api_events_encodes_them(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    async with open_stream(http, STREAM) as (response, stream):
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in failures("1_story_a", "2_story_b", "3_story_c"):
            server.hub.publish(event)
        found = await next_events(stream, 3)
    polled = msgspec.json.decode((await http.get("/api/events")).content)
    assert [frame.data for frame in found] == [msgspec.json.encode(e).decode() for e in polled]
    assert [frame.id for frame in found] == [e["timestamp_ms"] for e in polled]


async def test_reconnect_with_last_event_id_resumes_without_duplicates_or_loss(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    for event in failures("1_story_a", "2_story_b"):
        server.hub.publish(event)
    async with open_stream(http, STREAM) as (_, stream):
        first = await next_events(stream, 2)
    for event in failures("3_story_c", "4_story_d"):
        server.hub.publish(event)
    headers = {"Last-Event-ID": str(first[-1].id)}
    async with open_stream(http, STREAM, params={"since": "0"}, headers=headers) as (_, stream):
        rest = await next_events(stream, 2)
    assert stories(first + rest) == ["1_story_a", "2_story_b", "3_story_c", "4_story_d"]


async def test_since_parameter_starts_after_that_stamp(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    for event in failures("1_story_a", "2_story_b"):
        server.hub.publish(event)
    async with open_stream(http, STREAM) as (_, stream):
        first = await next_events(stream, 1)
    async with open_stream(http, STREAM, params={"since": str(first[0].id)}) as (_, stream):
        rest = await next_events(stream, 1)
    assert stories(rest) == ["2_story_b"]


async def test_idle_stream_gets_keep_alive_comments(nursery: trio.Nursery) -> None:
    server = await start(nursery, sse_keepalive_s=0.05)
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
        open_stream(http, STREAM) as (_, stream),
    ):
        with trio.fail_after(10):
            async for frame in stream:
                if frame.comments:
                    break
    assert frame.comments == ["keep-alive"]
    server.shutdown()


async def test_shutdown_ends_an_open_stream(nursery: trio.Nursery) -> None:
    server = await start(nursery)
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
        open_stream(http, STREAM) as (_, stream),
    ):
        await stream.__anext__()  # the retry: frame: the stream is open
        server.shutdown()
        with trio.fail_after(5):
            rest = [frame async for frame in stream]
    assert rest == []


async def test_evicted_events_are_announced_as_a_gap(nursery: trio.Nursery) -> None:
    server = await start(nursery, capacity=2)
    for event in failures("1_story_a", "2_story_b", "3_story_c", "4_story_d"):
        server.hub.publish(event)
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
        open_stream(http, STREAM) as (_, stream),
    ):
        # The subscriber stores events in the background: wait for all four.
        found = await next_events(stream, 3)
    assert (found[0].event, found[0].data) == ("gap", '{"missed":2}')
    assert stories(found[1:]) == ["3_story_c", "4_story_d"]
    server.shutdown()


async def test_retry_interval_is_sent_first(http: httpx.AsyncClient) -> None:
    async with open_stream(http, STREAM) as (_, stream):
        first = await stream.__anext__()
    assert first.fields == [("retry", "1000")]


@pytest.mark.parametrize(
    ("headers", "params", "parameter"),
    [
        ({"Last-Event-ID": "abc"}, {}, "Last-Event-ID"),
        ({}, {"since": "-1"}, "since"),
    ],
)
async def test_bad_cursor_is_a_400_naming_it(
    http: httpx.AsyncClient, headers: dict[str, str], params: dict[str, str], parameter: str
) -> None:
    response = await http.get(STREAM, headers=headers, params=params)
    assert response.status_code == 400
    assert response.json()["parameter"] == parameter
