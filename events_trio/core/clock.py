"""Milliseconds: the wall clock both processes stamp with, and the stamp rule.

Stamps are unique and strictly increasing whatever the wall clock does
(steps back, many events in one millisecond): the next stamp is
``max(proposed, last + 1)``. The project server's buffer and the gateway's
log both stamp this way, so a "strictly greater than" cursor never loses
an entry.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: A wall clock in milliseconds since the Unix epoch (injectable for tests).
ClockMs = Callable[[], int]


def wall_clock_ms() -> int:
    """Milliseconds since the Unix epoch, from the system clock."""
    return time.time_ns() // 1_000_000


def next_stamp(proposed_ms: int, last_ms: int) -> int:
    """The stamp after ``last_ms`` for something proposed at ``proposed_ms``."""
    return max(proposed_ms, last_ms + 1)
