"""Exceptions of the gateway.

::

    EventsTrioError
    └── GatewayError
        ├── ProjectError          one poll of a project server failed
        │   ├── ProjectUnreachable    refused, reset, DNS, timed out
        │   └── BadResponse           5xx/4xx, non-JSON, not an array, malformed event
        ├── SinkError             a sink could not deliver (it will retry)
        └── StoreError            the merged log refused or failed an operation
            ├── StoreUnavailable      the database cannot be reached (it will retry)
            └── LeaseLost             the append's fence no longer holds (cluster mode)

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


class StoreError(GatewayError):
    """The merged log failed an operation; nothing of it was applied."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or timed out; callers pause and retry."""


class LeaseLost(StoreError):
    """Another gateway owns the project or sink now: this gateway must stop writing for it."""
