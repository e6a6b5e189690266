"""Hypercorn timeouts both processes use unless configured otherwise."""

from __future__ import annotations

from typing import Final

#: Seconds in-flight requests get to finish after a shutdown signal. Hypercorn
#: also keeps idle keep-alive connections until this deadline, so it bounds
#: how long a shutdown takes while gateways hold connections open.
DEFAULT_GRACEFUL_TIMEOUT_S: Final = 1.0
#: Seconds an idle keep-alive connection is kept open.
DEFAULT_KEEP_ALIVE_S: Final = 75.0
#: Seconds a request's head (request line and headers) may take to arrive,
#: counted from its first byte; a slower client (slowloris) is disconnected.
DEFAULT_HEADER_TIMEOUT_S: Final = 10.0
