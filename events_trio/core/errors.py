"""Exceptions raised by events-trio.

::

    EventsTrioError
    ├── ConfigError          bad configuration (CLI flags, environment, TOML)
    ├── InvalidParameter     a query parameter that does not parse
    └── StartupError         the server cannot start (port in use, ...)
"""

from __future__ import annotations


class EventsTrioError(Exception):
    """Base class of every error events-trio raises on purpose."""


class ConfigError(EventsTrioError):
    """The configuration is invalid; the message says which setting and why."""


class InvalidParameter(EventsTrioError):
    """A request parameter is invalid.

    Args:
        parameter: The parameter's name (for example ``since``).
        message: What was wrong, for the JSON error body.
    """

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message


class StartupError(EventsTrioError):
    """The server could not start; the message is one line for the operator."""
