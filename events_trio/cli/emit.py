"""``events-trio emit``: post one event to a project server's ingest endpoint.

::

    events-trio emit --url URL --token T merge-failure STORY --reason TEXT
    events-trio emit --url URL --token T story-blocked STORY --reason TEXT
    events-trio emit --url URL --token T transition STORY --from A --to B

The token may come from ``EVENTS_TRIO_INGEST_TOKEN`` instead of ``--token``.
Exit status: 0 accepted, 1 refused by the server (its message is printed),
3 server unreachable, 2 usage error (argparse). The client is ``sources/emit.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Final

import httpx

from ..core.events import MergeFailure, StoryBlocked, WatcherEvent, WorkItem
from ..sources.emit import (
    DEFAULT_URL,
    TOKEN_ENV,
    event_summary,
    ingest_url,
    post_event,
    reason,
    server_message,
)

EXIT_REFUSED: Final = 1
EXIT_UNREACHABLE: Final = 3


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


def run_emit(args: argparse.Namespace) -> int:
    """Post the event described by ``args``; print the outcome; return the exit status."""
    event = event_from_args(args)
    token = args.token or os.environ.get(TOKEN_ENV) or None
    url = ingest_url(args.url)
    try:
        response = post_event(url, event, token)
    except httpx.HTTPError as error:
        print(f"events-trio: error: cannot reach {url}: {reason(error)}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if response.status_code == 202:
        print(f"accepted: {event_summary(event)}")
        return 0
    print(
        f"events-trio: error: {response.status_code}: {server_message(response)}", file=sys.stderr
    )
    return EXIT_REFUSED
