"""Leases and membership in SQL: who is alive, who owns which project and sink.

Operations (each a function of one connection, run in one transaction by
:class:`~.runner.PgRunner`): :func:`heartbeat` (this gateway is alive until
now + TTL), :func:`renew` (extend what this gateway still holds; what it lost
is missing from the answer), :func:`acquire` (take rows that are free,
expired or already ours), :func:`release`, :func:`cluster_state` (what one round needs: live
gateways, free projects, sink owners, and the shared registry only when its
version moved), :func:`project_listing` (every project with its owner and
status, for ``GET /api/projects``), :func:`upsert_projects`,
:func:`delete_project` (both bump the registry's version),
:func:`publish_statuses`.

Goals: every expiry is on the database's clock (``now()``), never a host's;
the epoch of a row goes up whenever it changes hands, so an append fenced
with an older epoch is refused (core.py); rows are locked in one order
(by resource) so concurrent rounds cannot deadlock; a round reads a few
rows in steady state, not the whole fleet (3,000 projects read and decoded
every second by every gateway cost most of a gateway's CPU).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import psycopg
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[tuple[Any, ...]]

_RENEW = """
UPDATE et_leases SET expires = now() + make_interval(secs => %(ttl)s)
WHERE resource IN (
    SELECT resource FROM et_leases
    WHERE owner = %(me)s AND resource = ANY(%(mine)s) AND expires > now()
    ORDER BY resource FOR NO KEY UPDATE)
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
    """One project of the shared registry, as ``GET /api/projects`` lists it."""

    name: str
    url: str
    owner: str | None
    status: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ClusterState:
    """One round's view of the cluster (small in steady state, whatever the fleet's size).

    Attributes:
        gateways: Live gateways, by id.
        registry_version: Bumped by every change of the shared registry.
        specs: Every project's settings (name -> spec), read only when
            ``registry_version`` differs from the version the round already
            knew; ``None`` when unchanged.
        free: Project resources without a live lease.
        sink_owners: Sink resource -> live owner.
    """

    gateways: list[str]
    registry_version: int = 0
    specs: dict[str, dict[str, Any]] | None = None
    free: frozenset[str] = frozenset()
    sink_owners: dict[str, str] = field(default_factory=dict)


_LIVE_LEASE = "l.owner IS NOT NULL AND l.expires > now()"
_FREE_PROJECTS = f"""
SELECT 'project:' || p.name FROM et_projects p
WHERE NOT EXISTS (
    SELECT 1 FROM et_leases l WHERE l.resource = 'project:' || p.name AND {_LIVE_LEASE})
"""
_SINK_OWNERS = f"SELECT resource, owner FROM et_leases l WHERE starts_with(resource, 'sink:') AND {_LIVE_LEASE}"
_LISTING = f"""
SELECT p.name, p.spec ->> 'url', l.owner, p.status FROM et_projects p
LEFT JOIN et_leases l ON l.resource = 'project:' || p.name AND {_LIVE_LEASE}
ORDER BY p.name
"""
_BUMP_REGISTRY = """
INSERT INTO et_meta VALUES ('registry_version', '1')
ON CONFLICT (key) DO UPDATE SET value = (et_meta.value::bigint + 1)::text
"""


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
    # FOR UPDATE waits for appends in flight under the previous owner (their
    # fence holds the row FOR KEY SHARE until they commit).
    conn.execute(
        "SELECT resource FROM et_leases WHERE resource = ANY(%s) ORDER BY resource FOR UPDATE",
        (names,),
    )
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


def cluster_state(conn: Conn, known_version: int = -1) -> ClusterState:
    """Live gateways, free projects, sink owners; the registry's specs if changed since ``known_version``."""
    gateways = [g for (g,) in conn.execute(
        "SELECT id FROM et_gateways WHERE expires > now() ORDER BY id"
    ).fetchall()]  # fmt: skip
    row = conn.execute("SELECT value FROM et_meta WHERE key = 'registry_version'").fetchone()
    version = 0 if row is None else int(str(row[0]))
    specs: dict[str, dict[str, Any]] | None = None
    if version != known_version:
        specs = dict(conn.execute("SELECT name, spec FROM et_projects").fetchall())
    free = frozenset(r for (r,) in conn.execute(_FREE_PROJECTS).fetchall())
    sink_owners: dict[str, str] = dict(conn.execute(_SINK_OWNERS).fetchall())
    return ClusterState(gateways, version, specs, free, sink_owners)


def project_listing(conn: Conn) -> list[ClusterProject]:
    """Every project of the shared registry with its live owner and published status."""
    rows = conn.execute(_LISTING).fetchall()
    return [ClusterProject(name, url or "", owner, status) for name, url, owner, status in rows]


def upsert_projects(conn: Conn, specs: Mapping[str, dict[str, Any]]) -> None:
    """Add or update projects of the shared registry (name -> spec), in one statement."""
    names = sorted(specs)
    if not names:
        return
    changed = conn.execute(
        "INSERT INTO et_projects (name, spec) "
        "SELECT n, s FROM unnest(%s::text[], %s::jsonb[]) AS u(n, s) ORDER BY n "
        "ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated = now() "
        "WHERE et_projects.spec <> excluded.spec",
        (names, [Jsonb(specs[n]) for n in names]),
    ).rowcount
    if changed:
        conn.execute(_BUMP_REGISTRY)


def delete_project(conn: Conn, name: str) -> bool:
    """Remove ``name`` from the shared registry (its owner stops it); False if unknown."""
    if conn.execute("DELETE FROM et_projects WHERE name = %s", (name,)).rowcount == 0:
        return False
    conn.execute(_BUMP_REGISTRY)
    return True


def publish_statuses(conn: Conn, statuses: Mapping[str, dict[str, Any]]) -> None:
    """Store the live status of projects this gateway polls (for every gateway's API)."""
    if statuses:
        # One JSON document, not an array of them (psycopg dumps arrays item by item).
        conn.execute(
            "UPDATE et_projects AS p SET status = s.value FROM jsonb_each(%s::jsonb) AS s "
            "WHERE p.name = s.key",
            (msgspec.json.encode(dict(sorted(statuses.items()))).decode(),),
        )
