"""Markdown chat messages for Apprise sinks (pure functions).

One message per burst: a title naming the project (or how many), then per
project a bold heading and one bullet per event, moves to one stage grouped
as in the webhook text. Story ids are set in code spans, so the underscores
of ``42_story_my_feature`` never turn into emphasis. With a public URL the
message ends with a link to the gateway's live page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ...core.events import StageTransition, StoredMergeFailure, StoredStoryBlocked
from ..records import LogEntry, LogPayload, Notice
from .format import MAX_IDS_LISTED, by_project, project_lines, stage_name

#: Prefix of every message title.
TITLE_PREFIX: Final = "events-trio"


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """A title and a Markdown body."""

    title: str
    body: str


def code(text: str) -> str:
    """``text`` as a Markdown code span (backticks inside are dropped)."""
    return "`" + text.replace("`", "'") + "`"


def describe_markdown(payload: LogPayload) -> str:
    """One event or notice as a Markdown fragment."""
    match payload:
        case StageTransition():
            return (
                f"{code(payload.story_id)} {stage_name(payload.from_stage)}"
                f" → {stage_name(payload.to_stage)}"
            )
        case StoredMergeFailure():
            return f"merge failed: {code(payload.story_id)} — {payload.reason}"
        case StoredStoryBlocked():
            return f"blocked: {code(payload.story_id)} — {payload.reason}"
        case Notice():
            return payload.message


def grouped_markdown(stage: str, story_ids: list[str]) -> str:
    """``12 stories moved to QA``, listing up to five ids as code spans."""
    text = f"{len(story_ids)} stories moved to {stage_name(stage)}"
    if len(story_ids) <= MAX_IDS_LISTED:
        text += " (" + ", ".join(map(code, story_ids)) + ")"
    return text


def markdown_message(entries: Sequence[LogEntry], public_url: str | None = None) -> ChatMessage:
    """The chat message for one burst of ``entries``.

    Args:
        entries: The burst, in log order.
        public_url: The gateway page's address, linked at the end when given.
    """
    grouped = by_project(entries)
    lines: list[str] = []
    for project, payloads in grouped.items():
        lines.append(f"**{project}**")
        lines.extend(
            f"- {text}" for text in project_lines(payloads, describe_markdown, grouped_markdown)
        )
    if public_url:
        lines.extend(["", f"[Open the live page]({public_url})"])
    return ChatMessage(_title(list(grouped)), "\n".join(lines))


def _title(projects: list[str]) -> str:
    if len(projects) == 1:
        return f"{TITLE_PREFIX}: {projects[0]}"
    return f"{TITLE_PREFIX}: {len(projects)} projects"
