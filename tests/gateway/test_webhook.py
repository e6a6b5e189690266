"""Webhook sink against a real local HTTP receiver (Quart-Trio on Hypercorn, port 0)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec
import pytest
import trio
import trio.testing
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio

from events_trio.core.events import StageTransition
from events_trio.gateway.records import Incoming
from events_trio.gateway.sinks import SinkRunner, SinkSettings, WebhookSink
from events_trio.gateway.store import SqliteLog, open_sqlite_log
from events_trio.gateway.tracker import Position

from .helpers import BASE_MS, InlineLog, failure, until

FAST: SinkSettings = SinkSettings(backoff_initial_s=0.05, backoff_max_s=0.2)


@dataclass
class Receiver:
    """Records posted messages; answers 503 to the first ``failures`` posts."""

    url: str = ""
    failures: int = 0
    texts: list[str] = field(default_factory=list)
    refused: int = 0


@pytest.fixture
async def receiver(nursery: trio.Nursery) -> Receiver:
    state = Receiver()
    app = QuartTrio("receiver")

    @app.post("/hook")
    async def hook() -> Response:
        payload = msgspec.json.decode(await request.get_data())
        if state.failures:
            state.failures -= 1
            state.refused += 1
            return Response("busy", 503)
        state.texts.append(payload["text"])
        return Response("ok", 200)

    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 0.1
    binds = await nursery.start(serve, app, config)
    state.url = binds[0] + "/hook"
    return state


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[SqliteLog]:
    store = await open_sqlite_log(tmp_path)
    yield store
    await store.aclose()


async def moves(log: SqliteLog, *stories: str) -> None:
    """Append moves to QA, each with a project stamp of its own."""
    stamps = [BASE_MS + next(_stamps) for _ in stories]
    records = [
        Incoming(StageTransition(s, "2_current", "3_qa", t), t)
        for s, t in zip(stories, stamps, strict=True)
    ]
    await log.append("billing", records, Position("", stamps[-1]))


_stamps = itertools.count(1)


async def test_webhook_posts_slack_compatible_text(
    receiver: Receiver, log: SqliteLog, nursery: trio.Nursery
) -> None:
    async with httpx.AsyncClient() as client:
        sink = WebhookSink(receiver.url, client, group_window_s=0.0, min_interval_s=0.0)
        await nursery.start(SinkRunner(sink, log, FAST).run)
        await log.append("billing", [Incoming(failure("42_story_x", 1), 1)], Position("", 1))
        await until(lambda: bool(receiver.texts))
        assert receiver.texts == ["billing: merge failed: 42_story_x — conflict"]


async def test_webhook_groups_a_burst_into_one_message(
    receiver: Receiver, log: SqliteLog, nursery: trio.Nursery
) -> None:
    async with httpx.AsyncClient() as client:
        sink = WebhookSink(receiver.url, client, group_window_s=0.5, min_interval_s=0.0)
        await nursery.start(SinkRunner(sink, log, FAST).run)
        for n in range(6):
            await moves(log, f"{n}_story")
        await until(lambda: bool(receiver.texts))
        assert receiver.texts == ["billing: 6 stories moved to QA"]


async def test_webhook_retries_until_the_receiver_recovers(
    receiver: Receiver, log: SqliteLog, nursery: trio.Nursery
) -> None:
    receiver.failures = 3
    async with httpx.AsyncClient() as client:
        sink = WebhookSink(receiver.url, client, group_window_s=0.0, min_interval_s=0.0)
        runner = SinkRunner(sink, log, FAST)
        await nursery.start(runner.run)
        await moves(log, "1_a")
        await until(lambda: bool(receiver.texts))
        await moves(log, "2_b")
        await until(lambda: len(receiver.texts) == 2)
        assert (receiver.refused, receiver.texts) == (
            3,
            ["billing: 1_a  Current -> QA", "billing: 2_b  Current -> QA"],
        )


async def test_webhook_messages_are_spaced_by_the_rate_limit(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    # The spacing is the sink's own (Trio time): a mock peer and virtual time
    # measure it exactly, where a real receiver on a busy machine cannot.
    posted_at: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        posted_at.append(trio.current_time())
        return httpx.Response(200, text="ok")

    log = InlineLog()
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        sink = WebhookSink("http://hooks.test/hook", client, group_window_s=0.0, min_interval_s=0.4)
        await nursery.start(SinkRunner(sink, log, FAST).run)
        await moves(log, "1_a")
        await trio.testing.wait_all_tasks_blocked()
        first = trio.current_time()
        await moves(log, "2_b")
        await trio.sleep(1)
    assert posted_at == [first, pytest.approx(first + 0.4)]
