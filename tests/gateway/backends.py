"""Both log backends behind one factory, for the contract tests that must give the same answers.

``sqlite``: ``open_sqlite_log`` in a temp directory. ``postgresql``:
``open_pg_log`` on a fresh database of the suite's PostgreSQL, with this
gateway granted the leases of the projects and sinks the tests use (in a
cluster the supervisor does that; fencing itself is tested in
test_pg_log.py).
"""

from __future__ import annotations

from pathlib import Path

from events_trio.gateway.eventlog import EventLog
from events_trio.gateway.pg.log import PgLog, open_pg_log
from events_trio.gateway.pg.schema import project_resource, sink_resource
from events_trio.gateway.store import open_sqlite_log
from tests.postgres import PgServer

from .helpers import ManualClockMs

#: Projects and sinks the contract tests write for.
PROJECTS = ("billing", "p", "q")
SINKS = ("console",)


class Backend:
    """Opens (and reopens) one log of either kind."""

    def __init__(self, kind: str, tmp_path: Path, pg: PgServer | None) -> None:
        self.kind = kind
        self.state_dir = tmp_path / "state"
        self.url = pg.create_database() if pg is not None else ""
        self.pg = pg

    async def open(self, clock: ManualClockMs, *, window_s: float = 0.0) -> EventLog:
        """A log on this backend's storage (the same storage every time)."""
        if self.kind == "sqlite":
            store = await open_sqlite_log(self.state_dir, clock)
            store.group.window_s = window_s
            return store
        pg_log = await open_pg_log(self.url, "gw-test", clock_ms=clock, window_s=window_s)
        grant(pg_log, self.pg, PROJECTS, SINKS)
        return pg_log


def grant(
    log: PgLog, pg: PgServer | None, projects: tuple[str, ...], sinks: tuple[str, ...]
) -> None:
    """Give ``log``'s gateway the leases of ``projects`` and ``sinks`` for an hour."""
    assert pg is not None
    resources = [project_resource(p) for p in projects] + [sink_resource(s) for s in sinks]
    values = ", ".join(
        f"('{r}', '{log.gateway_id}', 1, now() + interval '1 hour')" for r in resources
    )
    pg.sql(
        log.runner.url,
        f"INSERT INTO et_leases VALUES {values} ON CONFLICT (resource) DO UPDATE "
        "SET owner = excluded.owner, epoch = 1, expires = excluded.expires",
    )
    log.held.update(dict.fromkeys(resources, 1))
