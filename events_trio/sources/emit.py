"""``events-trio emit``: post one event to a project server's ingest endpoint.

::

    events-trio emit --url URL --token T merge-failure STORY --reason TEXT
    events-trio emit --url URL --token T story-blocked STORY --reason TEXT
    events-trio emit --url URL --token T transition STORY --from A --to B

The token may come from ``EVENTS_TRIO_INGEST_TOKEN`` instead of ``--token``.
Exit status: 0 accepted, 1 refused by the server (its message is printed),
3 server unreachable, 2 usage error (argparse).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Final

import httpx
import msgspec

from ..core.events import MergeFailure, StoryBlocked, WatcherEvent, WorkItem
from ..server.config import DEFAULT_HOST, DEFAULT_PORT, ENV_PREFIX

TOKEN_ENV: Final = ENV_PREFIX + "INGEST_TOKEN"
DEFAULT_URL: Final = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
EMIT_TIMEOUT_S: Final = 10.0
EXIT_REFUSED: Final = 1
EXIT_UNREACHABLE: Final = 3
_INGEST_PATH: Final = "/api/events"


def add_emit_command(subparsers: Any) -> None:
    """Add the ``emit`` subcommand to ``events-trio``'s subparsers."""
    emit = subparsers.add_parser(
        "emit",
        help="post one event to a project server",
        description=(
            "Post one event to a project server's POST /api/events (ingest must be enabled "
            f"there with --ingest-token). The token defaults to ${TOKEN_ENV}."
        ),
    )
    emit.add_argument("--url", default=DEFAULT_URL, help="server base URL (default: %(default)s)")
    emit.add_argument("--token", help=f"ingest token (default: ${TOKEN_ENV})")
    # emit prints its own result; httpx's per-request INFO lines would be noise.
    emit.set_defaults(handler=run_emit, log_level="warning")
    kinds = emit.add_subparsers(dest="kind", required=True, metavar="EVENT")
    for name, help_text in (
        ("merge-failure", "a merge failed"),
        ("story-blocked", "a story is blocked"),
    ):
        kind = kinds.add_parser(name, help=help_text, description=f"Report that {help_text}.")
        kind.add_argument("story", metavar="STORY", help="story id, e.g. 42_story_my_feature")
        kind.add_argument("--reason", required=True, help="why, shown in chat")
    transition = kinds.add_parser(
        "transition", help="a story moved between stages", description="Report a stage transition."
    )
    transition.add_argument("story", metavar="STORY", help="story id, e.g. 42_story_my_feature")
    transition.add_argument("--from", dest="from_stage", required=True, help="stage it left")
    transition.add_argument("--to", dest="to_stage", required=True, help="stage it entered")


def event_from_args(args: argparse.Namespace) -> WatcherEvent:
    """The event an ``emit`` command line describes."""
    if args.kind == "merge-failure":
        return MergeFailure(args.story, args.reason)
    if args.kind == "story-blocked":
        return StoryBlocked(args.story, args.reason)
    # action and commit_msg are left for the server to derive from the stage.
    return WorkItem(args.story, args.to_stage, args.from_stage)


def ingest_url(url: str) -> str:
    """``url`` with ``/api/events`` appended unless it already ends with it."""
    url = url.rstrip("/")
    return url if url.endswith(_INGEST_PATH) else url + _INGEST_PATH


def ingest_body(event: WatcherEvent) -> bytes:
    """The JSON body for ``event``; a work item's empty ``action``/``commit_msg`` are left out."""
    fields: dict[str, object] = msgspec.to_builtins(event)
    if isinstance(event, WorkItem):
        for name in ("action", "commit_msg"):
            if not fields.get(name):
                fields.pop(name, None)
    return msgspec.json.encode(fields)


def run_emit(args: argparse.Namespace) -> int:
    """Post the event described by ``args``; print the outcome; return the exit status."""
    event = event_from_args(args)
    token = args.token or os.environ.get(TOKEN_ENV) or None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = ingest_url(args.url)
    try:
        response = httpx.post(
            url, content=ingest_body(event), headers=headers, timeout=EMIT_TIMEOUT_S
        )
    except httpx.HTTPError as error:
        print(f"events-trio: error: cannot reach {url}: {_reason(error)}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if response.status_code == 202:
        print(f"accepted: {event_summary(event)}")
        return 0
    print(
        f"events-trio: error: {response.status_code}: {_server_message(response)}", file=sys.stderr
    )
    return EXIT_REFUSED


def event_summary(event: WatcherEvent) -> str:
    """One line naming the event, for the confirmation."""
    if isinstance(event, WorkItem):
        return f"transition {event.item_id} {event.from_stage} -> {event.stage}"
    if isinstance(event, MergeFailure | StoryBlocked):
        kind = "merge failure" if isinstance(event, MergeFailure) else "story blocked"
        return f"{kind} {event.story_id}: {event.reason}"
    return repr(event)


def _server_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return response.text[:200] or response.reason_phrase


def _reason(error: httpx.HTTPError) -> str:
    if isinstance(error, httpx.ConnectError):
        return "connection refused" if "refused" in str(error).lower() else str(error)
    if isinstance(error, httpx.TimeoutException):
        return f"no answer within {EMIT_TIMEOUT_S:g} s"
    return str(error) or type(error).__name__


__all__ = ["add_emit_command", "event_from_args", "ingest_body", "ingest_url", "run_emit"]
