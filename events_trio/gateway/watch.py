"""Wake tasks when the merged log grows (the long-poll layer of the gateway).

Sinks and ``GET /api/events`` long-polls park here until the log holds an
entry past their offset; shutdown releases every waiter at once. The
waiting itself is the project server's (:class:`~events_trio.core.waiting.Wakeup`).
"""

from __future__ import annotations

from math import inf

from ..core.waiting import Wakeup


class LogWatch(Wakeup):
    """Tracks the newest log offsets and parks tasks until they move."""

    def __init__(self, latest_seq: int = 0, latest_event_seq: int = 0) -> None:
        super().__init__()
        self.latest_seq = latest_seq
        self.latest_event_seq = latest_event_seq

    def advance(self, latest_seq: int, latest_event_seq: int) -> None:
        """Record new offsets after an append and wake every waiter."""
        self.latest_seq = max(self.latest_seq, latest_seq)
        self.latest_event_seq = max(self.latest_event_seq, latest_event_seq)
        self.wake()

    def has_newer(self, after: int, *, events_only: bool = False) -> bool:
        """Whether an entry past ``after`` exists (only events when ``events_only``)."""
        return (self.latest_event_seq if events_only else self.latest_seq) > after

    async def wait_newer(
        self, after: int, timeout_s: float = inf, *, events_only: bool = False
    ) -> bool:
        """Wait until an entry past ``after`` exists, :meth:`release_all` or ``timeout_s``.

        Returns:
            ``True`` if an entry past ``after`` exists when it returns.
        """
        return await self.wait_for(
            lambda: self.has_newer(after, events_only=events_only), timeout_s
        )
