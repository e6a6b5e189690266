"""Gateway settings: the project registry (TOML and ``--project`` flags), sinks, timings.

A configuration file looks like this (every ``[gateway]`` key optional)::

    [gateway]
    host = "127.0.0.1"
    port = 7080
    state_dir = "gateway-state"
    poll_interval_s = 2.0
    retention_events = 100000
    retention_days = 7
    public_url = "https://events.example.com/"   # chat messages link here
    admin_token = "..."      # enables POST/DELETE /api/projects
    store = "postgresql://events@db:5432/events"   # cluster mode (docs/scaling.md)
    lease_ttl_s = 10.0       # cluster mode: a dead gateway's projects wait this long
    commit_window_ms = 10    # group commit window: latency traded for CPU (docs/gateway.md)
    stream_idle_s = 45.0     # a stream silent this long is reconnected

    [[project]]
    name = "billing"
    url = "http://127.0.0.1:7070"
    token = "..."            # optional bearer token
    poll_interval_s = 5.0    # optional, for servers that do not long-poll

    [[sink]]
    kind = "webhook"         # console | jsonl | webhook | apprise
    url = "https://chat.example/hooks/..."
    group_window_s = 2.0
    min_interval_s = 1.0
    projects = ["billing", "search-*"]           # optional: globs on project names
    types = ["merge_failure", "story_blocked"]   # optional: see routing.ENTRY_TYPES

Errors name the file, the line and the field: ``gateway.toml:9: project
'billing': url must start with http:// or https://``.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

from ..core.clock import ClockMs, wall_clock_ms
from ..core.errors import ConfigError
from ..hosting.logs import LOG_LEVELS
from ..wire.sse import DEFAULT_KEEPALIVE_S
from .routing import EVERYTHING, Route, parse_route
from .store_url import check_store_url
from .writer import DEFAULT_WINDOW_S

DEFAULT_GATEWAY_PORT: Final = 7080
DEFAULT_STATE_DIR: Final = Path("gateway-state")
#: Sleep between polls of a server that ignores ``wait`` (the Rust original).
DEFAULT_POLL_INTERVAL_S: Final = 2.0
#: ``wait`` asked of long-polling servers; below their 30 s cap.
DEFAULT_LONG_POLL_WAIT_S: Final = 28.0
#: Time allowed for one request beyond the ``wait`` it asked for.
DEFAULT_REQUEST_TIMEOUT_S: Final = 10.0
DEFAULT_BACKOFF_INITIAL_S: Final = 1.0
DEFAULT_BACKOFF_MAX_S: Final = 60.0
DEFAULT_RETENTION_EVENTS: Final = 100_000
DEFAULT_RETENTION_AGE_S: Final = 7 * 24 * 3600.0
#: Events of one burst within this window become one webhook message.
DEFAULT_GROUP_WINDOW_S: Final = 2.0
#: Minimum spacing of webhook messages (Slack allows about one a second).
DEFAULT_WEBHOOK_MIN_INTERVAL_S: Final = 1.0
DEFAULT_GATEWAY_GRACEFUL_TIMEOUT_S: Final = 3.0
#: Cluster mode: how long a dead gateway's projects wait for a new owner.
DEFAULT_LEASE_TTL_S: Final = 10.0
#: A stream with no byte for this long is dropped (servers comment every 15 s).
DEFAULT_STREAM_IDLE_S: Final = 45.0
#: Longest group commit window accepted (``commit_window_ms``).
MAX_COMMIT_WINDOW_S: Final = 1.0

SinkKind: TypeAlias = Literal["console", "jsonl", "webhook", "apprise"]
SINK_KINDS: Final = ("console", "jsonl", "webhook", "apprise")
_SINK_FLAG_FORMS: Final = "console, jsonl:PATH, webhook:URL or apprise:URL"
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True, slots=True)
class ProjectConfig:
    """One registered project server.

    Attributes:
        name: Unique short name shown in chat (letters, digits, ``_.-``).
        url: Base URL; the gateway polls ``{url}/api/events``.
        token: Optional bearer token (never logged or served).
        poll_interval_s: Interval for servers that do not long-poll
            (``None``: the gateway default).
    """

    name: str
    url: str
    token: str | None = field(default=None, repr=False)
    poll_interval_s: float | None = None

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ConfigError(
                f"project name {self.name!r} must be 1-64 letters, digits, '_', '.' or '-'"
            )
        if not self.url.startswith(("http://", "https://")) or "://" == self.url[-3:]:
            raise ConfigError(f"project {self.name!r}: url must start with http:// or https://")
        if self.poll_interval_s is not None and not self.poll_interval_s > 0:
            raise ConfigError(f"project {self.name!r}: poll_interval_s must be positive")
        object.__setattr__(self, "url", self.url.rstrip("/"))


@dataclass(frozen=True, slots=True)
class SinkSpec:
    """Where the merged stream goes.

    Attributes:
        kind: ``console``, ``jsonl``, ``webhook`` or ``apprise``.
        target: File path (jsonl) or URL (webhook, apprise: a secret, never
            shown in ``repr``); empty for console.
        group_window_s: Burst grouping window (webhook, apprise).
        min_interval_s: Minimum spacing of deliveries (rate limit).
        route: Which projects and entry types reach the sink (all by default).
    """

    kind: SinkKind
    target: str = field(default="", repr=False)
    group_window_s: float = DEFAULT_GROUP_WINDOW_S
    min_interval_s: float = DEFAULT_WEBHOOK_MIN_INTERVAL_S
    route: Route = EVERYTHING

    def __post_init__(self) -> None:
        if self.kind != "console" and not self.target:
            raise ConfigError(
                f"sink {self.kind} needs a target (jsonl:PATH, webhook:URL or apprise:URL)"
            )
        if self.kind == "webhook" and not self.target.startswith(("http://", "https://")):
            raise ConfigError("webhook sink url must start with http:// or https://")
        if self.kind == "apprise":
            from .sinks.apprise import check_apprise_url  # Apprise loads only when used

            check_apprise_url(self.target)
        if self.group_window_s < 0 or self.min_interval_s < 0:
            raise ConfigError(f"sink {self.kind}: group_window_s and min_interval_s must be >= 0")


@dataclass(frozen=True, slots=True)
class PollSettings:
    """Timings of every poller (per-project interval overrides ``interval_s``)."""

    interval_s: float = DEFAULT_POLL_INTERVAL_S
    wait_s: float = DEFAULT_LONG_POLL_WAIT_S
    timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    backoff_initial_s: float = DEFAULT_BACKOFF_INITIAL_S
    backoff_max_s: float = DEFAULT_BACKOFF_MAX_S
    stream_idle_s: float = DEFAULT_STREAM_IDLE_S


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """Settings of ``events-trio gateway``.

    Attributes:
        projects: Registered project servers (names unique).
        sinks: Where the merged stream is delivered (console by default).
        host: Interface of the gateway's HTTP API.
        port: Its port; 0 picks a free one.
        state_dir: Directory of the durable log (``gateway.sqlite3``).
        replay: New projects start from their whole buffer, not from "now".
        poll: Poll timings.
        retention_events: Log entries kept (oldest deleted beyond it).
        retention_age_s: Log entries older than this are deleted.
        graceful_timeout_s: Grace period for in-flight requests at shutdown.
        log_level: ``debug``, ``info``, ``warning`` or ``error``.
        sse_keepalive_s: Keep-alive comment interval of idle event streams.
        clock_ms: Wall clock in ms for the gateway's stamps (tests pin it).
        read_token: Required as ``Authorization: Bearer`` by the gateway's
            ``/api/*`` routes (never shown in ``repr``).
        allow_unauthenticated: Serve without a read token on a
            non-loopback interface (refused otherwise).
        public_url: Where people reach the gateway's page (chat messages
            link to it), e.g. ``https://events.example.com/``.
        admin_token: Enables ``POST /api/projects`` and ``DELETE
            /api/projects/NAME`` for ``Authorization: Bearer <admin_token>``
            (off without it; never shown in ``repr``).
        store: ``postgresql://...``: cluster mode, every gateway with the same
            store shares registry, cursors, log and sink offsets
            (docs/scaling.md); ``None``: SQLite in ``state_dir``. May hold a
            password: never shown in ``repr``, logged only redacted.
        lease_ttl_s: Cluster mode: how long a project or sink stays with a
            gateway that stopped renewing its lease.
        commit_window_s: Group commit window: appends arriving within it
            share one transaction (the latency it may add to each).
    """

    projects: tuple[ProjectConfig, ...] = ()
    sinks: tuple[SinkSpec, ...] = (SinkSpec("console"),)
    host: str = "127.0.0.1"
    port: int = DEFAULT_GATEWAY_PORT
    state_dir: Path = DEFAULT_STATE_DIR
    replay: bool = False
    poll: PollSettings = PollSettings()
    retention_events: int = DEFAULT_RETENTION_EVENTS
    retention_age_s: float = DEFAULT_RETENTION_AGE_S
    graceful_timeout_s: float = DEFAULT_GATEWAY_GRACEFUL_TIMEOUT_S
    log_level: str = "info"
    sse_keepalive_s: float = DEFAULT_KEEPALIVE_S
    clock_ms: ClockMs = field(default=wall_clock_ms, repr=False, compare=False)
    read_token: str | None = field(default=None, repr=False)
    allow_unauthenticated: bool = False
    public_url: str | None = None
    admin_token: str | None = field(default=None, repr=False)
    store: str | None = field(default=None, repr=False)
    lease_ttl_s: float = DEFAULT_LEASE_TTL_S
    commit_window_s: float = DEFAULT_WINDOW_S

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for project in self.projects:
            if project.name in seen:
                raise ConfigError(f"project name {project.name!r} is defined twice")
            seen.add(project.name)
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0..65535, got {self.port}")
        if self.retention_events < 1 or self.retention_age_s <= 0:
            raise ConfigError("retention_events and retention_days must be positive")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log level must be one of {', '.join(LOG_LEVELS)}")
        if self.public_url is not None and not self.public_url.startswith(("http://", "https://")):
            raise ConfigError("public_url must start with http:// or https://")
        if self.store is not None:
            check_store_url(self.store)
        if not 1.0 <= self.lease_ttl_s <= 3600:
            raise ConfigError(f"lease TTL must be 1..3600 seconds, got {self.lease_ttl_s:g}")
        if not 0 <= self.commit_window_s <= MAX_COMMIT_WINDOW_S:
            window_ms = 1000 * self.commit_window_s
            raise ConfigError(f"commit_window_ms must be 0..1000, got {window_ms:g}")
        if not self.poll.stream_idle_s >= 1:
            raise ConfigError(f"stream_idle_s must be at least 1, got {self.poll.stream_idle_s:g}")

    def replace(self, **changes: Any) -> GatewayConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def interval_for(self, project: ProjectConfig) -> float:
        """The poll interval of ``project`` (its own, else the default)."""
        return project.poll_interval_s or self.poll.interval_s


def parse_project_flag(text: str) -> ProjectConfig:
    """Parse ``--project NAME=URL``.

    Raises:
        ConfigError: not ``NAME=URL``, or an invalid name or URL.
    """
    name, sep, url = text.partition("=")
    if not sep:
        raise ConfigError(f"--project {text!r}: expected NAME=URL")
    return ProjectConfig(name.strip(), url.strip())


def parse_sink_flag(text: str) -> SinkSpec:
    """Parse ``--sink console|jsonl:PATH|webhook:URL|apprise:URL``.

    Raises:
        ConfigError: an unknown kind or a missing target.
    """
    kind, _, target = text.partition(":")
    if kind not in SINK_KINDS:
        # The text may be a secret URL: only the kind is echoed.
        raise ConfigError(f"--sink {kind!r}: expected {_SINK_FLAG_FORMS}")
    return SinkSpec(kind, target)  # type: ignore[arg-type]


# --- TOML ------------------------------------------------------------------


def load_config(path: Path, base: GatewayConfig | None = None) -> GatewayConfig:
    """Read a gateway TOML file on top of ``base`` (defaults when omitted).

    Raises:
        ConfigError: unreadable file, TOML syntax, unknown key, bad value;
            the message names the file, the line and the field.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read: {error}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: {error}") from None
    locate = _Locator(path, text)
    return _build(data, base or GatewayConfig(), locate)


class _Locator:
    """Finds the line of a key for error messages (tomllib keeps no positions)."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def error(self, table: str, index: int | None, key: str | None, message: str) -> ConfigError:
        line = self._line(table, index, key)
        where = f"{self.path}:{line}" if line else str(self.path)
        return ConfigError(f"{where}: {message}")

    def _line(self, table: str, index: int | None, key: str | None) -> int | None:
        header = re.compile(rf"\s*\[\[?\s*{re.escape(table)}\s*\]\]?\s*(#.*)?$")
        headers = [n for n, line in enumerate(self.lines) if header.match(line)]
        if not headers:
            return None
        start = headers[index or 0] if (index or 0) < len(headers) else headers[-1]
        if key is None:
            return start + 1
        key_line = re.compile(rf"\s*\"?{re.escape(key)}\"?\s*=")
        for n in range(start + 1, len(self.lines)):
            if self.lines[n].lstrip().startswith("["):
                break
            if key_line.match(self.lines[n]):
                return n + 1
        return start + 1


_GATEWAY_KEYS: Final[dict[str, tuple[str, type | tuple[type, ...]]]] = {
    "host": ("host", str),
    "port": ("port", int),
    "state_dir": ("state_dir", str),
    "replay": ("replay", bool),
    "poll_interval_s": ("interval_s", (int, float)),
    "retention_events": ("retention_events", int),
    "retention_days": ("retention_age_s", (int, float)),
    "read_token": ("read_token", str),
    "allow_unauthenticated": ("allow_unauthenticated", bool),
    "public_url": ("public_url", str),
    "admin_token": ("admin_token", str),
    "store": ("store", str),
    "lease_ttl_s": ("lease_ttl_s", (int, float)),
    "commit_window_ms": ("commit_window_s", (int, float)),
    "stream_idle_s": ("stream_idle_s", (int, float)),
}
_PROJECT_KEYS: Final = {"name": str, "url": str, "token": str, "poll_interval_s": (int, float)}
_SINK_KEYS: Final = {
    "kind": str,
    "path": str,
    "url": str,
    "group_window_s": (int, float),
    "min_interval_s": (int, float),
    # Checked by routing.parse_route, with messages that show the expected form.
    "projects": object,
    "types": object,
}


def _build(data: dict[str, Any], base: GatewayConfig, locate: _Locator) -> GatewayConfig:
    unknown = sorted(set(data) - {"gateway", "project", "sink"})
    if unknown:
        raise locate.error(unknown[0], None, None, f"unknown table {unknown[0]!r}")
    config = _gateway_table(_table(data, "gateway", locate), base, locate)
    projects = tuple(_each(data, "project", locate, _project))
    sinks = tuple(_each(data, "sink", locate, _sink)) or base.sinks
    try:
        return config.replace(projects=base.projects + projects, sinks=sinks)
    except ConfigError as error:
        raise locate.error("project", None, None, str(error)) from None


def _table(data: dict[str, Any], name: str, locate: _Locator) -> dict[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise locate.error(name, None, None, f"[{name}] must be a table")
    return table


def _each(
    data: dict[str, Any],
    name: str,
    locate: _Locator,
    build: Callable[[dict[str, Any], int, _Locator], Any],
) -> list[Any]:
    tables = data.get(name, [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise locate.error(name, None, None, f"{name} must be written as [[{name}]] tables")
    return [build(table, index, locate) for index, table in enumerate(tables)]


def _check_keys(
    table: Mapping[str, Any],
    allowed: Mapping[str, Any],
    name: str,
    index: int | None,
    locate: _Locator,
) -> None:
    for key, value in table.items():
        if key not in allowed:
            raise locate.error(name, index, key, f"unknown key {key!r} in [{name}]")
        expected = allowed[key]
        if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
            raise locate.error(name, index, key, f"{name}.{key}: wrong type {type(value).__name__}")


def _gateway_table(table: dict[str, Any], base: GatewayConfig, locate: _Locator) -> GatewayConfig:
    _check_keys(table, {k: t for k, (_, t) in _GATEWAY_KEYS.items()}, "gateway", None, locate)
    changes: dict[str, Any] = {}
    poll = base.poll
    for key, value in table.items():
        target = _GATEWAY_KEYS[key][0]
        if key == "poll_interval_s":
            if not value > 0:
                raise locate.error("gateway", None, key, "gateway.poll_interval_s must be positive")
            poll = dataclasses.replace(poll, interval_s=float(value))
        elif key == "stream_idle_s":
            poll = dataclasses.replace(poll, stream_idle_s=float(value))
        elif key == "commit_window_ms":
            changes[target] = float(value) / 1000
        elif key == "retention_days":
            changes[target] = float(value) * 24 * 3600
        elif key == "state_dir":
            changes[target] = Path(value)
        else:
            changes[target] = value
    try:
        return base.replace(poll=poll, **changes)
    except ConfigError as error:
        raise locate.error("gateway", None, None, f"[gateway]: {error}") from None


def _project(table: dict[str, Any], index: int, locate: _Locator) -> ProjectConfig:
    _check_keys(table, _PROJECT_KEYS, "project", index, locate)
    for key in ("name", "url"):
        if key not in table:
            raise locate.error("project", index, None, f"project #{index + 1}: missing {key!r}")
    try:
        interval = table.get("poll_interval_s")
        return ProjectConfig(
            table["name"],
            table["url"],
            table.get("token"),
            None if interval is None else float(interval),
        )
    except ConfigError as error:
        field_name = "name" if "name " in str(error) else "url"
        if "poll_interval_s" in str(error):
            field_name = "poll_interval_s"
        raise locate.error("project", index, field_name, str(error)) from None


def _sink(table: dict[str, Any], index: int, locate: _Locator) -> SinkSpec:
    _check_keys(table, _SINK_KEYS, "sink", index, locate)
    kind = table.get("kind")
    if kind not in SINK_KINDS:
        raise locate.error(
            "sink", index, "kind", "sink.kind must be console, jsonl, webhook or apprise"
        )
    target = table.get("path" if kind == "jsonl" else "url", "")
    try:
        route = parse_route(table)
    except ConfigError as error:
        key = str(error).split(" ", 1)[0].removeprefix("sink.").rstrip(":")
        raise locate.error("sink", index, key, str(error)) from None
    try:
        return SinkSpec(
            kind,
            target,
            float(table.get("group_window_s", DEFAULT_GROUP_WINDOW_S)),
            float(table.get("min_interval_s", DEFAULT_WEBHOOK_MIN_INTERVAL_S)),
            route,
        )
    except ConfigError as error:
        where = None if "group_window_s" in str(error) else "path" if kind == "jsonl" else "url"
        raise locate.error("sink", index, where, str(error)) from None
