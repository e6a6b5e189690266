"""Fair shares: every project owned, no gateway above its share + 1, no churn once settled."""

from __future__ import annotations

from math import ceil

from hypothesis import given, settings
from hypothesis import strategies as st

from events_trio.gateway.ownership import fair_share, plan_round


def settle(
    resources: list[str], gateways: list[str], owned: dict[str, str], rounds: int = 10
) -> dict[str, str]:
    """Rounds of every gateway in turn, applying each plan as the database would."""
    for _ in range(rounds):
        for me in gateways:
            mine = [r for r, owner in owned.items() if owner == me]
            plan = plan_round(me, resources, mine, owned, len(gateways))
            for r in plan.release:
                del owned[r]
            for r in plan.acquire:
                owned.setdefault(r, me)  # taken only if still free (acquire's WHERE)
    return owned


def test_share_is_the_ceiling_of_projects_per_gateway() -> None:
    assert [fair_share(30, 3), fair_share(31, 3), fair_share(5, 0)] == [10, 11, 5]


def test_a_lone_gateway_takes_everything() -> None:
    resources = [f"project:p{i}" for i in range(7)]
    plan = plan_round("a", resources, [], {}, 1)
    assert (sorted(plan.acquire), plan.release) == (sorted(resources), [])


def test_a_gateway_above_its_share_releases_the_excess() -> None:
    resources = [f"project:p{i}" for i in range(6)]
    owned = dict.fromkeys(resources, "a")
    plan = plan_round("a", resources, resources, owned, 2)
    assert (len(plan.release), plan.acquire) == (3, [])


def test_a_project_removed_from_the_registry_is_released() -> None:
    plan = plan_round("a", ["project:p1"], ["project:p1", "project:gone"], {"project:p1": "a"}, 1)
    assert (plan.release, plan.acquire) == (["project:gone"], [])


def test_settled_ownership_does_not_move() -> None:
    resources = [f"project:p{i}" for i in range(9)]
    owned = settle(resources, ["a", "b", "c"], {})
    again = settle(resources, ["a", "b", "c"], dict(owned), rounds=3)
    assert again == owned


@settings(max_examples=200, deadline=None)
@given(
    projects=st.integers(min_value=0, max_value=60),
    before=st.integers(min_value=1, max_value=6),
    after=st.integers(min_value=1, max_value=6),
)
def test_after_joins_and_leaves_every_project_is_owned_within_share_plus_one(
    projects: int, before: int, after: int
) -> None:
    resources = [f"project:p{i}" for i in range(projects)]
    first = [f"g{i}" for i in range(before)]
    owned = settle(resources, first, {})
    # Gateways join or die (a dead one's leases expire: they are free again).
    now = [f"g{i}" for i in range(after)]
    owned = {r: owner for r, owner in owned.items() if owner in now}
    owned = settle(resources, now, owned)
    counts = [list(owned.values()).count(g) for g in now]
    assert len(owned) == projects
    assert max(counts, default=0) <= ceil(projects / after) + 1
