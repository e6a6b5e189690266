"""Leases and membership in SQL: who is alive, who owns which project and sink.

Operations (each a function of one connection, run in one transaction by
:class:`~.runner.PgRunner`): :func:`heartbeat` (this gateway is alive until
now + TTL), :func:`renew` (extend what this gateway still holds; what it lost
is missing from the answer), :func:`acquire` (take rows that are free,
expired or already ours), :func:`release`, :func:`cluster_state` (live
gateways, the shared registry with each project's owner and status),
:func:`upsert_projects`, :func:`delete_project`, :func:`publish_statuses`.

Goals: every expiry is on the database's clock (``now()``), never a host's;
the epoch of a row goes up whenever it changes hands, so an append fenced
with an older epoch is refused (core.py); rows are locked in one order
(by resource) so concurrent rounds cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[tuple[Any, ...]]

_RENEW = """
UPDATE et_leases SET expires = now() + make_interval(secs => %(ttl)s)
WHERE resource IN (
    SELECT resource FROM et_leases
    WHERE owner = %(me)s AND resource = ANY(%(mine)s) AND expires > now()
    ORDER BY resource FOR UPDATE)
RETURNING resource, epoch
"""
_ACQUIRE = """
INSERT INTO et_leases AS l (resource, owner, epoch, expires)
SELECT r, %(me)s, 1, now() + make_interval(secs => %(ttl)s)
FROM unnest(%(wanted)s::text[]) AS r ORDER BY r
ON CONFLICT (resource) DO UPDATE
SET owner = excluded.owner, epoch = l.epoch + 1, expires = excluded.expires
WHERE l.owner IS NULL OR l.expires <= now()
RETURNING resource, epoch
"""


@dataclass(frozen=True, slots=True)
class ClusterProject:
    """One project of the shared registry, as the database holds it."""

    name: str
    spec: dict[str, Any]
    owner: str | None
    status: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ClusterState:
    """One round's view of the cluster."""

    gateways: list[str]
    projects: list[ClusterProject]
    #: Resource -> live owner, for every lease held by a live lease.
    owners: dict[str, str]


def heartbeat(conn: Conn, me: str, ttl_s: float, url: str) -> None:
    """Record that ``me`` is alive until now + ``ttl_s``; forget gateways gone an hour."""
    conn.execute(
        "INSERT INTO et_gateways (id, expires, url) VALUES (%s, now() + make_interval(secs => %s), %s) "
        "ON CONFLICT (id) DO UPDATE SET expires = excluded.expires, url = excluded.url",
        (me, ttl_s, url),
    )
    conn.execute("DELETE FROM et_gateways WHERE expires < now() - interval '1 hour'")


def renew(conn: Conn, me: str, held: Mapping[str, int], ttl_s: float) -> dict[str, int]:
    """Extend every lease in ``held`` still ours at its epoch; returns those (the rest are lost)."""
    if not held:
        return {}
    rows = conn.execute(_RENEW, {"me": me, "mine": list(held), "ttl": ttl_s}).fetchall()
    return {r: epoch for r, epoch in rows if held.get(r) == epoch}


def acquire(conn: Conn, me: str, wanted: Iterable[str], ttl_s: float) -> dict[str, int]:
    """Take each of ``wanted`` that is free or expired; returns resource -> new epoch."""
    names = sorted(set(wanted))
    if not names:
        return {}
    rows = conn.execute(_ACQUIRE, {"me": me, "wanted": names, "ttl": ttl_s}).fetchall()
    return dict(rows)


def release(conn: Conn, me: str, resources: Iterable[str]) -> None:
    """Give up ``resources`` at once (a survivor may take them without waiting for the TTL)."""
    names = sorted(set(resources))
    if names:
        conn.execute(
            "UPDATE et_leases SET owner = NULL, expires = '-infinity' WHERE resource IN ("
            "SELECT resource FROM et_leases WHERE owner = %s AND resource = ANY(%s) "
            "ORDER BY resource FOR UPDATE)",
            (me, names),
        )


def leave(conn: Conn, me: str) -> None:
    """A clean stop: release every lease of ``me`` and leave the live gateways."""
    conn.execute(
        "UPDATE et_leases SET owner = NULL, expires = '-infinity' WHERE resource IN ("
        "SELECT resource FROM et_leases WHERE owner = %s ORDER BY resource FOR UPDATE)",
        (me,),
    )
    conn.execute("DELETE FROM et_gateways WHERE id = %s", (me,))


def cluster_state(conn: Conn) -> ClusterState:
    """The live gateways, every registered project with its live owner, and every live lease."""
    gateways = [g for (g,) in conn.execute(
        "SELECT id FROM et_gateways WHERE expires > now() ORDER BY id"
    ).fetchall()]  # fmt: skip
    owners: dict[str, str] = dict(
        conn.execute(
            "SELECT resource, owner FROM et_leases WHERE owner IS NOT NULL AND expires > now()"
        ).fetchall()
    )
    rows = conn.execute("SELECT name, spec, status FROM et_projects ORDER BY name").fetchall()
    projects = [
        ClusterProject(name, spec, owners.get(f"project:{name}"), status)
        for name, spec, status in rows
    ]
    return ClusterState(gateways, projects, owners)


def upsert_projects(conn: Conn, specs: Mapping[str, dict[str, Any]]) -> None:
    """Add or update projects of the shared registry (name -> spec)."""
    for name in sorted(specs):
        conn.execute(
            "INSERT INTO et_projects (name, spec) VALUES (%s, %s) ON CONFLICT (name) DO UPDATE "
            "SET spec = excluded.spec, updated = now() WHERE et_projects.spec <> excluded.spec",
            (name, Jsonb(specs[name])),
        )


def delete_project(conn: Conn, name: str) -> bool:
    """Remove ``name`` from the shared registry (its owner stops it); False if unknown."""
    return conn.execute("DELETE FROM et_projects WHERE name = %s", (name,)).rowcount > 0


def publish_statuses(conn: Conn, statuses: Mapping[str, dict[str, Any]]) -> None:
    """Store the live status of the projects this gateway polls (for every gateway's API)."""
    if statuses:
        names = sorted(statuses)
        conn.execute(
            "UPDATE et_projects AS p SET status = s.status FROM "
            "unnest(%s::text[], %s::jsonb[]) AS s(name, status) WHERE p.name = s.name",
            (names, [Jsonb(statuses[n]) for n in names]),
        )
