"""Projects at run time: the admin API on a real gateway polling real project servers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
import trio

from events_trio.core.events import MergeFailure
from events_trio.gateway import (
    GatewayConfig,
    PollSettings,
    ProjectConfig,
    RunningGateway,
    run_gateway,
)
from tests.gateway.helpers import project_server
from tests.support import EVENTS_TRIO, CliProcess

from .helpers import until

ADMIN: Final = "admin-t0ken"
READ: Final = "read-t0ken"
BEARER: Final = {"Authorization": f"Bearer {ADMIN}"}


@asynccontextmanager
async def gateway(
    tmp_path: Path, *projects: ProjectConfig, **changes: Any
) -> AsyncIterator[tuple[RunningGateway, httpx.AsyncClient]]:
    config = GatewayConfig(
        projects=projects,
        port=0,
        state_dir=tmp_path / "state",
        poll=PollSettings(interval_s=0.2, backoff_initial_s=0.05, backoff_max_s=0.3),
        graceful_timeout_s=0.2,
        admin_token=ADMIN,
    ).replace(**changes)
    async with trio.open_nursery() as nursery:
        running: RunningGateway = await nursery.start(partial(run_gateway, config, sinks=[]))
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            yield running, http
        running.shutdown()


def stories(http_events: list[dict[str, Any]], project: str) -> list[str]:
    return [e["story_id"] for e in http_events if e["project"] == project]


async def events(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await http.get("/api/events", headers={"Authorization": f"Bearer {READ}"})
    found: list[dict[str, Any]] = response.json()
    return found


async def test_an_added_project_is_polled_within_a_second_from_now(tmp_path: Path) -> None:
    async with project_server() as server, gateway(tmp_path) as (running, http):
        server.hub.publish(MergeFailure("1_before", "conflict"))
        added_at = time.monotonic()
        response = await http.post(
            "/api/projects", json={"name": "billing", "url": server.url}, headers=BEARER
        )
        assert (response.status_code, response.json()["name"]) == (201, "billing")
        await until(lambda: running.registry.statuses[0].polls > 0)
        assert time.monotonic() - added_at < 1.0
        server.hub.publish(MergeFailure("2_after", "conflict"))
        await until(lambda: running.log_store.watch.latest_seq > 0)
        listed = [p["name"] for p in (await http.get("/api/projects")).json()]
        assert (listed, stories(await events(http), "billing")) == (["billing"], ["2_after"])


async def test_a_removed_project_stops_at_once_and_keeps_its_history(tmp_path: Path) -> None:
    async with project_server() as billing, project_server() as search:
        projects = (ProjectConfig("billing", billing.url), ProjectConfig("search", search.url))
        async with gateway(tmp_path, *projects) as (running, http):
            await until(lambda: all(s.state == "up" for s in running.registry.statuses))
            billing.hub.publish(MergeFailure("1_kept", "conflict"))
            await until(lambda: running.log_store.watch.latest_seq > 0)
            response = await http.delete("/api/projects/billing", headers=BEARER)
            assert response.status_code == 204
            billing.hub.publish(MergeFailure("2_not_polled", "conflict"))
            search.hub.publish(MergeFailure("3_marker", "conflict"))
            # search is long-polled like billing was: once its event is in,
            # billing's would have been too, had it still been polled.
            await until(lambda: running.registry.statuses[0].events_received == 1)
            found = await events(http)
            listed = [p["name"] for p in (await http.get("/api/projects")).json()]
    assert (stories(found, "billing"), stories(found, "search")) == (["1_kept"], ["3_marker"])
    assert listed == ["search"]


async def test_a_project_added_again_continues_from_its_cursor(tmp_path: Path) -> None:
    async with project_server() as server, gateway(tmp_path) as (running, http):
        body = {"name": "billing", "url": server.url}
        await http.post("/api/projects", json=body, headers=BEARER)
        await until(lambda: running.registry.statuses[0].state == "up")
        await http.delete("/api/projects/billing", headers=BEARER)
        server.hub.publish(MergeFailure("1_while_removed", "conflict"))
        await http.post("/api/projects", json=body, headers=BEARER)
        await until(lambda: running.log_store.watch.latest_seq > 0)
        assert stories(await events(http), "billing") == ["1_while_removed"]


@pytest.mark.parametrize(
    ("headers", "status", "error"),
    [({}, 401, "unauthorized"), ({"Authorization": "Bearer nope"}, 403, "forbidden")],
)
async def test_admin_routes_need_the_admin_token(
    tmp_path: Path, headers: dict[str, str], status: int, error: str
) -> None:
    async with gateway(tmp_path) as (running, http):
        body = {"name": "billing", "url": "http://127.0.0.1:9"}
        added = await http.post("/api/projects", json=body, headers=headers)
        removed = await http.delete("/api/projects/billing", headers=headers)
        assert running.registry.names == []
    assert [(r.status_code, r.json()["error"]) for r in (added, removed)] == [(status, error)] * 2


async def test_the_read_token_and_the_page_cookie_do_not_open_the_admin_routes(
    tmp_path: Path,
) -> None:
    async with gateway(tmp_path, read_token=READ) as (_, http):
        signed_in = await http.post("/api/session", json={"token": READ})
        cookie = signed_in.headers["set-cookie"].split(";", 1)[0]
        body = {"name": "billing", "url": "http://127.0.0.1:9"}
        with_cookie = await http.post("/api/projects", json=body, headers={"Cookie": cookie})
        with_read = await http.post(
            "/api/projects", json=body, headers={"Authorization": f"Bearer {READ}"}
        )
    assert (with_cookie.status_code, with_read.status_code) == (401, 403)


async def test_without_an_admin_token_the_routes_are_off(tmp_path: Path) -> None:
    async with gateway(tmp_path, admin_token=None) as (_, http):
        body = {"name": "billing", "url": "http://127.0.0.1:9"}
        added = await http.post("/api/projects", json=body, headers=BEARER)
        removed = await http.delete("/api/projects/billing", headers=BEARER)
    assert [(r.status_code, r.json()["error"]) for r in (added, removed)] == [
        (404, "not_found")
    ] * 2


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"name": "bad name", "url": "http://x"}, 400, "invalid_project"),
        ({"name": "billing", "url": "ftp://x"}, 400, "invalid_project"),
        ({"name": "billing"}, 400, "invalid_body"),
        ({"name": "billing", "url": "http://x", "extra": 1}, 400, "invalid_body"),
        ([1, 2], 400, "invalid_body"),
    ],
)
async def test_bad_projects_are_refused(
    tmp_path: Path, body: object, status: int, error: str
) -> None:
    async with gateway(tmp_path) as (running, http):
        response = await http.post("/api/projects", json=body, headers=BEARER)
        assert running.registry.names == []
    assert (response.status_code, response.json()["error"]) == (status, error)


async def test_a_taken_name_is_409_and_an_unknown_one_404(tmp_path: Path) -> None:
    taken = ProjectConfig("billing", "http://127.0.0.1:9")
    async with gateway(tmp_path, taken) as (_, http):
        again = await http.post(
            "/api/projects", json={"name": "billing", "url": "http://127.0.0.1:8"}, headers=BEARER
        )
        unknown = await http.delete("/api/projects/search", headers=BEARER)
    assert (again.status_code, again.json()["message"]) == (
        409,
        "project 'billing' is registered already",
    )
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_project")


async def test_the_admin_token_comes_from_the_environment_of_the_gateway_process(
    tmp_path: Path,
) -> None:
    args = [EVENTS_TRIO, "gateway", "--port", "0", "--state-dir", str(tmp_path / "state")]
    args += ["--project", "billing=http://127.0.0.1:9"]
    env = {"EVENTS_TRIO_GATEWAY_ADMIN_TOKEN": ADMIN}
    with CliProcess(args, env=env) as process:
        url = await trio.to_thread.run_sync(process.url)
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            body = {"name": "search", "url": "http://127.0.0.1:8"}
            response = await http.post("/api/projects", json=body, headers=BEARER)
            listed = [p["name"] for p in (await http.get("/api/projects")).json()]
        assert await trio.to_thread.run_sync(process.stop) == 0
    assert (response.status_code, listed) == (201, ["billing", "search"])
    assert not [line for line in process.lines if ADMIN in line]
