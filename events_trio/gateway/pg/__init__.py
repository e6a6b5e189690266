"""Cluster mode's backend: the merged log, leases and the shared registry in PostgreSQL.

Modules: ``core`` (the log's SQL), ``log`` (``PgLog``), ``lease``, ``schema``
(versioned migrations), ``runner`` (psycopg's sync API in worker threads,
behind a limiter sized to the pool; connection errors become
``StoreUnavailable``). Nothing outside this package imports psycopg.
"""
