"""``--log-format json``: one JSON object per log line, for log shippers.

Each line holds ``ts`` (ISO 8601, UTC, milliseconds), ``level``,
``logger`` and ``message`` — and ``exc`` when a traceback was logged.
Nothing else from the record is copied (``extra`` fields, arguments), so a
line carries only what the message itself says; the code never puts a token
in a message.
"""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime
from typing import Final

import msgspec

LOG_FORMATS: Final = ("text", "json")
TEXT_LINE: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """Formats a record as one compact JSON object (no newline inside)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as ``{"ts": ..., "level": ..., "logger": ..., "message": ...}``."""
        line: dict[str, str] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return msgspec.json.encode(line).decode()


def formatter(log_format: str) -> logging.Formatter:
    """The formatter for ``text`` or ``json``."""
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_LINE)


def add_log_format_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--log-format text|json`` to a subcommand's ``parser``."""
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="log lines as text, or one JSON object per line (default: %(default)s)",
    )
