"""Exceptions of the gateway.

::

    EventsTrioError
    └── GatewayError
        ├── ProjectError          one poll of a project server failed
        │   ├── ProjectUnreachable    refused, reset, DNS, timed out
        │   └── BadResponse           5xx/4xx, non-JSON, not an array, malformed event
        └── SinkError             a sink could not deliver (it will retry)

Pollers and sinks map every transport error to one of these at a single
boundary, so the retry logic above them never sees ``httpx`` or ``OSError``.
"""

from __future__ import annotations

from ..core.errors import EventsTrioError


class GatewayError(EventsTrioError):
    """Base class of the gateway's own errors."""


class ProjectError(GatewayError):
    """A poll of a project server failed; the message is one line for operators."""


class ProjectUnreachable(ProjectError):
    """The project server could not be reached or did not answer in time."""


class BadResponse(ProjectError):
    """The project server answered, but not with a valid events array."""


class SinkError(GatewayError):
    """A sink failed to deliver a batch; the runner retries with backoff."""
