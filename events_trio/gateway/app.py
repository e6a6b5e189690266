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

Errors are JSON objects like the project server's (``hosting/webapp.py``);
``GET /api/events`` goes through the project server's fast path
(``wire/fastpath.py``), in front of the Quart routes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec
from quart import Response
from quart_trio import QuartTrio

from ..core.clock import ClockMs, wall_clock_ms
from ..hosting.access import require_read_token
from ..hosting.webapp import json_response, new_app
from ..wire.fastpath import Args, events_route
from ..wire.query import H_INSTANCE, H_LATEST, H_OLDEST, H_WAIT, WAIT_MAX, EventsQuery
from ..wire.sse import DEFAULT_KEEPALIVE_S, StreamStats
from .admin import register_admin
from .eventlog import EventLog
from .page import register_page
from .records import Page
from .registry import ProjectRegistry
from .signin import register_signin
from .status import ProjectStatus
from .stories import StoryBoard
from .stories_api import register_stories
from .stream import register_log_stream
from .tracker import MAX_STAMP_MS
from .view import LocalView, ProjectsView, make_gateway_id

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
    view: ProjectsView | None = None,
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
        view: What ``/api/projects`` and ``/healthz`` list: the cluster's
            projects in cluster mode; ``statuses``, owned by this gateway,
            when omitted.

    Returns:
        The ASGI app.
    """
    # static_folder=None (new_app): page.py serves the shipped files by name, nothing else.
    app = new_app("events_trio.gateway")
    sessions = register_signin(app, read_token)
    register_log_stream(app, log_store, keepalive_s, stream_stats or StreamStats())
    register_page(app)
    register_admin(app, registry, admin_token)
    register_stories(app, board if board is not None else StoryBoard(), clock_ms)
    if view is None:
        view = LocalView(statuses, make_gateway_id())
    register_projects(app, view)
    register_healthz(app, log_store, statuses, view)
    fast = events_route(LogEvents(log_store), app.asgi_app)
    also = sessions.scope_valid if sessions is not None else None
    app.asgi_app = require_read_token(fast, read_token, also=also)  # type: ignore[method-assign]
    return app


class LogEvents:
    """``GET /api/events`` over the merged log (a :data:`~events_trio.wire.fastpath.Responder`)."""

    def __init__(self, log_store: EventLog) -> None:
        self.log_store = log_store

    async def __call__(self, query: EventsQuery, args: Args) -> tuple[list[tuple[str, str]], bytes]:
        """Long-poll the log, then one page of it after ``query.since``."""
        # Any u64 is a valid cursor; SQLite integers stop at 2^63-1, and no stamp is above it.
        since = min(query.since, MAX_STAMP_MS)
        notices = args.get("notices", [""])[0].lower() in _TRUE
        if query.wait > 0:
            await self.log_store.watch.wait_newer(since, query.wait, events_only=not notices)
        page = await self.log_store.read(since, MAX_PAGE_EVENTS, notices=notices)
        return await self._headers(page), b"[" + b",".join(e.body for e in page.entries) + b"]"

    async def _headers(self, page: Page) -> list[tuple[str, str]]:
        headers = [
            (H_INSTANCE, self.log_store.instance),
            (H_LATEST, str(page.covered_seq)),
            (H_WAIT, WAIT_MAX),
        ]
        oldest = await self.log_store.oldest_seq()
        if oldest is not None:
            headers.append((H_OLDEST, str(oldest)))
        return headers


def register_projects(app: QuartTrio, view: ProjectsView) -> None:
    """Add ``GET /api/projects``: each project's live status and owner."""

    @app.get("/api/projects")
    async def get_projects() -> Response:
        return json_response(msgspec.json.encode(await view.projects()))


def register_healthz(
    app: QuartTrio, log_store: EventLog, statuses: Sequence[ProjectStatus], view: ProjectsView
) -> None:
    """Add ``GET /healthz``: liveness, projects polled here and up, the newest log offset.

    503 ``degraded`` when the gateway cannot reach its store (cluster mode).
    """

    @app.get("/healthz")
    async def healthz() -> Response:
        healthy, extra = view.health()
        up = sum(status.state == "up" for status in statuses)
        health = {
            "status": "ok" if healthy else "degraded",
            "projects": len(statuses),
            "up": up,
            "latest_ms": log_store.watch.latest_seq,
            **extra,
        }
        return json_response(msgspec.json.encode(health), 200 if healthy else 503)
