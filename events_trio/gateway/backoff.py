"""Exponential backoff with jitter (sans-IO: it computes delays, never sleeps)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

#: Share of each delay that jitter may take away (0.5: between 50% and 100%).
JITTER_FRACTION: Final = 0.5


@dataclass(slots=True)
class Backoff:
    """Delays ``initial_s * 2**n`` capped at ``max_s``, each shortened by jitter.

    Jitter spreads the retries of many pollers that failed together (one
    network blip) so they do not all come back in the same instant.

    Args:
        initial_s: First delay before jitter.
        max_s: Cap before jitter.
        rand: Returns a float in [0, 1); injectable so tests get exact times.
    """

    initial_s: float
    max_s: float
    rand: Callable[[], float] = field(default=random.random)
    failures: int = 0

    def next_delay(self) -> float:
        """Record one more failure and return the delay before the next try."""
        exponent = min(self.failures, 62)  # 2**62 s is already far past any cap
        self.failures += 1
        base = min(self.max_s, self.initial_s * float(2**exponent))
        jitter: float = self.rand()
        return base * (1.0 - JITTER_FRACTION * jitter)

    def reset(self) -> None:
        """Forget the failures (after a success)."""
        self.failures = 0
