"""What pollers, sinks and the HTTP API need from the merged log, whichever backend holds it.

Backends: embedded SQLite (store.py, the default) and PostgreSQL (pg/, cluster
mode). Every failure surfaces as :class:`~.errors.StoreError`; callers never
see ``sqlite3`` or ``psycopg`` (an import-linter contract keeps it so).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .records import Incoming, LogEntry, Page
from .tracker import Position
from .watch import LogWatch


class EventLog(Protocol):
    """What pollers, sinks and the HTTP API need from the merged log."""

    watch: LogWatch
    instance: str

    def may_deliver(self, sink: str) -> bool:
        """Whether this gateway may deliver ``sink`` now (cluster: it holds a fresh lease)."""
        ...

    async def positions(self) -> dict[str, Position]:
        """Every project's persisted position."""
        ...

    async def append(
        self, project: str, records: Sequence[Incoming], position: Position | None
    ) -> list[LogEntry]:
        """Append ``records`` and set ``project``'s position (unless ``None``), atomically."""
        ...

    async def read(self, after: int, limit: int, *, notices: bool = True) -> Page:
        """Up to ``limit`` entries with ``seq > after``."""
        ...

    async def oldest_seq(self) -> int | None:
        """Offset of the oldest retained entry."""
        ...

    async def sink_offset(self, sink: str) -> int:
        """A sink's committed offset; a new sink starts at the current end."""
        ...

    async def commit(self, sink: str, offset: int) -> None:
        """Persist that ``sink`` delivered everything up to ``offset``."""
        ...

    async def sync_offset(self, sink: str) -> None:
        """Return once ``sink``'s last committed offset is durable (before its next batch)."""
        ...

    async def prune(self, keep: int, max_age_s: float) -> int:
        """Delete all but the newest ``keep`` entries and those older than ``max_age_s``."""
        ...
