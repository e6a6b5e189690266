"""The gateway against misbehaving project servers.

Faults at the socket level (a server that accepts and never answers, one
that closes mid-body, one that answers 50 MB) are played by a tiny raw
Trio TCP server on port 0, in real time with short timeouts and polled
waits. Faults that only need a wrong answer (500, HTML, out-of-order or
stale stamps, a changing instance) go through ``httpx.MockTransport``
under ``MockClock``, where backoff times are exact.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from events_trio.core.events import MergeFailure, encode
from events_trio.gateway.config import ProjectConfig
from events_trio.gateway.poller import MAX_BODY_BYTES, Poller
from events_trio.gateway.records import Notice
from events_trio.gateway.tracker import Position
from events_trio.server.config import ServerConfig
from events_trio.server.run import RunningServer, run_server
from events_trio.wire.query import H_INSTANCE, H_WAIT
from tests.support import FakeClockMs

from .helpers import BASE_MS, FakeProject, InlineLog, failure, make_poller, settings, until
from .test_e2e import all_up, delivered, gateway, gateway_config

Handler = Callable[[trio.SocketStream], Awaitable[None]]
ONE_HOUR_MS = 3_600_000
#: Socket-level tests: short real-time timings so a fault shows within a second.
FAST = {"wait_s": 0.2, "timeout_s": 0.3, "backoff_initial_s": 0.05, "backoff_max_s": 0.2}


# --- a raw TCP "project server" ---------------------------------------------------


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    """Serve ``handler`` on 127.0.0.1, port 0; yields the base URL."""
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        yield f"http://127.0.0.1:{port}"
        nursery.cancel_scope.cancel()


async def read_request(stream: trio.SocketStream) -> bytes:
    """Read one request head (the poller sends no body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some()
        if not chunk:
            break
        data += chunk
    return data


NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


def head(length: int | None, instance: str = "raw") -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"{H_INSTANCE}: {instance}\r\n{H_WAIT}: 30\r\n{framing}\r\n\r\n"
    ).encode()


async def hang(stream: trio.SocketStream) -> None:
    await read_request(stream)
    await trio.sleep_forever()


def poller_for(
    url: str, log: InlineLog, client: httpx.AsyncClient, name: str = "billing", **changes: float
) -> Poller:
    """A poller of ``url`` with short real-time timings, jitter off."""
    project = ProjectConfig(name, url)
    timings = settings(**{**FAST, **changes})
    return Poller(
        project, client, log, timings, position=Position("raw", BASE_MS), rand=lambda: 0.0
    )


def notice_texts(log: InlineLog) -> list[str]:
    return [p.message for e in log.entries() if isinstance(p := e.payload(), Notice)]


def story_ids(log: InlineLog) -> list[str]:
    return [t for t in log.texts() if "_story" in t]


# --- socket-level faults (real time) ---------------------------------------------


async def test_project_that_accepts_and_never_answers_is_declared_down_once(
    nursery: trio.Nursery,
) -> None:
    log = InlineLog()
    async with raw_server(hang) as url, httpx.AsyncClient() as client:
        poller = poller_for(url, log, client)
        nursery.start_soon(poller.run)
        await until(lambda: poller.status.failures >= 4)
    # A project with a stored cursor is asked for its stream first, whose
    # response head must come within timeout_s (0.3 s; no wait to add).
    assert (poller.status.state, poller.status.last_error) == ("down", "no answer within 0.3 s")
    assert notice_texts(log) == ["project billing unreachable: no answer within 0.3 s"]


async def test_hanging_project_does_not_delay_another_project(nursery: trio.Nursery) -> None:
    log = InlineLog()
    async with (
        raw_server(hang) as url,
        httpx.AsyncClient() as client,
        trio.open_nursery() as servers,
    ):
        healthy: RunningServer = await servers.start(
            run_server, ServerConfig(port=0, graceful_timeout_s=0.1)
        )
        stuck = poller_for(url, log, client, timeout_s=60.0)
        other = poller_for(healthy.url, log, client, name="search")
        other.position = None  # a new project: starts from the server's newest event
        nursery.start_soon(stuck.run)
        nursery.start_soon(other.run)
        await until(lambda: other.status.state == "up")
        for n in range(5):
            healthy.hub.publish(MergeFailure(f"{n}_story_search", "conflict"))
        await until(lambda: len(story_ids(log)) == 5, timeout_s=4.0)
        # Still inside its first request, which the server never answers.
        assert (stuck.status.polls, stuck.status.failures) == (0, 0)
        healthy.shutdown()
    assert story_ids(log) == [f"{n}_story_search" for n in range(5)]


async def test_body_cut_off_midway_is_retried_and_delivered_once(nursery: trio.Nursery) -> None:
    events = [encode(failure(f"{n}_story_cut", BASE_MS + n)) for n in (1, 2)]
    body = b"[" + b",".join(events) + b"]"
    answers = 0

    async def cut_then_whole(stream: trio.SocketStream) -> None:
        nonlocal answers
        while request := await read_request(stream):
            if b"/api/events/stream" in request:  # a server without the stream
                await stream.send_all(NOT_FOUND)
                continue
            answers += 1
            if answers == 1:  # promise the whole body, send the first event only
                await stream.send_all(head(len(body)) + body[: len(events[0]) + 2])
                return
            await stream.send_all(head(len(body)) + body)

    log = InlineLog()
    async with raw_server(cut_then_whole) as url, httpx.AsyncClient() as client:
        poller = poller_for(url, log, client)
        nursery.start_soon(poller.run)
        await until(lambda: len(story_ids(log)) == 2)
        # Read before the server closes: later polls against a closed server fail.
        failures = poller.status.failures
    assert story_ids(log) == ["1_story_cut", "2_story_cut"]
    assert failures == 1
    assert notice_texts(log) == []


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_50_mb_body_is_refused_without_being_read_into_memory(framing: str) -> None:
    total = 50 * 1024 * 1024
    chunk = b" " * (64 * 1024)
    sent = 0

    async def huge(stream: trio.SocketStream) -> None:
        nonlocal sent
        await read_request(stream)
        length = total if framing == "content-length" else None
        await stream.send_all(head(length) + (b"" if length else b"%x\r\n" % total))
        try:
            while sent < total:
                await stream.send_all(chunk)
                sent += len(chunk)
        except trio.BrokenResourceError:
            pass  # the client hung up: what we want

    log = InlineLog()
    tracemalloc.start()
    try:
        async with (
            raw_server(huge) as url,
            httpx.AsyncClient() as client,
            trio.open_nursery() as local,
        ):
            poller = poller_for(url, log, client, timeout_s=30.0)
            local.start_soon(poller.run)
            await until(lambda: poller.status.failures >= 1, timeout_s=30.0)
            local.cancel_scope.cancel()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert poller.status.last_error == f"response body over {MAX_BODY_BYTES} bytes"
    assert sent < total
    assert peak < 2 * MAX_BODY_BYTES + 4 * 1024 * 1024


# --- answers that are wrong (MockTransport, MockClock) ------------------------------


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(500, content=b"Internal Server Error"), "HTTP 500 from /api/events"),
        (
            httpx.Response(200, content=b"<html><body>Welcome to nginx!</body></html>"),
            "response is not a JSON array of events: JSON is malformed: invalid character (byte 0)",
        ),
    ],
    ids=["http-500", "html"],
)
async def test_failing_answers_back_off_give_one_clear_notice_and_lose_nothing(
    autojump_clock: trio.testing.MockClock,
    fake: FakeProject,
    log: InlineLog,
    nursery: trio.Nursery,
    answer: httpx.Response,
    error: str,
) -> None:
    broken = True
    times: list[float] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        if broken and not request.url.path.endswith("/stream"):  # no stream: polled
            times.append(trio.current_time())
            return answer
        return await fake.handle(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as http:
        start = trio.current_time()
        nursery.start_soon(make_poller(log, http, position=Position(fake.instance, BASE_MS)).run)
        fake.publish(failure("1_story_during", BASE_MS + 1))
        await trio.sleep(20)
        broken = False
        await trio.sleep(10)
    assert [round(t - start, 2) for t in times] == [0.0, 1.0, 3.0, 7.0, 15.0]  # cap 8 s
    assert log.texts() == [
        f"project billing unreachable: {error}",
        "project billing recovered after 22 s unreachable",
        "1_story_during",
    ]


async def test_out_of_order_events_are_delivered_in_stamp_order_and_cursor_never_moves_back(
    autojump_clock: trio.testing.MockClock,
    fake: FakeProject,
    log: InlineLog,
    http: httpx.AsyncClient,
    nursery: trio.Nursery,
) -> None:
    poller = make_poller(log, http, position=Position(fake.instance, BASE_MS))
    nursery.start_soon(poller.run)
    await trio.sleep(1)
    fake.extra_raw = [encode(failure("2_story_late", BASE_MS + 2))]
    fake.publish(failure("3_story_newest", BASE_MS + 3))  # body: [3, 2]
    await trio.sleep(1)
    fake.extra_raw = [encode(failure("1_story_older", BASE_MS + 1))]
    fake.publish(failure("4_story_next", BASE_MS + 4))  # body: [4, 1], 1 below the cursor
    await trio.sleep(1)
    assert story_ids(log) == ["2_story_late", "3_story_newest", "4_story_next"]
    assert poller.status.cursor == BASE_MS + 4


async def test_server_that_ignores_since_gets_each_event_delivered_once(
    autojump_clock: trio.testing.MockClock, log: InlineLog, nursery: trio.Nursery
) -> None:
    fake = FakeProject()

    async def whole_buffer(request: httpx.Request) -> httpx.Response:
        return fake._answer(0)  # every stamp at or below the cursor comes back each time

    async with httpx.AsyncClient(transport=httpx.MockTransport(whole_buffer)) as http:
        poller = make_poller(log, http, position=Position(fake.instance, BASE_MS))
        nursery.start_soon(poller.run)
        for n in range(1, 4):
            fake.publish(failure(f"{n}_story_again", BASE_MS + n))
            await trio.sleep(2)
    assert story_ids(log) == ["1_story_again", "2_story_again", "3_story_again"]
    assert poller.status.polls > 3


async def test_instance_changing_back_and_forth_delivers_nothing_twice(
    autojump_clock: trio.testing.MockClock, log: InlineLog, nursery: trio.Nursery
) -> None:
    a, b = FakeProject(instance="aaaa"), FakeProject(instance="bbbb")
    a.publish(failure("1_story_a", BASE_MS + 1))
    b.publish(failure("1_story_b", BASE_MS + 5))
    current = a

    async def behind_one_url(request: httpx.Request) -> httpx.Response:
        return await current.handle(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(behind_one_url)) as http:
        nursery.start_soon(make_poller(log, http, position=Position("aaaa", 0)).run)
        for server in (b, a, b, a):  # each one outlasts a long-poll's 25 s wait
            await trio.sleep(60)
            current = server
        await trio.sleep(60)
    assert sorted(story_ids(log)) == ["1_story_a", "1_story_b"]
    assert notice_texts(log) == ["project billing restarted; reading its new events"] * 4


async def test_instance_changing_on_every_answer_backs_off_instead_of_spinning(
    autojump_clock: trio.testing.MockClock, log: InlineLog, nursery: trio.Nursery
) -> None:
    a, b = FakeProject(instance="aaaa"), FakeProject(instance="bbbb")
    a.publish(failure("1_story_a", BASE_MS + 1))  # both answer at once
    b.publish(failure("1_story_b", BASE_MS + 5))
    calls = 0

    async def round_robin(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        if request.url.path.endswith("/stream"):
            return await a.handle(request)  # 404: these servers have no stream
        calls += 1
        # A spinning poller never lets virtual time advance: fail, don't hang.
        assert calls < 100, "poller re-polls without waiting"
        return await (b if calls % 2 else a).handle(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(round_robin)) as http:
        nursery.start_soon(make_poller(log, http, position=Position("aaaa", 0)).run)
        await trio.sleep(60)
    # Requests at 0, 0, 1, 3, 7, 15, 23, ... 55 s: the second restart in a row
    # and every one after it waits the backoff (1, 2, 4, 8 s, capped at 8 s).
    assert calls == 11
    assert len(notice_texts(log)) == calls


# --- the server's clock jumps back an hour mid-stream (real gateway) ---------------


async def test_server_clock_jumping_back_an_hour_keeps_stamps_increasing_and_loses_nothing(
    tmp_path: Path,
) -> None:
    clock = FakeClockMs()
    out = tmp_path / "out.jsonl"
    async with trio.open_nursery() as servers:
        server: RunningServer = await servers.start(
            run_server, ServerConfig(port=0, clock_ms=clock, graceful_timeout_s=0.2)
        )
        async with gateway(gateway_config(tmp_path, billing=server.url), out) as running:
            await all_up(running)
            expected = []
            for n in range(10):
                if n == 5:
                    clock.now -= ONE_HOUR_MS
                story = f"{n}_story_clock"
                server.hub.publish(MergeFailure(story, "conflict"))
                expected.append(story)
                clock.now += 1
            await until(lambda: len(delivered(out, "billing")) >= 10)
            async with httpx.AsyncClient() as client:
                body = (await client.get(f"{server.url}/api/events")).json()
        server.shutdown()
    stamps = [event["timestamp_ms"] for event in body]
    assert len(stamps) == 10
    assert stamps == sorted(set(stamps))
    assert delivered(out, "billing") == expected
