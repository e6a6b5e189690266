"""Cluster mode's backend: the merged log, leases and the shared registry in PostgreSQL.

Modules: ``url`` (the ``--store`` URL, its password kept secret), ``schema``
(versioned migrations), ``runner`` (psycopg's sync API in worker threads,
behind a limiter sized to the pool; connection errors become
``StoreUnavailable``). Nothing outside this package imports psycopg.
"""
