"""The rules of a pipeline directory, sans IO: names, actions, where items are.

No filesystem, no clock, no Trio: every function here takes plain values, so
the rules are tested without files or an event loop. The filesystem helpers
(``pipeline_fs.py``) and the Trio watcher (``watcher.py``) are layered on top.

Layout (see docs/sources.md)::

    pipeline/                 --pipeline DIR (default ./pipeline)
      1_backlog/              a stage folder, named <n>_<name>
        42_story_x.md         a work item, <item_id>.md
      2_current/  3_qa/  4_merge/  5_done/  6_archived/

* Names: :func:`is_stage_name`, :func:`is_valid_item_id`, :func:`stage_order`.
* Actions: :func:`derive_action` and :func:`work_item` apply :data:`STAGE_ACTIONS`.
* Paths: :func:`parse_path` classifies a path inside the pipeline directory.
* State: :class:`PipelineState` turns observations (:class:`ItemSeen`,
  :class:`StageSeen`) into :class:`~events_trio.core.events.WorkItem` events.

Why the state reconciles instead of replaying change kinds: watchfiles hands
over each batch as a *set*, so the order inside it is lost, and a move is a
deletion plus an addition that may land in one batch or be split over two.
So for every item id a batch touches the state asks "where does the file
exist now?" and compares that with where it was last seen. An item that
vanished is held for ``hold_s`` seconds (the second half of a split move
may be in the next batch) and then forgotten.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final, TypeAlias

from ..core.events import WorkItem

# The watcher's logger: operators filter the watcher's lines by this one name,
# wherever in the package the line comes from.
log = logging.getLogger("events_trio.watcher")

#: Stage folders created in a new (or stage-less) pipeline directory.
DEFAULT_STAGES: Final = ("1_backlog", "2_current", "3_qa", "4_merge", "5_done", "6_archived")
#: Default pipeline directory of ``events-trio serve``.
DEFAULT_PIPELINE_DIR: Final = Path("pipeline")
#: A stage folder name: a number, ``_``, a lowercase name.
STAGE_RE: Final = re.compile(r"[0-9]+_[a-z0-9][a-z0-9_-]*")
#: A work item id (the file name without ``.md``): number, ``_``, lowercase slug.
ITEM_ID_RE: Final = re.compile(r"[0-9]+_[a-z0-9][a-z0-9_-]*")
ITEM_ID_MAX_CHARS: Final = 200
ITEM_SUFFIX: Final = ".md"

#: How long a vanished item waits for its other half (a move split over batches).
MOVE_HOLD_S: Final = 0.5

#: Target stage name (the part after ``<n>_``) -> ``action`` of the work-item event.
STAGE_ACTIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "backlog": "backlog",
        "current": "start",
        "qa": "qa",
        "merge": "merge",
        "done": "done",
        "archived": "archive",
    }
)
#: ``action`` for a stage the table does not name.
DEFAULT_ACTION: Final = "move"


# --- names and actions ---------------------------------------------------------


def is_valid_item_id(name: str) -> bool:
    """Whether ``name`` is a work item id: ``^[0-9]+_[a-z0-9][a-z0-9_-]*$``, at most 200 chars.

    ASCII only: digits, an underscore, then a lowercase letter or digit
    followed by lowercase letters, digits, ``_`` or ``-`` (``42_story_my_feature``).
    """
    return len(name) <= ITEM_ID_MAX_CHARS and ITEM_ID_RE.fullmatch(name) is not None


def is_stage_name(name: str) -> bool:
    """Whether ``name`` is a stage folder name such as ``2_current``."""
    return STAGE_RE.fullmatch(name) is not None


def stage_order(stage: str) -> tuple[int, str]:
    """Sort key of a stage: its number first (``10_x`` after ``9_y``), then its name."""
    number, _, name = stage.partition("_")
    return int(number), name


def derive_action(stage: str, item_id: str) -> tuple[str, str]:
    """``(action, commit_msg)`` for an item arriving in ``stage`` (see :data:`STAGE_ACTIONS`).

    Examples: ``3_qa`` -> ``("qa", "qa 42_x")``; a stage missing from the
    table, ``7_review`` -> ``("move", "move 42_x to 7_review")``.
    """
    action = STAGE_ACTIONS.get(stage.partition("_")[2])
    if action is None:
        return DEFAULT_ACTION, f"{DEFAULT_ACTION} {item_id} to {stage}"
    return action, f"{action} {item_id}"


def work_item(item_id: str, stage: str, from_stage: str | None) -> WorkItem:
    """A :class:`WorkItem` with ``action`` and ``commit_msg`` derived from ``stage``."""
    action, commit_msg = derive_action(stage, item_id)
    return WorkItem(item_id, stage, from_stage, action, commit_msg)


# --- paths ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StagePath:
    """A path that names a stage folder (``<root>/2_current``)."""

    stage: str


@dataclass(frozen=True, slots=True)
class ItemPath:
    """A path that names a work item (``<root>/2_current/42_story_x.md``)."""

    stage: str
    item_id: str


def parse_path(parts: Sequence[str]) -> StagePath | ItemPath | None:
    """Classify a path given as its parts relative to the pipeline directory.

    Returns:
        :class:`StagePath`, :class:`ItemPath`, or ``None`` for everything
        that is ignored: files at the top level or nested deeper, folders
        that are not stages, non-``.md`` files, dotfiles and editor
        temporaries (``.x.md.swp``, ``x.md~``, ``x.md.tmp``), invalid ids.
    """
    if not parts or not is_stage_name(parts[0]):
        return None
    if len(parts) == 1:
        return StagePath(parts[0])
    name = parts[1]
    if len(parts) != 2 or not name.endswith(ITEM_SUFFIX):
        return None
    item_id = name.removesuffix(ITEM_SUFFIX)
    return ItemPath(parts[0], item_id) if is_valid_item_id(item_id) else None


# --- state -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ItemSeen:
    """An item path a batch touched, and whether a valid item file is there now."""

    stage: str
    item_id: str
    present: bool


@dataclass(frozen=True, slots=True)
class StageSeen:
    """A stage folder a batch touched, and whether it exists now."""

    stage: str
    present: bool


Observation: TypeAlias = ItemSeen | StageSeen


@dataclass(frozen=True, slots=True)
class _Pending:
    stage: str
    deadline: float


class PipelineState:
    """Where every known item is; turns observations into work-item events.

    Rules (documented in docs/sources.md):

    * an item present in a stage other than the one it was last seen in moved
      there: one event with ``from_stage``;
    * an unknown item that appears is new: one event without ``from_stage``;
      but an item that vanished less than ``hold_s`` ago counts as moved;
    * an item seen where it already was (an edit, an atomic save) is no event;
    * an item that vanished is held ``hold_s`` seconds, then forgotten;
    * a removed stage folder forgets its items at once.

    Times (``now``, deadlines) are plain numbers of seconds from any clock.

    Args:
        hold_s: How long a vanished item may reappear as a move.
    """

    def __init__(self, *, hold_s: float = MOVE_HOLD_S) -> None:
        self.hold_s = hold_s
        self._items: dict[str, str] = {}
        self._pending: dict[str, _Pending] = {}

    @property
    def items(self) -> Mapping[str, str]:
        """Known items: item id -> stage (read-only view)."""
        return MappingProxyType(self._items)

    def reset(self, entries: Iterable[tuple[str, str]]) -> None:
        """Start over from a scan: ``(stage, item_id)`` pairs.

        An id found in several stages is kept in the furthest one (warned).
        """
        self.clear()
        for stage, item_id in sorted(entries, key=lambda entry: stage_order(entry[0])):
            if item_id in self._items:
                log.warning(
                    "item %s is in %s and %s; using %s", item_id, self._items[item_id], stage, stage
                )
            self._items[item_id] = stage

    def clear(self) -> None:
        """Forget every item."""
        self._items.clear()
        self._pending.clear()

    def apply(self, observations: Iterable[Observation], now: float) -> list[WorkItem]:
        """Fold one batch of observations in; returns the events, sorted by item id."""
        touched: dict[str, tuple[set[str], set[str]]] = {}
        for seen in observations:
            if isinstance(seen, StageSeen):
                if not seen.present:
                    self._forget_stage(seen.stage)
                continue
            present, absent = touched.setdefault(seen.item_id, (set(), set()))
            (present if seen.present else absent).add(seen.stage)
        events = []
        for item_id in sorted(touched):
            event = self._reconcile(item_id, *touched[item_id], now)
            if event is not None:
                events.append(event)
        return events

    def expire(self, now: float) -> list[str]:
        """Forget vanished items whose hold ended by ``now``; returns their ids."""
        expired = [item_id for item_id, held in self._pending.items() if held.deadline <= now]
        for item_id in expired:
            log.debug("item %s was deleted from %s", item_id, self._pending.pop(item_id).stage)
        return expired

    def next_deadline(self) -> float:
        """When :meth:`expire` next has work (``math.inf`` when nothing is held)."""
        return min((held.deadline for held in self._pending.values()), default=math.inf)

    def _reconcile(
        self, item_id: str, present: set[str], absent: set[str], now: float
    ) -> WorkItem | None:
        known = self._items.get(item_id)
        if present:
            stage = _pick_stage(item_id, present, known)
            held = self._pending.pop(item_id, None)
            origin = known if known is not None else (held.stage if held else None)
            self._items[item_id] = stage
            return None if origin == stage else work_item(item_id, stage, origin)
        if known is not None and known in absent:
            del self._items[item_id]
            self._pending[item_id] = _Pending(known, now + self.hold_s)
        return None

    def _forget_stage(self, stage: str) -> None:
        gone = [item_id for item_id, where in self._items.items() if where == stage]
        for item_id in gone:
            del self._items[item_id]
        held = [item_id for item_id, entry in self._pending.items() if entry.stage == stage]
        for item_id in held:
            del self._pending[item_id]
        log.warning("stage folder %s was removed; forgot %d items", stage, len(gone) + len(held))


def _pick_stage(item_id: str, present: set[str], known: str | None) -> str:
    # "The most recently changed copy wins": a copy that appeared elsewhere beats
    # the known location; several new copies at once are ambiguous, so warn.
    candidates = (present - {known}) or present
    if len(candidates) > 1:
        log.warning(
            "item %s appeared in several stages: %s", item_id, ", ".join(sorted(candidates))
        )
    return max(candidates, key=stage_order)


__all__ = [
    "DEFAULT_ACTION",
    "DEFAULT_PIPELINE_DIR",
    "DEFAULT_STAGES",
    "ITEM_ID_MAX_CHARS",
    "ITEM_ID_RE",
    "ITEM_SUFFIX",
    "MOVE_HOLD_S",
    "STAGE_ACTIONS",
    "STAGE_RE",
    "ItemPath",
    "ItemSeen",
    "Observation",
    "PipelineState",
    "StagePath",
    "StageSeen",
    "derive_action",
    "is_stage_name",
    "is_valid_item_id",
    "parse_path",
    "stage_order",
    "work_item",
]
