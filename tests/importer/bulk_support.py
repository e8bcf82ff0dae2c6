"""Helpers of the bulk-import tests: a local Shopify Admin API (the sandbox) over the sample
store, and a bulk export of one resource taken from it over HTTP, as the import takes it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from handlers import bulk_queries
from handlers.bulk_import import BULK_API_VERSION, AdminGraphQL, start_operation, wait_for
from localkafka.broker import free_port
from shopify_sandbox import ShopifySandbox, ShopifySandboxConfig, running_shopify_sandbox

TOKEN = "shpat_bulk-test"


@asynccontextmanager
async def sandbox(tmp_path: Path, **overrides: Any) -> AsyncIterator[ShopifySandbox]:
    config = ShopifySandboxConfig(token=TOKEN, data_dir=tmp_path / "exports", **overrides)
    async with running_shopify_sandbox(config) as running:
        yield running


async def export(shop: ShopifySandbox, resource: str, version: str = BULK_API_VERSION) -> bytes:
    """The JSONL of one resource's bulk query, fetched as the import fetches it."""
    headers = {"X-Shopify-Access-Token": TOKEN}
    async with httpx.AsyncClient(base_url=shop.url, headers=headers) as http:
        admin = AdminGraphQL(http, version)
        op = await wait_for(admin, await start_operation(admin, resource), 0.0)
        assert op["status"] == "COMPLETED", op
        content = (await http.get(op["url"])).content
    assert bulk_queries.bulk_query(resource, version) in shop.operations.all[-1].query
    return content


def numbered(content: bytes) -> list[tuple[int, bytes]]:
    """A whole file's lines with their byte offsets."""
    lines, offset = [], 0
    for line in content.splitlines(keepends=True):
        lines.append((offset, line))
        offset += len(line)
    return lines


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """``app`` over real HTTP on a free local port; its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class SharedClock:
    """One clock for the sandbox's bucket and the import's client (``AdminGraphQL(clock=...,
    sleep=clock.sleep)``): a sleep moves it on, so pacing and throttling take no real time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
