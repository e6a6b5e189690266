"""SIGHUP: read the configuration again and apply its projects and sinks.

The file (with the command line's flags on top, as at start) is read in
full first; any error is logged in one line and the running configuration
is kept, untouched. Otherwise projects and sinks are brought in line:

* a project in the file but not running starts (from its stored cursor, or
  from "now" if the gateway has never seen it); one running but no longer
  in the file stops (its entries stay in the log); a changed one (url,
  token, interval) restarts. Projects added through the admin API are left
  alone.
* sinks: as ``sinkset.py`` says (unchanged ones keep running).

Other ``[gateway]`` settings (address, tokens, timings, state directory)
take effect on the next start; a reload that changes them says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..core.errors import ConfigError
from .config import GatewayConfig
from .registry import ProjectRegistry
from .sinkset import SinkSet

log = logging.getLogger("events_trio.gateway.reload")


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a reload changed."""

    projects_added: int
    projects_removed: int
    sinks_added: int
    sinks_removed: int


async def reload_config(
    load: Callable[[], GatewayConfig],
    running_config: GatewayConfig,
    registry: ProjectRegistry,
    sinkset: SinkSet,
) -> ReloadResult | None:
    """Load the configuration again and apply it; ``None`` (and a log line) if it is bad."""
    try:
        new = load()
    except ConfigError as error:
        log.error("reload refused, the running configuration is kept: %s", error)
        return None
    try:
        sinks_added, sinks_removed = await sinkset.apply(new.sinks)
    except ConfigError as error:
        log.error("reload refused, the running configuration is kept: %s", error)
        return None
    try:
        added, removed = await registry.apply(new.projects)
    except ConfigError as error:
        log.error("reload: projects not applied: %s", error)
        added = removed = 0
    if _other_settings(new) != _other_settings(running_config):
        log.warning("reload: changes to [gateway] settings take effect on restart")
    result = ReloadResult(added, removed, sinks_added, sinks_removed)
    log.info(
        "reloaded: %d projects added, %d removed; %d sinks added, %d removed",
        *(result.projects_added, result.projects_removed),
        *(result.sinks_added, result.sinks_removed),
    )
    return result


def _other_settings(config: GatewayConfig) -> GatewayConfig:
    return config.replace(projects=(), sinks=())
