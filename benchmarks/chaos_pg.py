"""The chaos run's cluster half: a throwaway PostgreSQL, and the faults only a cluster has.

What: ``benchmarks.chaos --store postgresql`` runs :data:`GATEWAYS` gateways
with the same ``--store`` URL and a short lease TTL (:data:`LEASE_TTL_S`)
against one PostgreSQL started for the run (``tests.postgres.PgServer``:
``initdb`` into a temp directory, a free loopback port, an unprivileged
user when we are root). This module owns that server and the fault that
restarts it.

Goals: every fault a cluster must survive, from a seeded RNG like the
rest of the schedule: PostgreSQL stopped ``fast`` (a clean shutdown: every
connection cut) or ``immediate`` (a crash: no checkpoint, recovery from
the WAL at start), down for a while (sometimes past the TTL, so every
lease expires on the database's clock while no gateway can renew); and a
SIGSTOP that outlasts the TTL (:func:`stop_seconds`), so the paused
gateway's leases are taken over and its late appends must be refused by
the fence.

Plan: the server runs with ``synchronous_commit=on`` (the test fixture's
``off`` acknowledges commits an immediate stop then loses, which no
deployment we support does) and ``fsync=off`` (only the server crashes,
never the host, so written WAL survives). Each fault is noted through the
run's history callback before and after, so the checker counts it.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import trio

from tests.postgres import PgServer

#: Gateways in a cluster run.
GATEWAYS: Final = 3
#: Their lease TTL (``--lease-ttl``): short, so takeovers happen within a fault gap.
LEASE_TTL_S: Final = 3.0
#: How long a SIGSTOP outlasts the TTL (uniform).
STOP_PAST_TTL_S: Final = (1.0, 5.0)
#: How long PostgreSQL stays down in a restart (uniform; past the TTL sometimes).
DOWN_S: Final = (0.2, 5.0)
RESTART_MODES: Final = ("fast", "immediate")
#: fsync off (the host never crashes), synchronous_commit ON (an immediate
#: stop must not lose a commit PostgreSQL acknowledged).
SETTINGS: Final = (
    "-c fsync=off -c synchronous_commit=on -c full_page_writes=off "
    "-c max_connections=200 -c listen_addresses=127.0.0.1"
)

#: Notes one fault in the run's history: ``(proc, what)``.
Note = Callable[[str, str], None]


class ChaosPostgres(PgServer):
    """The test fixture's PostgreSQL, committing synchronously (see :data:`SETTINGS`)."""

    settings = SETTINGS


@dataclass(slots=True)
class Cluster:
    """The run's PostgreSQL, the database its gateways share, and their TTL."""

    pg: PgServer
    url: str
    ttl_s: float = LEASE_TTL_S
    down_s: tuple[float, float] = DOWN_S

    @classmethod
    async def start(cls, ttl_s: float = LEASE_TTL_S) -> Cluster:
        """initdb, start, and create the run's database (in a worker thread: it blocks)."""
        pg = await trio.to_thread.run_sync(lambda: ChaosPostgres().start())
        url = await trio.to_thread.run_sync(pg.create_database)
        return cls(pg, url, ttl_s)

    def gateway_args(self) -> list[str]:
        """What every gateway of the cluster is started with, beyond its own config."""
        return ["--store", self.url, "--lease-ttl", f"{self.ttl_s:g}"]

    def stop_seconds(self, rng: random.Random) -> float:
        """How long to SIGSTOP a gateway: past its TTL, so its leases are taken over."""
        return self.ttl_s + rng.uniform(*STOP_PAST_TTL_S)

    async def restart(self, rng: random.Random, note: Note) -> None:
        """Stop PostgreSQL (``fast`` or ``immediate``), stay down a while, start it again."""
        mode, down_s = rng.choice(RESTART_MODES), rng.uniform(*self.down_s)
        note("postgres", f"restart-{mode}")
        await trio.to_thread.run_sync(self.pg.stop, mode)
        await trio.sleep(down_s)
        await trio.to_thread.run_sync(self.pg.start)
        note("postgres", "start")

    async def close(self, run: Path) -> None:
        """Keep the server's log in the run directory, stop it, delete its data."""
        log = self.pg.root / "server.log"
        if log.exists():
            shutil.copyfile(log, run / "postgres-server.txt")
        await trio.to_thread.run_sync(self.pg.cleanup)
