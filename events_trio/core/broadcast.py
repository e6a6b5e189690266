"""A tokio-style broadcast channel on Trio.

Semantics (tokio ``sync::broadcast``):

* fixed capacity; ``send_nowait`` never blocks and never waits for receivers;
* every receiver has its own cursor and sees only what was sent after it
  subscribed;
* a receiver more than ``capacity`` messages behind gets :class:`Lagged`
  (with the number it lost) on its next receive, then continues from the
  oldest retained message;
* when every sender is closed, receivers drain what is left and then get
  :class:`trio.EndOfChannel`;
* a message is dropped once every receiver has taken it (as tokio drops a
  value once every receiver has seen it), so a caught-up channel holds
  nothing: ``capacity`` bounds what slow receivers can fall behind by, not
  what the channel keeps.

The shape follows trio's own ``_channel.py``: one private state object,
endpoints that implement ``trio.abc.SendChannel`` / ``trio.abc.ReceiveChannel``,
a synchronous ``close()`` that cancelled code can still call, and
``statistics()`` returning a frozen record.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar, final

import trio

T = TypeVar("T")

#: Messages retained for a receiver that has not caught up: room for several
#: full ingest batches (1,000 events each) arriving before the subscriber runs.
DEFAULT_CHANNEL_CAPACITY: Final = 8192


class Lagged(Exception):
    """The receiver fell behind and ``skipped`` messages were overwritten.

    The next receive continues from the oldest message still retained.
    """

    def __init__(self, skipped: int) -> None:
        super().__init__(f"receiver lagged behind and skipped {skipped} messages")
        self.skipped = skipped


@dataclass(frozen=True, slots=True)
class BroadcastStatistics:
    """A snapshot of a broadcast channel's state."""

    capacity: int
    buffered: int
    sent: int
    open_senders: int
    open_receivers: int


@dataclass(slots=True)
class _State(Generic[T]):
    capacity: int
    # (sequence number, message); the oldest is at the left.
    ring: deque[tuple[int, T]] = field(default_factory=deque)
    next_seq: int = 0
    open_senders: int = 0
    open_receivers: int = 0
    lot: trio.lowlevel.ParkingLot = field(default_factory=trio.lowlevel.ParkingLot)
    # The open receivers' cursors, to drop what all of them have taken.
    receivers: set[BroadcastReceiver[T]] = field(default_factory=set)

    @property
    def closed(self) -> bool:
        return self.open_senders == 0

    def oldest_seq(self) -> int:
        return self.ring[0][0] if self.ring else self.next_seq

    def drop_taken(self) -> None:
        """Drop the messages every open receiver has taken."""
        slowest = min((r.cursor for r in self.receivers), default=self.next_seq)
        ring = self.ring
        while ring and ring[0][0] < slowest:
            ring.popleft()


# A class rather than a function so that ``open_broadcast_channel[int](8)``
# works at run time and for type checkers, as ``trio.open_memory_channel`` does.
@final
class open_broadcast_channel(tuple["BroadcastSender[T]", "BroadcastReceiver[T]"]):
    """Open a broadcast channel, like ``tokio::sync::broadcast::channel``.

    Args:
        capacity: How many messages are retained for slow receivers.

    Returns:
        A sender and a first receiver. More receivers come from
        :meth:`BroadcastSender.subscribe`; more senders from ``clone()``.

    Raises:
        ValueError: ``capacity`` is less than 1.
    """

    def __new__(  # type: ignore[misc]
        cls, capacity: int = DEFAULT_CHANNEL_CAPACITY
    ) -> tuple[BroadcastSender[T], BroadcastReceiver[T]]:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        state: _State[T] = _State(capacity)
        sender = BroadcastSender(state)
        return sender, sender.subscribe()

    def __init__(self, capacity: int = DEFAULT_CHANNEL_CAPACITY) -> None: ...


class BroadcastSender(trio.abc.SendChannel[T]):
    """The sending end. ``send_nowait`` (alias ``publish``) never blocks."""

    def __init__(self, state: _State[T]) -> None:
        self._state = state
        self._closed = False
        state.open_senders += 1

    def send_nowait(self, value: T) -> int:
        """Broadcast ``value`` to every current receiver.

        Returns:
            How many receivers will see it (0 is not an error: with no
            receivers the message is dropped and nothing is retained).

        Raises:
            trio.ClosedResourceError: this sender was closed.
        """
        if self._closed:
            raise trio.ClosedResourceError("this sender is closed")
        state = self._state
        if state.open_receivers:
            state.ring.append((state.next_seq, value))
            if len(state.ring) > state.capacity:
                state.ring.popleft()
            if state.lot:  # skip the wake-up machinery when nobody waits
                state.lot.unpark_all()
        state.next_seq += 1
        return state.open_receivers

    publish = send_nowait

    async def send(self, value: T) -> None:
        """Like :meth:`send_nowait`, plus a checkpoint."""
        await trio.lowlevel.checkpoint_if_cancelled()
        self.send_nowait(value)
        await trio.lowlevel.cancel_shielded_checkpoint()

    def subscribe(self) -> BroadcastReceiver[T]:
        """A new receiver that sees messages sent from now on."""
        return BroadcastReceiver(self._state, self._state.next_seq)

    def clone(self) -> BroadcastSender[T]:
        """Another sender; the channel stays open until the last one closes."""
        if self._closed:
            raise trio.ClosedResourceError("this sender is closed")
        return BroadcastSender(self._state)

    def close(self) -> None:
        """Close this sender (idempotent). Synchronous, so cancelled code can call it."""
        if self._closed:
            return
        self._closed = True
        self._state.open_senders -= 1
        if self._state.closed:
            self._state.lot.unpark_all()

    async def aclose(self) -> None:
        """Close this sender and checkpoint."""
        self.close()
        await trio.lowlevel.checkpoint()

    def statistics(self) -> BroadcastStatistics:
        """A snapshot of the channel's state."""
        return _statistics(self._state)


class BroadcastReceiver(trio.abc.ReceiveChannel[T]):
    """A receiving end with its own cursor."""

    def __init__(self, state: _State[T], cursor: int) -> None:
        self._state = state
        self._cursor = cursor
        self._closed = False
        # Set (and dropped) once this receiver has taken everything sent; only
        # created while someone waits, so the hot path pays one ``is None``.
        self._caught_up: trio.Event | None = None
        state.open_receivers += 1
        state.receivers.add(self)

    @property
    def cursor(self) -> int:
        """The sequence number of the next message this receiver takes."""
        return self._cursor

    def receive_nowait(self) -> T:
        """The next message, without waiting.

        Raises:
            Lagged: messages were lost since the last receive.
            trio.WouldBlock: nothing new yet.
            trio.EndOfChannel: every sender closed and nothing is left.
            trio.ClosedResourceError: this receiver was closed.
        """
        if self._closed:
            raise trio.ClosedResourceError("this receiver is closed")
        state = self._state
        oldest = state.oldest_seq()
        if self._cursor < oldest:
            skipped = oldest - self._cursor
            self._cursor = oldest
            raise Lagged(skipped)
        if self._cursor < state.next_seq:
            value = state.ring[self._cursor - oldest][1]
            self._cursor += 1
            if self._cursor - 1 == oldest:  # this receiver held the oldest message back
                state.drop_taken()
            if self._caught_up is not None and self._cursor == state.next_seq:
                self._caught_up.set()
            return value
        if state.closed:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    async def receive(self) -> T:
        """The next message, waiting for one if needed (same errors as ``receive_nowait``)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            value = self.receive_nowait()
        except trio.WouldBlock:
            pass
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return value
        while True:
            await self._state.lot.park()
            try:
                return self.receive_nowait()
            except trio.WouldBlock:
                continue

    @property
    def pending(self) -> int:
        """Messages sent that this receiver has not taken yet (lost ones included)."""
        return self._state.next_seq - self._cursor

    async def wait_caught_up(self) -> None:
        """Wait until this receiver has taken every message sent so far, or is closed.

        Not a polling loop: taking the last pending message sets an event
        that this call waits on.
        """
        if self._closed or not self.pending:
            await trio.lowlevel.checkpoint()
            return
        if self._caught_up is None or self._caught_up.is_set():
            self._caught_up = trio.Event()
        await self._caught_up.wait()

    def clone(self) -> BroadcastReceiver[T]:
        """An independent receiver at this receiver's position."""
        if self._closed:
            raise trio.ClosedResourceError("this receiver is closed")
        return BroadcastReceiver(self._state, self._cursor)

    def close(self) -> None:
        """Close this receiver (idempotent); it stops holding messages back.

        Tasks waiting in :meth:`receive` on this receiver wake up with
        :class:`trio.ClosedResourceError`, as with trio's memory channels.
        """
        if self._closed:
            return
        self._closed = True
        state = self._state
        state.open_receivers -= 1
        state.receivers.discard(self)
        state.drop_taken()
        if self._caught_up is not None:
            self._caught_up.set()
        # The lot is shared: other receivers' waiters find nothing new and park again.
        state.lot.unpark_all()

    async def aclose(self) -> None:
        """Close this receiver and checkpoint."""
        self.close()
        await trio.lowlevel.checkpoint()

    def statistics(self) -> BroadcastStatistics:
        """A snapshot of the channel's state."""
        return _statistics(self._state)


def _statistics(state: _State[T]) -> BroadcastStatistics:
    return BroadcastStatistics(
        capacity=state.capacity,
        buffered=len(state.ring),
        sent=state.next_seq,
        open_senders=state.open_senders,
        open_receivers=state.open_receivers,
    )
