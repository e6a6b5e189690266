"""Logging set-up of every process: one line per record on stderr."""

from __future__ import annotations

import logging
import sys
from typing import Final

from .logjson import formatter

LOG_LEVELS: Final = ("debug", "info", "warning", "error")


def configure_logging(level: str, *, logger: str | None = None, log_format: str = "text") -> None:
    """Log to stderr, one line per record.

    Args:
        level: ``debug``, ``info``, ``warning`` or ``error``.
        log_format: ``text`` or ``json`` (one JSON object per line, logjson.py).
        logger: Configure only this logger, for a host that owns the root
            logger (Hypercorn: its own loggers propagate to the root, so a
            root handler would print their lines twice). It gets a handler
            unless the host configured the root already. Default: the root.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    if logger is None:
        logging.basicConfig(level=level.upper(), handlers=[handler])
    else:
        own = logging.getLogger(logger)
        own.setLevel(level.upper())
        if not logging.getLogger().handlers and not own.handlers:
            own.addHandler(handler)
    if level.lower() != "debug":
        # awatch logs "N changes detected" at INFO for every batch: noise here.
        logging.getLogger("watchfiles").setLevel(logging.WARNING)
