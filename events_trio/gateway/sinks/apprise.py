"""Apprise sink: Slack, Discord, Microsoft Teams, Matrix, Telegram, ntfy, e-mail, ``json://``...

A thin adapter: grouping, rate limit, retries and the offset are the
runner's (``base.py``), as for every sink. Apprise is synchronous, so each
message is sent in a worker thread: one at a time per sink (a
``CapacityLimiter(1)``, which also keeps messages in order), bounded by
``APPRISE_TIMEOUT_S`` on our side and by Apprise's own socket timeouts
(``cto``/``rto`` URL parameters, 4 s each by default). The thread is
abandoned on cancellation (``abandon_on_cancel=True``): a hung endpoint
never holds shutdown beyond the grace period; the thread is a daemon and
ends with the process or with Apprise's timeout.

The URL is a secret (it carries the webhook token): only its hash names the
sink's offset, error messages name its scheme only, and the loggers of
Apprise and urllib3, which print URLs and paths, are kept quiet.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Final

import trio

from ...core.errors import ConfigError
from ..errors import SinkError
from ..records import LogEntry
from .markdown import ChatMessage, markdown_message

if TYPE_CHECKING:  # imported lazily: Apprise loads its plugins in ~0.2 s
    from apprise import NotifyBase

#: Time allowed for one message, Apprise's retries and timeouts included.
APPRISE_TIMEOUT_S: Final = 30.0
#: Loggers that would print the URL (or its path) of a delivery.
_NOISY_LOGGERS: Final = ("apprise", "urllib3")


def url_scheme(url: str) -> str:
    """The part of ``url`` before ``://`` (safe to log), or ``?``."""
    scheme, sep, _ = url.partition("://")
    return scheme if sep and scheme.isascii() and scheme.isalnum() else "?"


def check_apprise_url(url: str) -> None:
    """Raise unless Apprise understands ``url``.

    Raises:
        ConfigError: not a URL of a service Apprise supports; the message
            names the scheme only (the rest is a secret).
    """
    _notifier(url)


def _notifier(url: str) -> NotifyBase:
    _quiet_library_logs()
    with warnings.catch_warnings():
        # Apprise's plugins load on the first URL it parses; some import
        # modules deprecated in Python 3.11 (imghdr): not ours to report.
        warnings.simplefilter("ignore", DeprecationWarning)
        import apprise

        # The service's plugin itself, not an ``Apprise`` object: that one
        # dispatches through its own ThreadPoolExecutor, whose non-daemon
        # workers Python joins at exit, so one hung endpoint held the whole
        # process after SIGTERM. Our worker threads are daemons.
        asset = apprise.AppriseAsset(storage_mode="memory")
        notifier = apprise.Apprise.instantiate(url, asset=asset)
    if notifier is None:
        raise ConfigError(
            f"sink apprise: not a valid Apprise URL (scheme {url_scheme(url)!r});"
            " see https://github.com/caronc/apprise/wiki"
        )
    return notifier


def _quiet_library_logs() -> None:
    # Both log the target URL or its path (a secret) at debug or on errors;
    # the runner logs every failure itself, without the URL.
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)


class AppriseSink:
    """Sends one Markdown message per batch through Apprise.

    Args:
        url: An Apprise URL (``slack://...``, ``discord://...``,
            ``json://host/path``...); a secret, only its hash names the offset.
        group_window_s: Burst grouping window.
        min_interval_s: Minimum time between messages.
        public_url: The gateway page's address, linked in each message.

    Raises:
        ConfigError: Apprise does not understand ``url``.
    """

    def __init__(
        self,
        url: str,
        *,
        group_window_s: float,
        min_interval_s: float,
        public_url: str | None = None,
    ) -> None:
        self.name = "apprise:" + hashlib.sha256(url.encode()).hexdigest()[:16]
        self.group_window_s = group_window_s
        self.min_interval_s = min_interval_s
        self.public_url = public_url
        self.scheme = url_scheme(url)
        self._notifier = _notifier(url)
        self._limiter = trio.CapacityLimiter(1)

    async def resume(self, committed: int) -> int:
        """Continue from the committed offset."""
        return committed

    async def deliver(self, entries: Sequence[LogEntry]) -> None:
        """Send one message for ``entries``.

        Raises:
            SinkError: Apprise reported a failure, or no answer in time.
        """
        message = markdown_message(entries, self.public_url)
        try:
            with trio.fail_after(APPRISE_TIMEOUT_S):
                sent = await trio.to_thread.run_sync(
                    partial(self._send, message), limiter=self._limiter, abandon_on_cancel=True
                )
        except trio.TooSlowError:
            raise SinkError(
                f"apprise {self.scheme}://: no answer within {APPRISE_TIMEOUT_S:g} s"
            ) from None
        # A library boundary: whatever Apprise raises becomes ours, and is retried.
        except Exception as error:  # noqa: BLE001
            raise SinkError(f"apprise {self.scheme}://: {type(error).__name__}") from None
        if not sent:
            raise SinkError(f"apprise {self.scheme}://: delivery failed")

    def _send(self, message: ChatMessage) -> bool:
        import apprise

        sent = self._notifier.notify(
            body=message.body, title=message.title, body_format=apprise.NotifyFormat.MARKDOWN
        )
        return bool(sent)
