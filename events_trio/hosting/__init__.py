"""Serving an app on Hypercorn, shared by the project server and the gateway."""
