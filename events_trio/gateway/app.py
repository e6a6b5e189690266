"""The gateway's HTTP API (Quart-Trio).

Routes:

* ``GET /api/events?since=<ms>&wait=<s>`` — the merged log in the project
  server's wire shape: a JSON array, ascending ``timestamp_ms`` (the
  gateway's own stamp, so one cursor works across projects), each event
  with ``project`` and ``project_timestamp_ms`` after the documented
  fields. Notices are left out (a Rust consumer fails on an unknown
  ``type``) unless ``notices=1``. At most ``MAX_PAGE_EVENTS`` per answer;
  ``X-Events-Latest-Ms`` says how far the answer covers.
* ``GET /api/projects`` — each project's name, url, state, cursor,
  last_event_ms, last_error (never its token).
* ``GET /healthz`` — liveness.
* ``POST /api/session``, ``DELETE /api/session`` — sign a browser in and
  out (``signin.py``).
* ``POST /api/projects``, ``DELETE /api/projects/NAME`` — projects at run
  time, with the admin token (``admin.py``).
* ``GET /api/stories`` (``attention=1``: what is stuck), ``GET
  /api/stories/PROJECT/STORY``, ``GET /api/summary`` (``stories_api.py``).
* ``GET /api/events/stream`` — the merged log as Server-Sent Events
  (``stream.py``); ``GET /`` — the live page (``page.py``).

Errors are JSON objects like the project server's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec
import trio
from quart import Response, request
from quart_trio import QuartTrio

# The project server's error handlers: one JSON error shape for both processes.
from ..app import JSON, register_json_errors
from ..buffer import ClockMs, wall_clock_ms
from ..longpoll import MAX_WAIT_S
from ..query import H_INSTANCE, H_LATEST, H_OLDEST, H_WAIT, parse_events_query
from ..sse import DEFAULT_KEEPALIVE_S
from ..stream import StreamStats
from .admin import register_admin
from .page import register_page
from .registry import ProjectRegistry
from .signin import register_signin
from .status import ProjectStatus
from .store import EventLog
from .stories import StoryBoard
from .stories_api import register_stories
from .stream import register_log_stream
from .tracker import MAX_STAMP_MS

#: Most entries one ``GET /api/events`` answer carries; a client pages on.
MAX_PAGE_EVENTS: Final = 1000
_TRUE: Final = ("1", "true", "yes")


def create_gateway_app(
    log_store: EventLog,
    statuses: Sequence[ProjectStatus],
    *,
    read_token: str | None = None,
    keepalive_s: float = DEFAULT_KEEPALIVE_S,
    stream_stats: StreamStats | None = None,
    registry: ProjectRegistry | None = None,
    admin_token: str | None = None,
    board: StoryBoard | None = None,
    clock_ms: ClockMs = wall_clock_ms,
) -> QuartTrio:
    """Build the gateway app.

    Args:
        log_store: The merged log the routes serve.
        statuses: Live status of every project, in registry order.
        read_token: When set, ``GET``/``HEAD`` under ``/api/`` need
            ``Authorization: Bearer <read_token>`` or a session cookie from
            ``POST /api/session`` (401 otherwise, ``signin.py``);
            ``/healthz`` stays open.
        keepalive_s: Keep-alive comment interval of ``GET /api/events/stream``.
        stream_stats: Where open streams are counted (for metrics).
        registry: The running projects, for the admin routes (``admin.py``).
        admin_token: Enables the admin routes (404 without it).
        board: Stories and what needs attention (``stories_api.py``); an
            empty board when omitted.
        clock_ms: Wall clock in ms (the summary's hours).

    Returns:
        The ASGI app.
    """
    # static_folder=None: page.py serves the shipped files by name, nothing else.
    app = QuartTrio("events_trio.gateway", static_folder=None)
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    register_json_errors(app)
    register_signin(app, read_token)
    register_log_stream(app, log_store, keepalive_s, stream_stats or StreamStats())
    register_page(app)
    register_admin(app, registry, admin_token)
    register_stories(app, board if board is not None else StoryBoard(), clock_ms)
    watch = log_store.watch

    @app.get("/api/events")
    async def get_events() -> Response:
        query = parse_events_query(request.args.to_dict(flat=False))
        # Any u64 is a valid cursor; SQLite integers stop at 2^63-1, and no stamp is above it.
        since = min(query.since, MAX_STAMP_MS)
        notices = request.args.get("notices", "").lower() in _TRUE
        if query.wait > 0 and not watch.has_newer(since, events_only=not notices):
            with trio.move_on_after(query.wait):
                await watch.wait_newer(since, events_only=not notices)
        page = await log_store.read(since, MAX_PAGE_EVENTS, notices=notices)
        body = b"[" + b",".join(entry.body for entry in page.entries) + b"]"
        headers = {
            H_INSTANCE: log_store.instance,
            H_LATEST: str(page.covered_seq),
            H_WAIT: f"{MAX_WAIT_S:g}",
        }
        oldest = await log_store.oldest_seq()
        if oldest is not None:
            headers[H_OLDEST] = str(oldest)
        return Response(body, 200, headers, content_type=JSON)

    @app.get("/api/projects")
    async def get_projects() -> Response:
        body = msgspec.json.encode([status.to_json() for status in statuses])
        return Response(body, 200, content_type=JSON)

    @app.get("/healthz")
    async def healthz() -> Response:
        up = sum(status.state == "up" for status in statuses)
        health = {
            "status": "ok",
            "projects": len(statuses),
            "up": up,
            "latest_ms": watch.latest_seq,
        }
        return Response(msgspec.json.encode(health), 200, content_type=JSON)

    return app
