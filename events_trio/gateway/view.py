"""What ``GET /api/projects`` and ``GET /healthz`` show: this gateway's projects, or the cluster's.

:class:`LocalView` is one gateway on SQLite: its own projects, each owned by
it. In cluster mode the supervisor (cluster.py) provides a view with every
project of the cluster, its owner, and the live gateways. The HTTP routes
only read a view; they never know which mode they serve.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Sequence
from typing import Any, Protocol

import trio

from .status import ProjectStatus


def make_gateway_id() -> str:
    """This process's id in a cluster: host name, pid and a short random part (readable, unique)."""
    host = socket.gethostname().split(".")[0] or "gateway"
    return f"{host}-{os.getpid()}-{secrets.token_hex(2)}"


class ProjectsView(Protocol):
    """The projects and health a gateway serves."""

    gateway_id: str

    async def projects(self) -> list[dict[str, Any]]:
        """One object per project (``GET /api/projects``), each with its ``owner``."""
        ...

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Whether the gateway can serve, and the fields ``/healthz`` adds."""
        ...


class LocalView:
    """One gateway with its own store: every project it lists is its own.

    Args:
        statuses: Live status of each project (shared with the registry).
        gateway_id: This gateway's id.
    """

    def __init__(self, statuses: Sequence[ProjectStatus], gateway_id: str) -> None:
        self.statuses = statuses
        self.gateway_id = gateway_id

    async def projects(self) -> list[dict[str, Any]]:
        """Each project's live status, owned by this gateway."""
        await trio.lowlevel.checkpoint()
        return [{**status.to_json(), "owner": self.gateway_id} for status in self.statuses]

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Always able to serve (the SQLite file is local); names the gateway."""
        return True, {"gateway_id": self.gateway_id}
