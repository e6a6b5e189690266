"""The ``stream`` transport and mode detection against real project servers.

Real Hypercorn servers on port 0 (``run_server``, or the real server app
behind a wrapper that hides its stream or makes it look like the Rust
original), a real gateway, a JSON-lines sink.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel
from hypercorn.config import Config
from hypercorn.trio import serve

from events_trio.core.events import MergeFailure
from events_trio.server.app import create_asgi
from events_trio.server.config import ServerConfig
from events_trio.server.hub import EventHub
from events_trio.server.run import RunningServer, run_server

from .helpers import until
from .proxy import cutting_proxy
from .test_e2e import all_up, count_is, delivered, gateway, gateway_config, lines, publish

ASGIApp = Any


def notices(path: Path) -> list[str]:
    return [line["notice"] for line in lines(path) if line["type"] == "gateway_notice"]


async def test_stream_mode_delivers_every_event_once_and_in_order(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    async with (
        run_project() as a,
        run_project() as b,
        gateway(gateway_config(tmp_path, a=a.url, b=b.url), out) as running,
    ):
        await all_up(running)
        await until(lambda: all(p.status.mode == "stream" for p in running.pollers))
        expected: dict[str, list[str]] = {"a": [], "b": []}
        for burst in range(4):
            for name, server in (("a", a), ("b", b)):
                numbers = range(burst * 50, burst * 50 + 50)
                expected[name] += publish(server, name, numbers)
            await trio.lowlevel.checkpoint()
        await until(count_is(out, "a", 200))
        await until(count_is(out, "b", 200))
        polls = [p.status.polls for p in running.pollers]
    assert {name: delivered(out, name) for name in "ab"} == expected
    assert polls == [2, 2]  # the first poll (where the stream stands), then one stream each


async def test_server_restarted_mid_stream_is_read_from_its_start(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    async with trio.open_nursery() as nursery:
        first: RunningServer = await nursery.start(run_server, server_config())
        async with gateway(gateway_config(tmp_path, billing=first.url), out) as running:
            await all_up(running)
            await until(lambda: running.pollers[0].status.mode == "stream")
            expected = publish(first, "billing", range(3))
            await until(count_is(out, "billing", 3))
            first.shutdown()
            await until(lambda: running.pollers[0].status.failures > 0)
            # The new instance's clock is an hour behind: its stamps are all
            # below the old cursor, so resuming after it would skip them.
            behind = first.hub.buffer.latest_ms - 3_600_000
            config = server_config(port=first.port, clock_ms=lambda: behind)
            async with run_project(config) as second:
                expected += publish(second, "billing", range(3, 6))
                await until(count_is(out, "billing", 6))
                assert running.pollers[0].status.mode == "stream"
    assert delivered(out, "billing") == expected
    assert notices(out).count("restarted") == 1


async def test_stream_cut_mid_frame_resumes_from_the_cursor(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    async with (
        run_project() as server,
        cutting_proxy(server.port, b"1_story_billing") as (url, proxy),
        gateway(gateway_config(tmp_path, billing=url), out) as running,
    ):
        await all_up(running)
        await until(lambda: running.pollers[0].status.mode == "stream")
        expected = publish(server, "billing", range(1))
        await until(count_is(out, "billing", 1))
        expected += publish(server, "billing", range(1, 4))  # cut inside event 1's frame
        await until(count_is(out, "billing", 4))
        assert proxy.cut_done
        assert running.pollers[0].status.failures == 1
    assert delivered(out, "billing") == expected
    first_stamp = lines(out)[0]["project_timestamp_ms"]
    assert f"Last-Event-ID: {first_stamp}".encode() in proxy.stream_requests[-1]
    assert len(proxy.stream_requests) == 2


async def test_events_evicted_while_the_gateway_was_away_give_one_exact_gap_notice(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    async with run_project(server_config(capacity=5)) as server:
        config = gateway_config(tmp_path, billing=server.url)
        async with gateway(config, out) as running:
            await all_up(running)
            await until(lambda: running.pollers[0].status.mode == "stream")
            expected = publish(server, "billing", range(2))
            await until(count_is(out, "billing", 2))
        publish(server, "billing", range(2, 17))  # 15 while away: only the last 5 stay
        async with gateway(config, out) as running:
            await until(count_is(out, "billing", 7))
            assert running.pollers[0].status.mode == "stream"
    assert delivered(out, "billing") == expected + [f"{n}_story_billing" for n in range(12, 17)]
    messages = [line["message"] for line in lines(out) if line["type"] == "gateway_notice"]
    assert messages == ["10 events missed from billing"]


async def test_server_without_the_stream_is_long_polled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="events_trio")
    out = tmp_path / "out.jsonl"
    async with (
        wrapped_project(without_stream) as (url, hub),
        gateway(gateway_config(tmp_path, old=url), out) as running,
    ):
        await all_up(running)
        await until(lambda: running.pollers[0].status.mode == "long-poll")
        for n in range(3):
            hub.publish(MergeFailure(f"{n}_story_old", "conflict"))
        await until(count_is(out, "old", 3))
        assert running.pollers[0].status.mode == "long-poll"
    assert delivered(out, "old") == [f"{n}_story_old" for n in range(3)]
    modes = [r.getMessage() for r in caplog.records if "mode" in r.getMessage()]
    assert modes == ["[old] reading in long-poll mode"]  # once: the refused stream changes nothing


async def test_rust_like_server_is_polled_on_an_interval(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    async with (
        wrapped_project(rust_like) as (url, hub),
        gateway(gateway_config(tmp_path, rust=url), out) as running,
    ):
        await all_up(running)
        for n in range(3):
            hub.publish(MergeFailure(f"{n}_story_rust", "conflict"))
        await until(count_is(out, "rust", 3))
        assert running.pollers[0].status.mode == "interval"
    assert delivered(out, "rust") == [f"{n}_story_rust" for n in range(3)]


# --- servers ---------------------------------------------------------------------


def server_config(**changes: Any) -> ServerConfig:
    return ServerConfig(**{"port": 0, "graceful_timeout_s": 0.2, **changes})


@asynccontextmanager
async def run_project(config: ServerConfig | None = None) -> AsyncIterator[RunningServer]:
    async with trio.open_nursery() as nursery:
        server: RunningServer = await nursery.start(run_server, config or server_config())
        yield server
        server.shutdown()


async def without_stream(app: ASGIApp, scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Our server before it had ``/api/events/stream``: 404 there."""
    if scope["type"] == "http" and scope["path"] == "/api/events/stream":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await app(scope, receive, send)


async def rust_like(app: ASGIApp, scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The Rust original: no stream, ``wait`` ignored, no ``X-Events-*`` headers."""
    if scope["type"] != "http" or scope["path"] == "/api/events/stream":
        await without_stream(app, scope, receive, send)
        return
    query = b"&".join(p for p in scope["query_string"].split(b"&") if not p.startswith(b"wait="))

    async def strip(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            kept = [h for h in message["headers"] if not h[0].lower().startswith(b"x-events-")]
            message = {**message, "headers": kept}
        await send(message)

    await app({**scope, "query_string": query}, receive, strip)


@asynccontextmanager
async def wrapped_project(wrapper: Any) -> AsyncIterator[tuple[str, EventHub]]:
    """The real server app (``create_asgi``) behind ``wrapper``, on Hypercorn."""
    hub = EventHub()
    app = create_asgi(hub)

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await wrapper(app, scope, receive, send)

    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 0.1
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        binds = await nursery.start(serve, asgi, config)
        yield binds[0], hub
        hub.stop()
        nursery.cancel_scope.cancel()
