"""Interpreting poll responses (sans-IO, no event loop)."""

from __future__ import annotations

import pytest

from events_trio.core.events import encode
from events_trio.gateway.backoff import Backoff
from events_trio.gateway.errors import BadResponse
from events_trio.gateway.records import Notice
from events_trio.gateway.tracker import PollResponse, Position, interpret
from events_trio.wire.query import H_LATEST

from .helpers import BASE_MS, failure


def body(*stamps: int) -> bytes:
    return b"[" + b",".join(encode(failure(f"{s}_story", s)) for s in stamps) + b"]"


@pytest.mark.parametrize(
    ("status", "content", "message"),
    [
        (500, b"[]", r"^HTTP 500 from /api/events$"),
        (200, b"<html>", r"^response is not a JSON array of events: "),
        (200, b'{"events": []}', r"^response is not a JSON array of events: "),
        (200, b"[1]", r"^malformed event at index 0: "),
        (
            200,
            b'[{"type":"merge_failure","story_id":"x"}]',
            r"^malformed event at index 0: .*reason",
        ),
        (200, b"\xff\xfe", r"^response is not a JSON array of events: "),
        (200, body(2**64 - 1), r"^timestamp 18446744073709551615 is beyond 9223372036854775807$"),
    ],
)
def test_invalid_response_is_a_bad_response(status: int, content: bytes, message: str) -> None:
    with pytest.raises(BadResponse, match=message):
        interpret(PollResponse(status, {}, content), Position("", 0), project="p", replay=False)


def test_newest_stamp_below_cursor_without_instance_header_is_a_restart() -> None:
    response = PollResponse(200, {H_LATEST: "100"}, b"[]")
    result = interpret(response, Position("", 500), project="p", replay=False)
    assert (result.restarted, result.position) == (True, Position("", 0))


def test_headerless_server_answering_a_whole_buffer_gives_some_missed_notice() -> None:
    response = PollResponse(200, {}, body(*range(BASE_MS + 1, BASE_MS + 501)))
    result = interpret(response, Position("", BASE_MS), project="billing", replay=False)
    assert result.records[0].payload == Notice(
        "missed", "some events may have been missed from billing", None
    )


def test_headerless_server_answer_advances_cursor_to_newest_event() -> None:
    response = PollResponse(200, {}, body(BASE_MS + 3, BASE_MS + 9))
    result = interpret(response, Position("", BASE_MS), project="p", replay=False)
    assert (result.position.cursor, result.long_poll) == (BASE_MS + 9, False)


def test_backoff_doubles_then_stays_at_the_cap() -> None:
    backoff = Backoff(1.0, 8.0, rand=lambda: 0.0)
    assert [backoff.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_jitter_takes_at_most_half_of_a_delay() -> None:
    backoff = Backoff(2.0, 60.0, rand=lambda: 0.999)
    assert backoff.next_delay() == pytest.approx(1.001)


def test_backoff_reset_starts_over() -> None:
    backoff = Backoff(1.0, 8.0, rand=lambda: 0.0)
    backoff.next_delay()
    backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 1.0
