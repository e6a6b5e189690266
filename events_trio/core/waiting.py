"""The one long-poll wait primitive, and the project server's use of it.

:class:`Wakeup` parks tasks until a condition holds, their wait runs out,
or shutdown begins (then every waiter is released at once and answers with
what it has). The project server's :class:`LongPoll` waits on the buffer;
the gateway's ``LogWatch`` (``gateway/watch.py``) on the merged log.
"""

from __future__ import annotations

from collections.abc import Callable
from math import inf
from typing import Final

import trio

from .buffer import EventBuffer

#: Longest ``wait`` a request may ask for; larger values are capped.
MAX_WAIT_S: Final = 30.0


class Wakeup:
    """Lets tasks wait for a condition that :meth:`wake` announces may have changed."""

    def __init__(self) -> None:
        self._lot = trio.lowlevel.ParkingLot()
        self._released = False

    @property
    def waiting(self) -> int:
        """How many tasks are parked right now."""
        return len(self._lot)

    @property
    def released(self) -> bool:
        """Whether :meth:`release_all` was called (the process is stopping)."""
        return self._released

    def wake(self) -> None:
        """Let every parked task check its condition again."""
        if self._lot:  # most changes happen with no task parked
            self._lot.unpark_all()

    def release_all(self) -> None:
        """Wake every waiter now and make later waits return at once."""
        self._released = True
        self._lot.unpark_all()

    async def wait_for(self, ready: Callable[[], bool], timeout_s: float = inf) -> bool:
        """Wait until ``ready()``, :meth:`release_all` or ``timeout_s`` (Trio time).

        Returns:
            ``ready()`` when it returns.
        """
        if timeout_s == inf:  # no cancel scope to enter and leave on every wait
            await self._park_until(ready)
        else:
            with trio.move_on_after(timeout_s):
                await self._park_until(ready)
        return ready()

    async def _park_until(self, ready: Callable[[], bool]) -> None:
        while not ready() and not self._released:
            await self._lot.park()


class LongPoll(Wakeup):
    """Lets tasks wait for events newer than a cursor.

    Args:
        buffer: The buffer to watch; every push and recorded loss wakes waiters.
    """

    def __init__(self, buffer: EventBuffer) -> None:
        super().__init__()
        self.buffer = buffer
        buffer.add_listener(self.wake)

    async def wait_newer(self, since_ms: int, timeout_s: float) -> bool:
        """Wait until an event newer than ``since_ms`` exists.

        Args:
            since_ms: The client's cursor.
            timeout_s: Longest wait in seconds (Trio time).

        Returns:
            ``True`` if something newer exists when it returns.
        """
        return await self.wait_for(lambda: self.buffer.has_newer(since_ms), timeout_s)
