"""``python -m events_trio`` is ``events-trio``."""

from .cli.main import main

raise SystemExit(main())
