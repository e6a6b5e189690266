"""The gateway: read every project server, merge into one durable log, deliver to chat.

Data flows one way::

    config -> Poller (per project; stream, long-poll or interval, transports/)
           -> StreamProtocol / tracker (sans-IO) -> group commit (writer.py)
           -> EventLog (eventlog.py: SQLite in store.py, or PostgreSQL in pg/ for
              a cluster of gateways; newest entries in memory, tail.py)
           -> SinkRunner (per sink) -> console / JSON lines / webhook / Apprise
           -> gateway HTTP API (GET /api/events, /api/projects, /healthz)
"""

from __future__ import annotations

from .config import GatewayConfig as GatewayConfig
from .config import PollSettings as PollSettings
from .config import ProjectConfig as ProjectConfig
from .config import SinkSpec as SinkSpec
from .config import load_config as load_config
from .errors import BadResponse as BadResponse
from .errors import GatewayError as GatewayError
from .errors import LeaseLost as LeaseLost
from .errors import ProjectError as ProjectError
from .errors import ProjectUnreachable as ProjectUnreachable
from .errors import SinkError as SinkError
from .errors import StoreError as StoreError
from .errors import StoreUnavailable as StoreUnavailable
from .service import RunningGateway as RunningGateway
from .service import run_gateway as run_gateway

__all__ = [
    "BadResponse",
    "GatewayConfig",
    "GatewayError",
    "LeaseLost",
    "PollSettings",
    "ProjectConfig",
    "ProjectError",
    "ProjectUnreachable",
    "RunningGateway",
    "SinkError",
    "SinkSpec",
    "StoreError",
    "StoreUnavailable",
    "load_config",
    "run_gateway",
]
