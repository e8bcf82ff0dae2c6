"""End to end through the real broker: a delivery appended to its topic becomes a HubSpot command.

The worker runs as its own process (``python -m shopsync worker``), exactly as deployed.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from config import Settings
from devtools.localrun import (
    ServiceProcess,
    append_events,
    wait_for_records,
    wait_until_worker_idle,
)
from devtools.samplestore import SampleEvent, customer_body
from schemas.commands import Upsert, decode_command
from streams.topic_reader import read_all
from streams.topics import ensure_topics, topic_name

pytestmark = pytest.mark.kafka

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def test_deliveries_become_commands_duplicates_vanish_and_poison_is_dead_lettered(
    settings: Settings, tmp_path: Path
) -> None:
    await ensure_topics(settings, internal=True)
    worker = ServiceProcess("worker", settings, tmp_path / "worker.log")
    try:
        body = customer_body(4242, "  Ada.Lovelace@Example.COM ", "Ada", "Lovelace", AT)
        event = SampleEvent(AT, "customers/create", body, event_id="evt-1")
        # The same event twice (a Shopify retry), then a record that is not JSON at all.
        await append_events(settings, [event, event])
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
        await producer.start()
        await producer.send_and_wait(topic_name(settings, "shopify.customers"), b"{not json", key=b"99")
        await producer.stop()
        # A body whose identity cannot be read, and a checkout that names no journey: both
        # dead-lettered, and the customer after them is still processed (the partition keeps moving).
        bad_order = SampleEvent(AT, "orders/create", {"id": "seven", "total_price": "1.00"}, event_id="evt-2")
        no_journey = SampleEvent(AT, "checkouts/delete", {"id": 8}, event_id="evt-3")
        grace = customer_body(99, "grace@example.com", "Grace", "Hopper", AT)
        after = SampleEvent(AT, "customers/update", grace, event_id="evt-4")
        await append_events(settings, [bad_order, no_journey, after])

        await wait_until_worker_idle(settings, 90, worker)
        commands = await wait_for_records(
            settings.kafka_bootstrap_servers, topic_name(settings, "hubspot.commands"), 2, worker
        )
        letters = await wait_for_records(
            settings.kafka_bootstrap_servers, topic_name(settings, "shopify.deadletter"), 3, worker
        )
    finally:
        worker.stop()

    assert len(commands) == 2, "a duplicate delivery must emit nothing"
    decoded = {decode_command(c).record.id_value: decode_command(c) for c in commands}
    assert "grace@example.com" in decoded, "the partition kept moving after the poison record"
    command = decoded["ada.lovelace@example.com"]
    assert isinstance(command, Upsert)
    assert command.record.object_type == "contacts"
    assert command.record.id_value == "ada.lovelace@example.com"
    assert command.properties["firstname"] == "Ada"
    assert command.properties["city"] == "Ottawa"
    assert command.properties["shopify_customer_created_at"] == "2026-03-02T09:00:00.000Z"

    by_reason = {orjson.loads(v)["reason"].split(":")[0]: orjson.loads(v) for v in letters}
    letter = by_reason["not a valid record"]
    assert letter["key"] == "99"
    assert base64.b64decode(letter["original_base64"]) == b"{not json"
    assert letter["topic"] == topic_name(settings, "shopify.customers")
    assert "id" in by_reason["body does not fit orders/create"]["reason"]
    assert "token" in by_reason["body does not fit checkouts/delete"]["reason"]


async def test_a_field_that_does_not_fit_is_synced_as_absent_and_reported_without_its_value(
    settings: Settings, tmp_path: Path
) -> None:
    """R1 on the real broker: one bad field never decides the record's fate."""
    await ensure_topics(settings, internal=True)
    body = customer_body(5151, "kim@example.com", "Kim", "Secretvalue", AT)
    body["orders_count"] = "many"
    body["default_address"] = []
    worker = ServiceProcess("worker", settings, tmp_path / "worker.log")
    try:
        await append_events(settings, [SampleEvent(AT, "customers/create", body, event_id="evt-r1")])
        await wait_until_worker_idle(settings, 90, worker)
        commands = await wait_for_records(
            settings.kafka_bootstrap_servers, topic_name(settings, "hubspot.commands"), 1, worker
        )
        problems = await wait_for_records(
            settings.kafka_bootstrap_servers, topic_name(settings, "shopify.field-problems"), 2, worker
        )
        letters = await read_all(settings.kafka_bootstrap_servers, topic_name(settings, "shopify.deadletter"))
    finally:
        worker.stop()
    assert letters == []
    command = decode_command(commands[0])
    assert isinstance(command, Upsert)
    assert command.properties["lastname"] == "Secretvalue"
    assert command.properties.get("shopify_orders_count") is None
    records = [orjson.loads(p) for p in problems]
    assert {r["path"] for r in records} == {"orders_count", "default_address"}
    assert all(r["shopify_topic"] == "customers/create" and r["event_id"] == "evt-r1" for r in records)
    assert not any(b"many" in p or b"Secretvalue" in p for p in problems), "a problem never holds a value"
