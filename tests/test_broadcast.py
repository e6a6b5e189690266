"""The tokio-style broadcast channel: lag, independence, close semantics."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from events_trio.core.broadcast import (
    BroadcastReceiver,
    BroadcastSender,
    Lagged,
    open_broadcast_channel,
)


def drain(receiver: BroadcastReceiver[int]) -> list[int]:
    received = []
    while True:
        try:
            received.append(receiver.receive_nowait())
        except trio.WouldBlock:
            return received


def test_every_receiver_gets_every_message() -> None:
    tx, rx1 = open_broadcast_channel[int](8)
    rx2 = tx.subscribe()
    for i in range(3):
        tx.send_nowait(i)
    assert drain(rx1) == [0, 1, 2]
    assert drain(rx2) == [0, 1, 2]


def test_receivers_keep_independent_cursors() -> None:
    tx, rx1 = open_broadcast_channel(8)
    rx2 = tx.subscribe()
    tx.send_nowait(1)
    assert drain(rx1) == [1]
    tx.send_nowait(2)
    assert drain(rx1) == [2]
    assert drain(rx2) == [1, 2]


def test_late_subscriber_sees_only_later_messages() -> None:
    tx, rx1 = open_broadcast_channel(8)
    tx.send_nowait(1)
    late = tx.subscribe()
    tx.send_nowait(2)
    assert drain(late) == [2]
    assert drain(rx1) == [1, 2]


def test_lagged_reports_exact_count_and_resumes_at_oldest_retained() -> None:
    tx, rx = open_broadcast_channel(4)
    for i in range(10):
        tx.send_nowait(i)
    with pytest.raises(Lagged) as lagged:
        rx.receive_nowait()
    assert lagged.value.skipped == 6
    assert str(lagged.value) == "receiver lagged behind and skipped 6 messages"
    assert drain(rx) == [6, 7, 8, 9]


def test_lag_of_one_receiver_does_not_affect_another() -> None:
    tx, slow = open_broadcast_channel(2)
    fast = tx.subscribe()
    for i in range(5):
        tx.send_nowait(i)
        assert fast.receive_nowait() == i
    with pytest.raises(Lagged, match="skipped 3"):
        slow.receive_nowait()
    assert drain(slow) == [3, 4]


async def test_end_of_channel_only_after_remaining_messages_are_drained() -> None:
    tx, rx = open_broadcast_channel(8)
    tx.send_nowait("a")
    tx.send_nowait("b")
    await tx.aclose()
    assert await rx.receive() == "a"
    assert await rx.receive() == "b"
    with pytest.raises(trio.EndOfChannel):
        await rx.receive()


async def test_async_for_stops_at_end_of_channel() -> None:
    tx, rx = open_broadcast_channel(8)
    for i in range(3):
        tx.send_nowait(i)
    tx.close()
    assert [value async for value in rx] == [0, 1, 2]


def test_send_with_no_receivers_neither_fails_nor_retains() -> None:
    tx, rx = open_broadcast_channel(4)
    rx.close()
    for i in range(1000):
        assert tx.send_nowait(i) == 0
    stats = tx.statistics()
    assert stats.buffered == 0
    assert stats.sent == 1000
    assert stats.open_receivers == 0


def test_messages_every_receiver_took_are_not_retained() -> None:
    tx, fast = open_broadcast_channel[int](100)
    slow = tx.subscribe()
    for i in range(10):
        tx.send_nowait(i)
    assert drain(fast) == list(range(10))
    assert tx.statistics().buffered == 10  # the slow receiver has taken none yet
    assert [slow.receive_nowait() for _ in range(4)] == [0, 1, 2, 3]
    assert tx.statistics().buffered == 6
    assert drain(slow) == [4, 5, 6, 7, 8, 9]
    assert tx.statistics().buffered == 0


def test_closing_the_slowest_receiver_releases_what_the_others_took() -> None:
    tx, fast = open_broadcast_channel[int](100)
    slow = tx.subscribe()
    for i in range(5):
        tx.send_nowait(i)
    drain(fast)
    slow.close()
    assert tx.statistics().buffered == 0
    tx.send_nowait(5)
    assert drain(fast) == [5]


def test_send_reports_how_many_receivers_see_it() -> None:
    tx, _rx = open_broadcast_channel(4)
    tx.subscribe()
    assert tx.send_nowait("x") == 2


async def test_cloned_senders_keep_channel_open_until_last_closes() -> None:
    tx, rx = open_broadcast_channel(8)
    tx2 = tx.clone()
    tx.close()
    tx2.send_nowait("still open")
    assert rx.receive_nowait() == "still open"
    with pytest.raises(trio.WouldBlock):
        rx.receive_nowait()
    tx2.close()
    with pytest.raises(trio.EndOfChannel):
        rx.receive_nowait()


def test_closed_sender_refuses_to_send() -> None:
    tx, _rx = open_broadcast_channel(8)
    tx.close()
    with pytest.raises(trio.ClosedResourceError):
        tx.send_nowait(1)


def test_closed_receiver_refuses_to_receive() -> None:
    _tx, rx = open_broadcast_channel(8)
    rx.close()
    with pytest.raises(trio.ClosedResourceError):
        rx.receive_nowait()


def test_cloned_receiver_starts_at_the_same_position() -> None:
    tx, rx = open_broadcast_channel(8)
    tx.send_nowait(1)
    tx.send_nowait(2)
    assert rx.receive_nowait() == 1
    copy = rx.clone()
    assert drain(copy) == [2]
    assert drain(rx) == [2]


async def test_waiting_receiver_wakes_on_send() -> None:
    tx, rx = open_broadcast_channel(8)
    got: list[int] = []

    async def consume() -> None:
        got.append(await rx.receive())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        await tx.send(7)
    assert got == [7]


async def test_waiting_receiver_wakes_with_end_of_channel_on_close() -> None:
    tx, rx = open_broadcast_channel(8)
    outcome: list[str] = []

    async def consume() -> None:
        try:
            await rx.receive()
        except trio.EndOfChannel:
            outcome.append("end")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await trio.testing.wait_all_tasks_blocked()
        tx.close()
    assert outcome == ["end"]


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"^capacity must be at least 1$"):
        open_broadcast_channel(0)


def test_types_are_trio_channels() -> None:
    tx, rx = open_broadcast_channel(1)
    assert isinstance(tx, BroadcastSender)
    assert isinstance(tx, trio.abc.SendChannel)
    assert isinstance(rx, trio.abc.ReceiveChannel)


async def test_closing_a_receiver_wakes_its_waiting_task_with_closed_resource_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tx, rx = open_broadcast_channel[int](8)
    other = tx.subscribe()
    woken: list[str] = []

    async def wait_on(receiver: BroadcastReceiver[int], name: str) -> None:
        try:
            woken.append(f"{name} got {await receiver.receive()}")
        except trio.ClosedResourceError as error:
            woken.append(f"{name}: {error}")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait_on, rx, "closed")
        nursery.start_soon(wait_on, other, "other")
        await trio.testing.wait_all_tasks_blocked()
        rx.close()
        await trio.testing.wait_all_tasks_blocked()
        assert woken == ["closed: this receiver is closed"]  # at once, the other still waits
        tx.send_nowait(7)
    assert woken == ["closed: this receiver is closed", "other got 7"]


async def test_wait_caught_up_returns_once_every_sent_message_is_taken(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tx, rx = open_broadcast_channel[int](8)
    for i in range(3):
        tx.send_nowait(i)
    caught_up_at: list[int] = []

    async def waiter() -> None:
        await rx.wait_caught_up()
        caught_up_at.append(rx.pending)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert rx.receive_nowait() == 0
        assert rx.receive_nowait() == 1
        await trio.testing.wait_all_tasks_blocked()
        assert caught_up_at == []  # one still pending: it parks, it does not spin
        assert rx.receive_nowait() == 2
    assert caught_up_at == [0]


async def test_wait_caught_up_returns_when_the_receiver_closes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tx, rx = open_broadcast_channel[int](8)
    tx.send_nowait(1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(rx.wait_caught_up)
        await trio.testing.wait_all_tasks_blocked()
        rx.close()
    assert rx.pending == 1
