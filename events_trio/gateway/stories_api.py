"""``GET /api/stories``, ``GET /api/stories/PROJECT/STORY`` and ``GET /api/summary``.

* ``/api/stories`` — stories with their latest stage and stuck state, most
  recently updated first; ``attention=1``: only the stuck ones (blocked, or
  their last merge failed), stuck longest first — what a bot or dashboard
  asks "what is stuck right now?" with. ``project=NAME`` narrows to one
  project, ``limit`` (1..10000, default 1000) caps the answer.
* ``/api/stories/PROJECT/STORY`` — one story and its latest events, oldest
  first, as ``/api/events`` serves them.
* ``/api/summary`` — per project, stories per stage and how many are stuck;
  events per hour over the last 24 hours (the page's chart).

They are reads: the read token (or the page's cookie) guards them like
every ``GET`` under ``/api/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec
from quart import Response, request
from quart_trio import QuartTrio

from ..core.clock import ClockMs
from ..core.errors import InvalidParameter
from ..hosting.webapp import json_error
from ..wire.responses import JSON
from .stories import StoryBoard

DEFAULT_LIMIT: Final = 1000
MAX_LIMIT: Final = 10_000
_FLAGS: Final = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def register_stories(app: QuartTrio, board: StoryBoard, clock_ms: ClockMs) -> None:
    """Add the story routes to ``app``."""

    @app.get("/api/stories")
    async def stories() -> Response:
        args = request.args
        attention = _flag(args, "attention")
        limit = _limit(args)
        found = board.stories(attention=attention, project=args.get("project") or None)
        body = msgspec.json.encode([story.to_json() for story in found[:limit]])
        return Response(body, 200, content_type=JSON)

    @app.get("/api/stories/<project>/<path:story_id>")
    async def story(project: str, story_id: str) -> Response:
        found = board.get(project, story_id)
        if found is None:
            return json_error(404, "unknown_story", f"no story {story_id!r} in {project!r}")
        head = msgspec.json.encode(found.to_json())[:-1]
        history = b",".join(entry.body for entry in found.history)
        return Response(head + b',"history":[' + history + b"]}", 200, content_type=JSON)

    @app.get("/api/summary")
    async def summary() -> Response:
        stages, stuck = board.stage_counts(), board.stuck_counts()
        projects = [
            {"name": name, "stages": stages.get(name, {}), "stuck": stuck.get(name, 0)}
            for name in sorted(set(stages) | set(stuck))
        ]
        hours = [
            {"start_ms": start, "events": count}
            for start, count in board.events_per_hour(clock_ms())
        ]
        body = msgspec.json.encode({"projects": projects, "events_per_hour": hours})
        return Response(body, 200, content_type=JSON)


def _flag(args: Mapping[str, str], name: str) -> bool:
    value = args.get(name, "0").lower()
    if value not in _FLAGS:
        raise InvalidParameter(name, f"{name} must be 1 or 0 (true/false, yes/no)")
    return _FLAGS[value]


def _limit(args: Mapping[str, str]) -> int:
    text = args.get("limit", str(DEFAULT_LIMIT))
    if not (text.isascii() and text.isdigit() and len(text) <= 6 and 1 <= int(text) <= MAX_LIMIT):
        raise InvalidParameter("limit", f"limit must be an integer from 1 to {MAX_LIMIT}")
    return int(text)
