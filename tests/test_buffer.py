"""EventBuffer, sans-IO: ordering, eviction, unique stamps, gap accounting."""

from __future__ import annotations

import pytest

from events_trio.core.buffer import DEFAULT_CAPACITY, EventBuffer
from events_trio.core.events import (
    StageTransition,
    StoredEvent,
    StoredMergeFailure,
    StoredStoryBlocked,
    encode,
)


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def merge(ts: int, story: str = "42_story_x") -> StoredMergeFailure:
    return StoredMergeFailure(story, "conflict", ts)


def stamps(events: list[StoredEvent]) -> list[int]:
    return [e.timestamp_ms for e in events]


def test_event_buffer_push_and_retrieve() -> None:
    # Seed test: event_buffer_push_and_retrieve.
    buf = EventBuffer()
    buf.push(StoredMergeFailure("42_story_x", "conflict", 1000))
    buf.push(StoredStoryBlocked("43_story_y", "retry limit", 2000))
    assert len(buf.events_since(0)) == 2
    after_1000 = buf.events_since(1000)
    assert len(after_1000) == 1
    assert isinstance(after_1000[0], StoredStoryBlocked)


def test_event_buffer_evicts_oldest_when_full() -> None:
    # Seed test: event_buffer_evicts_oldest_when_full.
    buf = EventBuffer()
    for i in range(DEFAULT_CAPACITY + 1):
        buf.push(StoredMergeFailure(f"{i}_story_x", "x", i))
    assert len(buf.events_since(0)) == DEFAULT_CAPACITY
    assert all(e.timestamp_ms > 0 for e in buf.events_since(0))


def test_default_capacity_is_500() -> None:
    assert EventBuffer().capacity == 500 == DEFAULT_CAPACITY


def test_capacity_is_configurable() -> None:
    buf = EventBuffer(3)
    for ts in range(1, 6):
        buf.push(merge(ts))
    assert stamps(buf.events_since(0)) == [3, 4, 5]


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"^capacity must be at least 1$"):
        EventBuffer(0)


def test_events_since_is_strictly_greater_than() -> None:
    buf = EventBuffer()
    for ts in (10, 20, 30):
        buf.push(merge(ts))
    assert stamps(buf.events_since(20)) == [30]
    assert stamps(buf.events_since(19)) == [20, 30]
    assert buf.events_since(30) == []


def test_same_millisecond_events_get_unique_increasing_stamps() -> None:
    clock = Clock(5_000)
    buf = EventBuffer(clock_ms=clock)
    first = buf.push(merge(clock()))
    cursor = first.timestamp_ms  # a poller reads between the two events
    assert stamps(buf.events_since(0)) == [5_000]
    second = buf.push(merge(clock()))  # same wall-clock millisecond
    assert second.timestamp_ms == 5_001
    assert stamps(buf.events_since(cursor)) == [5_001]
    assert stamps(buf.events_since(0)) == [5_000, 5_001]


def test_stamps_still_increase_when_the_clock_steps_backwards() -> None:
    clock = Clock(10_000)
    buf = EventBuffer(clock_ms=clock)
    buf.push(merge(clock()))
    clock.now -= 3_600_000  # an hour back
    buf.push(merge(clock()))
    buf.push(merge(clock()))
    assert stamps(buf.events_since(0)) == [10_000, 10_001, 10_002]


def test_stamps_follow_the_clock_again_once_it_catches_up() -> None:
    clock = Clock(100)
    buf = EventBuffer(clock_ms=clock)
    buf.push(merge(clock()))
    clock.now = 50
    buf.push(merge(clock()))
    clock.now = 500
    buf.push(merge(clock()))
    assert stamps(buf.events_since(0)) == [100, 101, 500]


def test_push_returns_the_event_as_stored() -> None:
    buf = EventBuffer()
    buf.push(merge(7))
    assert buf.push(merge(7)) == merge(8)


def test_encoded_since_joins_stored_bytes() -> None:
    buf = EventBuffer()
    events: list[StoredEvent] = [merge(1), StageTransition("42_story_y", "2_current", "3_qa", 2)]
    for event in events:
        buf.push(event)
    assert buf.encoded_since(0) == b"[" + encode(events[0]) + b"," + encode(events[1]) + b"]"
    assert buf.encoded_since(1) == b"[" + encode(events[1]) + b"]"
    assert buf.encoded_since(2) == b"[]"


def test_encoded_since_is_fresh_after_each_push_and_eviction() -> None:
    buf = EventBuffer(2)
    buf.push(merge(1))
    assert buf.encoded_since(0) == b"[" + encode(merge(1)) + b"]"
    buf.push(merge(2))
    assert buf.encoded_since(0) == b"[" + encode(merge(1)) + b"," + encode(merge(2)) + b"]"
    buf.push(merge(3))
    assert buf.encoded_since(0) == b"[" + encode(merge(2)) + b"," + encode(merge(3)) + b"]"
    assert buf.encoded_since(2) == b"[" + encode(merge(3)) + b"]"


def test_encoded_since_on_empty_buffer_is_empty_array() -> None:
    assert EventBuffer().encoded_since(0) == b"[]"


def test_since_queries_stay_correct_across_many_evictions() -> None:
    buf = EventBuffer(7)
    for ts in range(1, 1001):
        buf.push(merge(ts * 2))
    assert stamps(buf.events_since(0)) == list(range(1988, 2001, 2))
    assert stamps(buf.events_since(1995)) == [1996, 1998, 2000]
    assert len(buf) == 7


def test_no_gap_reported_while_cursor_is_within_the_buffer() -> None:
    buf = EventBuffer(3)
    for ts in range(1, 6):
        buf.push(merge(ts))
    assert buf.missed_since(2) == 0
    assert buf.missed_since(5) == 0


def test_gap_counts_exactly_the_events_evicted_past_the_cursor() -> None:
    buf = EventBuffer(3)
    for ts in range(1, 11):
        buf.push(merge(ts))  # 1..7 evicted, 8..10 kept
    assert buf.missed_since(4) == 3  # 5, 6, 7
    assert buf.missed_since(0) == 7
    assert buf.missed_since(7) == 0


def test_upstream_losses_count_as_missed_for_older_cursors() -> None:
    clock = Clock(100)
    buf = EventBuffer(clock_ms=clock)
    buf.push(merge(clock()))
    buf.record_lost(4)
    clock.now = 200
    buf.push(merge(clock()))
    assert buf.missed_since(100) == 4
    assert buf.missed_since(0) == 4
    assert buf.missed_since(200) == 0


def test_loss_moves_latest_stamp_so_a_poller_can_pass_it() -> None:
    clock = Clock(100)
    buf = EventBuffer(clock_ms=clock)
    buf.push(merge(clock()))
    buf.record_lost(2)
    assert buf.has_newer(100)
    assert buf.latest_ms == 101
    assert buf.missed_since(buf.latest_ms) == 0


def test_missed_is_a_lower_bound_beyond_the_loss_history() -> None:
    buf = EventBuffer(1, loss_history=5)
    for ts in range(1, 101):
        buf.push(merge(ts))
    assert buf.missed_since(94) == 5  # exact: 95..99 are itemised
    assert 5 <= buf.missed_since(0) <= 99


def test_snapshot_reports_buffer_metadata() -> None:
    buf = EventBuffer(2)
    for ts in (5, 6, 7):
        buf.push(merge(ts))
    snap = buf.snapshot()
    assert (snap.capacity, snap.size, snap.latest_ms, snap.oldest_ms) == (2, 2, 7, 6)
    assert (snap.evicted, snap.lost) == (1, 0)
    assert snap.instance == buf.instance
    assert EventBuffer().snapshot().oldest_ms is None


def test_each_buffer_has_its_own_instance_id() -> None:
    assert EventBuffer().instance != EventBuffer().instance


def test_listeners_are_called_on_push_and_loss() -> None:
    buf = EventBuffer()
    calls: list[str] = []
    buf.add_listener(lambda: calls.append("changed"))
    buf.push(merge(1))
    buf.record_lost(1)
    buf.record_lost(0)
    assert calls == ["changed", "changed"]


def test_lag_loss_followed_by_an_eviction_is_reported_to_a_client_between_them() -> None:
    # Found by tests/test_buffer_properties.py: an eviction carries the old
    # event's stamp, a lag loss a new one; kept in one list they were unsorted
    # and the binary search missed the lag loss.
    clock = Clock(100)
    buf = EventBuffer(1, clock_ms=clock)
    buf.push(merge(clock()))  # stamp 100
    buf.record_lost(1)  # stamp 101
    buf.push(merge(clock()))  # stamp 102, evicts 100
    assert buf.missed_since(100) == 1
    assert buf.missed_since(99) == 2
