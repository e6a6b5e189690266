"""Webhook sink: Slack/Mattermost-compatible ``{"text": ...}`` POSTs.

A burst (everything that arrives within ``group_window_s``) becomes one
message, e.g. ``billing: 12 stories moved to QA``; messages are spaced by
at least ``min_interval_s`` (Slack accepts about one a second); failures
are retried with backoff by the runner, so the channel falls behind rather
than losing messages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

import httpx
import msgspec
import trio

from ..config import DEFAULT_GROUP_WINDOW_S, DEFAULT_WEBHOOK_MIN_INTERVAL_S
from ..errors import SinkError
from ..records import LogEntry
from .format import webhook_text

#: Time allowed for one POST.
WEBHOOK_TIMEOUT_S: Final = 10.0


class WebhookSink:
    """POSTs one message per batch to ``url``.

    Args:
        url: The incoming-webhook URL (a secret: only its hash names the offset).
        client: HTTP client (shared with the pollers, injected).
        group_window_s: Burst grouping window.
        min_interval_s: Minimum time between messages.
    """

    def __init__(
        self,
        url: str,
        client: httpx.AsyncClient,
        *,
        group_window_s: float = DEFAULT_GROUP_WINDOW_S,
        min_interval_s: float = DEFAULT_WEBHOOK_MIN_INTERVAL_S,
    ) -> None:
        self.url = url
        self.client = client
        self.group_window_s = group_window_s
        self.min_interval_s = min_interval_s
        self.name = "webhook:" + hashlib.sha256(url.encode()).hexdigest()[:16]

    async def resume(self, committed: int) -> int:
        """Continue from the committed offset."""
        return committed

    async def deliver(self, entries: Sequence[LogEntry]) -> None:
        """POST one message for ``entries``.

        Raises:
            SinkError: transport error, timeout or a non-2xx status.
        """
        body = msgspec.json.encode({"text": webhook_text(entries)})
        headers = {"Content-Type": "application/json"}
        try:
            with trio.fail_after(WEBHOOK_TIMEOUT_S):
                response = await self.client.post(
                    self.url, content=body, headers=headers, timeout=None
                )
        except trio.TooSlowError:
            raise SinkError(f"no answer within {WEBHOOK_TIMEOUT_S:g} s") from None
        except httpx.HTTPError as error:
            raise SinkError(f"{type(error).__name__}: {error}") from None
        if not response.is_success:
            raise SinkError(f"HTTP {response.status_code}")
