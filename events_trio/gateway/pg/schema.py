"""The cluster's tables, created and migrated by the gateway itself.

Versioned: ``et_meta`` holds ``schema_version``; :data:`MIGRATIONS` are
applied in order, each in its own transaction, under an advisory lock so
gateways starting together migrate once. A database whose schema is newer
than this code knows is refused (``SchemaTooNew``).

Tables (version 1):

- ``et_log``: the merged log. ``seq`` is stamped under the transaction-level
  advisory lock :data:`APPEND_LOCK` (``max(db_now_ms, max(seq) + 1)``), held
  until commit, so entries commit in ``seq`` order across every gateway: a
  reader at offset N never finds an entry below N committed later.
- ``et_positions``: each project's server instance and cursor.
- ``et_sinks``: each sink's committed offset.
- ``et_leases``: one row per project (``project:NAME``) and sink
  (``sink:NAME``): owner, fencing epoch (raised on every change of owner),
  expiry on the database's clock.
- ``et_gateways``: live gateways (heartbeat expiry, when they started, the
  URL they serve).
- ``et_projects``: the shared registry (what ``--project`` / TOML / the
  admin API upsert), the project's settings as JSON, and the live status
  its owner publishes when it changes (what ``GET /api/projects`` shows on
  every gateway).
"""

from __future__ import annotations

from typing import Any, Final

import psycopg

from ...core.errors import ConfigError

#: pg_advisory_xact_lock key serialising log appends (stamping + insert).
APPEND_LOCK: Final = 0x65745F6C6F67  # "et_log"
#: pg_advisory_xact_lock key serialising migrations.
MIGRATE_LOCK: Final = 0x65745F6D6967  # "et_mig"
#: NOTIFY channel: payload is the newest seq committed.
LOG_CHANNEL: Final = "events_trio_log"

MIGRATIONS: Final[tuple[str, ...]] = (
    # 1
    """
    CREATE TABLE et_log (
        seq BIGINT PRIMARY KEY,
        project TEXT NOT NULL,
        kind TEXT NOT NULL,
        instance TEXT NOT NULL,
        project_ts BIGINT NOT NULL,
        body BYTEA NOT NULL
    );
    CREATE UNIQUE INDEX et_log_dedup ON et_log (project, instance, project_ts)
        WHERE kind = 'event';
    CREATE TABLE et_positions (
        project TEXT PRIMARY KEY, instance TEXT NOT NULL, cursor BIGINT NOT NULL);
    CREATE TABLE et_sinks (sink TEXT PRIMARY KEY, "offset" BIGINT NOT NULL);
    CREATE TABLE et_leases (
        resource TEXT PRIMARY KEY,
        owner TEXT,
        epoch BIGINT NOT NULL DEFAULT 0,
        expires TIMESTAMPTZ NOT NULL DEFAULT '-infinity'
    );
    CREATE TABLE et_gateways (
        id TEXT PRIMARY KEY,
        started TIMESTAMPTZ NOT NULL DEFAULT now(),
        expires TIMESTAMPTZ NOT NULL,
        url TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE et_projects (
        name TEXT PRIMARY KEY,
        spec JSONB NOT NULL,
        status JSONB,
        updated TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    """,
)
SCHEMA_VERSION: Final = len(MIGRATIONS)

_META: Final = "CREATE TABLE IF NOT EXISTS et_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"


class SchemaTooNew(ConfigError):
    """The database was migrated by a newer events-trio than this one."""


def migrate(conn: psycopg.Connection[tuple[Any, ...]]) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION`; returns the version found before.

    Each migration commits with its version; concurrent gateways wait on
    :data:`MIGRATE_LOCK`, so each migration runs once.

    Raises:
        SchemaTooNew: the database's version is newer than this code's.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
        conn.execute(_META)
        row = conn.execute("SELECT value FROM et_meta WHERE key = 'schema_version'").fetchone()
        found = 0 if row is None else int(str(row[0]))
        if found > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"the PostgreSQL schema is version {found}, newer than this events-trio "
                f"knows ({SCHEMA_VERSION}): upgrade events-trio"
            )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            conn.execute(MIGRATIONS[version - 1])
            conn.execute(
                "INSERT INTO et_meta VALUES ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(version),),
            )
    return found


def project_resource(name: str) -> str:
    """The ``et_leases`` row of a project."""
    return f"project:{name}"


def sink_resource(name: str) -> str:
    """The ``et_leases`` row of a sink (its name: the spec, or the URL's hash for webhooks)."""
    return f"sink:{name}"
