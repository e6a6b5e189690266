"""SIGINT/SIGTERM as a shutdown trigger (``serve``, ``gateway`` and ``demo``)."""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from functools import partial

import trio

from .listening import ShutdownTrigger


@contextmanager
def signal_trigger(log: logging.Logger) -> Iterator[ShutdownTrigger]:
    """A trigger that returns on the first SIGINT or SIGTERM, logged to ``log``.

    The signals are caught from entering the block on, so one that arrives
    before the trigger is awaited still counts.
    """
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        yield partial(first_signal, signals, log)


async def first_signal(signals: AsyncIterator[int], log: logging.Logger) -> None:
    """Return on the first signal of ``signals``, logging its name."""
    async for signum in signals:
        log.info("received %s", signal.Signals(signum).name)
        return
