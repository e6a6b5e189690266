"""The subscriber: the seed's four async tests, plus lag and close handling."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from events_trio.core.broadcast import open_broadcast_channel
from events_trio.core.buffer import EventBuffer
from events_trio.core.events import (
    ConfigChanged,
    MergeFailure,
    StageTransition,
    StoredMergeFailure,
    StoredStoryBlocked,
    StoryBlocked,
    WatcherEvent,
    WorkItem,
)
from events_trio.server.subscriber import run_subscriber


async def test_subscribe_to_watcher_stores_work_item_with_from_stage(nursery: trio.Nursery) -> None:
    buf = EventBuffer()
    tx, rx = open_broadcast_channel[WatcherEvent](16)
    nursery.start_soon(run_subscriber, buf, rx)
    tx.send_nowait(
        WorkItem(
            stage="3_qa",
            item_id="42_story_foo",
            action="qa",
            commit_msg="huskies: qa 42_story_foo",
            from_stage="2_current",
        )
    )
    await trio.testing.wait_all_tasks_blocked()
    events = buf.events_since(0)
    assert len(events) == 1
    assert isinstance(events[0], StageTransition)
    assert events[0].story_id == "42_story_foo"
    assert events[0].from_stage == "2_current"
    assert events[0].to_stage == "3_qa"


async def test_subscribe_to_watcher_ignores_work_item_without_from_stage(
    nursery: trio.Nursery,
) -> None:
    buf = EventBuffer()
    tx, rx = open_broadcast_channel[WatcherEvent](16)
    nursery.start_soon(run_subscriber, buf, rx)
    tx.send_nowait(
        WorkItem(
            stage="2_current",
            item_id="99_story_syn",
            action="start",
            commit_msg="huskies: start 99_story_syn",
            from_stage=None,
        )
    )
    await trio.testing.wait_all_tasks_blocked()
    assert len(buf.events_since(0)) == 0


async def test_subscribe_to_watcher_stores_merge_failure(nursery: trio.Nursery) -> None:
    buf = EventBuffer()
    tx, rx = open_broadcast_channel[WatcherEvent](16)
    nursery.start_soon(run_subscriber, buf, rx)
    tx.send_nowait(MergeFailure(story_id="42_story_foo", reason="merge conflict"))
    await trio.testing.wait_all_tasks_blocked()
    events = buf.events_since(0)
    assert len(events) == 1
    assert isinstance(events[0], StoredMergeFailure)


async def test_subscribe_to_watcher_stores_story_blocked(nursery: trio.Nursery) -> None:
    buf = EventBuffer()
    tx, rx = open_broadcast_channel[WatcherEvent](16)
    nursery.start_soon(run_subscriber, buf, rx)
    tx.send_nowait(StoryBlocked(story_id="43_story_bar", reason="retry limit exceeded"))
    await trio.testing.wait_all_tasks_blocked()
    events = buf.events_since(0)
    assert len(events) == 1
    assert isinstance(events[0], StoredStoryBlocked)


async def test_subscriber_ignores_other_variants(nursery: trio.Nursery) -> None:
    buf = EventBuffer()
    tx, rx = open_broadcast_channel[WatcherEvent](16)
    nursery.start_soon(run_subscriber, buf, rx)
    tx.send_nowait(ConfigChanged("project.toml"))
    await trio.testing.wait_all_tasks_blocked()
    assert buf.events_since(0) == []


async def test_subscriber_stamps_with_the_buffer_clock(nursery: trio.Nursery) -> None:
    buf = EventBuffer(clock_ms=lambda: 1_764_201_600_123)
    tx, rx = open_broadcast_channel[WatcherEvent](16)
    nursery.start_soon(run_subscriber, buf, rx)
    tx.send_nowait(MergeFailure("a", "x"))
    tx.send_nowait(MergeFailure("b", "x"))
    await trio.testing.wait_all_tasks_blocked()
    assert [e.timestamp_ms for e in buf.events_since(0)] == [1_764_201_600_123, 1_764_201_600_124]


async def test_lag_is_logged_counted_and_survived(caplog: pytest.LogCaptureFixture) -> None:
    buf = EventBuffer()
    tx, rx = open_broadcast_channel[WatcherEvent](4)
    for i in range(10):  # before the subscriber runs: it lags by 6
        tx.send_nowait(MergeFailure(f"{i}_story_x", "x"))
    tx.close()
    with caplog.at_level(logging.WARNING, logger="events_trio.subscriber"):
        await run_subscriber(buf, rx)
    assert [e.story_id for e in buf.events_since(0)] == [f"{i}_story_x" for i in range(6, 10)]
    assert buf.snapshot().lost == 6
    assert buf.missed_since(0) == 6
    assert "subscriber lagged, skipped 6 events" in caplog.messages


async def test_close_is_logged_and_subscriber_returns(caplog: pytest.LogCaptureFixture) -> None:
    buf = EventBuffer()
    tx, rx = open_broadcast_channel[WatcherEvent](4)
    tx.send_nowait(MergeFailure("a", "x"))
    tx.close()
    with caplog.at_level(logging.INFO, logger="events_trio.subscriber"):
        await run_subscriber(buf, rx)  # returns: the channel is closed and drained
    assert len(buf) == 1
    assert "watcher channel closed; stopping event subscriber" in caplog.messages


async def test_bursts_between_subscriber_turns_are_never_lost(nursery: trio.Nursery) -> None:
    # A publisher that yields between bursts can run at most twice between two
    # turns of the subscriber (Trio runs each task once per batch, in either
    # order); two bursts fit the channel, and the subscriber takes everything
    # already sent in one turn, so nothing is lost.
    buf = EventBuffer(capacity=10_000)
    tx, rx = open_broadcast_channel[WatcherEvent](1024)
    nursery.start_soon(run_subscriber, buf, rx)
    await trio.testing.wait_all_tasks_blocked()
    for burst in range(20):
        for i in range(500):
            tx.send_nowait(MergeFailure(f"{burst * 500 + i}_story_x", "x"))
        await trio.lowlevel.checkpoint()
    await trio.testing.wait_all_tasks_blocked()
    assert buf.snapshot().lost == 0
    assert len(buf) == 10_000
