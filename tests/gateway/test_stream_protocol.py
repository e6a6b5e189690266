"""The stream mode's state machine, fed response heads and bytes (no sockets)."""

from __future__ import annotations

import pytest

from events_trio.core.events import encode
from events_trio.gateway.errors import BadResponse
from events_trio.gateway.records import Incoming, Notice
from events_trio.gateway.tracker import Position
from events_trio.gateway.transports.records import NoStream
from events_trio.gateway.transports.stream_protocol import StreamProtocol
from events_trio.wire.query import H_INSTANCE, H_LATEST
from events_trio.wire.sse import event_frame, id_frame

from .helpers import BASE_MS, failure

HEAD = {"content-type": "text/event-stream", H_INSTANCE: "abc", H_LATEST: str(BASE_MS)}


def opened(cursor: int = BASE_MS) -> StreamProtocol:
    protocol = StreamProtocol(Position("abc", cursor), project="billing")
    step = protocol.open(200, HEAD)
    assert (step.records, step.reconnect) == ((), False)
    return protocol


def frame(story: str, stamp: int) -> bytes:
    return event_frame(encode(failure(story, stamp)), id=stamp)


def test_events_become_records_and_move_the_cursor() -> None:
    protocol = opened()
    step = protocol.feed(frame("1_story_a", BASE_MS + 1) + frame("2_story_b", BASE_MS + 2))
    assert step.records == (
        Incoming(failure("1_story_a", BASE_MS + 1), BASE_MS + 1),
        Incoming(failure("2_story_b", BASE_MS + 2), BASE_MS + 2),
    )
    assert (step.position, step.newest_event_ms) == (Position("abc", BASE_MS + 2), BASE_MS + 2)


def test_an_event_at_or_below_the_cursor_is_never_accepted_again() -> None:
    step = opened().feed(frame("0_story_old", BASE_MS) + frame("1_story_new", BASE_MS + 1))
    assert [r.project_ts for r in step.records] == [BASE_MS + 1]


def test_half_a_frame_waits_for_the_rest() -> None:
    protocol = opened()
    whole = frame("1_story_a", BASE_MS + 1)
    assert protocol.feed(whole[:20]).records == ()
    assert protocol.position.cursor == BASE_MS
    assert len(protocol.feed(whole[20:]).records) == 1


def test_id_only_frame_moves_the_cursor_without_a_record() -> None:
    step = opened().feed(id_frame(BASE_MS + 7))
    assert (step.records, step.position.cursor) == ((), BASE_MS + 7)


def test_gap_frame_gives_the_exact_missed_count() -> None:
    step = opened().feed(event_frame(b'{"missed":7}', event="gap"))
    assert step.records == (Incoming(Notice("missed", "7 events missed from billing", 7), 0),)


def test_unknown_types_are_skipped_counted_and_passed() -> None:
    unknown = event_frame(b'{"type":"new_kind","timestamp_ms":%d}' % (BASE_MS + 3), id=BASE_MS + 3)
    step = opened().feed(unknown)
    assert (step.records, step.skipped_unknown, step.position.cursor) == ((), 1, BASE_MS + 3)


def test_malformed_event_keeps_what_came_before_and_reports_an_error() -> None:
    bad = event_frame(b'{"type":"merge_failure","story_id":1}', id=BASE_MS + 2)
    step = opened().feed(frame("1_story_a", BASE_MS + 1) + bad + frame("3_story_c", BASE_MS + 3))
    assert [r.project_ts for r in step.records] == [BASE_MS + 1]
    assert step.position.cursor == BASE_MS + 1
    assert step.error is not None
    assert step.error.startswith("malformed event on /api/events/stream: ")


@pytest.mark.parametrize("data", [b"[1]", b'"merge_failure"', b'{"reason":"no type"}'])
def test_data_that_is_no_typed_object_is_malformed_not_an_unknown_type(data: bytes) -> None:
    step = opened().feed(event_frame(data, id=BASE_MS + 2))
    assert (step.records, step.skipped_unknown, step.position.cursor) == ((), 0, BASE_MS)
    assert step.error is not None
    assert step.error.startswith("malformed event")


def test_new_instance_is_a_restart_read_from_its_start() -> None:
    protocol = StreamProtocol(Position("old", BASE_MS), project="billing")
    step = protocol.open(200, HEAD)
    notice = Notice("restarted", "project billing restarted; reading its new events")
    assert step.records == (Incoming(notice, 0),)
    assert (step.position, step.reconnect) == (Position("abc", 0), True)


def test_latest_below_the_cursor_is_a_restart() -> None:
    protocol = StreamProtocol(Position("abc", BASE_MS + 10), project="billing")
    assert protocol.open(200, HEAD).reconnect


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (404, {}),
        (405, {}),
        (200, {"content-type": "application/json", H_INSTANCE: "abc"}),
        (200, {"content-type": "text/event-stream"}),  # a stream without our headers
    ],
)
def test_servers_without_our_stream_raise_no_stream(status: int, headers: dict[str, str]) -> None:
    with pytest.raises(NoStream):
        StreamProtocol(Position("abc", 0), project="billing").open(status, headers)


def test_failing_server_is_a_bad_response_not_a_missing_stream() -> None:
    with pytest.raises(BadResponse, match=r"^HTTP 503 from /api/events/stream$"):
        StreamProtocol(Position("abc", 0), project="billing").open(503, HEAD)
