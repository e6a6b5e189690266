"""``GET /api/events/stream`` on the gateway: real project servers, a real gateway."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import msgspec
import trio

from events_trio.core.events import MergeFailure
from tests.sse import HTTPCORE_EARLY_CLOSE, Frame, next_events, open_stream
from tests.support import free_port

from .test_e2e import all_up, gateway, gateway_config, project_server

pytestmark = HTTPCORE_EARLY_CLOSE

STREAM = "/api/events/stream"


def body(frame: Frame) -> dict[str, object]:
    decoded: dict[str, object] = msgspec.json.decode(frame.data or "")
    return decoded


async def test_events_carry_project_and_gateway_stamp_ids(tmp_path: Path) -> None:
    async with project_server() as a, project_server() as b:
        config = gateway_config(tmp_path, a=a.url, b=b.url)
        async with (
            gateway(config, tmp_path / "out.jsonl") as running,
            httpx.AsyncClient(base_url=running.url, timeout=10) as http,
        ):
            await all_up(running)
            async with open_stream(http, STREAM) as (_, stream):
                a.hub.publish(MergeFailure("1_story_a", "conflict"))
                first = await next_events(stream, 1)
                b.hub.publish(MergeFailure("2_story_b", "conflict"))
                second = await next_events(stream, 1)
            polled = (await http.get("/api/events")).json()
    found = first + second
    assert [(body(f)["project"], body(f)["story_id"]) for f in found] == [
        ("a", "1_story_a"),
        ("b", "2_story_b"),
    ]
    assert [f.id for f in found] == [e["timestamp_ms"] for e in polled]
    assert [f.data for f in found] == [msgspec.json.encode(e).decode() for e in polled]
    assert all(isinstance(body(f)["project_timestamp_ms"], int) for f in found)


async def test_reconnect_with_last_event_id_resumes_without_duplicates(tmp_path: Path) -> None:
    async with project_server() as a:
        config = gateway_config(tmp_path, a=a.url)
        async with (
            gateway(config, tmp_path / "out.jsonl") as running,
            httpx.AsyncClient(base_url=running.url, timeout=10) as http,
        ):
            await all_up(running)
            for n in (1, 2):
                a.hub.publish(MergeFailure(f"{n}_story_a", "conflict"))
            async with open_stream(http, STREAM) as (_, stream):
                first = await next_events(stream, 2)
            for n in (3, 4):
                a.hub.publish(MergeFailure(f"{n}_story_a", "conflict"))
            headers = {"Last-Event-ID": str(first[-1].id)}
            async with open_stream(http, STREAM, headers=headers) as (_, stream):
                rest = await next_events(stream, 2)
    assert [body(f)["story_id"] for f in first + rest] == [f"{n}_story_a" for n in (1, 2, 3, 4)]


async def test_notices_are_sent_as_notice_events(tmp_path: Path) -> None:
    config = gateway_config(tmp_path, gone=f"http://127.0.0.1:{free_port()}")
    async with (
        gateway(config, tmp_path / "out.jsonl") as running,
        httpx.AsyncClient(base_url=running.url, timeout=10) as http,
        open_stream(http, STREAM) as (_, stream),
    ):
        found = await next_events(stream, 1)
    assert found[0].event == "notice"
    assert body(found[0])["type"] == "gateway_notice"
    assert str(body(found[0])["message"]).startswith("project gone unreachable")


async def test_idle_stream_gets_keep_alive_comments(tmp_path: Path) -> None:
    config = dataclasses.replace(
        gateway_config(tmp_path, gone=f"http://127.0.0.1:{free_port()}"), sse_keepalive_s=0.05
    )
    async with (
        gateway(config, tmp_path / "out.jsonl") as running,
        httpx.AsyncClient(base_url=running.url, timeout=10) as http,
        open_stream(http, STREAM, params={"since": str(2**64 - 1)}) as (_, stream),
    ):
        with trio.fail_after(10):
            async for frame in stream:
                if frame.comments:
                    break
    assert frame.comments == ["keep-alive"]


async def test_shutdown_ends_an_open_stream(tmp_path: Path) -> None:
    config = gateway_config(tmp_path, gone=f"http://127.0.0.1:{free_port()}")
    async with (
        gateway(config, tmp_path / "out.jsonl") as running,
        httpx.AsyncClient(base_url=running.url, timeout=10) as http,
        open_stream(http, STREAM) as (_, stream),
    ):
        await stream.__anext__()  # the retry: frame: the stream is open
        running.shutdown()
        with trio.fail_after(5):
            rest = [frame async for frame in stream]
    assert all(frame.data is None or frame.event == "notice" for frame in rest)
