"""GET /api/events over a real Hypercorn on 127.0.0.1 port 0."""

from __future__ import annotations

import httpx
import pytest
import trio

from events_trio.core.events import MergeFailure, StoryBlocked, WorkItem
from events_trio.server.config import ServerConfig
from events_trio.server.run import RunningServer, run_server
from tests.support import FakeClockMs, until

T0 = 1_764_201_600_000


async def publish_and_store(server: RunningServer, *events: object) -> None:
    before = server.hub.buffer.pushed_total
    for event in events:
        server.hub.publish(event)  # type: ignore[arg-type]
    await until(lambda: server.hub.buffer.pushed_total == before + len(events))


async def test_events_are_served_byte_for_byte(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    await publish_and_store(
        server,
        WorkItem("42_story_my_feature", "3_qa", from_stage="2_current"),
        MergeFailure("42_story_my_feature", "merge conflict"),
        StoryBlocked("43_story_other", "retry limit exceeded"),
    )
    response = await client.get("/api/events", params={"since": "0"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == (
        b'[{"type":"stage_transition","story_id":"42_story_my_feature","from_stage":"2_current",'
        b'"to_stage":"3_qa","timestamp_ms":1764201600000},'
        b'{"type":"merge_failure","story_id":"42_story_my_feature","reason":"merge conflict",'
        b'"timestamp_ms":1764201600001},'
        b'{"type":"story_blocked","story_id":"43_story_other","reason":"retry limit exceeded",'
        b'"timestamp_ms":1764201600002}]'
    )


async def test_since_defaults_to_zero(server: RunningServer, client: httpx.AsyncClient) -> None:
    await publish_and_store(server, MergeFailure("a", "x"))
    assert len((await client.get("/api/events")).json()) == 1


async def test_since_filters_strictly_greater(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    await publish_and_store(server, MergeFailure("a", "x"), MergeFailure("b", "x"))
    body = (await client.get("/api/events", params={"since": str(T0)})).json()
    assert [e["story_id"] for e in body] == ["b"]


async def test_empty_buffer_is_an_empty_array(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/events", params={"since": "18446744073709551615"})
    assert (response.status_code, response.content) == (200, b"[]")


async def test_unknown_query_parameters_are_ignored(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/events", params={"since": "0", "limit": "x", "foo": ""})
    assert response.status_code == 200


async def test_same_millisecond_events_are_each_seen_once_by_a_poller(
    server: RunningServer, client: httpx.AsyncClient, clock_ms: FakeClockMs
) -> None:
    # The wall clock is frozen: both events land in the same millisecond.
    await publish_and_store(server, MergeFailure("first", "x"))
    first = (await client.get("/api/events", params={"since": "0"})).json()
    await publish_and_store(server, MergeFailure("second", "x"))
    cursor = first[-1]["timestamp_ms"]
    second = (await client.get("/api/events", params={"since": str(cursor)})).json()
    assert [e["story_id"] for e in first + second] == ["first", "second"]
    assert second[0]["timestamp_ms"] == cursor + 1


BAD_SINCE = [
    "",
    "abc",
    "-1",
    "+1",
    " 1",
    "1.5",
    "1e3",
    "0x1F",
    "18446744073709551616",
    "9" * 10_000,
    "%00",
    "%FF%FE",
    "\u0661",
]


@pytest.mark.parametrize("value", BAD_SINCE)
async def test_bad_since_is_400_naming_since(client: httpx.AsyncClient, value: str) -> None:
    response = await client.get("/api/events", params={"since": value})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == "invalid_parameter"
    assert body["parameter"] == "since"
    assert "since" in body["message"]


@pytest.mark.parametrize("value", ["", "nan", "inf", "-1", "abc", "1e3", "-0.5"])
async def test_bad_wait_is_400_naming_wait(client: httpx.AsyncClient, value: str) -> None:
    response = await client.get("/api/events", params={"since": "0", "wait": value})
    assert response.status_code == 400
    assert response.json()["parameter"] == "wait"


async def test_repeated_since_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/events?since=1&since=2")
    assert response.status_code == 400
    assert response.json()["parameter"] == "since"


async def test_unknown_path_is_404_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "not_found", "message": "no such resource"}


async def test_wrong_method_is_405_json_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/events")
    assert response.status_code == 405
    assert response.json() == {"error": "method_not_allowed", "message": "method not allowed here"}
    assert "GET" in response.headers["allow"]


async def test_healthz(server: RunningServer, client: httpx.AsyncClient) -> None:
    await publish_and_store(server, MergeFailure("a", "x"))
    assert (await client.get("/healthz")).json() == {
        "status": "ok",
        "buffered": 1,
        "latest_ms": T0,
        "capacity": 500,
        "evicted": 0,
        "lost": 0,
        "long_polls": 0,
    }


async def test_buffer_headers_describe_the_buffer(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    await publish_and_store(server, MergeFailure("a", "x"), MergeFailure("b", "x"))
    headers = (await client.get("/api/events", params={"since": "0"})).headers
    assert headers["x-events-instance"] == server.hub.buffer.instance
    assert headers["x-events-latest-ms"] == str(T0 + 1)
    # No gap: the gap headers are absent (absent means nothing missed).
    assert "x-events-oldest-ms" not in headers
    assert "x-events-missed" not in headers
    assert headers["x-events-wait-max"] == "30"


async def test_gap_headers_after_eviction(nursery: trio.Nursery, clock_ms: FakeClockMs) -> None:
    config = ServerConfig(port=0, capacity=3, clock_ms=clock_ms)
    small: RunningServer = await nursery.start(run_server, config)
    await publish_and_store(small, *(MergeFailure(f"{i}_story_x", "x") for i in range(5)))
    async with httpx.AsyncClient(base_url=small.url) as http:
        stale = await http.get("/api/events", params={"since": str(T0)})
        fresh = await http.get("/api/events", params={"since": str(T0 + 2)})
    # The body is unchanged: only the retained events newer than since.
    assert [e["story_id"] for e in stale.json()] == ["2_story_x", "3_story_x", "4_story_x"]
    assert stale.headers["x-events-missed"] == "1"  # 1_story_x was evicted past the cursor
    assert stale.headers["x-events-oldest-ms"] == str(T0 + 2)
    assert "x-events-missed" not in fresh.headers
    small.shutdown()


async def test_long_poll_answers_as_soon_as_an_event_arrives(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    result: list[httpx.Response] = []

    async def poll() -> None:
        result.append(await client.get("/api/events", params={"since": "0", "wait": "30"}))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(poll)
        await until(lambda: server.hub.longpoll.waiting == 1)
        assert result == []
        server.hub.publish(MergeFailure("42_story_x", "conflict"))
    assert [e["story_id"] for e in result[0].json()] == ["42_story_x"]


async def test_long_poll_returns_empty_array_when_wait_runs_out(
    client: httpx.AsyncClient,
) -> None:
    start = trio.current_time()
    response = await client.get("/api/events", params={"since": "0", "wait": "0.2"})
    assert (response.status_code, response.content) == (200, b"[]")
    assert trio.current_time() - start >= 0.2


async def test_shutdown_releases_long_polls_at_once(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    result: list[httpx.Response] = []

    async def poll() -> None:
        result.append(await client.get("/api/events", params={"since": "0", "wait": "30"}))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(poll)
        await until(lambda: server.hub.longpoll.waiting == 1)
        start = trio.current_time()
        server.shutdown()
    assert (result[0].status_code, result[0].content) == (200, b"[]")
    assert trio.current_time() - start < 5  # not the 30 s wait


async def test_bad_host_label_is_400_not_500(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/events", headers={"Host": "a" * 64 + ".example"})
    assert response.status_code == 400
    assert response.json()["parameter"] == "Host"
