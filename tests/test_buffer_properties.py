"""Stateful property test: the buffer and model pollers never lose or repeat an event.

Hypothesis drives arbitrary interleavings of pushes (stamped from the clock
the way the subscriber does, or with a raw clock reading that may be stale),
clock steps (forwards and backwards, by a millisecond or an hour), upstream
losses (``record_lost``), evictions (capacity 1..6) and polls by three model
clients that advance their cursor to ``latest_ms`` as a real client does with
``X-Events-Latest-Ms``. A model of what was pushed, evicted and lost checks
every answer exactly, and for every poller: seen + missed == issued.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from events_trio.core.buffer import EventBuffer
from events_trio.core.events import StoredMergeFailure
from tests.support import FakeClockMs

POLLERS: Final = 3
ONE_HOUR_MS: Final = 3_600_000


@dataclass
class ModelPoller:
    """A client of ``/api/events``: cursor, what it saw, what it was told it missed."""

    cursor: int = 0
    seen: list[int] = field(default_factory=list)
    missed: int = 0
    #: Items (events and losses) issued before this poller started.
    baseline: int = 0


class BufferMachine(RuleBasedStateMachine):
    """EventBuffer against a model of pushed, evicted and lost items."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClockMs()
        self.buffer = EventBuffer(1, clock_ms=self.clock)
        self.pushed: list[tuple[int, int]] = []  # (event number, stamp as stored)
        self.losses: list[tuple[int, int]] = []  # (stamp, count)
        self.pollers = [ModelPoller() for _ in range(POLLERS)]

    @initialize(capacity=st.integers(1, 6))
    def make_buffer(self, capacity: int) -> None:
        self.buffer = EventBuffer(capacity, clock_ms=self.clock)

    # -- model ---------------------------------------------------------------

    @property
    def issued(self) -> int:
        return len(self.pushed) + sum(count for _, count in self.losses)

    def retained(self) -> list[tuple[int, int]]:
        return self.pushed[-self.buffer.capacity :]

    def expected_missed(self, cursor: int) -> int:
        evicted = self.pushed[: max(0, len(self.pushed) - self.buffer.capacity)]
        return sum(1 for _, stamp in evicted if stamp > cursor) + sum(
            count for stamp, count in self.losses if stamp > cursor
        )

    # -- rules ---------------------------------------------------------------

    @rule(count=st.integers(1, 4), stale=st.booleans())
    def push(self, count: int, stale: bool) -> None:
        for _ in range(count):
            number = len(self.pushed)
            proposed = self.clock.now if stale else self.buffer.next_stamp()
            stored = self.buffer.push(StoredMergeFailure(str(number), "x", proposed))
            self.pushed.append((number, stored.timestamp_ms))

    @rule(delta=st.sampled_from([-ONE_HOUR_MS, -1000, -1, 0, 1, 2, 1000, ONE_HOUR_MS]))
    def step_clock(self, delta: int) -> None:
        self.clock.now += delta

    @rule(count=st.integers(1, 3))
    def lose(self, count: int) -> None:
        stamp = max(self.clock.now, self.buffer.latest_ms + 1)
        self.buffer.record_lost(count)
        assert self.buffer.latest_ms == stamp
        self.losses.append((stamp, count))

    @rule(index=st.integers(0, POLLERS - 1))
    def poll(self, index: int) -> None:
        poller = self.pollers[index]
        numbers = [int(event.story_id) for event in self.buffer.events_since(poller.cursor)]
        missed = self.buffer.missed_since(poller.cursor)
        assert numbers == [n for n, stamp in self.retained() if stamp > poller.cursor]
        assert missed == self.expected_missed(poller.cursor)
        if missed == 0:  # the cursor was within the buffer: everything newer arrives
            assert numbers == [n for n, stamp in self.pushed if stamp > poller.cursor]
        poller.seen += numbers
        poller.missed += missed
        poller.cursor = self.buffer.latest_ms
        assert len(poller.seen) + poller.missed == self.issued - poller.baseline

    @rule(index=st.integers(0, POLLERS - 1))
    def start_from_now(self, index: int) -> None:
        self.pollers[index] = ModelPoller(self.buffer.latest_ms, baseline=self.issued)

    # -- invariants ----------------------------------------------------------

    @invariant()
    def stamps_are_unique_and_increasing(self) -> None:
        stamps = [stamp for _, stamp in self.pushed] + [stamp for stamp, _ in self.losses]
        assert len(set(stamps)) == len(stamps)
        assert [stamp for _, stamp in self.pushed] == sorted(stamp for _, stamp in self.pushed)

    @invariant()
    def no_poller_sees_an_event_twice_or_out_of_order(self) -> None:
        for poller in self.pollers:
            assert poller.seen == sorted(set(poller.seen))


BufferMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, derandomize=True, database=None, deadline=None
)
TestBufferNeverLosesOrRepeats = BufferMachine.TestCase
