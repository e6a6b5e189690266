"""The stream's idle deadline, in virtual time (MockClock, MockTransport)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import trio
import trio.testing

from events_trio.core.events import encode
from events_trio.gateway.tracker import Position
from events_trio.wire.query import H_INSTANCE, H_LATEST
from events_trio.wire.sse import comment_frame, event_frame, retry_frame

from .helpers import BASE_MS, FakeProject, InlineLog, failure, make_poller
from .test_disk_full import DISK_FULL, RefusingLog


def stream_server(
    fake: FakeProject, *, keepalive_s: float | None
) -> tuple[httpx.MockTransport, list[float]]:
    """``fake`` with a stream that sends one event, then keep-alives (or nothing)."""
    opens: list[float] = []

    async def frames() -> AsyncIterator[bytes]:
        yield retry_frame()
        yield event_frame(encode(failure("1_story_s", BASE_MS + 1)), id=BASE_MS + 1)
        while True:
            if keepalive_s is None:
                await trio.sleep_forever()
            await trio.sleep(keepalive_s)
            yield comment_frame()

    async def handle(request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith("/stream"):
            return await fake.handle(request)
        opens.append(trio.current_time())
        head = {
            "content-type": "text/event-stream",
            H_INSTANCE: fake.instance,
            H_LATEST: str(BASE_MS + 1),
        }
        return httpx.Response(200, headers=head, content=frames())

    return httpx.MockTransport(handle), opens


async def test_silent_stream_is_reconnected_after_its_idle_deadline(
    autojump_clock: trio.testing.MockClock, fake: FakeProject, log: InlineLog, nursery: trio.Nursery
) -> None:
    transport, opens = stream_server(fake, keepalive_s=None)
    async with httpx.AsyncClient(transport=transport) as http:
        poller = make_poller(log, http, position=Position(fake.instance, BASE_MS))
        nursery.start_soon(poller.run)
        await trio.sleep(45.5)  # deadline passed, backing off
        silent = poller.status.last_error
        await trio.sleep(100 - 45.5)
        nursery.cancel_scope.cancel()
    # Silent for 45 s after its last byte, then 1 s of backoff; each open
    # succeeds, so the project never counts as down.
    assert opens == [0.0, 46.0, 92.0]
    assert silent == "stream silent for 45 s"
    assert (poller.status.mode, poller.status.state, poller.status.failures) == ("stream", "up", 2)
    assert log.texts() == ["1_story_s"]  # re-sent on each connection, appended once


async def test_keep_alive_comments_hold_a_quiet_stream_open(
    autojump_clock: trio.testing.MockClock, fake: FakeProject, log: InlineLog, nursery: trio.Nursery
) -> None:
    transport, opens = stream_server(fake, keepalive_s=15.0)
    async with httpx.AsyncClient(transport=transport) as http:
        poller = make_poller(log, http, position=Position(fake.instance, BASE_MS))
        nursery.start_soon(poller.run)
        await trio.sleep(600)
        nursery.cancel_scope.cancel()
    assert opens == [0.0]
    assert poller.status.last_error is None
    assert fake.requests == []  # no request per event, none while idle


async def test_store_refusing_a_streamed_event_is_retried_from_the_cursor(
    autojump_clock: trio.testing.MockClock, fake: FakeProject, nursery: trio.Nursery
) -> None:
    refusing = RefusingLog()
    refusing.refusal = DISK_FULL
    transport, opens = stream_server(fake, keepalive_s=15.0)
    async with httpx.AsyncClient(transport=transport) as http:
        poller = make_poller(refusing, http, position=Position(fake.instance, BASE_MS))
        nursery.start_soon(poller.run)
        await trio.sleep(0.5)
        stored_error = poller.status.last_error
        refusing.refusal = None
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
    assert stored_error == f"state store: {DISK_FULL}"
    assert opens == [0.0, 1.0]  # reconnected from the cursor after 1 s of backoff
    assert refusing.texts() == ["1_story_s"]
