"""SIGHUP: the configuration read again and applied, or refused and kept."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import trio

from events_trio.core.events import MergeFailure
from events_trio.gateway import (
    GatewayConfig,
    PollSettings,
    RunningGateway,
    load_config,
    run_gateway,
)
from events_trio.gateway.reload import ReloadResult, reload_config
from tests.gateway.helpers import project_server
from tests.support import EVENTS_TRIO, CliProcess, complete_lines

from .helpers import until

BASE = GatewayConfig(
    port=0,
    poll=PollSettings(interval_s=0.2, backoff_initial_s=0.05, backoff_max_s=0.3),
    graceful_timeout_s=0.2,
)


def toml(projects: dict[str, str], *sinks: str) -> str:
    text = "".join(f'[[project]]\nname = "{n}"\nurl = "{u}"\n' for n, u in projects.items())
    return text + "".join(f"[[sink]]\n{sink}\n" for sink in sinks)


def jsonl(path: Path) -> list[str]:
    return [msgspec.json.decode(line)["story_id"] for line in complete_lines(path)]


@asynccontextmanager
async def gateway(path: Path, state: Path) -> AsyncIterator[tuple[RunningGateway, Any]]:
    config = load_config(path, BASE.replace(state_dir=state))
    load = partial(load_config, path, BASE.replace(state_dir=state))
    async with trio.open_nursery() as nursery:
        running: RunningGateway = await nursery.start(run_gateway, config)

        async def reload() -> ReloadResult | None:
            return await reload_config(load, config, running.registry, running.sinkset)

        yield running, reload
        running.shutdown()


async def test_reload_adds_removes_and_restarts_projects_and_sinks(tmp_path: Path) -> None:
    path, out = tmp_path / "gateway.toml", tmp_path / "out.jsonl"
    async with project_server() as a, project_server() as b:
        path.write_text(toml({"a": a.url}, 'kind = "console"'))
        async with gateway(path, tmp_path / "state") as (running, reload):
            await until(lambda: running.registry.statuses[0].state == "up")
            path.write_text(toml({"b": b.url}, f'kind = "jsonl"\npath = "{out}"'))
            assert await reload() == ReloadResult(1, 1, 1, 1)
            assert running.registry.names == ["b"]
            await until(lambda: running.registry.statuses[0].state == "up")
            a.hub.publish(MergeFailure("1_from_removed_a", "conflict"))
            b.hub.publish(MergeFailure("2_from_new_b", "conflict"))
            await until(lambda: jsonl(out) == ["2_from_new_b"])
            assert [r.sink.name for r in running.runners] == [f"jsonl:{out}"]


async def test_unchanged_projects_and_sinks_keep_running(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    async with project_server() as a:
        path.write_text(toml({"a": a.url}, 'kind = "console"'))
        async with gateway(path, tmp_path / "state") as (running, reload):
            poller, runner = running.registry.pollers[0], running.runners[0]
            assert await reload() == ReloadResult(0, 0, 0, 0)
            assert (running.registry.pollers[0], running.runners[0]) == (poller, runner)


@pytest.mark.parametrize(
    "bad",
    [
        '[[project]]\nname = "a"\nurl = "nope"\n',
        '[[project]]\nname = "a"\nurl = "http://127.0.0.1:9"\n[[sink]]\nkind = "jsonl"\ntypes = ["x"]\npath = "o"\n',
        "[[project]\n",
    ],
)
async def test_a_bad_file_is_logged_and_the_running_configuration_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, bad: str
) -> None:
    path = tmp_path / "gateway.toml"
    async with project_server() as a:
        path.write_text(toml({"a": a.url}, 'kind = "console"'))
        async with gateway(path, tmp_path / "state") as (running, reload):
            path.write_text(bad)
            assert await reload() is None
            assert running.registry.names == ["a"]
            assert [r.sink.name for r in running.runners] == ["console"]
    refused = [r.getMessage() for r in caplog.records if "reload refused" in r.getMessage()]
    assert len(refused) == 1
    assert refused[0].startswith(f"reload refused, the running configuration is kept: {path}")


async def test_sighup_to_the_gateway_process_reloads_or_keeps(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    async with project_server() as a, project_server() as b:
        path.write_text(toml({"a": a.url}))
        args = [EVENTS_TRIO, "gateway", "--config", str(path), "--port", "0"]
        with CliProcess([*args, "--state-dir", str(tmp_path / "state")]) as gw:
            url = await trio.to_thread.run_sync(gw.url)
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:

                async def names() -> list[str]:
                    return [p["name"] for p in (await http.get("/api/projects")).json()]

                path.write_text(toml({"a": a.url, "b": b.url}))
                gw.proc.send_signal(signal.SIGHUP)
                await trio.to_thread.run_sync(gw.wait_for, "reloaded: 1 projects added, 0 removed")
                assert await names() == ["a", "b"]
                path.write_text('[[project]]\nname = "a"\nurl = "nope"\n')
                gw.proc.send_signal(signal.SIGHUP)
                line = await trio.to_thread.run_sync(gw.wait_for, "reload refused")
                assert line.string.endswith(
                    f"reload refused, the running configuration is kept: {path}:3: "
                    "project 'a': url must start with http:// or https://"
                )
                assert await names() == ["a", "b"]
            assert await trio.to_thread.run_sync(gw.stop) == 0
