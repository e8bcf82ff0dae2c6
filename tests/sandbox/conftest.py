"""Fixtures of the sandbox tests: sandboxes on free ports over a temporary SQLite file, and a
client with the test token."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from hubspot_sandbox import Sandbox, SandboxConfig, running_sandbox
from tests.sandbox.support import TOKEN, http_client

StartSandbox = Callable[..., Awaitable[Sandbox]]


@pytest.fixture
async def start_sandbox(tmp_path: Path) -> AsyncIterator[StartSandbox]:
    """Start sandboxes (settings as keyword overrides; ``monotonic=`` freezes the rate-limit clock);
    all stop at the end."""
    async with AsyncExitStack() as stack:

        async def start(**overrides: Any) -> Sandbox:
            options = {k: overrides.pop(k) for k in ("monotonic", "now") if k in overrides}
            settings: dict[str, Any] = {"db_path": tmp_path / "hubspot.db", "token": TOKEN, **overrides}
            return await stack.enter_async_context(running_sandbox(SandboxConfig(**settings), **options))

        yield start


@pytest.fixture
async def sandbox(start_sandbox: StartSandbox) -> Sandbox:
    return await start_sandbox()


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(sandbox) as http:
        yield http
