"""Replay: the topics alone rebuild what HubSpot should hold, the same way every time."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from config import Settings
from devtools.localrun import append_events, wait_until_written
from devtools.samplestore import generate
from handlers import hubspot_paths as paths
from handlers import replay
from handlers.hubspot_client import HubSpotClient
from handlers.replay import desired_commands, diff, read_account, rebuild, send
from handlers.writer import run_writer
from hubspot_sandbox import Sandbox
from schemas.envelope import HubSpotContactDeletion, encode
from streams.topics import ensure_topics, topic_name
from tests.recorded_progress import RecordedProgress
from tests.writer.conftest import TOKEN, admin

pytestmark = pytest.mark.kafka


async def write_all(settings: Settings) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(run_writer(settings, stop))
    try:
        await wait_until_written(settings, timeout_s=120)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_replaying_twice_sends_the_same_commands_and_leaves_hubspot_unchanged(
    writer_settings: Settings, sandbox: Sandbox
) -> None:
    settings = writer_settings
    await ensure_topics(settings)
    store = generate(customers=10, seed=12)
    await append_events(settings, store.ordered())
    victim = next(c["email"] for c in store.customers if c["email"])
    deletion = HubSpotContactDeletion(
        event_id="hs-1",
        object_id=1,
        email=victim,
        occurred_at=max(e.at for e in store.events) + timedelta(hours=1),
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    await producer.send_and_wait(topic_name(settings, "hubspot.events"), encode(deletion), key=b"1")
    await producer.stop()

    first, second = await rebuild(settings), await rebuild(settings)
    with pytest.MonkeyPatch.context() as patch:  # commands folded every few, not every 10,000
        patch.setattr(replay, "FOLD_EVERY", 3)
        folded_often = await rebuild(settings)
    assert folded_often.account == first.account
    assert folded_often.command_digest == first.command_digest
    assert first.command_count == second.command_count > 0
    assert first.command_digest == second.command_digest, "same topics, same commands in the same order"
    assert desired_commands(first) == desired_commands(second)
    assert first.deleted_in_hubspot == {victim}
    assert first.records_read == len(store.events) + 1 and not first.skipped

    await send(settings, desired_commands(first))
    await write_all(settings)
    once = await admin(sandbox, "GET", "/_sandbox/dump")
    await send(settings, desired_commands(second))
    await write_all(settings)
    twice = await admin(sandbox, "GET", "/_sandbox/dump")
    assert twice == once, "the second replay changes nothing in HubSpot"
    assert victim not in {c["properties"]["email"] for c in once["contacts"]}, "C4: not re-created"
    stages = {d["stage_label"] for d in once["deals"]}
    assert {"Checkout Abandoned", "Cancelled"} <= stages, "timers fired in the replay too"


async def test_dry_run_shows_how_hubspot_differs(writer_settings: Settings, sandbox: Sandbox) -> None:
    settings = writer_settings
    await ensure_topics(settings)
    await append_events(settings, generate(customers=6, seed=13).ordered())
    rebuilt = await rebuild(settings)
    client = HubSpotClient(sandbox.url, TOKEN)
    try:
        before = diff(rebuilt.account, await read_account(client, rebuilt.account))
        assert any(line.startswith("+ contacts") for line in before), "nothing written yet: all missing"
        await send(settings, desired_commands(rebuilt))
        await write_all(settings)
        assert diff(rebuilt.account, await read_account(client, rebuilt.account)) == []
        contact = (await admin(sandbox, "GET", "/_sandbox/dump"))["contacts"][0]
        async with httpx.AsyncClient(
            base_url=sandbox.url, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as http:
            changed = await http.patch(paths.record("contacts", str(contact["id"])),
                                       json={"properties": {"firstname": "Someone Else"}})  # fmt: skip
            assert changed.status_code == 200
        after = diff(rebuilt.account, await read_account(client, rebuilt.account))
    finally:
        await client.close()
    assert len(after) == 1 and "firstname" in after[0] and "Someone Else" in after[0]


async def test_replay_reports_the_records_it_could_not_rebuild(settings: Settings) -> None:
    """R7: an unreadable record and an order whose identity cannot be read are counted by reason
    in ``Rebuilt.report``, without their values, and make the loss exit code; the rest rebuilds."""
    from datetime import UTC, datetime

    from handlers.loss import EXIT_LOSS
    from schemas.envelope import Delivery

    await ensure_topics(settings)

    def delivery(topic: str, body: dict[str, object]) -> bytes:
        return encode(Delivery(
            topic=topic, shop_domain="s.myshopify.com", webhook_id=f"w-{topic}", event_id=f"e-{topic}",
            received_at=datetime(2026, 3, 2, 9, tzinfo=UTC), body=body,
        ))  # fmt: skip

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        customer = delivery("customers/create", {"id": 1, "email": "ada@example.com"})
        await producer.send_and_wait(topic_name(settings, "shopify.customers"), customer, key=b"1")
        order = delivery("orders/create", {"id": {"not": "an id"}, "email": "lost@example.com"})
        await producer.send_and_wait(topic_name(settings, "shopify.orders"), order, key=b"x")
        await producer.send_and_wait(topic_name(settings, "shopify.orders"), b"garbage", key=b"y")
    finally:
        await producer.stop()
    rebuilt = await rebuild(settings)
    assert ("contacts", "ada@example.com") in rebuilt.account.records
    assert rebuilt.report.lost == 2 and rebuilt.report.exit_code() == EXIT_LOSS
    reasons = [reason for where, reason in rebuilt.report.dead_letters if where == "replay"]
    assert any(r.startswith("not a readable shopify.orders record") for r in reasons), reasons
    assert any(r.startswith("body does not fit orders/create") for r in reasons), reasons
    assert "lost@example.com" not in "\n".join(rebuilt.report.render())


async def test_replay_shows_its_read_and_fold_phases_against_known_totals(settings: Settings) -> None:
    """The read's total comes from the topics' offsets before reading, the fold's from what was
    read; both end at their totals, and the rebuild is the one without a display."""
    await ensure_topics(settings)
    store = generate(customers=8, seed=14)
    await append_events(settings, store.ordered())
    shown = RecordedProgress()
    rebuilt = await rebuild(settings, progress=shown)
    phases = shown.by_label()
    assert list(phases) == ["replay: read", "replay: fold"]
    read, fold = phases["replay: read"], phases["replay: fold"]
    assert read.totals.records == read.updates[-1] >= rebuilt.records_read == len(store.events)
    assert fold.totals.records == fold.updates[-1] == rebuilt.records_read
    assert read.finished and fold.finished
    assert (await rebuild(settings)).command_digest == rebuilt.command_digest
