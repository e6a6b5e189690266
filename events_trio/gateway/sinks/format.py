"""Human-readable text for chat and console (pure functions).

Stage keys are directory names like ``3_qa``; people read ``QA``. A value
without the numeric prefix is taken to be a display name already (the Rust
original sends ``from_stage`` as a display name, e.g. ``Current``). Project
names and story ids are always shown verbatim.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Final

from ...core.events import StageTransition, StoredMergeFailure, StoredStoryBlocked
from ..records import LogEntry, LogPayload, Notice

_STAGE_KEY: Final = re.compile(r"[0-9]+_(.+)")
#: Words whose display name is not simply title case.
_STAGE_WORDS: Final = {"qa": "QA"}
#: A grouped webhook line lists story ids up to this many.
MAX_IDS_LISTED: Final = 5


def stage_name(key: str) -> str:
    """``3_qa`` -> ``QA``, ``2_current`` -> ``Current``, ``Current`` -> ``Current``."""
    match = _STAGE_KEY.fullmatch(key)
    if match is None:
        return key
    words = match.group(1).split("_")
    return " ".join(_STAGE_WORDS.get(word.lower(), word.capitalize()) for word in words)


def describe(payload: LogPayload) -> str:
    """One event or notice as text, without the project prefix."""
    match payload:
        case StageTransition():
            return f"{payload.story_id}  {stage_name(payload.from_stage)} -> {stage_name(payload.to_stage)}"
        case StoredMergeFailure():
            return f"merge failed: {payload.story_id} — {payload.reason}"
        case StoredStoryBlocked():
            return f"blocked: {payload.story_id} — {payload.reason}"
        case Notice():
            return payload.message


def console_line(entry: LogEntry) -> str:
    """``[billing] 42_story_my_feature  Current -> QA``."""
    return f"[{entry.project}] {describe(entry.payload())}"


def by_project(entries: Sequence[LogEntry]) -> dict[str, list[LogPayload]]:
    """Payloads per project, projects in order of first appearance."""
    grouped: dict[str, list[LogPayload]] = {}
    for entry in entries:
        grouped.setdefault(entry.project, []).append(entry.payload())
    return grouped


def webhook_text(entries: Sequence[LogEntry]) -> str:
    """One chat message for a burst: per project, moves to one stage grouped.

    ``billing: 12 stories moved to QA`` for a group, the plain description
    for a single event; projects in order of first appearance.
    """
    lines: list[str] = []
    for project, payloads in by_project(entries).items():
        lines.extend(f"{project}: {text}" for text in project_lines(payloads))
    return "\n".join(lines)


def project_lines(
    payloads: Sequence[LogPayload],
    one: Callable[[LogPayload], str] = describe,
    grouped: Callable[[str, list[str]], str] | None = None,
) -> list[str]:
    """Lines for one project's burst: moves to one stage grouped, the rest by ``one``.

    Args:
        payloads: The project's entries, in log order.
        one: Text of a single entry.
        grouped: Text of several moves to one stage (stage key, story ids).
    """
    group = grouped or _grouped_move
    moves: dict[str, list[str]] = {}
    for payload in payloads:
        if isinstance(payload, StageTransition):
            moves.setdefault(payload.to_stage, []).append(payload.story_id)
    lines: list[str] = []
    for payload in payloads:
        if isinstance(payload, StageTransition) and len(moves.get(payload.to_stage, ())) > 1:
            lines.append(group(payload.to_stage, moves.pop(payload.to_stage)))
        elif not isinstance(payload, StageTransition) or payload.to_stage in moves:
            lines.append(one(payload))
    return lines


def _grouped_move(stage: str, story_ids: list[str]) -> str:
    text = f"{len(story_ids)} stories moved to {stage_name(stage)}"
    if len(story_ids) <= MAX_IDS_LISTED:
        text += f" ({', '.join(story_ids)})"
    return text
