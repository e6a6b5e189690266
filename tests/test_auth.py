"""Read tokens on the project server and the gateway; refusing to listen beyond loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from events_trio.core.errors import ConfigError
from events_trio.core.events import MergeFailure
from events_trio.gateway import GatewayConfig, PollSettings, ProjectConfig, run_gateway
from events_trio.gateway.sinks import JsonlSink
from events_trio.server.config import ServerConfig
from events_trio.server.run import RunningServer, run_server
from events_trio.wire.auth import bearer_matches, check_exposure, is_loopback
from tests.support import EVENTS_TRIO, CliProcess, FakeClockMs, until

READ_TOKEN = "read-t0ken-abc"
INGEST_TOKEN = "ingest-t0ken-xyz"
UNAUTHORIZED = {"error": "unauthorized", "message": "missing or invalid bearer token"}
REFUSAL = (
    "events-trio: error: refusing to listen on 0.0.0.0 without a read token: anyone who "
    "can reach it could read every event; set --read-token (or {env}), bind 127.0.0.1, "
    "or pass --allow-unauthenticated"
)


@pytest.fixture
async def protected(nursery: trio.Nursery) -> AsyncIterator[RunningServer]:
    """A project server with both a read token and an ingest token."""
    config = ServerConfig(
        port=0,
        clock_ms=FakeClockMs(),
        graceful_timeout_s=0.2,
        read_token=READ_TOKEN,
        ingest_token=INGEST_TOKEN,
    )
    running: RunningServer = await nursery.start(run_server, config)
    yield running
    running.shutdown()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- the check itself --------------------------------------------------------------


@pytest.mark.parametrize(
    "header", [f"Bearer {READ_TOKEN}", f"bearer {READ_TOKEN}", f"  BEARER   {READ_TOKEN} "]
)
def test_bearer_with_the_token_matches(header: str) -> None:
    assert bearer_matches(header, READ_TOKEN)


@pytest.mark.parametrize(
    "header",
    [None, "", READ_TOKEN, f"Basic {READ_TOKEN}", "Bearer ", "Bearer wrong", "Bearer é", b"\xff"],
)
def test_anything_else_does_not_match(header: str | bytes | None) -> None:
    assert not bearer_matches(header, READ_TOKEN)


# --- the project server ------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, bearer("wrong"), bearer(INGEST_TOKEN)])
async def test_events_without_the_read_token_are_401_json(
    protected: RunningServer, headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=protected.url) as http:
        response = await http.get("/api/events", params={"since": "0"}, headers=headers)
    assert (response.status_code, response.json()) == (401, UNAUTHORIZED)
    assert response.headers["www-authenticate"] == 'Bearer realm="events-trio"'


async def test_events_with_the_read_token_are_served(protected: RunningServer) -> None:
    protected.hub.publish(MergeFailure("42_story_x", "conflict"))
    await until(lambda: len(protected.hub.buffer) == 1)
    async with httpx.AsyncClient(base_url=protected.url, headers=bearer(READ_TOKEN)) as http:
        response = await http.get("/api/events", params={"since": "0"})
    assert response.status_code == 200
    assert [event["story_id"] for event in response.json()] == ["42_story_x"]


async def test_unauthenticated_client_learns_nothing_about_its_query(
    protected: RunningServer,
) -> None:
    async with httpx.AsyncClient(base_url=protected.url) as http:
        response = await http.get("/api/events", params={"since": "junk"})
    assert response.status_code == 401


async def test_head_without_the_read_token_is_401_without_a_body(
    protected: RunningServer,
) -> None:
    async with httpx.AsyncClient(base_url=protected.url) as http:
        response = await http.head("/api/events")
    assert (response.status_code, response.content) == (401, b"")


async def test_event_stream_needs_the_read_token(protected: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=protected.url) as http:
        response = await http.get("/api/events/stream")
    assert (response.status_code, response.json()) == (401, UNAUTHORIZED)


async def test_healthz_stays_open_with_a_read_token(protected: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=protected.url) as http:
        assert (await http.get("/healthz")).status_code == 200


async def test_ingest_keeps_its_own_token(protected: RunningServer) -> None:
    event = b'{"type":"merge_failure","story_id":"42_x","reason":"r"}'
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=protected.url, headers=headers) as http:
        with_read = await http.post("/api/events", content=event, headers=bearer(READ_TOKEN))
        with_ingest = await http.post("/api/events", content=event, headers=bearer(INGEST_TOKEN))
    assert (with_read.status_code, with_ingest.status_code) == (401, 202)


# --- exposure --------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"])
def test_loopback_hosts_are_loopback(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.0.0.5", "example.com", "localhost.x"])
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def test_server_config_beyond_loopback_without_a_read_token_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^refusing to listen on 0\.0\.0\.0 without a read"):
        ServerConfig(host="0.0.0.0")


@pytest.mark.parametrize(
    "extra", [{"read_token": READ_TOKEN}, {"allow_unauthenticated": True}], ids=["token", "allow"]
)
def test_server_config_beyond_loopback_with_a_token_or_the_opt_out_is_accepted(
    extra: dict[str, object],
) -> None:
    assert ServerConfig(host="0.0.0.0", **extra).host == "0.0.0.0"  # type: ignore[arg-type]


def test_exposure_check_on_every_interface_names_it() -> None:
    with pytest.raises(ConfigError, match=r"^refusing to listen on every interface without"):
        check_exposure("", None, allow_unauthenticated=False, flag="--read-token")


def test_serve_beyond_loopback_without_a_read_token_exits_1_with_one_line(tmp_path: Path) -> None:
    args = [EVENTS_TRIO, "serve", "--host", "0.0.0.0", "--port", "0", "--no-watch"]
    with CliProcess(args, cwd=tmp_path, env={"EVENTS_TRIO_READ_TOKEN": ""}) as server:
        assert server.proc.wait(10) == 1
        server.wait_for("error")
    assert server.lines == [REFUSAL.format(env="EVENTS_TRIO_READ_TOKEN")]


def test_serve_beyond_loopback_with_allow_unauthenticated_starts(tmp_path: Path) -> None:
    args = [EVENTS_TRIO, "serve", "--host", "0.0.0.0", "--port", "0", "--no-watch"]
    with CliProcess([*args, "--allow-unauthenticated"], cwd=tmp_path) as server:
        server.url()
        assert server.stop() == 0


def test_gateway_beyond_loopback_without_a_read_token_exits_1_with_one_line(
    tmp_path: Path,
) -> None:
    args = [EVENTS_TRIO, "gateway", "--host", "0.0.0.0", "--port", "0"]
    args += ["--project", "a=http://127.0.0.1:9", "--state-dir", str(tmp_path / "state")]
    env = {"EVENTS_TRIO_GATEWAY_READ_TOKEN": ""}
    with CliProcess(args, cwd=tmp_path, env=env) as gateway:
        assert gateway.proc.wait(10) == 1
        gateway.wait_for("error")
    assert gateway.lines == [REFUSAL.format(env="EVENTS_TRIO_GATEWAY_READ_TOKEN")]


# --- the gateway -------------------------------------------------------------------


async def test_gateway_sends_the_project_token_and_protects_its_own_api(
    protected: RunningServer, tmp_path: Path
) -> None:
    gateway_token = "gw-read-t0ken"
    config = GatewayConfig(
        projects=(ProjectConfig("billing", protected.url, token=READ_TOKEN),),
        port=0,
        state_dir=tmp_path / "state",
        replay=True,
        poll=PollSettings(interval_s=0.2, backoff_initial_s=0.05, backoff_max_s=0.3),
        graceful_timeout_s=0.2,
        read_token=gateway_token,
    )
    protected.hub.publish(MergeFailure("42_story_x", "conflict"))
    async with trio.open_nursery() as nursery:
        running = await nursery.start(
            partial(run_gateway, config, sinks=[JsonlSink(tmp_path / "out.jsonl")])
        )
        await until(lambda: running.pollers[0].status.state == "up")
        async with httpx.AsyncClient(base_url=running.url) as http:
            statuses = [
                (await http.get(path, headers=headers)).status_code
                for headers in ({}, bearer(gateway_token))
                for path in ("/api/events?since=0&wait=5", "/api/projects", "/healthz")
            ]
            events = (await http.get("/api/events", headers=bearer(gateway_token))).json()
        running.shutdown()
    assert statuses == [401, 401, 200, 200, 200, 200]
    assert [event["story_id"] for event in events] == ["42_story_x"]
