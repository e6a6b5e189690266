"""The ``emit`` client: post one event to a project server's ingest endpoint.

The command line (``cli/emit.py``)::

    events-trio emit --url URL --token T merge-failure STORY --reason TEXT
    events-trio emit --url URL --token T story-blocked STORY --reason TEXT
    events-trio emit --url URL --token T transition STORY --from A --to B

The token may come from ``EVENTS_TRIO_INGEST_TOKEN`` instead of ``--token``.
Exit status: 0 accepted, 1 refused by the server (its message is printed),
3 server unreachable, 2 usage error (argparse).
"""

from __future__ import annotations

from typing import Final

import httpx
import msgspec

from ..core.events import MergeFailure, StoryBlocked, WatcherEvent, WorkItem
from ..wire.defaults import DEFAULT_HOST, DEFAULT_PORT, ENV_PREFIX, EVENTS_PATH
from ..wire.responses import JSON

TOKEN_ENV: Final = ENV_PREFIX + "INGEST_TOKEN"
DEFAULT_URL: Final = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
EMIT_TIMEOUT_S: Final = 10.0


def ingest_url(url: str) -> str:
    """``url`` with ``/api/events`` appended unless it already ends with it."""
    url = url.rstrip("/")
    return url if url.endswith(EVENTS_PATH) else url + EVENTS_PATH


def ingest_body(event: WatcherEvent) -> bytes:
    """The JSON body for ``event``; a work item's empty ``action``/``commit_msg`` are left out."""
    fields: dict[str, object] = msgspec.to_builtins(event)
    if isinstance(event, WorkItem):
        for name in ("action", "commit_msg"):
            if not fields.get(name):
                fields.pop(name, None)
    return msgspec.json.encode(fields)


def post_event(url: str, event: WatcherEvent, token: str | None) -> httpx.Response:
    """``POST`` ``event`` to ``url`` (an ingest URL) with the bearer ``token``.

    Raises:
        httpx.HTTPError: the server could not be reached or did not answer.
    """
    headers = {"Content-Type": JSON}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(url, content=ingest_body(event), headers=headers, timeout=EMIT_TIMEOUT_S)


def event_summary(event: WatcherEvent) -> str:
    """One line naming the event, for the confirmation."""
    if isinstance(event, WorkItem):
        return f"transition {event.item_id} {event.from_stage} -> {event.stage}"
    if isinstance(event, MergeFailure | StoryBlocked):
        kind = "merge failure" if isinstance(event, MergeFailure) else "story blocked"
        return f"{kind} {event.story_id}: {event.reason}"
    return repr(event)


def server_message(response: httpx.Response) -> str:
    """The ``message`` of a JSON error answer, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return response.text[:200] or response.reason_phrase


def reason(error: httpx.HTTPError) -> str:
    """Why the server could not be reached, in a few words."""
    if isinstance(error, httpx.ConnectError):
        return "connection refused" if "refused" in str(error).lower() else str(error)
    if isinstance(error, httpx.TimeoutException):
        return f"no answer within {EMIT_TIMEOUT_S:g} s"
    return str(error) or type(error).__name__


__all__ = ["event_summary", "ingest_body", "ingest_url", "post_event", "reason", "server_message"]
