"""Helpers of the cluster tests: gateway subprocesses on one PostgreSQL, and what the database says.

Gateways are the installed ``events-trio gateway`` with ``--store``; project
servers are real ``run_server`` instances in the test process (stream
mode). Ownership and the log are read straight from PostgreSQL with psql,
not through a gateway, so a test sees the truth even while gateways die.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Final

import msgspec
import trio

from events_trio.server.run import RunningServer
from tests.postgres import PgServer
from tests.support import EVENTS_TRIO, CliProcess

from .test_e2e import lines

#: Lease TTL the cluster tests run with (short, so takeovers are quick).
TTL_S: Final = 3


def write_config(path: Path, servers: list[RunningServer]) -> Path:
    """A gateway TOML file registering ``servers`` as p0, p1, ..."""
    path.write_text(
        "".join(f'[[project]]\nname = "p{i}"\nurl = "{s.url}"\n' for i, s in enumerate(servers))
    )
    return path


def start_gateway(
    url: str,
    config: Path,
    out: Path,
    tmp: Path,
    n: int,
    *,
    ttl_s: float = TTL_S,
    extra: tuple[str, ...] = (),
) -> CliProcess:
    """One cluster member: same flags for every member (but its own state dir, unused)."""
    args = ["gateway", "--store", url, "--lease-ttl", str(ttl_s), "--config", str(config)]
    args += ["--port", "0", "--state-dir", str(tmp / f"state{n}"), "--sink", f"jsonl:{out}", *extra]
    return CliProcess([EVENTS_TRIO, *args])


def owners(pg: PgServer, url: str) -> dict[str, str]:
    """Project -> owning gateway, for every live project lease."""
    rows = pg.sql(
        url,
        "SELECT substr(resource, 9), owner FROM et_leases WHERE resource LIKE 'project:%' "
        "AND owner IS NOT NULL AND expires > now()",
    )
    return dict(line.split("|") for line in rows.splitlines() if line)


def live_gateways(pg: PgServer, url: str) -> list[str]:
    """Ids of the gateways whose heartbeat has not expired."""
    return pg.sql(url, "SELECT id FROM et_gateways WHERE expires > now() ORDER BY id").split()


def logged_stories(pg: PgServer, url: str) -> list[str]:
    """Every event's story id in the cluster's log, in log order."""
    rows = pg.sql(
        url, "SELECT convert_from(body, 'UTF8') FROM et_log WHERE kind = 'event' ORDER BY seq"
    )
    return [msgspec.json.decode(row)["story_id"] for row in rows.splitlines() if row]


def delivered(out: Path) -> list[str]:
    """Story ids in the JSONL sink file, in order."""
    return [line["story_id"] for line in lines(out) if line["type"] != "gateway_notice"]


async def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll ``condition()`` in a thread (it may run psql); seconds it took to hold.

    Real processes and a real database give no event to wait on: poll.
    """
    start = time.monotonic()
    while not await trio.to_thread.run_sync(condition):
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        await trio.sleep(0.1)
    return time.monotonic() - start


def once_each(found: list[str], published: list[str]) -> bool:
    """Every published story exactly once."""
    return Counter(found) == Counter(published)


def in_project_order(found: list[str]) -> bool:
    """Stories ``N_..._pK`` appear in increasing N per project."""
    per_project: dict[str, list[int]] = {}
    for story in found:
        number, _, project = story.split("_", 2)
        per_project.setdefault(project, []).append(int(number))
    return all(numbers == sorted(numbers) for numbers in per_project.values())


def sink_owner(pg: PgServer, url: str) -> str | None:
    """The gateway delivering the (one) sink now, if any."""
    owner = pg.sql(
        url,
        "SELECT owner FROM et_leases WHERE resource LIKE 'sink:%' AND owner IS NOT NULL "
        "AND expires > now()",
    )
    return owner or None


def positioned(pg: PgServer, url: str) -> int:
    """Projects whose cursor is stored: a gateway has reached them (newer events are theirs).

    A project's first contact skips what its server held before (it starts
    from "now", as with one gateway): tests publish only once it is stored.
    """
    return int(pg.sql(url, "SELECT count(*) FROM et_positions"))
