"""Keeping the cyclic garbage collector's full passes short in a long-running process.

A gateway polling a thousand projects holds a few hundred thousand
long-lived objects (pollers, connections, parsers). CPython's full
collection walks every one of them, and it runs every few seconds under
load: measured at 150-470 ms per pass, during which no event moves, so it
was the whole tail of the delivery latency. :func:`settle_heap` collects
once and then freezes what is left (``gc.freeze``): the objects alive at
that moment are no longer walked; new ones are, as before, and refcounting
still frees everything that is not in a cycle.

Call it when the set of long-lived objects has just changed a lot (after
start-up, after taking over or giving up many projects). Each call unfreezes
first, so a cycle frozen earlier and garbage since is collected then.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger("events_trio.heap")


def settle_heap() -> None:
    """One full collection, then the survivors are left out of future ones."""
    started = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    log.info(
        "heap settled in %.0f ms: %d objects left out of garbage collection",
        1000 * (time.perf_counter() - started),
        gc.get_freeze_count(),
    )
