"""The gateway's HTTP API over the merged log (Quart test client)."""

from __future__ import annotations

import msgspec
import trio
import trio.testing

from events_trio.gateway.app import create_gateway_app
from events_trio.gateway.records import Incoming, Notice
from events_trio.gateway.status import ProjectStatus
from events_trio.gateway.tracker import Position
from events_trio.wire.query import H_INSTANCE, H_LATEST, H_WAIT

from .helpers import BASE_MS, InlineLog, failure


async def fill(log: InlineLog) -> None:
    records = [
        Incoming(failure("1_a", 500), 500),
        Incoming(Notice("missed", "2 events missed from billing", 2), 0),
        Incoming(failure("2_b", 501), 501),
    ]
    await log.append("billing", records, Position("i", 501))


async def test_events_are_served_in_the_project_wire_shape_with_project_fields_after(
    log: InlineLog,
) -> None:
    await fill(log)
    response = await create_gateway_app(log, []).test_client().get("/api/events?since=0")
    assert response.status_code == 200
    assert await response.get_data() == (
        b'[{"type":"merge_failure","story_id":"1_a","reason":"conflict","timestamp_ms":1764201600000,'
        b'"project":"billing","project_timestamp_ms":500},'
        b'{"type":"merge_failure","story_id":"2_b","reason":"conflict","timestamp_ms":1764201600002,'
        b'"project":"billing","project_timestamp_ms":501}]'
    )


async def test_events_since_a_gateway_stamp_are_the_newer_ones(log: InlineLog) -> None:
    await fill(log)
    response = await create_gateway_app(log, []).test_client().get(f"/api/events?since={BASE_MS}")
    assert [e["story_id"] for e in msgspec.json.decode(await response.get_data())] == ["2_b"]


async def test_largest_u64_since_is_an_empty_answer(log: InlineLog) -> None:
    await fill(log)
    response = (
        await create_gateway_app(log, [])
        .test_client()
        .get("/api/events?since=18446744073709551615")
    )
    assert (response.status_code, await response.get_data()) == (200, b"[]")


async def test_notices_are_served_only_when_asked_for(log: InlineLog) -> None:
    await fill(log)
    response = await create_gateway_app(log, []).test_client().get("/api/events?notices=1")
    types = [e["type"] for e in msgspec.json.decode(await response.get_data())]
    assert types == ["merge_failure", "gateway_notice", "merge_failure"]


async def test_headers_tell_a_poller_to_long_poll_and_how_far_the_answer_covers(
    log: InlineLog,
) -> None:
    await fill(log)
    response = await create_gateway_app(log, []).test_client().get("/api/events")
    assert (response.headers[H_LATEST], response.headers[H_WAIT]) == (str(BASE_MS + 2), "30")
    assert response.headers[H_INSTANCE] == log.instance


async def test_long_poll_answers_when_an_event_is_appended(log: InlineLog) -> None:
    client = create_gateway_app(log, []).test_client()
    bodies: list[bytes] = []

    async def poll() -> None:
        response = await client.get("/api/events?since=0&wait=30")
        bodies.append(await response.get_data(as_text=False))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(poll)
            await trio.testing.wait_all_tasks_blocked()
            assert bodies == []
            await fill(log)
    assert len(msgspec.json.decode(bodies[0])) == 2


async def test_bad_since_is_a_json_400_naming_the_parameter(log: InlineLog) -> None:
    response = await create_gateway_app(log, []).test_client().get("/api/events?since=-1")
    body = msgspec.json.decode(await response.get_data())
    assert (response.status_code, body["error"], body["parameter"]) == (
        400,
        "invalid_parameter",
        "since",
    )


async def test_projects_lists_state_cursor_and_last_error(log: InlineLog) -> None:
    status = ProjectStatus("billing", "http://h:1", "down", 5, 4, "HTTP 502 from /api/events")
    response = await create_gateway_app(log, [status]).test_client().get("/api/projects")
    project = msgspec.json.decode(await response.get_data())[0]
    assert {
        k: project[k] for k in ("name", "url", "state", "cursor", "last_event_ms", "last_error")
    } == {
        "name": "billing",
        "url": "http://h:1",
        "state": "down",
        "cursor": 5,
        "last_event_ms": 4,
        "last_error": "HTTP 502 from /api/events",
    }


async def test_healthz_answers_ok(log: InlineLog) -> None:
    response = await create_gateway_app(log, []).test_client().get("/healthz")
    assert (response.status_code, msgspec.json.decode(await response.get_data())["status"]) == (
        200,
        "ok",
    )


async def test_unknown_route_is_a_json_404(log: InlineLog) -> None:
    response = await create_gateway_app(log, []).test_client().get("/nope")
    assert (response.status_code, response.content_type) == (404, "application/json")
