"""What needs attention: each story's latest stage and whether it is stuck (sans-IO).

The board follows the merged log (``story_feed.py`` feeds it) and keeps,
per project and story:

* ``stage`` — the ``to_stage`` of its latest move (``None`` until one is seen);
* ``stuck`` — ``blocked`` after a ``story_blocked``, ``merge_failed`` after
  a ``merge_failure``; cleared by the story's next move. ``since_ms`` is the
  gateway stamp of the event that made it stuck (a second one while stuck
  updates the reason, not the time);
* the story's latest events (``MAX_HISTORY`` of them) for its history.

Also events per hour (``HOURS`` of them) for the page's chart. Everything
is in memory, rebuilt from the log at start (the log's retention bounds
it); the least recently updated stories go first beyond ``MAX_STORIES``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias

from ..core.events import StageTransition, StoredMergeFailure, StoredStoryBlocked
from .records import LogEntry

StuckReason: TypeAlias = Literal["blocked", "merge_failed"]

#: Events kept per story for its history.
MAX_HISTORY: Final = 50
#: Stories kept at most (the least recently updated are dropped first): with
#: their latest events about 1 KB each, so the board stays under ~20 MB.
MAX_STORIES: Final = 20_000
#: Hours of the events-per-hour chart.
HOURS: Final = 24
HOUR_MS: Final = 3_600_000


@dataclass(slots=True)
class Story:
    """One story as the board knows it."""

    project: str
    story_id: str
    stage: str | None = None
    stuck: StuckReason | None = None
    reason: str | None = None
    since_ms: int | None = None
    updated_ms: int = 0
    #: Oldest first, at most :data:`MAX_HISTORY` (a list: most stories have a
    #: few events, and an empty deque alone costs half a kilobyte).
    history: list[LogEntry] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The object served by ``GET /api/stories``."""
        return {
            "project": self.project,
            "story_id": self.story_id,
            "stage": self.stage,
            "stuck": self.stuck,
            "reason": self.reason,
            "since_ms": self.since_ms,
            "updated_ms": self.updated_ms,
        }


class StoryBoard:
    """Stories by (project, story id), fed log entries in order."""

    def __init__(self, max_stories: int = MAX_STORIES) -> None:
        self._stories: OrderedDict[tuple[str, str], Story] = OrderedDict()
        self._max = max_stories
        self._hours: dict[int, int] = {}
        self.offset = 0

    def feed(self, entries: Iterable[LogEntry]) -> None:
        """Apply ``entries`` (ascending ``seq``; older than :attr:`offset` ignored)."""
        for entry in entries:
            if entry.seq <= self.offset:
                continue
            self.offset = entry.seq
            if entry.kind == "event":
                self._count(entry.seq)
                self._apply(entry)

    def stories(self, *, attention: bool = False, project: str | None = None) -> list[Story]:
        """Stories, most recently updated first; stuck ones only (oldest first) with ``attention``."""
        found = [
            s
            for s in reversed(self._stories.values())
            if (project is None or s.project == project) and (not attention or s.stuck)
        ]
        if attention:
            found.sort(key=lambda s: s.since_ms or 0)
        return found

    def get(self, project: str, story_id: str) -> Story | None:
        """One story, if known."""
        return self._stories.get((project, story_id))

    def stage_counts(self) -> dict[str, dict[str, int]]:
        """Per project, how many stories sit in each stage (stories without one left out)."""
        counts: dict[str, dict[str, int]] = {}
        for story in self._stories.values():
            per_project = counts.setdefault(story.project, {})
            if story.stage is not None:
                per_project[story.stage] = per_project.get(story.stage, 0) + 1
        return counts

    def stuck_counts(self) -> dict[str, int]:
        """Per project, how many stories are stuck."""
        counts: dict[str, int] = {}
        for story in self._stories.values():
            if story.stuck:
                counts[story.project] = counts.get(story.project, 0) + 1
        return counts

    def events_per_hour(self, now_ms: int) -> list[tuple[int, int]]:
        """``(hour start ms, events)`` for the last :data:`HOURS` hours, oldest first."""
        current = now_ms - now_ms % HOUR_MS
        starts = [current - HOUR_MS * n for n in range(HOURS - 1, -1, -1)]
        return [(start, self._hours.get(start, 0)) for start in starts]

    def _count(self, seq: int) -> None:
        hour = seq - seq % HOUR_MS
        self._hours[hour] = self._hours.get(hour, 0) + 1
        if len(self._hours) > HOURS * 2:
            for old in sorted(self._hours)[: len(self._hours) - HOURS]:
                del self._hours[old]

    def _apply(self, entry: LogEntry) -> None:
        payload = entry.payload()
        if not isinstance(payload, (StageTransition, StoredMergeFailure, StoredStoryBlocked)):
            return
        story = self._story(entry.project, payload.story_id)
        story.updated_ms = entry.seq
        story.history.append(entry)
        if len(story.history) > MAX_HISTORY:
            del story.history[0]
        if isinstance(payload, StageTransition):
            story.stage, story.stuck, story.reason, story.since_ms = (
                payload.to_stage,
                None,
                None,
                None,
            )
            return
        if story.stuck is None:
            story.since_ms = entry.seq
        story.stuck = "blocked" if isinstance(payload, StoredStoryBlocked) else "merge_failed"
        story.reason = payload.reason

    def _story(self, project: str, story_id: str) -> Story:
        key = (project, story_id)
        story = self._stories.pop(key, None) or Story(project, story_id)
        self._stories[key] = story  # most recently updated last
        while len(self._stories) > self._max:
            self._stories.popitem(last=False)
        return story
