"""Wake tasks when the merged log grows (the long-poll layer of the gateway).

Sinks and ``GET /api/events`` long-polls park here until the log holds an
entry past their offset; shutdown releases every waiter at once.
"""

from __future__ import annotations

import trio


class LogWatch:
    """Tracks the newest log offsets and parks tasks until they move."""

    def __init__(self, latest_seq: int = 0, latest_event_seq: int = 0) -> None:
        self.latest_seq = latest_seq
        self.latest_event_seq = latest_event_seq
        self._lot = trio.lowlevel.ParkingLot()
        self._released = False

    @property
    def released(self) -> bool:
        """Whether :meth:`release_all` was called (the gateway is stopping)."""
        return self._released

    def advance(self, latest_seq: int, latest_event_seq: int) -> None:
        """Record new offsets after an append and wake every waiter."""
        self.latest_seq = max(self.latest_seq, latest_seq)
        self.latest_event_seq = max(self.latest_event_seq, latest_event_seq)
        self._lot.unpark_all()

    def has_newer(self, after: int, *, events_only: bool = False) -> bool:
        """Whether an entry past ``after`` exists (only events when ``events_only``)."""
        return (self.latest_event_seq if events_only else self.latest_seq) > after

    async def wait_newer(self, after: int, *, events_only: bool = False) -> None:
        """Wait until an entry past ``after`` exists, or :meth:`release_all`."""
        while not self.has_newer(after, events_only=events_only) and not self._released:
            await self._lot.park()

    def release_all(self) -> None:
        """Wake every waiter now and make later waits return at once."""
        self._released = True
        self._lot.unpark_all()
