"""A contract test: every request the writer sends while it writes the demo store, on a Free and a
Professional account, checked against what HubSpot (and the sandbox, as strict as HubSpot's
documentation) declares: no unknown endpoint, body field or property, nothing read-only written.
A writer whose every request passes relies on no leniency of the sandbox.

Needs the sandbox's declared contract (``hubspot_sandbox.contract``, ``GET /_sandbox/rules``) and
its ``tier`` setting (branch ``sandbox12``).
"""

from __future__ import annotations

import asyncio
import importlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from config import Settings
from devtools.localrun import wait_until_written
from handlers.writer import run_writer
from hubspot_sandbox import SandboxConfig, running_sandbox
from streams.topics import ensure_topics
from tests.writer.conftest import TOKEN, admin, append_commands, store_commands
from tests.writer.test_writer_tiers import add_stages_in_hubspots_ui

pytestmark = pytest.mark.kafka


class Recording(httpx.AsyncBaseTransport):
    """httpx's own transport, keeping (method, path, body) of every request it carries."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[tuple[str, str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, request.url.path, body))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("tier", ["free", "professional"])
async def test_every_request_of_the_writer_is_inside_hubspots_declared_contract(
    settings: Settings, tmp_path: Path, tier: str
) -> None:
    contract: Any = importlib.import_module("hubspot_sandbox.contract")
    config = SandboxConfig(db_path=tmp_path / "hs.db", token=SecretStr(TOKEN), tier=tier)  # type: ignore[arg-type,call-arg,unused-ignore]
    recording = Recording()
    async with running_sandbox(config) as sandbox:
        if tier == "free":
            add_stages_in_hubspots_ui(sandbox, "default")
        written = settings.model_copy(
            update={"hubspot_base_url": sandbox.url, "hubspot_token": SecretStr(TOKEN)}
        )
        await ensure_topics(written)
        await append_commands(written, store_commands())
        stop = asyncio.Event()
        task = asyncio.create_task(run_writer(written, stop, transport=recording))
        try:
            await wait_until_written(written)
        finally:
            stop.set()
            stats = await asyncio.wait_for(task, 30)
        description = await admin(sandbox, "GET", "/_sandbox/rules")
    assert stats.dead_lettered == 0 and stats.upserted > 0
    kinds = {(method, path.split("/")[-1]) for method, path, _ in recording.requests}
    assert {("POST", "upsert"), ("POST", "create"), ("POST", "read")} <= kinds, "the demo used the batches"
    problems = [
        problem
        for method, path, body in recording.requests
        for problem in contract.check_request(description, method, path, body)
    ]
    assert not problems, problems[:10]
