"""psycopg's sync API on Trio: a connection pool used from worker threads.

Operations: :meth:`PgRunner.open` (waits for the first connection),
:meth:`PgRunner.run` (one function on one pooled connection, in one
transaction), :meth:`PgRunner.close`.

Goals: never block the event loop; never hold more threads than the pool
has connections; every connection-level failure (refused, reset, timed out,
server restarting) surfaces as :class:`~events_trio.gateway.errors.StoreUnavailable`
so callers pause and retry without knowing psycopg; a password never
reaches a log line or an error message.

Plan: ``psycopg_pool.ConnectionPool`` (sync) and ``trio.to_thread.run_sync``
behind a ``CapacityLimiter`` sized to the pool. Thread calls are not
abandoned on cancel: a transaction commits or rolls back before the caller
sees the cancellation. What bounds them is the server side: every
connection sets ``statement_timeout`` and ``lock_timeout`` (a stuck query is
cancelled by PostgreSQL itself), TCP keepalives (a dead peer is noticed),
and ``connect_timeout``; waiting for a pooled connection is bounded by the
pool's ``timeout``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any, Final, TypeVar

import psycopg
import psycopg_pool
import trio

from ..errors import StoreError, StoreUnavailable
from ..store_url import redact

T = TypeVar("T")
log = logging.getLogger("events_trio.gateway.pg")

#: Connections in the pool (and worker threads in flight).
DEFAULT_POOL_SIZE: Final = 8
#: Longest any one statement may run before PostgreSQL cancels it.
STATEMENT_TIMEOUT_S: Final = 10.0
#: Longest a caller waits for a pooled connection.
POOL_TIMEOUT_S: Final = 10.0
CONNECT_TIMEOUT_S: Final = 5


def connection_kwargs(*, autocommit: bool = False) -> dict[str, object]:
    """Settings of every connection the gateway opens."""
    timeout_ms = int(STATEMENT_TIMEOUT_S * 1000)
    return {
        "autocommit": autocommit,
        "connect_timeout": CONNECT_TIMEOUT_S,
        "application_name": "events-trio-gateway",
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "options": f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms} "
        f"-c idle_in_transaction_session_timeout={timeout_ms * 3}",
    }


def unavailable(error: BaseException, url: str) -> StoreUnavailable:
    """One line for operators, with the password redacted."""
    return StoreUnavailable(f"PostgreSQL {redact(url)} unavailable: {_first_line(error)}")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class PgRunner:
    """Runs synchronous psycopg code on pooled connections in worker threads.

    Args:
        url: ``postgresql://`` URL (may hold a password: it is never logged).
        size: Connections in the pool, and threads in flight.
    """

    def __init__(self, url: str, *, size: int = DEFAULT_POOL_SIZE) -> None:
        self.url = url
        self.safe_url = redact(url)
        self.pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=size,
            kwargs=connection_kwargs(),
            timeout=POOL_TIMEOUT_S,
            open=False,
            name="events-trio",
        )
        self.limiter = trio.CapacityLimiter(size)
        # The pool logs a warning per failed reconnection attempt (hundreds
        # while PostgreSQL restarts), and psycopg one per pipeline cut by a lost
        # connection; the log and pollers report each outage once, in our words.
        logging.getLogger("psycopg").setLevel(logging.ERROR)

    async def open(self, timeout_s: float = POOL_TIMEOUT_S) -> None:
        """Open the pool and wait for one good connection.

        Raises:
            StoreUnavailable: no connection within ``timeout_s``.
        """
        try:
            await trio.to_thread.run_sync(lambda: self.pool.open(wait=True, timeout=timeout_s))
        except (psycopg.Error, psycopg_pool.PoolTimeout) as error:
            await trio.to_thread.run_sync(self.pool.close)
            raise unavailable(error, self.url) from None

    async def run(self, fn: Callable[[psycopg.Connection[tuple[Any, ...]]], T]) -> T:
        """``fn(conn)`` in one transaction (committed if it returns, rolled back if it raises).

        Raises:
            StoreUnavailable: the connection failed or timed out (nothing was committed,
                or the commit's outcome is unknown: callers make writes idempotent).
            StoreError: any other database error.
        """
        return await self.call(partial(self._with_connection, fn))

    async def call(self, fn: Callable[[], T]) -> T:
        """``fn()`` (which takes its own pooled connections) in a worker thread.

        Raises:
            StoreUnavailable: a connection failed or timed out.
            StoreError: any other database error.
        """
        try:
            return await trio.to_thread.run_sync(fn, limiter=self.limiter)
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as error:
            raise unavailable(error, self.url) from None
        except psycopg.Error as error:
            raise StoreError(f"PostgreSQL refused the operation: {_first_line(error)}") from None

    def _with_connection(self, fn: Callable[[psycopg.Connection[tuple[Any, ...]]], T]) -> T:
        with self.pool.connection() as conn:
            return fn(conn)

    async def close(self) -> None:
        """Close every connection (waits for calls in flight)."""
        await trio.to_thread.run_sync(self.pool.close)
