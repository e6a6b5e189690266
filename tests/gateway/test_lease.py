"""Leases in PostgreSQL: epochs go up on every change of owner, expiry is the database's clock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from events_trio.gateway.pg import core, lease
from events_trio.gateway.pg.schema import migrate
from tests.postgres import PgServer

Conn = psycopg.Connection[tuple[Any, ...]]


@pytest.fixture
def conn(pg_url: str) -> Iterator[Conn]:
    with psycopg.connect(pg_url, autocommit=True) as connection:
        migrate(connection)
        yield connection


def expire_all(pg: PgServer, url: str) -> None:
    """As if every TTL ran out (on the database's clock)."""
    pg.sql(url, "UPDATE et_leases SET expires = now() - interval '1 s'")


def test_a_free_lease_is_taken_at_epoch_one_and_a_held_one_is_not(conn: Conn) -> None:
    assert lease.acquire(conn, "a", ["project:p"], 10) == {"project:p": 1}
    assert lease.acquire(conn, "b", ["project:p"], 10) == {}


def test_an_expired_lease_is_taken_over_with_a_higher_epoch(
    conn: Conn, pg_server: PgServer, pg_url: str
) -> None:
    lease.acquire(conn, "a", ["project:p"], 10)
    expire_all(pg_server, pg_url)
    assert lease.acquire(conn, "b", ["project:p"], 10) == {"project:p": 2}


def test_renewal_keeps_what_is_still_ours_and_reports_what_was_taken(
    conn: Conn, pg_server: PgServer, pg_url: str
) -> None:
    held = lease.acquire(conn, "a", ["project:p", "project:q"], 10)
    pg_server.sql(
        pg_url, "UPDATE et_leases SET expires = now() - interval '1 s' WHERE resource = 'project:q'"
    )
    lease.acquire(conn, "b", ["project:q"], 10)
    assert lease.renew(conn, "a", held, 10) == {"project:p": 1}


def test_an_expired_lease_is_not_renewed_even_if_nobody_took_it(
    conn: Conn, pg_server: PgServer, pg_url: str
) -> None:
    held = lease.acquire(conn, "a", ["project:p"], 10)
    expire_all(pg_server, pg_url)
    assert lease.renew(conn, "a", held, 10) == {}


def test_expiry_is_the_databases_now_plus_the_ttl(
    conn: Conn, pg_server: PgServer, pg_url: str
) -> None:
    lease.acquire(conn, "a", ["project:p"], 30)
    left = float(pg_server.sql(pg_url, "SELECT extract(epoch FROM expires - now()) FROM et_leases"))
    assert 25 < left <= 30


def test_release_frees_a_lease_at_once_for_the_next_owner(conn: Conn) -> None:
    lease.acquire(conn, "a", ["sink:console"], 600)
    lease.release(conn, "a", ["sink:console"])
    assert lease.acquire(conn, "b", ["sink:console"], 10) == {"sink:console": 2}


def test_leave_releases_everything_and_removes_the_gateway(conn: Conn) -> None:
    lease.upsert_projects(conn, {"p": {"url": "http://h:1"}})
    lease.heartbeat(conn, "a", 600, "")
    lease.heartbeat(conn, "b", 600, "")
    lease.acquire(conn, "a", ["project:p", "sink:s"], 600)
    lease.leave(conn, "a")
    state = lease.cluster_state(conn)
    assert (state.gateways, state.free, state.sink_owners) == (["b"], frozenset({"project:p"}), {})


def test_listing_shows_projects_with_live_owners_and_published_status(
    conn: Conn, pg_server: PgServer, pg_url: str
) -> None:
    lease.upsert_projects(conn, {"p": {"url": "http://h:1"}, "q": {"url": "http://h:2"}})
    lease.acquire(conn, "a", ["project:p"], 600)
    lease.publish_statuses(conn, {"p": {"state": "up"}})
    assert lease.project_listing(conn) == [
        lease.ClusterProject("p", "http://h:1", "a", {"state": "up"}),
        lease.ClusterProject("q", "http://h:2", None, None),
    ]
    expire_all(pg_server, pg_url)
    assert [p.owner for p in lease.project_listing(conn)] == [None, None]
    assert lease.delete_project(conn, "q")
    assert not lease.delete_project(conn, "q")
    assert [p.name for p in lease.project_listing(conn)] == ["p"]


def test_a_round_reads_the_registry_only_when_its_version_moved(conn: Conn) -> None:
    lease.upsert_projects(conn, {"p": {"url": "http://h:1"}})
    first = lease.cluster_state(conn)
    assert first.specs == {"p": {"url": "http://h:1"}}
    assert lease.cluster_state(conn, first.registry_version).specs is None
    lease.upsert_projects(conn, {"p": {"url": "http://h:1"}})  # the same spec: no change
    assert lease.cluster_state(conn, first.registry_version).specs is None
    lease.upsert_projects(conn, {"p": {"url": "http://h:9"}, "q": {"url": "http://h:2"}})
    changed = lease.cluster_state(conn, first.registry_version)
    assert changed.specs == {"p": {"url": "http://h:9"}, "q": {"url": "http://h:2"}}
    assert lease.delete_project(conn, "q")
    deleted = lease.cluster_state(conn, changed.registry_version)
    assert deleted.specs == {"p": {"url": "http://h:9"}}


def test_a_round_sees_free_projects_and_live_sink_owners_only(
    conn: Conn, pg_server: PgServer, pg_url: str
) -> None:
    lease.upsert_projects(conn, {"p": {"url": "http://h:1"}, "q": {"url": "http://h:2"}})
    lease.acquire(conn, "a", ["project:p", "sink:s"], 600)
    state = lease.cluster_state(conn)
    assert (state.free, state.sink_owners) == (frozenset({"project:q"}), {"sink:s": "a"})
    expire_all(pg_server, pg_url)
    state = lease.cluster_state(conn)
    assert (state.free, state.sink_owners) == (frozenset({"project:p", "project:q"}), {})


def test_a_takeover_waits_for_an_append_in_flight_but_a_renewal_does_not(
    conn: Conn, pg_server: PgServer, pg_url: str
) -> None:
    held = lease.acquire(conn, "a", ["project:p"], 600)
    with psycopg.connect(pg_url) as appender, psycopg.connect(pg_url, autocommit=True) as other:
        # An append of "a" between its fence and its commit (core.py's fence query).
        appender.execute(core._FENCE, (["project:p"], "a")).fetchall()
        other.execute("SET lock_timeout = '300ms'")
        assert lease.renew(other, "a", held, 600) == held  # not held up by the append
        pg_server.sql(pg_url, "UPDATE et_leases SET expires = now() - interval '1 s'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            lease.acquire(other, "b", ["project:p"], 600)  # waits for the append's commit
        appender.commit()
        assert lease.acquire(other, "b", ["project:p"], 600) == {"project:p": 2}
