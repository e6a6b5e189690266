"""The project server: hub, subscriber, HTTP app, ``run_server``."""
