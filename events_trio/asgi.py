"""The Hypercorn door: ``hypercorn --worker-class trio 'events_trio.asgi:app'``.

``app`` is built on first use, in Hypercorn's lifespan startup
(:class:`~events_trio.server.door.LazyApp`): importing this module reads no
variable, creates no file, configures no logging and patches nothing. Then
settings come from ``EVENTS_TRIO_*`` variables; what the app does and which
variables count is ``server/door.py`` (README, "Under Hypercorn").
"""

from __future__ import annotations

from .server.door import LazyApp, create_asgi_app

app = LazyApp(create_asgi_app)
