"""``SseParser``: bytes of an event stream in, messages out (no sockets)."""

from __future__ import annotations

import pytest

from events_trio.wire.sse import (
    MAX_LINE_BYTES,
    SseLineTooLong,
    SseMessage,
    SseParser,
    comment_frame,
    event_frame,
    id_frame,
    retry_frame,
)

FRAMES = (
    retry_frame()
    + event_frame(b'{"a":1}', id=5)
    + comment_frame()
    + event_frame(b'{"missed":3}', event="gap")
    + id_frame(9)
)
EXPECTED = [
    SseMessage(None, b'{"a":1}', "5"),
    SseMessage("gap", b'{"missed":3}', None),
    SseMessage(None, None, "9"),
]


def test_our_frames_parse_back_to_their_fields() -> None:
    assert SseParser().feed(FRAMES) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_frames_split_anywhere_give_the_same_messages(size: int) -> None:
    parser = SseParser()
    got = [m for i in range(0, len(FRAMES), size) for m in parser.feed(FRAMES[i : i + size])]
    assert got == EXPECTED


def test_an_unfinished_frame_is_never_dispatched() -> None:
    parser = SseParser()
    assert parser.feed(b"id: 5\ndata: {") == []
    assert parser.feed(b'"a":1}\n') == []
    assert parser.feed(b"\n") == [SseMessage(None, b'{"a":1}', "5")]


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"])
def test_crlf_and_cr_line_ends_count_as_lf(newline: bytes) -> None:
    text = b"id: 1" + newline + b"data: x" + newline + newline
    parser = SseParser()
    got = [m for byte in range(len(text)) for m in parser.feed(text[byte : byte + 1])]
    assert got == [SseMessage(None, b"x", "1")]


def test_data_lines_join_with_newlines_and_colon_space_is_optional() -> None:
    got = SseParser().feed(b"data:one\ndata: two\nevent:x\n\n")
    assert got == [SseMessage("x", b"one\ntwo", None)]


def test_comments_retry_and_unknown_fields_dispatch_nothing() -> None:
    assert SseParser().feed(b": keep-alive\n\nretry: 10\n\nfoo: bar\n\n") == []


def test_a_line_longer_than_the_limit_is_refused() -> None:
    parser = SseParser()
    with pytest.raises(SseLineTooLong, match=r"^an event stream line is longer than \d+ bytes$"):
        parser.feed(b"data: " + b"x" * MAX_LINE_BYTES)
