"""Project-server settings: defaults, validation, environment variables.

The defaults shared with the gateway live below: listening
(``wire/defaults.py``), timeouts (``hosting/timeouts.py``), log levels
(``hosting/logs.py``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from ..core.broadcast import DEFAULT_CHANNEL_CAPACITY
from ..core.buffer import DEFAULT_CAPACITY
from ..core.clock import ClockMs, wall_clock_ms
from ..core.errors import ConfigError
from ..hosting.logs import LOG_LEVELS
from ..hosting.timeouts import (
    DEFAULT_GRACEFUL_TIMEOUT_S,
    DEFAULT_HEADER_TIMEOUT_S,
    DEFAULT_KEEP_ALIVE_S,
)
from ..wire.auth import check_exposure
from ..wire.defaults import DEFAULT_HOST, DEFAULT_PORT, ENV_PREFIX
from ..wire.sse import DEFAULT_KEEPALIVE_S

#: Seconds between "shutdown began" (new events refused, long-polls released)
#: and "no new connections": pollers fetch the last events the server took.
DEFAULT_DRAIN_S: Final = 0.25
#: Seconds between keep-alive comments on an idle ``GET /api/events/stream``.
DEFAULT_SSE_KEEPALIVE_S: Final = DEFAULT_KEEPALIVE_S


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Settings of one project server (``events-trio serve``).

    Attributes:
        host: Interface to bind (loopback by default).
        port: TCP port; 0 picks a free one (tests).
        capacity: Events kept in the buffer; the oldest is evicted beyond it.
        channel_capacity: Broadcast channel capacity (messages a slow
            subscriber may fall behind before it lags).
        graceful_timeout_s: Grace period for in-flight requests at shutdown.
        drain_s: Time pollers get, once shutdown began and new events are
            refused, to fetch the last events before connections are refused.
        keep_alive_s: Idle keep-alive timeout.
        header_timeout_s: Deadline for a request's head, from its first byte.
        log_level: ``debug``, ``info``, ``warning`` or ``error``.
        sse_keepalive_s: Keep-alive comment interval of idle event streams.
        clock_ms: Wall clock in ms used for stamps (injectable for tests).
        pipeline: Pipeline directory to watch (``None``: none).
        ingest_token: Enables ``POST /api/events`` (never shown in ``repr``).
        read_token: Required as ``Authorization: Bearer`` by ``GET
            /api/events`` and the other read routes (never shown in ``repr``).
        allow_unauthenticated: Serve without a read token on a
            non-loopback interface (refused otherwise).
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    capacity: int = DEFAULT_CAPACITY
    channel_capacity: int = DEFAULT_CHANNEL_CAPACITY
    graceful_timeout_s: float = DEFAULT_GRACEFUL_TIMEOUT_S
    drain_s: float = DEFAULT_DRAIN_S
    keep_alive_s: float = DEFAULT_KEEP_ALIVE_S
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    log_level: str = "info"
    sse_keepalive_s: float = DEFAULT_SSE_KEEPALIVE_S
    pipeline: Path | None = None
    ingest_token: str | None = field(default=None, repr=False)
    read_token: str | None = field(default=None, repr=False)
    allow_unauthenticated: bool = False
    clock_ms: ClockMs = field(default=wall_clock_ms, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0..65535, got {self.port}")
        if self.capacity < 1:
            raise ConfigError(f"capacity must be at least 1, got {self.capacity}")
        if self.channel_capacity < 1:
            raise ConfigError(f"channel capacity must be at least 1, got {self.channel_capacity}")
        if self.graceful_timeout_s < 0:
            raise ConfigError("graceful timeout must not be negative")
        if not self.header_timeout_s > 0:
            raise ConfigError("header timeout must be positive")
        check_exposure(
            self.host,
            self.read_token,
            allow_unauthenticated=self.allow_unauthenticated,
            flag="--read-token (or EVENTS_TRIO_READ_TOKEN)",
        )
        if not self.sse_keepalive_s > 0:
            raise ConfigError("SSE keep-alive interval must be positive")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log level must be one of {', '.join(LOG_LEVELS)}")

    def replace(self, **changes: object) -> ServerConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerConfig:
        """Settings from ``EVENTS_TRIO_*`` variables (HOST, PORT, CAPACITY,
        CHANNEL_CAPACITY, GRACEFUL_TIMEOUT, HEADER_TIMEOUT, LOG_LEVEL, PIPELINE,
        INGEST_TOKEN, READ_TOKEN, ALLOW_UNAUTHENTICATED).

        Raises:
            ConfigError: a variable does not parse; the message names it.
        """
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for suffix, (name, convert) in _ENV_FIELDS.items():
            raw = env.get(ENV_PREFIX + suffix)
            if raw is None or raw == "":
                continue
            try:
                values[name] = convert(raw)
            except ValueError:
                raise ConfigError(f"{ENV_PREFIX}{suffix}: cannot parse {raw!r}") from None
        return cls(**values)  # type: ignore[arg-type]


def parse_flag(text: str) -> bool:
    """A boolean environment variable: ``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off``.

    Raises:
        ValueError: anything else.
    """
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


#: Environment variable suffix -> (field, converter).
_ENV_FIELDS: Final[dict[str, tuple[str, Callable[[str], object]]]] = {
    "HOST": ("host", str),
    "PORT": ("port", int),
    "CAPACITY": ("capacity", int),
    "CHANNEL_CAPACITY": ("channel_capacity", int),
    "GRACEFUL_TIMEOUT": ("graceful_timeout_s", float),
    "LOG_LEVEL": ("log_level", str.lower),
    "PIPELINE": ("pipeline", Path),
    "INGEST_TOKEN": ("ingest_token", str),
    "READ_TOKEN": ("read_token", str),
    "ALLOW_UNAUTHENTICATED": ("allow_unauthenticated", parse_flag),
    "HEADER_TIMEOUT": ("header_timeout_s", float),
}


__all__ = [
    "DEFAULT_DRAIN_S",
    "DEFAULT_GRACEFUL_TIMEOUT_S",
    "DEFAULT_HEADER_TIMEOUT_S",
    "DEFAULT_HOST",
    "DEFAULT_KEEP_ALIVE_S",
    "DEFAULT_PORT",
    "DEFAULT_SSE_KEEPALIVE_S",
    "ENV_PREFIX",
    "LOG_LEVELS",
    "ServerConfig",
    "parse_flag",
]
