"""Cluster mode end to end: gateway subprocesses on the suite's PostgreSQL, real project servers.

What a user relies on: start N gateways with the same flags and every
project is polled by exactly one; kill any one (kill -9, SIGSTOP past the
TTL, SIGTERM) and the others carry on from the stored cursors, with
nothing lost and no event twice in the log or in the JSON-lines sink;
PostgreSQL restarting loses nothing.
"""

from __future__ import annotations

import signal
from contextlib import AsyncExitStack
from math import ceil
from pathlib import Path

import httpx
import trio

from events_trio.core.events import MergeFailure
from events_trio.server.run import RunningServer, run_server
from tests.postgres import PgServer
from tests.support import CliProcess

from .cluster_support import (
    TTL_S,
    delivered,
    in_project_order,
    live_gateways,
    logged_stories,
    once_each,
    owners,
    positioned,
    sink_owner,
    start_gateway,
    wait_for,
    write_config,
)
from .test_stream_mode import server_config


async def start_servers(
    nursery: trio.Nursery, stack: AsyncExitStack, n: int
) -> list[RunningServer]:
    servers: list[RunningServer] = [
        await nursery.start(run_server, server_config()) for _ in range(n)
    ]
    for server in servers:
        stack.callback(server.shutdown)
    return servers


def publish_round(servers: list[RunningServer], round_no: int, published: list[str]) -> None:
    for i, server in enumerate(servers):
        story = f"{round_no}_story_p{i}"
        server.hub.publish(MergeFailure(story, "cluster"))
        published.append(story)


def gateway_id(process: CliProcess) -> str:
    process.url()  # serving: its schema is migrated
    return process.wait_for(r"cluster mode: gateway (\S+),").group(1)


async def test_three_gateways_share_thirty_projects_and_survive_kill_9_of_the_busiest(
    tmp_path: Path, pg_server: PgServer, pg_url: str
) -> None:
    out = tmp_path / "out.jsonl"
    async with trio.open_nursery() as nursery, AsyncExitStack() as stack:
        servers = await start_servers(nursery, stack, 30)
        config = write_config(tmp_path / "gateway.toml", servers)
        gateways = [
            stack.enter_context(start_gateway(pg_url, config, out, tmp_path, n)) for n in range(3)
        ]
        ids = [gateway_id(g) for g in gateways]

        def settled() -> bool:
            owned = owners(pg_server, pg_url)
            counts = [list(owned.values()).count(i) for i in ids]
            return len(owned) == 30 and max(counts) <= ceil(30 / 3) + 1

        await wait_for(settled, 30, "30 projects owned, none by a gateway above its share + 1")
        await wait_for(lambda: positioned(pg_server, pg_url) == 30, 30, "all reached")
        published: list[str] = []
        for round_no in range(10):
            publish_round(servers, round_no, published)
            await trio.sleep(0.05)
        await wait_for(lambda: len(delivered(out)) >= len(published), 30, "first rounds delivered")
        owned = owners(pg_server, pg_url)
        busiest = max(range(3), key=lambda n: list(owned.values()).count(ids[n]))
        gateways[busiest].stop(signal.SIGKILL)
        survivors = {ids[n] for n in range(3) if n != busiest}
        for round_no in range(10, 20):  # published while the busiest is dead
            publish_round(servers, round_no, published)
            await trio.sleep(0.05)
        took = await wait_for(
            lambda: (
                set(owners(pg_server, pg_url).values()) <= survivors
                and len(owners(pg_server, pg_url)) == 30
            ),
            TTL_S + 20,
            "every project owned by a survivor",
        )
        await wait_for(lambda: len(set(delivered(out))) >= len(published), 30, "all delivered")
        for gateway in gateways:
            if gateway is not gateways[busiest]:
                assert await trio.to_thread.run_sync(gateway.stop) == 0
    assert took <= TTL_S + 2  # from kill -9 (plus the rounds published since) to owned again
    found = delivered(out)
    assert once_each(logged_stories(pg_server, pg_url), published)  # the log: once each
    assert set(found) == set(published)  # the sink: nothing lost...
    assert len(found) - len(published) <= 1000  # ...at most the batch in flight again
    assert in_project_order(found)


async def test_a_gateway_paused_past_its_ttl_is_fenced_when_it_resumes(
    tmp_path: Path, pg_server: PgServer, pg_url: str
) -> None:
    out = tmp_path / "out.jsonl"
    async with trio.open_nursery() as nursery, AsyncExitStack() as stack:
        servers = await start_servers(nursery, stack, 4)
        config = write_config(tmp_path / "gateway.toml", servers)
        gateways = [
            stack.enter_context(start_gateway(pg_url, config, out, tmp_path, n)) for n in range(2)
        ]
        ids = [gateway_id(g) for g in gateways]
        await wait_for(
            lambda: sorted(owners(pg_server, pg_url).values()) == sorted(ids * 2), 30, "2 + 2"
        )
        await wait_for(lambda: positioned(pg_server, pg_url) == 4, 30, "all reached")
        paused = gateways[0]
        paused.proc.send_signal(signal.SIGSTOP)
        published: list[str] = []
        for round_no in range(5):
            publish_round(servers, round_no, published)  # the paused one's streams get these
            await trio.sleep(0.05)
        await wait_for(
            lambda: set(owners(pg_server, pg_url).values()) == {ids[1]}, TTL_S + 20, "taken over"
        )
        await wait_for(lambda: len(delivered(out)) >= len(published), 30, "delivered by the other")
        paused.proc.send_signal(signal.SIGCONT)
        paused.wait_for(r"lease lost|no longer holds its lease", timeout_s=30)
        for round_no in range(5, 10):
            publish_round(servers, round_no, published)
        await wait_for(lambda: len(delivered(out)) >= len(published), 30, "delivered after resume")
        for gateway in gateways:
            assert await trio.to_thread.run_sync(gateway.stop) == 0
    assert once_each(logged_stories(pg_server, pg_url), published)
    assert set(delivered(out)) == set(published)
    assert in_project_order(delivered(out))


async def test_sigterm_hands_projects_and_sinks_over_without_waiting_for_the_ttl(
    tmp_path: Path, pg_server: PgServer, pg_url: str
) -> None:
    out = tmp_path / "out.jsonl"
    async with trio.open_nursery() as nursery, AsyncExitStack() as stack:
        servers = await start_servers(nursery, stack, 4)
        config = write_config(tmp_path / "gateway.toml", servers)
        ttl = 60.0  # a TTL wait would fail the bound below
        first = stack.enter_context(start_gateway(pg_url, config, out, tmp_path, 0, ttl_s=ttl))
        first_id = gateway_id(first)
        await wait_for(lambda: positioned(pg_server, pg_url) == 4, 30, "all reached by the first")
        second = stack.enter_context(start_gateway(pg_url, config, out, tmp_path, 1, ttl_s=ttl))
        second_id = gateway_id(second)
        await wait_for(lambda: len(live_gateways(pg_server, pg_url)) == 2, 30, "both alive")
        assert await trio.to_thread.run_sync(first.stop) == 0
        took = await wait_for(
            lambda: (
                set(owners(pg_server, pg_url).values()) == {second_id}
                and len(owners(pg_server, pg_url)) == 4
            ),
            30,
            "the second owns everything",
        )
        published: list[str] = []
        publish_round(servers, 0, published)
        await wait_for(lambda: len(delivered(out)) >= 4, 30, "the sink moved to the second")
        assert await trio.to_thread.run_sync(second.stop) == 0
    assert took < 10  # a TTL wait would take 60 s
    assert first_id not in live_gateways(pg_server, pg_url)
    assert delivered(out) == published or set(delivered(out)) == set(published)


async def test_a_joining_gateway_takes_a_fair_share(
    tmp_path: Path, pg_server: PgServer, pg_url: str
) -> None:
    out = tmp_path / "out.jsonl"
    async with trio.open_nursery() as nursery, AsyncExitStack() as stack:
        servers = await start_servers(nursery, stack, 6)
        config = write_config(tmp_path / "gateway.toml", servers)
        first = stack.enter_context(start_gateway(pg_url, config, out, tmp_path, 0))
        gateway_id(first)
        await wait_for(lambda: len(owners(pg_server, pg_url)) == 6, 30, "the first owns all six")
        second = stack.enter_context(start_gateway(pg_url, config, out, tmp_path, 1))
        second_id = gateway_id(second)
        await wait_for(
            lambda: (
                list(owners(pg_server, pg_url).values()).count(second_id) == 3
                and len(owners(pg_server, pg_url)) == 6
            ),
            30,
            "three each",
        )
        await wait_for(lambda: positioned(pg_server, pg_url) == 6, 30, "all reached")
        published: list[str] = []
        publish_round(servers, 0, published)
        await wait_for(lambda: len(delivered(out)) >= 6, 30, "delivered after the rebalance")
        for gateway in (first, second):
            assert await trio.to_thread.run_sync(gateway.stop) == 0
    assert once_each(delivered(out), published)


async def test_postgresql_down_pauses_the_cluster_and_its_return_loses_nothing(
    tmp_path: Path, pg_server: PgServer, pg_url: str
) -> None:
    out = tmp_path / "out.jsonl"
    async with trio.open_nursery() as nursery, AsyncExitStack() as stack:
        servers = await start_servers(nursery, stack, 4)
        config = write_config(tmp_path / "gateway.toml", servers)
        gateways = [
            stack.enter_context(start_gateway(pg_url, config, out, tmp_path, n)) for n in range(2)
        ]
        urls = [await trio.to_thread.run_sync(g.url) for g in gateways]
        await wait_for(lambda: positioned(pg_server, pg_url) == 4, 30, "all reached")
        published: list[str] = []
        publish_round(servers, 0, published)
        await wait_for(lambda: len(delivered(out)) >= 4, 30, "first round delivered")
        await trio.to_thread.run_sync(pg_server.stop)
        publish_round(servers, 1, published)  # acknowledged by the servers while it is down
        async with httpx.AsyncClient(timeout=10) as http:
            with trio.fail_after(30):
                while (health := await http.get(f"{urls[0]}/healthz")).status_code != 503:  # noqa: ASYNC110 -- a subprocess's state
                    await trio.sleep(0.2)
            assert (health.json()["status"], health.json()["store"]) == ("degraded", "unavailable")
            await trio.to_thread.run_sync(pg_server.start)
            publish_round(servers, 2, published)
            await wait_for(lambda: len(set(delivered(out))) >= 12, 60, "everything after restart")
            with trio.fail_after(30):  # the next round of the supervisor sees it back
                while (await http.get(f"{urls[0]}/healthz")).json()["store"] != "ok":  # noqa: ASYNC110
                    await trio.sleep(0.2)
        for gateway in gateways:
            assert await trio.to_thread.run_sync(gateway.stop) == 0
            assert all("Traceback" not in line for line in gateway.lines)
    assert once_each(logged_stories(pg_server, pg_url), published)
    assert set(delivered(out)) == set(published)
    assert in_project_order(delivered(out))


async def test_a_sink_continues_on_a_survivor_from_its_offset_when_its_owner_dies(
    tmp_path: Path, pg_server: PgServer, pg_url: str
) -> None:
    out = tmp_path / "out.jsonl"
    async with trio.open_nursery() as nursery, AsyncExitStack() as stack:
        servers = await start_servers(nursery, stack, 4)
        config = write_config(tmp_path / "gateway.toml", servers)
        gateways = [
            stack.enter_context(start_gateway(pg_url, config, out, tmp_path, n)) for n in range(2)
        ]
        ids = [gateway_id(g) for g in gateways]
        await wait_for(lambda: sink_owner(pg_server, pg_url) in ids, 30, "the sink owned")
        await wait_for(lambda: positioned(pg_server, pg_url) == 4, 30, "all reached")
        published: list[str] = []
        for round_no in range(5):
            publish_round(servers, round_no, published)
        await wait_for(lambda: len(delivered(out)) >= len(published), 30, "delivered")
        owner = ids.index(str(sink_owner(pg_server, pg_url)))
        gateways[owner].stop(signal.SIGKILL)
        for round_no in range(5, 10):
            publish_round(servers, round_no, published)
        await wait_for(
            lambda: sink_owner(pg_server, pg_url) == ids[1 - owner], TTL_S + 20, "sink taken over"
        )
        await wait_for(lambda: len(set(delivered(out))) >= len(published), 30, "all delivered")
        assert await trio.to_thread.run_sync(gateways[1 - owner].stop) == 0
    found = delivered(out)
    assert set(found) == set(published)
    assert len(found) - len(published) <= 1000  # at most the batch in flight again
    assert in_project_order(found)


async def test_the_admin_api_adds_and_removes_projects_for_the_whole_cluster(
    tmp_path: Path, pg_server: PgServer, pg_url: str
) -> None:
    out = tmp_path / "out.jsonl"
    admin = {"Authorization": "Bearer adm1n"}
    async with trio.open_nursery() as nursery, AsyncExitStack() as stack:
        servers = await start_servers(nursery, stack, 3)
        config = write_config(tmp_path / "gateway.toml", servers[:2])
        gateways = [
            stack.enter_context(
                start_gateway(pg_url, config, out, tmp_path, n, extra=("--admin-token", "adm1n"))
            )
            for n in range(2)
        ]
        urls = [await trio.to_thread.run_sync(g.url) for g in gateways]
        async with httpx.AsyncClient(timeout=10) as http:
            added = await http.post(
                f"{urls[0]}/api/projects", json={"name": "p2", "url": servers[2].url}, headers=admin
            )
            assert added.status_code == 201
            await wait_for(lambda: positioned(pg_server, pg_url) == 3, 30, "p2 reached")
            published: list[str] = []
            servers[2].hub.publish(MergeFailure("1_story_p2", "added"))
            published.append("1_story_p2")
            await wait_for(lambda: delivered(out) == published, 30, "p2's event delivered")
            listed = (await http.get(f"{urls[1]}/api/projects")).json()
            assert sorted(p["name"] for p in listed) == ["p0", "p1", "p2"]
            again = await http.post(
                f"{urls[1]}/api/projects", json={"name": "p2", "url": servers[2].url}, headers=admin
            )
            assert (again.status_code, again.json()["error"]) == (409, "project_exists")
            removed = await http.delete(f"{urls[1]}/api/projects/p2", headers=admin)
            assert removed.status_code == 204
            await wait_for(lambda: "p2" not in owners(pg_server, pg_url), 30, "p2 released")
        for gateway in gateways:
            assert await trio.to_thread.run_sync(gateway.stop) == 0
