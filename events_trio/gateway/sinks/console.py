"""Console sink: one readable line per event, e.g. ``[billing] 42_story_x  Current -> QA``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from ..errors import SinkError
from ..records import LogEntry
from .format import console_line


class ConsoleSink:
    """Writes one line per entry to a text stream (stdout by default).

    Args:
        stream: Where lines go; kept as an attribute so tests can pass a buffer.
    """

    name = "console"
    group_window_s = 0.0
    min_interval_s = 0.0

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout

    async def resume(self, committed: int) -> int:
        """Continue from the committed offset."""
        return committed

    async def deliver(self, entries: Sequence[LogEntry]) -> None:
        """Write and flush the lines of ``entries``.

        Raises:
            SinkError: the stream is closed or broken (e.g. a closed pipe).
        """
        try:
            self.stream.write("".join(console_line(entry) + "\n" for entry in entries))
            self.stream.flush()
        except (OSError, ValueError) as error:
            raise SinkError(f"cannot write to the console: {error}") from None
