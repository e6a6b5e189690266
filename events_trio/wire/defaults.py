"""Where a project server listens unless told otherwise, and its variables' prefix."""

from __future__ import annotations

from typing import Final

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 7070
#: Prefix of every ``EVENTS_TRIO_*`` environment variable.
ENV_PREFIX: Final = "EVENTS_TRIO_"
#: ``GET /api/events`` (and, on the project server, ``POST`` ingest).
EVENTS_PATH: Final = "/api/events"
#: ``GET /api/events/stream``: the same events as Server-Sent Events.
STREAM_PATH: Final = "/api/events/stream"
#: ``GET /metrics``: Prometheus text format.
METRICS_PATH: Final = "/metrics"
