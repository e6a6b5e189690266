"""The live state of each project, as ``GET /api/projects`` shows it.

A status board, not a record: each poller updates its own entry in place
(only that poller writes it; the HTTP API only reads).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

ProjectState: TypeAlias = Literal["up", "down", "unknown"]
PollMode: TypeAlias = Literal["stream", "long-poll", "interval"]


@dataclass(slots=True)
class ProjectStatus:
    """What the gateway knows about one project right now.

    Attributes:
        name: Project name.
        url: Base URL (the token is never kept here).
        state: ``up`` after a good poll, ``down`` once declared unreachable,
            ``unknown`` before the first answer.
        cursor: Newest project stamp accepted (``None`` before the first poll).
        last_event_ms: Project stamp of the newest event delivered.
        last_error: The most recent failure, one line (``None`` once recovered).
        mode: ``stream``, ``long-poll`` or ``interval``, detected per project
            (transports/modes.py).
        skipped_unknown: Events of an unknown ``type`` skipped so far.
        polls: Successful polls.
        failures: Failed polls.
        events_received: Events appended to the log (duplicates not counted).
    """

    name: str
    url: str
    state: ProjectState = "unknown"
    cursor: int | None = None
    last_event_ms: int | None = None
    last_error: str | None = None
    mode: PollMode | None = None
    skipped_unknown: int = 0
    polls: int = 0
    failures: int = 0
    events_received: int = 0

    def to_json(self) -> dict[str, Any]:
        """The object served by ``GET /api/projects``."""
        return {
            "name": self.name,
            "url": self.url,
            "state": self.state,
            "cursor": self.cursor,
            "last_event_ms": self.last_event_ms,
            "last_error": self.last_error,
            "mode": self.mode,
            "skipped_unknown": self.skipped_unknown,
            "polls": self.polls,
            "failures": self.failures,
        }
