"""Leases in PostgreSQL: epochs go up on every change of owner, expiry is the database's clock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from events_trio.gateway.pg import lease
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
    lease.heartbeat(conn, "a", 600, "")
    lease.heartbeat(conn, "b", 600, "")
    lease.acquire(conn, "a", ["project:p", "sink:s"], 600)
    lease.leave(conn, "a")
    state = lease.cluster_state(conn)
    assert (state.gateways, state.owners) == (["b"], {})


def test_cluster_state_lists_projects_with_live_owners_and_published_status(conn: Conn) -> None:
    lease.upsert_projects(conn, {"p": {"url": "http://h:1"}, "q": {"url": "http://h:2"}})
    lease.acquire(conn, "a", ["project:p"], 600)
    lease.publish_statuses(conn, {"p": {"state": "up"}})
    state = lease.cluster_state(conn)
    assert [(p.name, p.owner, p.status) for p in state.projects] == [
        ("p", "a", {"state": "up"}),
        ("q", None, None),
    ]
    assert lease.delete_project(conn, "q")
    assert not lease.delete_project(conn, "q")
