"""Mode detection per project (sans-IO)."""

from __future__ import annotations

from events_trio.gateway.transports.modes import ModeChoice


def test_a_new_project_is_polled_first() -> None:
    assert ModeChoice().next_transport(has_position=False) == "poll"


def test_a_known_project_is_asked_for_its_stream() -> None:
    assert ModeChoice().next_transport(has_position=True) == "stream"


def test_a_refused_stream_means_polling_until_a_restart() -> None:
    modes = ModeChoice()
    modes.stream_refused()
    modes.polled(long_poll=True, restarted=False, recovered=False)
    assert modes.next_transport(has_position=True) == "poll"
    modes.polled(long_poll=True, restarted=True, recovered=False)
    assert modes.next_transport(has_position=True) == "stream"


def test_a_recovery_asks_for_the_stream_again() -> None:
    modes = ModeChoice()
    modes.stream_refused()
    modes.polled(long_poll=True, restarted=False, recovered=True)
    assert modes.next_transport(has_position=True) == "stream"


def test_a_server_that_ignores_wait_is_never_asked_for_a_stream() -> None:
    modes = ModeChoice()
    modes.polled(long_poll=False, restarted=True, recovered=True)
    assert modes.next_transport(has_position=True) == "poll"
