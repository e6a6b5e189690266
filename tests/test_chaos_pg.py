"""The cluster chaos run's PostgreSQL: its restart faults keep what it acknowledged.

``benchmarks.chaos_pg`` restarts PostgreSQL ``fast`` and ``immediate`` (a
crash) under the gateways. An immediate stop may only cut connections: a
commit PostgreSQL acknowledged must survive it, or the run would blame the
gateway for a loss the harness caused (the test fixture's
``synchronous_commit=off`` would lose it).
"""

from __future__ import annotations

import random
from pathlib import Path

import trio

from benchmarks.chaos_pg import Cluster


async def test_every_restart_mode_keeps_each_acknowledged_commit_and_is_noted(
    tmp_path: Path,
) -> None:
    cluster = await Cluster.start(ttl_s=3.0)
    cluster.down_s = (0.0, 0.0)
    notes: list[tuple[str, str]] = []
    try:
        pg = cluster.pg
        await trio.to_thread.run_sync(pg.sql, cluster.url, "CREATE TABLE acked (n INT)")
        modes = set()
        for n in range(6):
            await trio.to_thread.run_sync(pg.sql, cluster.url, f"INSERT INTO acked VALUES ({n})")
            await cluster.restart(random.Random(n), lambda proc, what: notes.append((proc, what)))
            modes.add(notes[-2][1])
            rows = await trio.to_thread.run_sync(pg.sql, cluster.url, "SELECT count(*) FROM acked")
            assert rows == str(n + 1)
        assert modes == {"restart-fast", "restart-immediate"}
        assert {proc for proc, _ in notes} == {"postgres"}
        assert [what for _, what in notes[1::2]] == ["start"] * 6
        assert cluster.gateway_args() == ["--store", cluster.url, "--lease-ttl", "3"]
    finally:
        await cluster.close(tmp_path)
    assert (tmp_path / "postgres-server.txt").exists()
