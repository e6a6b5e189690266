"""Sinks of the merged stream: console, JSON lines, webhook, Apprise."""

from __future__ import annotations

from pathlib import Path

import httpx

from ..config import SinkSpec
from .apprise import AppriseSink
from .base import Sink, SinkRunner, SinkSettings
from .console import ConsoleSink
from .jsonl import JsonlSink
from .webhook import WebhookSink


def build_sink(spec: SinkSpec, client: httpx.AsyncClient, *, public_url: str | None = None) -> Sink:
    """The sink ``spec`` describes (webhooks share ``client``; chat links ``public_url``)."""
    if spec.kind == "apprise":
        return AppriseSink(
            spec.target,
            group_window_s=spec.group_window_s,
            min_interval_s=spec.min_interval_s,
            public_url=public_url,
        )
    if spec.kind == "jsonl":
        return JsonlSink(Path(spec.target))
    if spec.kind == "webhook":
        return WebhookSink(
            spec.target,
            client,
            group_window_s=spec.group_window_s,
            min_interval_s=spec.min_interval_s,
        )
    return ConsoleSink()


__all__ = [
    "AppriseSink",
    "ConsoleSink",
    "JsonlSink",
    "Sink",
    "SinkRunner",
    "SinkSettings",
    "WebhookSink",
    "build_sink",
]
