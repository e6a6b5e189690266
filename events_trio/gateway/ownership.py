"""Fair shares of a cluster's projects and sinks (pure: no I/O, no clock).

:func:`plan_round` decides, for one gateway and one round, which leases to
give up and which free ones to try to take, from what it holds, which resources
live gateways hold, and how many gateways are alive.

Goals: every resource ends up owned while any gateway lives; no gateway
keeps more than its share, ceil(resources / live gateways), once the round
settles (so none owns more than that + 1 while others catch up); a joining
gateway gets its share because the others release their excess; a
resource changes hands only when shares change (no churn in steady state).

Plan: the share is ``ceil(n / live)``; above it, release the excess (the
last names in sorted order, so every round picks the same ones); below it,
take free resources (no live owner) up to the share, spread by a hash of
the gateway id so gateways starting together go for different ones first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from math import ceil


@dataclass(frozen=True, slots=True)
class RoundPlan:
    """What one gateway does this round."""

    release: list[str]
    acquire: list[str]


def fair_share(resources: int, live_gateways: int) -> int:
    """The most resources one gateway should own."""
    return ceil(resources / max(live_gateways, 1))


def plan_round(
    me: str,
    resources: Collection[str],
    mine: Collection[str],
    owned: Collection[str],
    live_gateways: int,
) -> RoundPlan:
    """Which of ``resources`` ``me`` releases and which it tries to acquire this round.

    Args:
        me: This gateway's id.
        resources: Every resource to be owned (projects, or sinks).
        mine: Those ``me`` holds now.
        owned: Resources with a live lease (``me``'s included).
        live_gateways: Gateways alive now (``me`` included).
    """
    share = fair_share(len(resources), live_gateways)
    held = sorted(r for r in mine if r in resources)
    gone = sorted(r for r in mine if r not in resources)  # removed from the registry
    if len(held) > share:
        return RoundPlan(gone + held[share:], [])
    free = [r for r in resources if r not in owned and r not in mine]
    free.sort(key=lambda r: hashlib.blake2b(f"{me}/{r}".encode(), digest_size=8).digest())
    return RoundPlan(gone, free[: share - len(held)])
