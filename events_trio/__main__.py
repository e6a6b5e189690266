"""``python -m events_trio`` is ``events-trio``."""

from .cli import main

raise SystemExit(main())
