"""The writer under HubSpot's partial failures and outages (SPEC R5), over real HTTP against the
sandbox and a real Kafka commands topic: 207s on association and object batches, HubSpot down for
a while and back, and the daily limit with a clock the test moves."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest
from pydantic import SecretStr

from config import Settings
from devtools.localrun import group_lag, wait_until_written
from handlers import hubspot_paths as paths
from handlers.account_fold import fold
from handlers.writer import WriterStats, run_writer
from handlers.writer_time import Backoff, Clock, ManualClock
from hubspot_sandbox import Sandbox, SandboxConfig
from schemas.commands import AnyCommand, Archive, Associate, RecordRef, Upsert
from streams.topic_reader import read_all
from streams.topics import ensure_topics, topic_name
from tests.writer.conftest import TOKEN, admin, agrees, append_commands, held, store_commands

pytestmark = pytest.mark.kafka
FAST = Backoff(base_s=0.2, cap_s=1.0)
"""Retries spaced in tenths of a second, not HubSpot-friendly minutes: the same code, sooner."""


@asynccontextmanager
async def writer(
    settings: Settings, *, clock: Clock | None = None, backoff: Backoff | None = None
) -> AsyncIterator[WriterStats]:
    """The writer in-process; yields the counters it keeps while it runs."""
    stop, stats = asyncio.Event(), WriterStats()
    task = asyncio.create_task(run_writer(settings, stop, clock=clock, backoff=backoff, stats=stats))
    try:
        yield stats
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def until(condition: Callable[[], bool], timeout_s: float = 30.0, what: str = "") -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def dead_letters(settings: Settings) -> list[dict[str, Any]]:
    dlq = topic_name(settings, "hubspot.commands.dlq")
    return [orjson.loads(r.value) for r in await read_all(settings.kafka_bootstrap_servers, dlq)]


def contact(i: int, prefix: str = "c") -> RecordRef:
    return RecordRef(object_type="contacts", id_property="email", id_value=f"{prefix}{i}@example.com")


def upserts(prefix: str, count: int) -> list[AnyCommand]:
    return [
        Upsert(record=contact(i, prefix), properties={"email": contact(i, prefix).id_value})
        for i in range(count)
    ]


def deal(i: int) -> RecordRef:
    return RecordRef(object_type="deals", id_property="shopify_deal_key", id_value=f"order:{i}")


def held_links(dump: dict[str, Any], from_type: str, to_type: str) -> int:
    return sum(1 for a in dump["associations"] if a["from_type"] == from_type and a["to_type"] == to_type)


async def records_then_links(settings: Settings, count: int) -> list[AnyCommand]:
    """``count`` contacts and deals, written first; return the deal-to-contact links for them."""
    records: list[AnyCommand] = []
    for i in range(count):
        records.append(Upsert(record=contact(i), properties={"email": contact(i).id_value}))
        records.append(
            Upsert(record=deal(i), properties={"dealname": f"Order {i}", "shopify_deal_key": f"order:{i}"})
        )
    await append_commands(settings, records)
    return [Associate(record=deal(i), to=contact(i), association_type_id=3) for i in range(count)]


async def test_a_207_on_association_batches_counts_only_the_links_hubspot_made(
    writer_settings: Settings, sandbox: Sandbox
) -> None:
    """Per-input refusals in a 207 on ``associations/batch/create``: the refused links are
    dead-lettered with HubSpot's message, the writer's count is what the sandbox holds."""
    await ensure_topics(writer_settings)
    links = await records_then_links(writer_settings, 60)
    async with writer(writer_settings) as stats:
        await wait_until_written(writer_settings)
        await admin(sandbox, "POST", "/_sandbox/faults",
                    {"batch_error_rate": 0.4, "batch_error_category": "VALIDATION_ERROR"})  # fmt: skip
        await append_commands(writer_settings, links)
        await wait_until_written(writer_settings)
    dump = await admin(sandbox, "GET", "/_sandbox/dump")
    made = held_links(dump, "deals", "contacts")
    letters = await dead_letters(writer_settings)
    assert 0 < made < len(links), "the fault refused some links and let others through"
    assert stats.linked == made, "counted only what HubSpot confirmed"
    assert stats.dead_lettered == len(letters) == len(links) - made
    for letter in letters:
        assert letter["reason"] == "HubSpot rejected the association"
        assert letter["status"] == 207 and letter["category"] == "VALIDATION_ERROR"
        assert "rejected by the sandbox" in letter["message"], "HubSpot's own message"
        assert letter["command"]["op"] == "associate"
    refused = {letter["command"]["record"]["id_value"] for letter in letters}
    assert len(refused) == len(letters), "each refused link dead-lettered once"


async def test_transient_per_input_failures_on_association_batches_are_retried_until_made(
    writer_settings: Settings, sandbox: Sandbox
) -> None:
    await ensure_topics(writer_settings)
    links = await records_then_links(writer_settings, 50)
    async with writer(writer_settings, backoff=FAST) as stats:
        await wait_until_written(writer_settings)
        await admin(sandbox, "POST", "/_sandbox/faults",
                    {"batch_error_rate": 0.5, "batch_error_category": "INTERNAL_ERROR"})  # fmt: skip
        await append_commands(writer_settings, links)
        await wait_until_written(writer_settings, timeout_s=120)
    dump = await admin(sandbox, "GET", "/_sandbox/dump")
    assert held_links(dump, "deals", "contacts") == len(links) == stats.linked
    assert stats.retried_inputs > 0, "the fault failed some inputs"
    assert stats.dead_lettered == 0 and await dead_letters(writer_settings) == []


async def test_a_link_to_a_record_deleted_in_hubspot_is_dead_lettered_with_hubspots_message(
    writer_settings: Settings, sandbox: Sandbox
) -> None:
    """The id map holds a contact HubSpot has since archived: the 207 names it, the writer looks
    it up again, waits for it, then dead-letters the link with HubSpot's answer."""
    await ensure_topics(writer_settings)
    links = await records_then_links(writer_settings, 3)
    settings = writer_settings.model_copy(update={"writer_link_wait_s": 1.0})
    async with writer(settings) as stats:
        await wait_until_written(settings)
        dump = await admin(sandbox, "GET", "/_sandbox/dump")
        gone = next(c["id"] for c in dump["contacts"] if c["properties"]["email"] == contact(1).id_value)
        async with httpx.AsyncClient(
            base_url=sandbox.url, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as http:
            assert (await http.delete(paths.record("contacts", gone))).status_code == 204
        await append_commands(settings, links)
        await wait_until_written(settings)
    dump = await admin(sandbox, "GET", "/_sandbox/dump")
    assert held_links(dump, "deals", "contacts") == 2 == stats.linked
    (letter,) = await dead_letters(settings)
    assert letter["command"]["to"]["id_value"] == contact(1).id_value
    assert letter["category"] == "OBJECT_NOT_FOUND" and "CONTACT" in letter["message"]


async def test_207s_on_object_batches_retry_what_can_succeed_and_dead_letter_what_cannot(
    writer_settings: Settings, sandbox: Sandbox
) -> None:
    await ensure_topics(writer_settings)
    transient, refused = upserts("t", 40), upserts("r", 40)
    archives: list[AnyCommand] = [Archive(record=contact(i, "t")) for i in range(20)]
    async with writer(writer_settings, backoff=FAST) as stats:
        await admin(sandbox, "POST", "/_sandbox/faults",
                    {"batch_error_rate": 0.5, "batch_error_category": "INTERNAL_ERROR"})  # fmt: skip
        await append_commands(writer_settings, transient)
        await wait_until_written(writer_settings, timeout_s=120)
        emails = {
            c["properties"]["email"] for c in (await admin(sandbox, "GET", "/_sandbox/dump"))["contacts"]
        }
        assert emails == {contact(i, "t").id_value for i in range(40)}, "every transient failure retried"
        assert stats.upserted == 40 and stats.dead_lettered == 0 and stats.retried_inputs > 0

        await append_commands(writer_settings, archives)
        await wait_until_written(writer_settings, timeout_s=120)
        dump = await admin(sandbox, "GET", "/_sandbox/dump")
        assert len(dump["contacts"]) == 20 and dump["archived"]["contacts"] == 20
        assert stats.archived == 20

        await admin(sandbox, "POST", "/_sandbox/faults",
                    {"batch_error_rate": 0.3, "batch_error_category": "VALIDATION_ERROR"})  # fmt: skip
        await append_commands(writer_settings, refused)
        await wait_until_written(writer_settings, timeout_s=120)
    dump = await admin(sandbox, "GET", "/_sandbox/dump")
    written = {c["properties"]["email"] for c in dump["contacts"]} & {
        contact(i, "r").id_value for i in range(40)
    }
    letters = await dead_letters(writer_settings)
    assert 0 < len(written) < 40
    assert stats.upserted == 40 + len(written), "counted only what HubSpot confirmed"
    assert len(letters) == 40 - len(written) == stats.dead_lettered
    assert {letter["command"]["record"]["id_value"] for letter in letters} == {
        contact(i, "r").id_value for i in range(40)
    } - written
    assert all(letter["category"] == "VALIDATION_ERROR" and letter["message"] for letter in letters)


def _config(tmp_path: Path, **overrides: Any) -> SandboxConfig:
    return SandboxConfig(db_path=tmp_path / "hubspot.db", token=SecretStr(TOKEN), **overrides)


@pytest.mark.parametrize("outage", ["stopped", "5xx"])
async def test_hubspot_down_for_a_while_then_back_loses_nothing_and_dead_letters_nothing(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture, outage: str
) -> None:
    """HubSpot unreachable (the sandbox stopped: connections refused) or failing (every answer a
    5xx) while commands keep arriving: the writer backs off, commits nothing past the unwritten
    commands, dead-letters nothing, and catches up once HubSpot is back."""
    caplog.set_level(logging.INFO, logger="handlers.writer")
    sandbox = Sandbox(_config(tmp_path))
    await sandbox.start()
    port = int(sandbox.url.rsplit(":", 1)[1])
    settings = settings.model_copy(update={
        "hubspot_base_url": sandbox.url, "hubspot_token": SecretStr(TOKEN), "writer_batch_window_ms": 100,
        "writer_retry_attempts": 2, "hubspot_timeout_s": 2.0,
    })  # fmt: skip
    await ensure_topics(settings)
    before, during = store_commands(customers=6, seed=11), store_commands(customers=6, seed=12)
    commands_topic = topic_name(settings, "hubspot.commands")
    try:
        async with writer(settings, backoff=FAST) as stats:
            await append_commands(settings, before)
            await wait_until_written(settings)
            if outage == "stopped":
                await sandbox.stop()
            else:
                await admin(sandbox, "POST", "/_sandbox/faults", {"fault_5xx_rate": 1.0})
            await append_commands(settings, during)
            await until(lambda: stats.failed_rounds >= 3, what="rounds failing against the outage")
            lag = await group_lag(settings.kafka_bootstrap_servers, settings.writer_group(), [commands_topic])
            assert lag == len(during), "no offset committed past an unwritten command"
            assert stats.dead_lettered == 0
            assert "HubSpot is unavailable" in caplog.text
            if outage == "stopped":
                sandbox = Sandbox(_config(tmp_path, port=port))
                await sandbox.start()
            else:
                await admin(sandbox, "POST", "/_sandbox/faults", {"fault_5xx_rate": 0.0})
            await wait_until_written(settings, timeout_s=120)
        dump = await admin(sandbox, "GET", "/_sandbox/dump")
    finally:
        await sandbox.stop()
    problems = agrees(fold(before + during), held(dump))
    assert not problems, problems[:10]
    assert stats.dead_lettered == 0 and await dead_letters(settings) == []
    assert "HubSpot answers again" in caplog.text
    assert TOKEN not in caplog.text and "@example.com" not in caplog.text


async def test_the_daily_limit_pauses_the_writer_until_midnight_in_the_accounts_zone(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 429 with policy DAILY pauses the writer until midnight in the account's time zone (the
    sandbox's account is in US/Eastern); the clock is the test's, so midnight comes at once."""
    caplog.set_level(logging.INFO, logger="handlers.writer")
    clock = ManualClock(datetime(2026, 3, 3, 23, 50, tzinfo=ZoneInfo("US/Eastern")))
    sandbox = Sandbox(_config(tmp_path, time_zone="US/Eastern"), now=clock.now)
    await sandbox.start()
    settings = settings.model_copy(update={
        "hubspot_base_url": sandbox.url, "hubspot_token": SecretStr(TOKEN), "writer_batch_window_ms": 100,
    })  # fmt: skip
    await ensure_topics(settings)
    first, later = upserts("a", 5), upserts("b", 5)
    commands_topic = topic_name(settings, "hubspot.commands")
    try:
        async with writer(settings, clock=clock) as stats:
            await append_commands(settings, first)
            await wait_until_written(settings)
            async with httpx.AsyncClient(
                base_url=sandbox.url, headers={"Authorization": f"Bearer {TOKEN}"}
            ) as http:
                response = await http.get(paths.pipelines("deals"))
            used = int(response.headers["X-HubSpot-RateLimit-Daily"]) - int(
                response.headers["X-HubSpot-RateLimit-Daily-Remaining"]
            )
            await admin(sandbox, "POST", "/_sandbox/faults", {"rate_limit_daily": used})  # spent for today
            await append_commands(settings, later)
            await until(lambda: stats.daily_pauses == 1, what="the daily pause")
            requests = (await admin(sandbox, "GET", "/_sandbox/stats"))["total"]
            await asyncio.sleep(3)  # paused: the writer sends nothing, and commits nothing
            assert (await admin(sandbox, "GET", "/_sandbox/stats"))["total"] == requests
            lag = await group_lag(settings.kafka_bootstrap_servers, settings.writer_group(), [commands_topic])
            assert lag == len(later) and stats.dead_lettered == 0
            assert "daily API limit is used up" in caplog.text
            assert "2026-03-04 05:00:30 UTC" in caplog.text and "US/Eastern" in caplog.text

            clock.advance(timedelta(minutes=5))  # 23:55: still the same day, still paused
            await asyncio.sleep(2)
            assert (await admin(sandbox, "GET", "/_sandbox/stats"))["total"] == requests
            clock.advance(timedelta(minutes=6))  # 00:01 in US/Eastern: a new day, for HubSpot too
            await wait_until_written(settings, timeout_s=30)
        dump = await admin(sandbox, "GET", "/_sandbox/dump")
    finally:
        await sandbox.stop()
    emails = {c["properties"]["email"] for c in dump["contacts"]}
    assert emails == {c.record.id_value for c in first + later}
    assert stats.daily_pauses == 1 and stats.dead_lettered == 0
    assert "daily limit has reset" in caplog.text
