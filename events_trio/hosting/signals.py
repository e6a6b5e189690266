"""SIGINT/SIGTERM as a shutdown trigger (``serve``, ``gateway`` and ``demo``),
and SIGHUP as a reload for the processes that can reload (the gateway)."""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import partial

import trio

from .listening import ShutdownTrigger

Reload = Callable[[], Awaitable[None]]


@contextmanager
def signal_trigger(
    log: logging.Logger, *, on_reload: Reload | None = None
) -> Iterator[ShutdownTrigger]:
    """A trigger that returns on the first SIGINT or SIGTERM, logged to ``log``.

    The signals are caught from entering the block on, so one that arrives
    before the trigger is awaited still counts.

    Args:
        log: Where each signal is logged by name.
        on_reload: Awaited on each SIGHUP (which then does not stop anything);
            without it SIGHUP keeps its default meaning.
    """
    wanted = (signal.SIGINT, signal.SIGTERM, *((signal.SIGHUP,) if on_reload else ()))
    with trio.open_signal_receiver(*wanted) as signals:
        yield partial(first_signal, signals, log, on_reload)


async def first_signal(
    signals: AsyncIterator[int], log: logging.Logger, on_reload: Reload | None = None
) -> None:
    """Return on the first SIGINT or SIGTERM of ``signals``, logging each by name."""
    async for signum in signals:
        log.info("received %s", signal.Signals(signum).name)
        if signum == signal.SIGHUP and on_reload is not None:
            await on_reload()
            continue
        return
