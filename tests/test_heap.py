"""Heap settling: survivors are frozen out of full collections, and thawed again next time."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import trio
import trio.testing

from events_trio.gateway.service import HEAP_SETTLE_INTERVAL_S, _settle_heap
from events_trio.hosting.heap import settle_heap


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


class Node:
    """An object in a reference cycle (only the cyclic collector frees it)."""

    def __init__(self) -> None:
        self.me: Any = self


def test_survivors_are_left_out_of_collections_until_the_next_settling() -> None:
    node = Node()
    gone = weakref.ref(node)
    settle_heap()
    assert gc.get_freeze_count() > 0
    del node
    gc.collect()
    assert gone() is not None  # frozen: a full collection does not walk it
    settle_heap()
    assert gone() is None  # thawed first, so garbage frozen earlier is collected


async def test_the_gateway_settles_once_its_projects_stopped_changing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    running: Any = SimpleNamespace(registry=SimpleNamespace(names=["a"]))
    frozen: list[bool] = []

    async def watch() -> None:
        for _ in range(5):
            await trio.sleep(HEAP_SETTLE_INTERVAL_S)
            await trio.testing.wait_all_tasks_blocked()
            frozen.append(gc.get_freeze_count() > 0)
            gc.unfreeze()
            if len(frozen) == 2:
                running.registry.names = ["a", "b"]  # a takeover: more projects

    async with trio.open_nursery() as nursery:
        nursery.start_soon(_settle_heap, running)
        await trio.sleep(HEAP_SETTLE_INTERVAL_S / 2)  # check between the gateway's ticks
        await watch()
        nursery.cancel_scope.cancel()
    # Steady for an interval, then settled; changed, steady again, settled; no change after.
    assert frozen == [False, True, False, True, False]
