"""The dashboard service: one page and its JSON endpoints, served by the bridge process.

The bridge is the long-running service that is up wherever the product runs, so it also serves
the dashboard, but on an address of its own (``SHOPSYNC_DASHBOARD_HOST``/``_PORT``, 127.0.0.1:8090
by default): the webhook port faces Shopify and HubSpot, the dashboard shows a store's revenue and
stays on the loopback unless an operator says otherwise.

    GET /                   the page (handlers.dashboard_page)
    GET /api/reports.json   the eight reports per shop currency (streams.rules.reports)
    GET /api/summary.json   S1: contacts, deals by stage, products synced
    GET /api/health.json    lag, writer backlog, dead letters, field problems, timers, HubSpot calls
    GET /metrics            the bridge process's Prometheus metrics

A background task refreshes the data (``handlers.dashboard_data``) every
``SHOPSYNC_DASHBOARD_REFRESH_S``; requests only read what it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web

from config import Settings
from handlers.dashboard_data import DashboardData
from handlers.dashboard_page import HEALTH_JSON, REPORTS_JSON, SUMMARY_JSON, render
from streams.metrics import metrics_page

log = logging.getLogger(__name__)
DATA_KEY = web.AppKey("dashboard_data", DashboardData)


def _json(value: Any) -> web.Response:
    return web.json_response(value, headers={"Cache-Control": "no-store"})


def build_dashboard(settings: Settings, data: DashboardData | None = None) -> web.Application:
    """The dashboard as an aiohttp application; it refreshes its data while it runs."""
    data = data or DashboardData(settings)
    app = web.Application()
    app[DATA_KEY] = data

    async def page(request: web.Request) -> web.Response:
        html = render(data.reports(), data.summary(), data.health(), settings.dashboard_refresh_s)
        return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def reports(request: web.Request) -> web.Response:
        return _json(data.reports())

    async def summary(request: web.Request) -> web.Response:
        return _json(data.summary())

    async def health(request: web.Request) -> web.Response:
        return _json(data.health())

    app.add_routes(
        [
            web.get("/", page),
            web.get(REPORTS_JSON, reports),
            web.get(SUMMARY_JSON, summary),
            web.get(HEALTH_JSON, health),
            web.get("/metrics", metrics_page),
        ]
    )

    async def refreshing(app: web.Application) -> Any:
        async def loop() -> None:
            while True:
                try:
                    await data.refresh()
                except Exception as exc:  # never let one bad refresh stop the page
                    log.warning("dashboard refresh failed: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(settings.dashboard_refresh_s)

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await data.close()

    app.cleanup_ctx.append(refreshing)
    return app


async def start_dashboard(settings: Settings, port: int | None = None) -> web.AppRunner | None:
    """Serve the dashboard on its own address (None when it is turned off, port 0, or its port is
    taken: logged, never fatal to the bridge beside it)."""
    port = settings.dashboard_port if port is None else port
    if port <= 0:
        return None
    runner = web.AppRunner(build_dashboard(settings), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.dashboard_host, port).start()
    except OSError as exc:  # the bridge's webhooks matter more than its dashboard
        log.warning("cannot serve the dashboard on %s:%d (%s); running without it",
                    settings.dashboard_host, port, exc)  # fmt: skip
        await runner.cleanup()
        return None
    log.info("dashboard on http://%s:%d/", settings.dashboard_host, port)
    return runner


def attach(app: web.Application, settings: Settings) -> None:
    """Run the dashboard beside an application (the bridge's), started and stopped with it."""

    async def running(_: web.Application) -> Any:
        runner = await start_dashboard(settings)
        yield
        if runner is not None:
            await runner.cleanup()

    app.cleanup_ctx.append(running)
