"""How the services can be watched: log format, the Prometheus endpoints, the dashboard's address."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from config.base import SettingsPart


class ObservabilitySettings(SettingsPart):
    """Where each service serves ``/metrics``, where the dashboard listens, how logs read."""

    log_format: Literal["json", "text"] = Field(
        "json", description="Log lines as JSON objects (default: for log collectors) or 'text' "
        "(human-readable)."
    )  # fmt: skip
    metrics_host: str = Field("127.0.0.1", description="Interface the worker's and writer's /metrics bind.")
    worker_metrics_port: int = Field(
        9464, ge=0, le=65535, description="The worker's Prometheus /metrics port; 0 turns it off."
    )
    writer_metrics_port: int = Field(
        9465, ge=0, le=65535, description="The writer's Prometheus /metrics port; 0 turns it off."
    )
    dashboard_host: str = Field("127.0.0.1", description="Interface the dashboard binds.")
    dashboard_port: int = Field(
        8090, ge=0, le=65535, description="The dashboard's port (in the bridge process); 0: off."
    )
    dashboard_refresh_s: float = Field(
        5.0, gt=0, le=3600, description="How often the dashboard page reloads its numbers."
    )
