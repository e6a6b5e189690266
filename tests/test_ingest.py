"""``POST /api/events`` over a real Hypercorn: auth, limits, errors, all-or-nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
import trio.testing

from events_trio.core.events import MergeFailure, StoryBlocked, WorkItem
from events_trio.server.run import RunningServer
from events_trio.sources.ingest import IngestError, check_token, decode_events
from tests.conftest import INGEST_TOKEN

JSON_HEADERS = {"Content-Type": "application/json"}
T0 = 1_764_201_600_000  # FakeClockMs's pinned time

MERGE = {"type": "merge_failure", "story_id": "42_story_x", "reason": "merge conflict"}
BLOCKED = {"type": "story_blocked", "story_id": "43_story_y", "reason": "retry limit exceeded"}
MOVE = {"type": "work_item", "item_id": "44_story_z", "stage": "3_qa", "from_stage": "2_current"}


def dumps(value: Any) -> bytes:
    return msgspec.json.encode(value)


async def assert_nothing_published(server: RunningServer) -> None:
    await trio.testing.wait_all_tasks_blocked()
    assert server.hub.sender.statistics().sent == 0
    assert len(server.hub.buffer) == 0


async def post(client: httpx.AsyncClient, content: bytes, **headers: str) -> httpx.Response:
    return await client.post("/api/events", content=content, headers={**JSON_HEADERS, **headers})


# --- accepted --------------------------------------------------------------------


async def test_batch_is_stored_in_order_with_server_stamps(
    ingest_server: RunningServer, ingest_client: httpx.AsyncClient
) -> None:
    response = await post(ingest_client, dumps([MERGE, BLOCKED, MOVE]))
    assert (response.status_code, response.json()) == (202, {"accepted": 3})
    await trio.testing.wait_all_tasks_blocked()
    stored = await ingest_client.get("/api/events")
    assert stored.content == (
        b'[{"type":"merge_failure","story_id":"42_story_x","reason":"merge conflict",'
        b'"timestamp_ms":%d},'
        % T0
        + b'{"type":"story_blocked","story_id":"43_story_y","reason":"retry limit exceeded",'
        b'"timestamp_ms":%d},'
        % (T0 + 1)
        + b'{"type":"stage_transition","story_id":"44_story_z","from_stage":"2_current",'
        b'"to_stage":"3_qa","timestamp_ms":%d}]' % (T0 + 2)
    )


async def test_events_posted_once_shutdown_began_are_refused_with_503(
    ingest_server: RunningServer, ingest_client: httpx.AsyncClient
) -> None:
    await ingest_server.hub.drain(0)
    response = await post(ingest_client, dumps(MERGE))
    assert response.status_code == 503
    assert response.json() == {"error": "shutting_down", "message": "server is shutting down"}
    assert len(ingest_server.hub.buffer) == 0


async def test_single_object_is_accepted(ingest_client: httpx.AsyncClient) -> None:
    response = await post(ingest_client, dumps(MERGE))
    assert (response.status_code, response.json()) == (202, {"accepted": 1})


async def test_work_item_without_action_gets_it_from_the_stage_table(
    ingest_server: RunningServer, ingest_client: httpx.AsyncClient
) -> None:
    events = ingest_server.hub.sender.subscribe()
    await post(ingest_client, dumps(MOVE))
    assert events.receive_nowait() == WorkItem(
        "44_story_z", "3_qa", "2_current", "qa", "qa 44_story_z"
    )


async def test_connection_is_reusable_after_a_refusal(
    ingest_server: RunningServer, ingest_client: httpx.AsyncClient
) -> None:
    refused = await post(ingest_client, dumps(MERGE), Authorization="Bearer wrong")
    again = await ingest_client.get("/api/events")
    assert (refused.status_code, again.status_code) == (401, 200)


# --- refused: auth -----------------------------------------------------------------


async def test_ingest_without_configured_token_is_403(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    response = await post(client, dumps(MERGE), Authorization="Bearer anything")
    assert response.status_code == 403
    assert response.json() == {
        "error": "forbidden",
        "message": "ingest disabled: no ingest token configured",
    }
    await assert_nothing_published(server)


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        b"Bearer wrong",
        b"Basic " + INGEST_TOKEN.encode(),
        b"Bearer",
        b"Bearer " + INGEST_TOKEN.encode() + b"x",
        "Bearer ü".encode(),
    ],
)
async def test_missing_or_wrong_token_is_401(
    ingest_server: RunningServer, authorization: bytes | None
) -> None:
    headers = {b"Content-Type": b"application/json"}
    if authorization is not None:
        headers[b"Authorization"] = authorization
    async with httpx.AsyncClient(base_url=ingest_server.url, timeout=10) as http:
        response = await http.post("/api/events", content=dumps(MERGE), headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="events-trio"'
    assert response.json() == {
        "error": "unauthorized",
        "message": "missing or invalid bearer token",
    }
    await assert_nothing_published(ingest_server)


def test_token_check_accepts_any_case_of_bearer() -> None:
    check_token(f"bearer {INGEST_TOKEN}", INGEST_TOKEN)


def test_token_check_with_no_token_configured_is_403() -> None:
    with pytest.raises(IngestError, match=r"^ingest disabled: no ingest token configured$"):
        check_token(f"Bearer {INGEST_TOKEN}", None)


# --- refused: bad input --------------------------------------------------------------

TYPES = "work_item, merge_failure, story_blocked"
#: case -> (body, status, error, message, field); the messages are ours (docs/protocol.md).
BAD_INPUT: dict[str, tuple[bytes, int, str, str, str | None]] = {
    "invalid_json": (b"{", 400, "invalid_json", "request body is not valid JSON", None),
    "empty_body": (b"", 400, "invalid_json", "request body is not valid JSON", None),
    "not_utf8": (
        b'{"type":"merge_failure","story_id":"\xff","reason":"r"}',
        400,
        "invalid_json",
        "request body is not valid UTF-8",
        None,
    ),
    "unknown_type": (
        dumps({**MERGE, "type": "deploy"}),
        422,
        "invalid_event",
        f"$.type: unknown event type 'deploy'; expected one of {TYPES}",
        "$.type",
    ),
    "type_not_a_string": (
        dumps({**MERGE, "type": 7}),
        422,
        "invalid_event",
        f"$.type: unknown event type of type number; expected one of {TYPES}",
        "$.type",
    ),
    "missing_type": (
        dumps({"story_id": "42_x", "reason": "r"}),
        422,
        "invalid_event",
        "$.type: missing required field",
        "$.type",
    ),
    "missing_field": (
        dumps({"type": "merge_failure", "story_id": "42_x"}),
        422,
        "invalid_event",
        "$.reason: missing required field",
        "$.reason",
    ),
    "wrongly_typed_field": (
        dumps({**MERGE, "story_id": 42}),
        422,
        "invalid_event",
        "$.story_id: expected a string, got number",
        "$.story_id",
    ),
    "empty_story_id": (
        dumps({**MERGE, "story_id": ""}),
        422,
        "invalid_event",
        "$.story_id: must be 1 to 200 characters, got 0",
        "$.story_id",
    ),
    "client_timestamp": (
        dumps({**MERGE, "timestamp_ms": 1}),
        422,
        "invalid_event",
        "$.timestamp_ms: unknown field for a merge_failure event (the server stamps events)",
        "$.timestamp_ms",
    ),
    "work_item_without_from_stage": (
        dumps({"type": "work_item", "item_id": "42_x", "stage": "3_qa"}),
        422,
        "invalid_event",
        "$.from_stage: missing required field",
        "$.from_stage",
    ),
    "not_an_object_or_array": (
        b"42",
        422,
        "invalid_event",
        "$: expected an event object or an array of event objects, got number",
        "$",
    ),
    "array_of_non_objects": (
        b'["x"]',
        422,
        "invalid_event",
        "$[0]: expected an event object, got string",
        "$[0]",
    ),
    "one_bad_event_in_a_batch": (
        dumps([MERGE, BLOCKED, {**MOVE, "stage": 3}]),
        422,
        "invalid_event",
        "$[2].stage: expected a string, got number",
        "$[2].stage",
    ),
    "deeply_nested": (b"[" * 60_000, 422, "invalid_event", "$: JSON nested too deeply", "$"),
    "too_many_events": (
        dumps([{"type": "story_blocked", "story_id": "1", "reason": ""}] * 1001),
        413,
        "too_many_events",
        "at most 1000 events per request, got 1001",
        None,
    ),
    "body_over_64_kib": (
        dumps({**MERGE, "reason": "x" * 64 * 1024}),
        413,
        "payload_too_large",
        "request body exceeds 65536 bytes",
        None,
    ),
}


@pytest.mark.parametrize("case", BAD_INPUT)
async def test_bad_input_is_refused_and_nothing_is_stored(
    ingest_server: RunningServer, ingest_client: httpx.AsyncClient, case: str
) -> None:
    body, status, error, message, field = BAD_INPUT[case]
    response = await post(ingest_client, body)
    answer = response.json()
    detail = answer.pop("detail", "")  # a library's text: informative, never asserted verbatim
    expected = {"error": error, "message": message} | ({} if field is None else {"field": field})
    assert (response.status_code, answer) == (status, expected)
    assert isinstance(detail, str)
    await assert_nothing_published(ingest_server)


async def test_chunked_body_over_64_kib_is_413(
    ingest_server: RunningServer, ingest_client: httpx.AsyncClient
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(9):
            yield b" " * 8192

    response = await ingest_client.post("/api/events", content=chunks(), headers=JSON_HEADERS)
    assert response.status_code == 413
    assert response.json()["message"] == "request body exceeds 65536 bytes"
    await assert_nothing_published(ingest_server)


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_wrong_content_type_is_415(
    ingest_server: RunningServer, ingest_client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = await ingest_client.post("/api/events", content=dumps(MERGE), headers=headers)
    assert response.status_code == 415
    assert response.json() == {
        "error": "unsupported_media_type",
        "message": f"Content-Type must be application/json, got {content_type or 'none'}",
    }
    await assert_nothing_published(ingest_server)


async def test_json_with_charset_parameter_is_accepted(ingest_client: httpx.AsyncClient) -> None:
    response = await post(
        ingest_client, dumps(MERGE), **{"Content-Type": "application/json; charset=utf-8"}
    )
    assert response.status_code == 202


def test_decoded_events_keep_their_order() -> None:
    assert decode_events(dumps([BLOCKED, MERGE])) == [
        StoryBlocked("43_story_y", "retry limit exceeded"),
        MergeFailure("42_story_x", "merge conflict"),
    ]
