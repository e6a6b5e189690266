"""The newest log entries in memory: sinks at the head of the log read here, not SQLite.

Operations: :meth:`LogTail.extend` after every commit; :meth:`LogTail.read`
answers like ``SqliteCore.read`` when it holds every entry after the
offset asked for, else ``None`` (the caller reads SQLite: a sink that fell
behind pages through the log as before).

Goals: a reader caught up with the log costs no worker-thread round trip
and no query per delivery; answers are exactly those SQLite would give.

Plan: entries and their offsets in two lists with a start index (trimmed
in halves, amortised O(1)), ``floor`` the offset below which entries may
be missing; ``bisect`` finds the first entry after an offset.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Final

from .records import LogEntry, Page

#: Entries kept in memory (at ~250 bytes each, a few MB).
DEFAULT_TAIL_ENTRIES: Final = 10_000


class LogTail:
    """The last ``capacity`` committed entries.

    Args:
        last_seq: The log's newest offset now (the tail starts empty above it).
        capacity: Entries kept.
    """

    def __init__(self, last_seq: int, capacity: int = DEFAULT_TAIL_ENTRIES) -> None:
        self.capacity = capacity
        self.floor = last_seq
        self.last_seq = last_seq
        self._seqs: list[int] = []
        self._entries: list[LogEntry] = []
        self._start = 0

    def __len__(self) -> int:
        return len(self._seqs) - self._start

    def extend(self, entries: list[LogEntry], last_seq: int) -> None:
        """Add newly committed ``entries`` (ascending); ``last_seq`` is the log's end now."""
        self._seqs += [entry.seq for entry in entries]
        self._entries += entries
        self.last_seq = max(self.last_seq, last_seq)
        excess = len(self) - self.capacity
        if excess > 0:
            self._start += excess
            self.floor = self._seqs[self._start - 1]
            if self._start * 2 >= len(self._seqs):
                del self._seqs[: self._start]
                del self._entries[: self._start]
                self._start = 0

    def reset(self, last_seq: int) -> None:
        """Forget everything (entries were deleted from the log)."""
        self.floor = self.last_seq = last_seq
        self._seqs, self._entries, self._start = [], [], 0

    def read(self, after: int, limit: int, *, notices: bool = True) -> Page | None:
        """Up to ``limit`` entries with ``seq > after``, or ``None`` if some may be missing here."""
        if after < self.floor:
            return None
        index = bisect_right(self._seqs, after, lo=self._start)
        rows = self._entries[index : index + limit]
        covered = rows[-1].seq if len(rows) == limit else max(after, self.last_seq)
        if not notices:
            rows = [entry for entry in rows if entry.kind == "event"]
        return Page(rows, covered)
