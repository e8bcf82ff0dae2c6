"""Everything a running sandbox holds, reachable from any request through ``request.app[STATE]``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web

from hubspot_sandbox.config import SandboxConfig
from hubspot_sandbox.faults import Faults
from hubspot_sandbox.ratelimit import RateLimiter
from hubspot_sandbox.stats import Stats
from hubspot_sandbox.store import Store
from hubspot_sandbox.webhooks import WebhookSender


@dataclass
class SandboxState:
    config: SandboxConfig
    store: Store
    limiter: RateLimiter
    faults: Faults
    stats: Stats
    webhooks: WebhookSender
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


STATE = web.AppKey("state", SandboxState)
