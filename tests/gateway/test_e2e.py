"""End to end: real project servers, a real gateway, a JSON-lines sink.

Real sockets on port 0; waits poll with generous deadlines, never a fixed sleep.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from events_trio.core.events import MergeFailure, StoredMergeFailure, encode
from events_trio.gateway import (
    GatewayConfig,
    PollSettings,
    ProjectConfig,
    RunningGateway,
    run_gateway,
)
from events_trio.gateway.sinks import JsonlSink
from events_trio.server.config import ServerConfig
from events_trio.server.run import RunningServer, run_server
from tests.support import complete_lines

from .helpers import until

FAST_POLL = PollSettings(interval_s=0.2, backoff_initial_s=0.05, backoff_max_s=0.3)


def lines(path: Path) -> list[dict[str, Any]]:
    return [msgspec.json.decode(line) for line in complete_lines(path)]


def delivered(path: Path, project: str) -> list[str]:
    return [
        line["story_id"]
        for line in lines(path)
        if line["project"] == project and line["type"] != "gateway_notice"
    ]


def count_is(path: Path, project: str, n: int) -> Callable[[], bool]:
    return lambda: len(delivered(path, project)) >= n


@asynccontextmanager
async def project_server(port: int = 0) -> AsyncIterator[RunningServer]:
    """A project server that is fully stopped when the block exits."""
    async with trio.open_nursery() as nursery:
        server: RunningServer = await nursery.start(
            run_server, ServerConfig(port=port, graceful_timeout_s=0.2)
        )
        yield server
        server.shutdown()


@asynccontextmanager
async def gateway(config: GatewayConfig, sink_path: Path) -> AsyncIterator[RunningGateway]:
    """A gateway with one JSON-lines sink, fully stopped when the block exits."""
    async with trio.open_nursery() as nursery:
        running: RunningGateway = await nursery.start(
            partial(run_gateway, config, sinks=[JsonlSink(sink_path)])
        )
        yield running
        running.shutdown()


def gateway_config(tmp_path: Path, **projects: str) -> GatewayConfig:
    return GatewayConfig(
        projects=tuple(ProjectConfig(name, url) for name, url in projects.items()),
        port=0,
        state_dir=tmp_path / "state",
        poll=FAST_POLL,
        graceful_timeout_s=0.2,
    )


async def all_up(running: RunningGateway) -> None:
    await until(lambda: all(p.status.state == "up" for p in running.pollers))


def publish(server: RunningServer, project: str, numbers: range) -> list[str]:
    stories = [f"{n}_story_{project}" for n in numbers]
    for story in stories:
        server.hub.publish(MergeFailure(story, "conflict"))
    return stories


async def test_events_from_three_projects_arrive_once_and_in_order(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    async with project_server() as a, project_server() as b, project_server() as c:
        config = gateway_config(tmp_path, a=a.url, b=b.url, c=c.url)
        async with gateway(config, out) as running:
            await all_up(running)
            expected: dict[str, list[str]] = {}
            for batch in range(3):
                for name, server in (("a", a), ("b", b), ("c", c)):
                    expected.setdefault(name, []).extend(
                        publish(server, name, range(batch * 10, batch * 10 + 10))
                    )
            for name in "abc":
                await until(count_is(out, name, 30))
    assert {name: delivered(out, name) for name in "abc"} == expected


async def test_project_server_replaced_under_a_running_gateway_loses_nothing(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    port = 0
    async with trio.open_nursery() as nursery:
        first: RunningServer = await nursery.start(
            run_server, ServerConfig(port=0, graceful_timeout_s=0.2)
        )
        port = first.port
        config = gateway_config(tmp_path, billing=first.url)
        async with gateway(config, out) as running:
            await all_up(running)
            expected = publish(first, "billing", range(5))
            await until(count_is(out, "billing", 5))
            first.shutdown()
            await until(lambda: running.pollers[0].status.failures > 0)
            async with project_server(port) as second:
                expected += publish(second, "billing", range(5, 10))
                await until(count_is(out, "billing", 10))
    assert delivered(out, "billing") == expected
    notices = [line["notice"] for line in lines(out) if line["type"] == "gateway_notice"]
    assert "restarted" in notices


async def test_gateway_restarted_with_its_state_dir_loses_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    async with project_server() as server:
        config = gateway_config(tmp_path, billing=server.url)
        async with gateway(config, out) as running:
            await all_up(running)
            expected = publish(server, "billing", range(5))
            await until(count_is(out, "billing", 5))
        expected += publish(server, "billing", range(5, 10))  # while the gateway is down
        async with gateway(config, out) as running:
            await all_up(running)
            expected += publish(server, "billing", range(10, 15))
            await until(count_is(out, "billing", 15))
    assert delivered(out, "billing") == expected


# --- a server that behaves like the Rust original ----------------------------


@dataclasses.dataclass
class RustLikeServer:
    """``GET /api/events?since=``: strict ``>``, ignores ``wait`` and other params, no headers."""

    events: list[StoredMergeFailure] = dataclasses.field(default_factory=list)
    requests: int = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        self.requests += 1
        query = dict(p.partition("=")[::2] for p in scope["query_string"].decode().split("&") if p)
        since = int(query.get("since") or 0)
        body = b"[" + b",".join(encode(e) for e in self.events if e.timestamp_ms > since) + b"]"
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        await send({"type": message["type"] + ".complete"})
        if message["type"] == "lifespan.shutdown":
            return


async def test_gateway_delivers_everything_from_a_rust_like_server(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    rust = RustLikeServer([StoredMergeFailure("0_story_old", "x", 1000)])
    hc = Config()
    hc.bind = ["127.0.0.1:0"]
    hc.accesslog = None
    hc.graceful_timeout = 0.1
    binds = await nursery.start(serve, rust, hc)
    out = tmp_path / "out.jsonl"
    async with gateway(gateway_config(tmp_path, rust=binds[0]), out) as running:
        await all_up(running)
        rust.events += [StoredMergeFailure(f"{n}_story_rust", "x", 1000 + n) for n in range(1, 4)]
        await until(count_is(out, "rust", 3))
        rust.events += [StoredMergeFailure(f"{n}_story_rust", "x", 1000 + n) for n in range(4, 8)]
        await until(count_is(out, "rust", 7))
        assert running.pollers[0].status.mode == "interval"
    assert delivered(out, "rust") == [f"{n}_story_rust" for n in range(1, 8)]
