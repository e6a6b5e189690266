"""Hypercorn settings for either process: bind, timeouts, logging."""

from __future__ import annotations

import logging

from .hypercorn_fix import EventsHypercornConfig
from .timeouts import DEFAULT_HEADER_TIMEOUT_S, DEFAULT_KEEP_ALIVE_S


def hypercorn_settings(
    host: str,
    port: int,
    *,
    graceful_timeout_s: float,
    keep_alive_s: float = DEFAULT_KEEP_ALIVE_S,
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
) -> EventsHypercornConfig:
    """Hypercorn settings to serve on ``host:port`` (an IPv6 host gets brackets).

    Args:
        host: Interface to bind.
        port: TCP port; 0 picks a free one.
        graceful_timeout_s: Grace period of in-flight requests at shutdown.
        keep_alive_s: Idle keep-alive timeout.
        header_timeout_s: Deadline of a request's head, from its first byte.
    """
    hc = EventsHypercornConfig()
    bracketed = f"[{host}]" if ":" in host else host
    hc.bind = [f"{bracketed}:{port}"]
    hc.graceful_timeout = graceful_timeout_s
    hc.keep_alive_timeout = keep_alive_s
    hc.header_timeout_s = header_timeout_s
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    return hc
