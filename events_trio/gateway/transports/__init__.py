"""How the gateway reads a project server, one sans-IO state machine per mode.

* ``stream`` (:mod:`.stream_protocol`): one ``GET /api/events/stream`` per
  connection; bytes in, :class:`~.records.StreamStep` records out.
* ``long-poll`` and ``interval``: one ``GET /api/events`` per answer,
  interpreted by :func:`events_trio.gateway.tracker.interpret`.
* :mod:`.modes` decides which one a project gets (detected per project).

The IO (sockets, deadlines, appends) stays in ``poller.py`` and
``streamer.py``, thin on top.
"""
