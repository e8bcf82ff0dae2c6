"""Set-up once at the writer, through Kafka and the sandbox: a restart on a configured account
verifies the set-up remembered in ``hubspot.setup`` in at most three calls, and a property deleted
in HubSpot after that is recreated when a write names it, with no record lost or dead-lettered."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from config import Settings
from devtools.localrun import wait_until_written
from handlers import hubspot_paths as paths
from handlers.account_fold import fold
from handlers.writer import WriterStats, run_writer
from hubspot_sandbox import Sandbox
from schemas.commands import Upsert
from streams.topics import ensure_topics
from tests.writer.conftest import TOKEN, admin, agrees, append_commands, held, store_commands

pytestmark = pytest.mark.kafka
DELETED = ("deals", "shopify_abandoned_at")
"""A property the store's commands write (an abandoned checkout's deal), deleted in HubSpot."""


class Ready(logging.Handler):
    """Set when the writer logs that it is ready (its set-up done, its id map loaded)."""

    def __init__(self) -> None:
        super().__init__()
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("writer ready"):
            self.event.set()


@asynccontextmanager
async def writer(settings: Settings) -> AsyncIterator[asyncio.Task[WriterStats]]:
    """A running writer, once it is ready."""
    ready = Ready()
    logger = logging.getLogger("handlers.writer")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(ready)
    stop = asyncio.Event()
    task = asyncio.create_task(run_writer(settings, stop))
    try:
        await asyncio.wait_for(ready.event.wait(), 60)
        yield task
    finally:
        logger.removeHandler(ready)
        logger.setLevel(level)
        stop.set()
        await asyncio.wait_for(task, 30)


async def calls(sandbox: Sandbox) -> Counter[str]:
    return Counter((await admin(sandbox, "GET", "/_sandbox/stats"))["requests"])


async def test_a_restart_on_a_configured_account_makes_at_most_three_set_up_calls(
    writer_settings: Settings, sandbox: Sandbox
) -> None:
    await ensure_topics(writer_settings)
    async with writer(writer_settings):
        first = await calls(sandbox)
    async with writer(writer_settings):
        second = await calls(sandbox) - first
    assert first["POST /crm/v3/properties/{object_type}/batch/create"] == 5 and first.total() <= 13, first
    assert second.total() <= 3, second
    assert all(route.startswith("GET ") for route in second), "nothing written on a configured account"


async def test_a_property_deleted_after_the_set_up_is_recreated_and_nothing_is_lost(
    writer_settings: Settings, sandbox: Sandbox
) -> None:
    await ensure_topics(writer_settings)
    commands = store_commands(customers=8, seed=4)
    writes_it = [c for c in commands if isinstance(c, Upsert) and DELETED[1] in c.properties]
    assert writes_it, "the store writes the property deleted below"
    async with writer(writer_settings):
        pass  # set up and remembered
    object_type, name = DELETED
    async with httpx.AsyncClient(base_url=sandbox.url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        assert (await http.delete(paths.property_named(object_type, name))).status_code == 204
    before = await calls(sandbox)
    await append_commands(writer_settings, commands)
    async with writer(writer_settings) as task:
        await wait_until_written(writer_settings)
    stats = task.result()
    made = await calls(sandbox) - before
    assert stats.dead_lettered == 0
    dump = await admin(sandbox, "GET", "/_sandbox/dump")
    problems = agrees(fold(commands), held(dump))
    assert not problems, problems[:10]
    assert made["POST /crm/v3/properties/{object_type}/batch/create"] == 1, "recreated once, by the repair"
    assert made["GET /crm/v3/properties/{object_type}"] == 5, "one full set-up, on the refused write"
