"""Apprise sinks against a real local HTTP receiver (Quart-Trio on Hypercorn, port 0).

The receiver stands in for a chat service: ``json://`` posts Apprise's
generic JSON, ``mmost://`` a Mattermost incoming webhook, ``ntfy://`` an
ntfy server; all three can target 127.0.0.1 over plain HTTP. Apprise runs
in worker threads, so these tests use real time with generous bounds.
"""

from __future__ import annotations

import itertools
import logging
import textwrap
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec
import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio

from events_trio.core.errors import ConfigError
from events_trio.core.events import StageTransition, StoredStoryBlocked
from events_trio.gateway.config import (
    DEFAULT_GATEWAY_GRACEFUL_TIMEOUT_S,
    SinkSpec,
    load_config,
    parse_sink_flag,
)
from events_trio.gateway.records import Incoming
from events_trio.gateway.sinks import AppriseSink, SinkRunner, SinkSettings
from events_trio.gateway.store import SqliteLog, open_sqlite_log
from events_trio.gateway.tracker import Position
from tests.support import EVENTS_TRIO, CliProcess

from .helpers import BASE_MS, failure, until

FAST: Final = SinkSettings(backoff_initial_s=0.05, backoff_max_s=0.2)
SECRET: Final = "s3cr3t-hook-token"
PROJECT_EVENT: Final = {
    "type": "merge_failure",
    "story_id": "42_story_x",
    "reason": "conflict",
    "timestamp_ms": BASE_MS,
}
#: Interpreter teardown on a busy 2-core machine, on top of the grace period.
EXIT_SLACK_S: Final = 2.5


@dataclass
class Receiver:
    """Records what chat services would receive; can fail or hang."""

    port: int = 0
    failures: int = 0
    hang: bool = False
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    refused: int = 0
    arrived: int = 0

    def url(self, scheme: str, path: str = f"hooks/{SECRET}") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/{path}"

    def texts(self, key: str = "message") -> list[str]:
        return [str(payload[key]) for _, payload in self.posts]


@pytest.fixture
async def receiver(nursery: trio.Nursery) -> Receiver:
    state = Receiver()
    app = QuartTrio("receiver")

    @app.get("/api/events")
    async def events() -> Response:
        # A project server like the Rust original: one merge failure in its buffer.
        since = int(request.args.get("since", "0"))
        body = b"[]" if since >= BASE_MS else msgspec.json.encode([PROJECT_EVENT])
        return Response(body, 200, content_type="application/json")

    @app.post("/", defaults={"path": ""})
    @app.post("/<path:path>")
    async def hook(path: str) -> Response:
        payload = msgspec.json.decode(await request.get_data())
        state.arrived += 1
        if state.hang:
            await trio.sleep_forever()
        if state.failures:
            state.failures -= 1
            state.refused += 1
            return Response("busy", 500)
        state.posts.append(("/" + path, payload))
        return Response("ok", 200)

    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 0.1
    binds = await nursery.start(serve, app, config)
    state.port = int(binds[0].rsplit(":", 1)[1])
    return state


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[SqliteLog]:
    store = await open_sqlite_log(tmp_path)
    yield store
    await store.aclose()


_stamps = itertools.count(1)


async def moves(log: SqliteLog, *stories: str, project: str = "billing") -> None:
    """Append moves Current -> QA, each with a project stamp of its own."""
    stamps = [BASE_MS + next(_stamps) for _ in stories]
    records = [
        Incoming(StageTransition(s, "2_current", "3_qa", t), t)
        for s, t in zip(stories, stamps, strict=True)
    ]
    await log.append(project, records, Position("", stamps[-1]))


def sink(url: str, *, window_s: float = 0.0, public_url: str | None = None) -> AppriseSink:
    return AppriseSink(url, group_window_s=window_s, min_interval_s=0.0, public_url=public_url)


async def test_json_url_delivers_a_markdown_message_naming_project_and_story(
    receiver: Receiver, log: SqliteLog, nursery: trio.Nursery
) -> None:
    await nursery.start(SinkRunner(sink(receiver.url("json")), log, FAST).run)
    await log.append("billing", [Incoming(failure("42_story_x", 1), 1)], Position("", 1))
    await until(lambda: bool(receiver.posts))
    path, payload = receiver.posts[0]
    assert (path, payload["title"], payload["message"]) == (
        f"/hooks/{SECRET}",
        "events-trio: billing",
        "**billing**\n- merge failed: `42_story_x` — conflict",
    )


@pytest.mark.parametrize(
    ("scheme", "path", "key"),
    [("mmost", SECRET, "text"), ("ntfy", "pipeline-topic", "message")],
)
async def test_chat_schemes_on_localhost_receive_the_story(
    receiver: Receiver, log: SqliteLog, nursery: trio.Nursery, scheme: str, path: str, key: str
) -> None:
    await nursery.start(SinkRunner(sink(receiver.url(scheme, path)), log, FAST).run)
    await moves(log, "42_story_my_feature")
    await until(lambda: bool(receiver.posts))
    assert "`42_story_my_feature` Current → QA" in receiver.texts(key)[0]
    assert "billing" in receiver.texts(key)[0]


async def test_a_burst_is_one_message_with_moves_grouped_per_project(
    receiver: Receiver, log: SqliteLog, nursery: trio.Nursery
) -> None:
    await nursery.start(SinkRunner(sink(receiver.url("json"), window_s=0.5), log, FAST).run)
    await moves(log, "1_a", "2_b", "3_c")
    await moves(log, "7_z", project="search")
    await until(lambda: bool(receiver.posts))
    await moves(log, "8_later")
    await until(lambda: len(receiver.posts) == 2)
    assert [p["title"] for _, p in receiver.posts] == [
        "events-trio: 2 projects",
        "events-trio: billing",
    ]
    assert receiver.texts()[0] == (
        "**billing**\n- 3 stories moved to QA (`1_a`, `2_b`, `3_c`)\n"
        "**search**\n- `7_z` Current → QA"
    )


async def test_messages_link_the_public_page_when_configured(
    receiver: Receiver, log: SqliteLog, nursery: trio.Nursery
) -> None:
    url = "https://events.example.com/"
    await nursery.start(SinkRunner(sink(receiver.url("json"), public_url=url), log, FAST).run)
    blocked = StoredStoryBlocked("43_story_other", "retry limit exceeded", 5)
    await log.append("billing", [Incoming(blocked, 5)], Position("", 5))
    await until(lambda: bool(receiver.posts))
    assert receiver.texts()[0].endswith("\n\n[Open the live page](https://events.example.com/)")


async def test_500_twice_then_200_still_delivers_everything_in_order_without_logging_the_url(
    receiver: Receiver,
    log: SqliteLog,
    nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.failures = 2
    runner = SinkRunner(sink(receiver.url("json")), log, FAST)
    await nursery.start(runner.run)
    await moves(log, "1_a")
    await until(lambda: bool(receiver.posts))
    await moves(log, "2_b")
    await until(lambda: len(receiver.posts) == 2)
    assert (receiver.refused, runner.failures) == (2, 2)
    assert receiver.texts() == [
        "**billing**\n- `1_a` Current → QA",
        "**billing**\n- `2_b` Current → QA",
    ]
    assert "sink apprise:" in caplog.text
    assert "apprise json://: delivery failed" in caplog.text
    assert SECRET not in caplog.text


async def test_offset_is_named_by_a_hash_and_a_restarted_sink_resumes_after_delivered(
    receiver: Receiver, log: SqliteLog
) -> None:
    url = receiver.url("json")
    first = sink(url)
    assert first.name.startswith("apprise:")
    assert SECRET not in first.name
    assert SECRET not in repr(SinkSpec("apprise", url))
    async with trio.open_nursery() as nursery:
        runner = SinkRunner(first, log, FAST)
        await nursery.start(runner.run)
        await moves(log, "1_a")
        # The post reaches the receiver before its answer reaches the runner:
        # stop only once the runner has counted the batch delivered.
        await until(lambda: runner.offset > 0)
        nursery.cancel_scope.cancel()
    await log.group.flush()  # offsets ride with the next group commit, or this flush at stop
    async with trio.open_nursery() as nursery:
        await nursery.start(SinkRunner(sink(url), log, FAST).run)
        await moves(log, "2_b")
        await until(lambda: len(receiver.posts) == 2)
        nursery.cancel_scope.cancel()
    assert receiver.texts()[1] == "**billing**\n- `2_b` Current → QA"


async def test_a_hung_endpoint_does_not_hold_cancellation(
    receiver: Receiver, log: SqliteLog
) -> None:
    receiver.hang = True
    started = trio.current_time()
    with trio.move_on_after(15):
        async with trio.open_nursery() as nursery:
            # rto=60: Apprise itself would wait a minute for the answer.
            await nursery.start(SinkRunner(sink(receiver.url("json") + "?rto=60"), log, FAST).run)
            await moves(log, "1_a")
            await until(lambda: receiver.arrived == 1)
            nursery.cancel_scope.cancel()
    assert trio.current_time() - started < 10


def test_sink_flag_takes_an_apprise_url() -> None:
    spec = parse_sink_flag("apprise:discord://1234/abcd")
    assert (spec.kind, spec.target) == ("apprise", "discord://1234/abcd")


def test_an_url_apprise_does_not_understand_is_refused_naming_only_its_scheme() -> None:
    with pytest.raises(
        ConfigError, match=r"^sink apprise: not a valid Apprise URL \(scheme 'nope'\);"
    ) as caught:
        parse_sink_flag(f"apprise:nope://{SECRET}")
    assert SECRET not in str(caught.value)


def test_toml_apprise_sink_errors_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        '[[project]]\nname = "billing"\nurl = "http://127.0.0.1:7070"\n\n'
        f'[[sink]]\nkind = "apprise"\n\nurl = "nope://{SECRET}"\n'
    )
    with pytest.raises(ConfigError, match=rf"^{path}:8: sink apprise: not a valid Apprise URL"):
        load_config(path)


def test_toml_apprise_sink_keeps_grouping_settings(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        '[gateway]\npublic_url = "https://events.example.com/"\n'
        '[[sink]]\nkind = "apprise"\nurl = "json://127.0.0.1:9/x"\n'
        "group_window_s = 5\nmin_interval_s = 3\n"
    )
    config = load_config(path)
    spec = config.sinks[0]
    assert (config.public_url, spec.kind, spec.group_window_s, spec.min_interval_s) == (
        "https://events.example.com/",
        "apprise",
        5.0,
        3.0,
    )


async def test_sigterm_to_a_gateway_whose_apprise_endpoint_hangs_exits_within_the_grace_period(
    receiver: Receiver, tmp_path: Path
) -> None:
    receiver.hang = True
    args = [EVENTS_TRIO, "gateway", "--port", "0", "--state-dir", str(tmp_path / "state")]
    args += ["--project", f"billing=http://127.0.0.1:{receiver.port}", "--replay"]
    args += ["--sink", "apprise:" + receiver.url("json") + "?rto=60", "--log-level", "debug"]
    with CliProcess(args) as gateway:
        await trio.to_thread.run_sync(gateway.url)
        await until(lambda: receiver.arrived == 1, 30)

        def stop() -> tuple[int, float]:
            started = time.monotonic()
            return gateway.stop(timeout_s=30), time.monotonic() - started

        code, took = await trio.to_thread.run_sync(stop)
    assert code == 0
    assert took < DEFAULT_GATEWAY_GRACEFUL_TIMEOUT_S + EXIT_SLACK_S
    assert not [line for line in gateway.lines if SECRET in line]


def test_the_documented_slack_discord_and_matrix_examples_load(tmp_path: Path) -> None:
    docs = (Path(__file__).parents[2] / "docs" / "gateway.md").read_text()
    blocks = [b.split("```")[0] for b in docs.split("```toml")[1:]]
    example = textwrap.dedent(next(b for b in blocks if "discord://" in b))
    path = tmp_path / "gateway.toml"
    path.write_text(example)
    schemes = [spec.target.split("://")[0] for spec in load_config(path).sinks]
    assert schemes == ["slack", "discord", "matrixs"]
