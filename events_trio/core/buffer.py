"""EventBuffer: the bounded, ordered, stamped store behind ``GET /api/events``.

Sans-IO: no Trio here (the long-poll waiting lives in ``waiting.py``); every
method is synchronous and tested without an event loop.

Operations:

* ``push(event)`` — stamp and append; evict the oldest when full.
* ``events_since(t)`` / ``encoded_since(t)`` — everything stamped ``> t``.
* ``missed_since(t)`` — how many events newer than ``t`` a client will never
  see (evicted, or lost before they reached the buffer).
* ``record_lost(n)`` — note ``n`` events lost upstream (broadcast lag).

Goals:

* Stamps are unique and strictly increasing, even when the wall clock
  steps backwards or many events land in one millisecond: a "strictly
  greater than" cursor then never loses an event.
* ``since`` lookups are binary searches (cost grows with log(capacity)).
* Each event is encoded once, when stored; a response joins stored bytes.

Plan: three parallel Python lists (stamps, events, encoded bytes) plus a
``_start`` offset. Eviction bumps ``_start``; the dead prefix is deleted
once it is as long as the live part, so appends and evictions are amortised
O(1) and ``bisect`` works on a plain list. Losses go into two
:class:`_LossSeries` (stamp, cumulative count), one for evictions and one
for upstream lag, each trimmed to ``loss_history`` entries, so
``missed_since`` is two binary searches. Two series, not one: an eviction
carries the *old* event's stamp while a lag loss gets a *new* one, so
interleaved they would not be sorted and ``bisect`` would miscount (a lag
loss followed by an eviction was hidden from a client between the two).
"""

from __future__ import annotations

import secrets
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import msgspec

from .clock import ClockMs, next_stamp, wall_clock_ms
from .events import StoredEvent, encode

DEFAULT_CAPACITY: Final = 500
#: How many loss records are kept for exact ``missed_since`` counts.
DEFAULT_LOSS_HISTORY: Final = 100_000


class _LossSeries:
    """Losses with ascending stamps: ``count_after(t)`` is a binary search.

    Keeps the last ``history`` records itemised (trimmed in halves, amortised
    O(1)); older cursors get a lower bound.
    """

    def __init__(self, history: int) -> None:
        self._stamps: list[int] = []
        self._cum: list[int] = []
        self._history = history
        self._base = 0  # cumulative count before the oldest itemised record
        self.total = 0

    def add(self, stamp: int, count: int) -> None:
        # Callers add in ascending stamp order (evicted stamps, or fresh ones).
        self.total += count
        self._stamps.append(stamp)
        self._cum.append(self.total)
        if len(self._stamps) > 2 * self._history:
            cut = len(self._stamps) - self._history
            self._base = self._cum[cut - 1]
            del self._stamps[:cut]
            del self._cum[:cut]

    def count_after(self, stamp: int) -> int:
        index = bisect_right(self._stamps, stamp)
        before = self._cum[index - 1] if index else self._base
        return self.total - before


@dataclass(frozen=True, slots=True)
class BufferSnapshot:
    """Metadata that goes with a since-query (served as response headers)."""

    instance: str
    capacity: int
    size: int
    latest_ms: int
    oldest_ms: int | None
    evicted: int
    lost: int


class EventBuffer:
    """Bounded, ordered buffer of stored events with unique stamps.

    Args:
        capacity: Maximum events retained (default 500); the oldest is
            evicted when a push would exceed it.
        clock_ms: Wall clock in milliseconds; injectable for tests.
        loss_history: How many losses are remembered for exact gap counts.
    """

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        *,
        clock_ms: ClockMs = wall_clock_ms,
        loss_history: int = DEFAULT_LOSS_HISTORY,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.clock_ms = clock_ms
        #: Random id of this buffer; changes when the server restarts.
        self.instance = secrets.token_hex(8)
        self._stamps: list[int] = []
        self._events: list[StoredEvent] = []
        self._encoded: list[bytes] = []
        self._start = 0
        self._last_stamp = 0
        self._evictions = _LossSeries(loss_history)
        self._lags = _LossSeries(loss_history)
        self._pushed_total = 0
        self._listeners: list[Callable[[], None]] = []
        # (list index of the first event joined, pushes so far) -> body
        self._joined_key: tuple[int, int] = (-1, -1)
        self._joined = b"[]"

    # -- writing ------------------------------------------------------------

    def next_stamp(self) -> int:
        """The stamp the next event pushed now would get: ``max(now_ms, last + 1)``.

        Nothing is reserved; build the event with it and :meth:`push` it.
        """
        return next_stamp(self.clock_ms(), self._last_stamp)

    def _issue_stamp(self, proposed_ms: int) -> int:
        stamp = next_stamp(proposed_ms, self._last_stamp)
        self._last_stamp = stamp
        return stamp

    def push(self, event: StoredEvent) -> StoredEvent:
        """Store ``event``; returns it as stored.

        Its ``timestamp_ms`` is kept when it is newer than every stamp issued
        so far, otherwise it is raised to ``last + 1`` so stamps stay unique
        and increasing. Pushing onto a full buffer evicts the oldest event.
        """
        stamp = self._issue_stamp(event.timestamp_ms)
        if stamp != event.timestamp_ms:
            event = msgspec.structs.replace(event, timestamp_ms=stamp)
        if len(self) >= self.capacity:
            self._evict_oldest()
        self._stamps.append(stamp)
        self._events.append(event)
        self._encoded.append(encode(event))
        self._pushed_total += 1
        for listener in self._listeners:
            listener()
        return event

    def record_lost(self, count: int) -> None:
        """Note ``count`` events lost before they reached the buffer.

        They are given a stamp of their own, so every client whose cursor is
        older is told about them (``missed_since``) exactly once.
        """
        if count <= 0:
            return
        self._lags.add(self._issue_stamp(self.clock_ms()), count)
        for listener in self._listeners:
            listener()

    def _evict_oldest(self) -> None:
        stamp = self._stamps[self._start]
        self._start += 1
        self._evictions.add(stamp, 1)
        if self._start * 2 >= len(self._stamps):
            del self._stamps[: self._start]
            del self._events[: self._start]
            del self._encoded[: self._start]
            self._start = 0

    # -- reading ------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._stamps) - self._start

    def _index_after(self, since_ms: int) -> int:
        return bisect_right(self._stamps, since_ms, lo=self._start)

    def events_since(self, since_ms: int) -> list[StoredEvent]:
        """All events with ``timestamp_ms > since_ms``, oldest first."""
        return self._events[self._index_after(since_ms) :]

    def encoded_since(self, since_ms: int) -> bytes:
        """``events_since`` as the JSON array body, joined from stored bytes.

        The last body joined is kept until the next push, so many pollers
        asking the same question (``since=0`` after a restart, say) share it.
        """
        index = self._index_after(since_ms)
        if index == len(self._encoded):
            return b"[]"
        key = (index, self._pushed_total)  # lists only change on push
        if self._joined_key != key:
            self._joined = b"[" + b",".join(self._encoded[index:]) + b"]"
            self._joined_key = key
        return self._joined

    def has_newer(self, since_ms: int) -> bool:
        """Whether anything a client at ``since_ms`` has not seen exists."""
        return self._last_stamp > since_ms

    def missed_since(self, since_ms: int) -> int:
        """How many events newer than ``since_ms`` were evicted or lost.

        Exact while ``since_ms`` is within the last ``loss_history`` losses;
        older cursors get a lower bound.
        """
        return self._evictions.count_after(since_ms) + self._lags.count_after(since_ms)

    def snapshot(self) -> BufferSnapshot:
        """Metadata for response headers."""
        return BufferSnapshot(
            instance=self.instance,
            capacity=self.capacity,
            size=len(self),
            latest_ms=self._last_stamp,
            oldest_ms=self._stamps[self._start] if len(self) else None,
            evicted=self._evictions.total,
            lost=self._lags.total,
        )

    @property
    def oldest_ms(self) -> int | None:
        """Stamp of the oldest event still held (``None`` when empty)."""
        return self._stamps[self._start] if len(self) else None

    @property
    def latest_ms(self) -> int:
        """The newest stamp issued (0 before the first)."""
        return self._last_stamp

    @property
    def pushed_total(self) -> int:
        """Events stored since the buffer was created."""
        return self._pushed_total

    # -- change notification (the Trio layer subscribes here) ---------------

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after every push and every recorded loss."""
        self._listeners.append(listener)
