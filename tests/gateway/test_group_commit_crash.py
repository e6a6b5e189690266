"""kill -9 of the gateway in the middle of a burst from 50 projects, then a restart.

The installed ``events-trio gateway`` runs as a subprocess over 50 real
project servers (``run_server``, stream mode), with a JSON-lines sink. It
is killed with SIGKILL while every project publishes, restarted over the
same state directory, and must end with every event exactly once, in
order per project, both in its log and in the sink file.
"""

from __future__ import annotations

import signal
import sqlite3
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Final

import httpx
import msgspec
import trio

from events_trio.core.events import MergeFailure
from events_trio.gateway.store import DB_FILENAME
from events_trio.server.run import RunningServer, run_server
from tests.support import EVENTS_TRIO, CliProcess

from .helpers import until
from .test_e2e import lines
from .test_stream_mode import server_config

PROJECTS: Final = 50
ROUNDS: Final = 40
DEADLINE_S: Final = 60.0


def start_gateway(config: Path, state: Path, out: Path) -> CliProcess:
    args = ["gateway", "--config", str(config), "--port", "0", "--state-dir", str(state)]
    return CliProcess([EVENTS_TRIO, *args, "--sink", f"jsonl:{out}"])


async def all_streaming(url: str) -> None:
    async with httpx.AsyncClient(timeout=10) as http:

        async def ready() -> bool:
            projects = (await http.get(f"{url}/api/projects")).json()
            return len(projects) == PROJECTS and all(p["mode"] == "stream" for p in projects)

        with trio.fail_after(DEADLINE_S):
            while not await ready():  # noqa: ASYNC110 -- state behind HTTP
                await trio.sleep(0.05)


def stories(out: Path) -> list[str]:
    return [line["story_id"] for line in lines(out) if line["type"] != "gateway_notice"]


def logged_stories(state: Path) -> list[str]:
    db = sqlite3.connect(state / DB_FILENAME)
    try:
        rows = db.execute("SELECT body FROM log WHERE kind = 'event' ORDER BY seq").fetchall()
    finally:
        db.close()
    return [msgspec.json.decode(body)["story_id"] for (body,) in rows]


def in_project_order(found: list[str]) -> bool:
    per_project: dict[str, list[int]] = {}
    for story in found:
        n, _, project = story.split("_", 2)
        per_project.setdefault(project, []).append(int(n))
    return all(numbers == sorted(numbers) for numbers in per_project.values())


async def test_kill_9_mid_burst_leaves_every_event_once_in_log_and_jsonl(tmp_path: Path) -> None:
    out, state, config = tmp_path / "out.jsonl", tmp_path / "state", tmp_path / "gateway.toml"
    async with trio.open_nursery() as nursery, AsyncExitStack() as stack:
        # One nursery for all 50 (not 50 nested ones): a failure stays readable.
        servers: list[RunningServer] = [
            await nursery.start(run_server, server_config()) for _ in range(PROJECTS)
        ]
        for server in servers:
            stack.callback(server.shutdown)
        config.write_text(
            "".join(f'[[project]]\nname = "p{i}"\nurl = "{s.url}"\n' for i, s in enumerate(servers))
        )
        first = stack.enter_context(start_gateway(config, state, out))
        await all_streaming(await trio.to_thread.run_sync(first.url))
        published: list[str] = []
        for round_no in range(ROUNDS):
            for i, server in enumerate(servers):
                story = f"{round_no}_story_p{i}"
                server.hub.publish(MergeFailure(story, "burst"))
                published.append(story)
            if round_no == ROUNDS // 2:
                await until(lambda: len(stories(out)) > 0, timeout_s=DEADLINE_S)
                first.stop(signal.SIGKILL)  # while the burst is being written
            await trio.sleep(0.005)
        assert first.proc.returncode == -signal.SIGKILL
        before_restart = len(stories(out))
        second = stack.enter_context(start_gateway(config, state, out))
        await until(lambda: len(stories(out)) >= len(published), timeout_s=DEADLINE_S)
        assert await trio.to_thread.run_sync(second.stop) == 0
    found, logged = stories(out), logged_stories(state)
    assert 0 < before_restart < len(published)  # the kill did land mid-burst
    assert Counter(found) == Counter(published)  # each exactly once
    assert Counter(logged) == Counter(published)
    assert in_project_order(found)
    assert in_project_order(logged)
