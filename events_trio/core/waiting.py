"""Trio waiting on top of the sans-IO :class:`~events_trio.buffer.EventBuffer`.

A long-poll parks until the buffer holds something newer than its cursor,
its wait runs out, or the server starts shutting down (then every waiter is
released at once and answers with what it has).
"""

from __future__ import annotations

from typing import Final

import trio

from .buffer import EventBuffer

#: Longest ``wait`` a request may ask for; larger values are capped.
MAX_WAIT_S: Final = 30.0


class LongPoll:
    """Lets tasks wait for events newer than a cursor.

    Args:
        buffer: The buffer to watch; every push and recorded loss wakes waiters.
    """

    def __init__(self, buffer: EventBuffer) -> None:
        self.buffer = buffer
        self._lot = trio.lowlevel.ParkingLot()
        self._released = False
        buffer.add_listener(self._wake)

    def _wake(self) -> None:
        if self._lot:  # most pushes happen with no long-poll parked
            self._lot.unpark_all()

    @property
    def waiting(self) -> int:
        """How many tasks are parked right now."""
        return len(self._lot)

    @property
    def released(self) -> bool:
        """Whether :meth:`release_all` was called (the server is stopping)."""
        return self._released

    def release_all(self) -> None:
        """Wake every waiter now and make later waits return at once."""
        self._released = True
        self._lot.unpark_all()

    async def wait_newer(self, since_ms: int, timeout_s: float) -> bool:
        """Wait until an event newer than ``since_ms`` exists.

        Args:
            since_ms: The client's cursor.
            timeout_s: Longest wait in seconds (Trio time).

        Returns:
            ``True`` if something newer exists when it returns.
        """
        with trio.move_on_after(timeout_s):
            while not self.buffer.has_newer(since_ms) and not self._released:
                await self._lot.park()
        return self.buffer.has_newer(since_ms)
