"""Everything a running sandbox holds, reachable from any request through ``request.app[STATE]``."""

from __future__ import annotations

from dataclasses import dataclass

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


STATE = web.AppKey("state", SandboxState)
