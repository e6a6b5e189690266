"""Which transport a project gets, detected per project (sans-IO).

Best first: ``stream`` (our servers: one connection, no request per
event), ``long-poll`` (a server of ours without the stream), ``interval``
(the Rust original: it ignores ``wait`` and sends no ``X-Events-*``
headers).

Plan: a project the gateway has never seen is polled once (``since=0``)
to learn where its stream stands; the answer's headers tell whether the
server is ours. A server of ours (or one not asked yet) gets the stream;
one that has none is long-polled; a server that ignores ``wait`` is polled
on an interval. The stream is asked for again after a restart or an
outage (the server may have been upgraded meanwhile).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

Transport: TypeAlias = Literal["stream", "poll"]


@dataclass(slots=True)
class ModeChoice:
    """The transport decision of one project.

    Attributes:
        no_stream: The server answered the stream with "not here".
        long_polls: The last poll's answer honoured ``wait`` (``None``: not polled yet).
    """

    no_stream: bool = False
    long_polls: bool | None = None

    def next_transport(self, *, has_position: bool) -> Transport:
        """``stream`` or ``poll`` for the next connection."""
        if not has_position or self.no_stream or self.long_polls is False:
            return "poll"
        return "stream"

    def stream_refused(self) -> None:
        """The server has no usable stream: poll it from now on."""
        self.no_stream = True

    def polled(self, *, long_poll: bool, restarted: bool, recovered: bool) -> None:
        """Note one poll's answer; a restart or a recovery asks for the stream again."""
        self.long_polls = long_poll
        if restarted or recovered:
            self.no_stream = False
