"""SIGTERM to ``events-trio serve`` and ``events-trio gateway`` while events flow.

Both run as subprocesses, as an operator runs them; the test ingests events
through ``POST /api/events`` in a loop (one request per event, as fast as
the server acknowledges them) while the gateway long-polls, and checks the
JSON-lines sink file. Waits poll in real time with generous deadlines.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import httpx
import msgspec
import trio

from events_trio.gateway.config import DEFAULT_GATEWAY_GRACEFUL_TIMEOUT_S
from events_trio.server.config import DEFAULT_DRAIN_S, DEFAULT_GRACEFUL_TIMEOUT_S
from tests.support import EVENTS_TRIO, CliProcess, complete_lines, until

TOKEN: Final = "t0ken-for-sigterm"
DEADLINE_S: Final = 30.0
#: Interpreter start-up is not part of a shutdown, but teardown is: allow for
#: it on a busy 2-core machine on top of the grace period.
EXIT_SLACK_S: Final = 5.0


def lines(path: Path) -> list[dict[str, Any]]:
    return [msgspec.json.decode(line) for line in complete_lines(path)]


def delivered(path: Path) -> list[str]:
    return [line["story_id"] for line in lines(path) if line["type"] != "gateway_notice"]


def at_least(path: Path, count: Callable[[], int]) -> Callable[[], bool]:
    return lambda: len(delivered(path)) >= count()


def serve(port: int = 0) -> CliProcess:
    args = [EVENTS_TRIO, "serve", "--port", str(port), "--no-watch", "--capacity", "5000"]
    return CliProcess(args, env={"EVENTS_TRIO_INGEST_TOKEN": TOKEN})


def gateway(tmp_path: Path, server_url: str, out: Path) -> CliProcess:
    args = [EVENTS_TRIO, "gateway", "--port", "0", "--state-dir", str(tmp_path / "state")]
    return CliProcess([*args, "--project", f"billing={server_url}", "--sink", f"jsonl:{out}"])


async def url_of(process: CliProcess) -> str:
    return await trio.to_thread.run_sync(process.url)


async def wait_up(http: httpx.AsyncClient, gateway_url: str) -> None:
    async def up() -> bool:
        projects = (await http.get(f"{gateway_url}/api/projects")).json()
        return all(project["state"] == "up" for project in projects)

    with trio.fail_after(DEADLINE_S):
        # The gateway's state is behind HTTP: no event to wait on.
        while not await up():  # noqa: ASYNC110
            await trio.sleep(0.02)


async def sigterm(process: CliProcess) -> tuple[int, float]:
    """SIGTERM ``process``; its exit code and the seconds it took to exit."""

    def stop() -> tuple[int, float]:
        started = time.monotonic()
        code = process.stop(timeout_s=DEADLINE_S)
        return code, time.monotonic() - started

    return await trio.to_thread.run_sync(stop)


async def ingest(
    http: httpx.AsyncClient, server_url: str, posted: list[str], stop: trio.Event
) -> None:
    """POST one event at a time until ``stop`` is set or the server goes away.

    Stopped between requests, never cancelled mid-request: a cancelled POST
    may have been stored without the test knowing.
    """
    headers = {"Authorization": f"Bearer {TOKEN}"}
    n = len(posted)
    while not stop.is_set():
        story = f"{n}_story_load"
        event = {"type": "merge_failure", "story_id": story, "reason": "load"}
        try:
            response = await http.post(f"{server_url}/api/events", json=event, headers=headers)
        except httpx.TransportError:
            return  # the server went away (this story may or may not be stored)
        if response.status_code == 503:
            return  # shutting down: refused, so not stored, and the client knows
        assert response.status_code == 202
        posted.append(story)
        n += 1


def number(story: str) -> int:
    return int(story.split("_", 1)[0])


async def test_sigterm_to_gateway_under_load_exits_0_and_its_restart_repeats_and_loses_nothing(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    posted: list[str] = []
    with serve() as server:
        server_url = await url_of(server)
        async with httpx.AsyncClient(timeout=10) as http, trio.open_nursery() as nursery:
            with gateway(tmp_path, server_url, out) as first:
                await wait_up(http, await url_of(first))
                load = trio.Event()
                nursery.start_soon(ingest, http, server_url, posted, load)
                await until(at_least(out, lambda: 100), DEADLINE_S)
                code, took = await sigterm(first)
            assert code == 0
            assert took < DEFAULT_GATEWAY_GRACEFUL_TIMEOUT_S + EXIT_SLACK_S
            with gateway(tmp_path, server_url, out) as second:
                await url_of(second)
                during = len(posted)
                await until(at_least(out, lambda: during + 100), DEADLINE_S)
                load.set()
                await until(lambda: bool(nursery.child_tasks) is False, DEADLINE_S)
                await until(at_least(out, lambda: len(posted)), DEADLINE_S)
                assert (await sigterm(second))[0] == 0
        assert (await sigterm(server))[0] == 0
    assert delivered(out) == posted


async def test_sigterm_to_server_under_load_exits_0_and_gateway_keeps_what_it_acknowledged(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    posted: list[str] = []
    with serve() as server:
        server_url = await url_of(server)
        port = int(server_url.rsplit(":", 1)[1])
        async with httpx.AsyncClient(timeout=10) as http, trio.open_nursery() as nursery:
            with gateway(tmp_path, server_url, out) as gw:
                await wait_up(http, await url_of(gw))
                nursery.start_soon(ingest, http, server_url, posted, trio.Event())
                await until(at_least(out, lambda: 100), DEADLINE_S)
                code, took = await sigterm(server)
                assert code == 0
                assert took < DEFAULT_DRAIN_S * 2 + DEFAULT_GRACEFUL_TIMEOUT_S + EXIT_SLACK_S
                # The loader stops at the first refusal (503) or closed socket:
                # every story it saw acknowledged (202) must reach the sink.
                await until(lambda: bool(nursery.child_tasks) is False, DEADLINE_S)
                acknowledged = posted[:]
                await until(at_least(out, lambda: len(acknowledged)), DEADLINE_S)
                restart_at = len(posted)
                with serve(port) as again:
                    await url_of(again)
                    load = trio.Event()
                    nursery.start_soon(ingest, http, server_url, posted, load)
                    await until(at_least(out, lambda: restart_at + 100), DEADLINE_S)
                    load.set()
                    await until(lambda: bool(nursery.child_tasks) is False, DEADLINE_S)
                    after_restart = set(posted[restart_at:])
                    await until(lambda: after_restart <= set(delivered(out)), DEADLINE_S)
                    assert (await sigterm(again))[0] == 0
                assert (await sigterm(gw))[0] == 0
    got = delivered(out)
    # Nothing twice or out of order; nothing acknowledged lost: once shutdown
    # begins the server refuses new events (503) and gives pollers its drain
    # period to fetch the last ones it took.
    numbers = [number(story) for story in got]
    assert numbers == sorted(set(numbers))
    assert got[: len(acknowledged)] == acknowledged
    assert after_restart <= set(got)
    assert "restarted" in [line.get("notice") for line in lines(out)]
