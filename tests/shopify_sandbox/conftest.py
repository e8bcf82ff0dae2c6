"""Fixtures of the Shopify sandbox tests: sandboxes on free ports (settings as keyword
overrides, ``monotonic=``/``now=`` for their clocks) and a GraphQL caller with the test token."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from shopify_sandbox import ShopifySandbox, ShopifySandboxConfig, running_shopify_sandbox

TOKEN = "shpat_test-token"
StartSandbox = Callable[..., Awaitable[ShopifySandbox]]


class Admin:
    """Posts GraphQL to one sandbox as an app holding ``TOKEN``."""

    def __init__(self, sandbox: ShopifySandbox, http: httpx.AsyncClient, version: str = "2026-04"):
        self.sandbox = sandbox
        self.http = http
        self.version = version

    async def post(self, query: str, version: str | None = None, **variables: Any) -> dict[str, Any]:
        response = await self.http.post(
            f"/admin/api/{version or self.version}/graphql.json",
            json={"query": query, "variables": variables},
            headers={"X-Shopify-Access-Token": TOKEN},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def data(self, query: str, version: str | None = None, **variables: Any) -> dict[str, Any]:
        body = await self.post(query, version, **variables)
        assert "errors" not in body, body
        found: dict[str, Any] = body["data"]
        return found


@pytest.fixture
async def start_sandbox(tmp_path: Path) -> AsyncIterator[StartSandbox]:
    async with AsyncExitStack() as stack:

        async def start(**overrides: Any) -> ShopifySandbox:
            clocks = {k: overrides.pop(k) for k in ("monotonic", "now") if k in overrides}
            settings: dict[str, Any] = {"token": TOKEN, "data_dir": tmp_path / "bulk", **overrides}
            return await stack.enter_async_context(
                running_shopify_sandbox(ShopifySandboxConfig(**settings), **clocks)
            )

        yield start


@pytest.fixture
async def admin(start_sandbox: StartSandbox) -> AsyncIterator[Admin]:
    sandbox = await start_sandbox()
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        yield Admin(sandbox, http)
