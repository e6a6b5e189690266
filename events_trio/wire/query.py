"""``GET /api/events`` without the web framework: parameters in, headers out.

The project server, the gateway (both through ``wire/fastpath.py``) and the
test fake of a project server parse ``since`` and ``wait`` here and name
the ``X-Events-*`` headers from here (docs/protocol.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, TypeVar

from ..core.errors import InvalidParameter
from ..core.events import U64_MAX
from ..core.waiting import MAX_WAIT_S

N = TypeVar("N", int, float)

_U64_DIGITS: Final = len(str(U64_MAX))
_DECIMAL: Final = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")

SINCE_MESSAGE: Final = (
    f"since must be an unsigned integer of milliseconds: ASCII digits only, 0..{U64_MAX}"
)
WAIT_MESSAGE: Final = "wait must be a non-negative decimal number of seconds (capped at 30)"

#: Response headers (documented in docs/protocol.md).
H_INSTANCE: Final = "X-Events-Instance"
H_LATEST: Final = "X-Events-Latest-Ms"
H_OLDEST: Final = "X-Events-Oldest-Ms"
H_MISSED: Final = "X-Events-Missed"
H_WAIT: Final = "X-Events-Wait-Max"


@dataclass(frozen=True, slots=True)
class EventsQuery:
    """Parsed query of ``GET /api/events``."""

    since: int = 0
    wait: float = 0.0


def parse_u64(text: str) -> int | None:
    """Parse ``text`` the way Rust parses a ``u64``; ``None`` if it does not.

    ASCII digits only (leading zeros allowed), value 0..2^64-1. Never calls
    ``int()`` on more than 20 digits (3.11 refuses strings over 4,300).
    """
    if not text or not text.isascii() or not text.isdigit():
        return None
    significant = text.lstrip("0")
    if len(significant) > _U64_DIGITS:
        return None
    value = int(significant or "0")
    return value if value <= U64_MAX else None


def parse_wait(text: str) -> float | None:
    """Parse a non-negative decimal number of seconds, capped at ``MAX_WAIT_S``."""
    if not text.isascii() or not _DECIMAL.fullmatch(text):
        return None
    return min(float(text), MAX_WAIT_S)


def _single(values: list[str], name: str, message: str) -> str | None:
    if not values:
        return None
    if len(values) > 1:
        raise InvalidParameter(name, f"{name} given more than once; {message}")
    return values[0]


def parse_events_query(args: Mapping[str, list[str]]) -> EventsQuery:
    """Parse ``since`` and ``wait``; other parameters are ignored (as in Rust).

    Args:
        args: Query parameters, each name with all of its values.

    Raises:
        InvalidParameter: naming ``since`` or ``wait``.
    """
    since = _parameter(args, "since", parse_u64, SINCE_MESSAGE)
    wait = _parameter(args, "wait", parse_wait, WAIT_MESSAGE)
    return EventsQuery(0 if since is None else since, 0.0 if wait is None else wait)


def _parameter(
    args: Mapping[str, list[str]], name: str, parse: Callable[[str], N | None], message: str
) -> N | None:
    # One parameter: absent -> None; given once and valid -> its value; else refused.
    raw = _single(args.get(name, []), name, message)
    if raw is None:
        return None
    value = parse(raw)
    if value is None:
        raise InvalidParameter(name, message)
    return value


def events_headers(
    instance: str, latest_ms: int, missed: int = 0, oldest_ms: int | None = None
) -> Iterable[tuple[str, str]]:
    """Metadata headers of an answer (body unchanged).

    The gap headers (``X-Events-Missed``, ``X-Events-Oldest-Ms``) are sent only
    when the client missed something: absent means none. Every header costs
    on the hot path (h11 validates each), and the common poll has no gap.

    Args:
        instance: Identifies the buffer; a new value means a restart.
        latest_ms: The newest stamp the answer covers.
        missed: Events newer than the cursor the client can never get.
        oldest_ms: The oldest stamp still held (sent with ``missed``).
    """
    yield H_INSTANCE, instance
    yield H_LATEST, str(latest_ms)
    if missed:
        yield H_MISSED, str(missed)
        if oldest_ms is not None:
            yield H_OLDEST, str(oldest_ms)
    yield H_WAIT, WAIT_MAX


#: ``X-Events-Wait-Max``: the longest ``wait`` honoured, in seconds.
WAIT_MAX: Final = f"{MAX_WAIT_S:g}"
