"""Starting and stopping a sandbox: as an async context manager for tests and embedding code,
or blocking until SIGINT/SIGTERM for the command line."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from aiohttp import web

from hubspot_sandbox import admin, api, property_edits, subscriptions
from hubspot_sandbox.config import SandboxConfig
from hubspot_sandbox.faults import Faults, FaultSettings
from hubspot_sandbox.middleware import crm_gate
from hubspot_sandbox.ratelimit import RateLimiter
from hubspot_sandbox.state import STATE, SandboxState
from hubspot_sandbox.stats import Stats
from hubspot_sandbox.store import Store
from hubspot_sandbox.webhooks import WebhookSender

log = logging.getLogger(__name__)


class Sandbox:
    """A running sandbox. ``url`` is its base URL (use it as HUBSPOT_BASE_URL); ``state`` gives
    in-process access to the store, limiter, faults and counters.

    ``now`` is the wall clock the daily limit follows (its day starts at midnight in the account's
    ``time_zone``, as HubSpot's does); a test passes its own clock to cross midnight instantly.
    ``monotonic`` times the rate-limit windows (a test freezes it to fill one without waiting)."""

    def __init__(
        self,
        config: SandboxConfig,
        *,
        now: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        store = Store(config.db_path)
        zone = ZoneInfo(config.time_zone)
        clock = now or (lambda: datetime.now(UTC))
        self.state = SandboxState(
            config=config,
            store=store,
            limiter=RateLimiter(
                config.burst_limit,
                config.daily_limit,
                clock=monotonic,
                today=lambda: clock().astimezone(zone).date().isoformat(),
            ),
            faults=Faults(
                FaultSettings(
                    config.fault_5xx_rate,
                    config.latency_ms,
                    config.drop_rate,
                    config.batch_error_rate,
                    config.batch_error_category,
                ),
                seed=config.fault_seed,
            ),
            stats=Stats(),
            webhooks=WebhookSender(
                config.webhook_url,
                config.webhook_secret.get_secret_value(),
                portal_id=config.portal_id,
                app_id=config.app_id,
                next_event_id=store.next_event_id,
                max_attempts=config.webhook_max_attempts,
                backoff_s=config.webhook_backoff_s,
            ),
            now=clock,
        )
        self._runner: web.AppRunner | None = None
        self.url = ""

    def app(self) -> web.Application:
        app = web.Application(middlewares=[crm_gate], client_max_size=16 * 1024 * 1024)
        app[STATE] = self.state
        app.add_routes(api.routes)
        app.add_routes(property_edits.routes)
        app.add_routes(subscriptions.routes)  # X4: communication preferences
        app.add_routes(admin.routes)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        log.info("HubSpot sandbox listening on %s (db %s)", self.url, self.config.db_path)

    async def stop(self) -> None:
        """Stop answering, drop pending webhook deliveries, and close the database."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.state.webhooks.close()
        self.state.store.close()


@asynccontextmanager
async def running_sandbox(
    config: SandboxConfig,
    *,
    now: Callable[[], datetime] | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> AsyncIterator[Sandbox]:
    sandbox = Sandbox(config, now=now, monotonic=monotonic)
    try:
        await sandbox.start()
        yield sandbox
    finally:
        await sandbox.stop()


async def _serve_until_signalled(config: SandboxConfig, announce: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with running_sandbox(config) as sandbox:
        if announce:
            print(sandbox.url, flush=True)
        await stop.wait()


def serve(config: SandboxConfig, *, announce: bool = True) -> None:
    """Run until SIGINT or SIGTERM; prints the base URL on stdout once it answers."""
    asyncio.run(_serve_until_signalled(config, announce))
