"""HubSpot deletions on the real broker (C4, R5): the bridge appends HubSpot's event with the
object id only, and the worker finds the email in the writer's id map (``hubspot.ids``), whichever
of the two arrives first. No HubSpot call is involved, so HubSpot being down loses nothing.
With ``SHOPSYNC_REDACTABLE`` (G1) the id map's contact keys are the emails' pseudonyms, and the
join works the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from config import Settings
from devtools.localrun import ServiceProcess, append_events, wait_until_worker_idle
from devtools.samplestore import SampleEvent, customer_body
from schemas.commands import Upsert, decode_command
from schemas.envelope import HubSpotContactDeletion, encode
from streams.rules.contact_keys import contact_key
from streams.topic_reader import read_all
from streams.topics import ensure_topics, topic_name

pytestmark = pytest.mark.kafka

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("redactable", [False, True], ids=["email-keys", "pseudonym-keys"])
async def test_deletions_resolve_through_the_id_map_in_either_order_and_the_contact_is_not_recreated(
    settings: Settings, tmp_path: Path, redactable: bool
) -> None:
    secret = SecretStr("a privacy secret of the test")
    settings = settings.model_copy(update={"redactable": redactable, "privacy_secret": secret})
    await ensure_topics(settings, internal=True)
    people = {"ann@example.com": (11, 501), "bob@example.com": (12, 502), "cy@example.com": (13, 503)}
    created = [
        SampleEvent(AT, "customers/create", customer_body(cid, email, "N", "M", AT), event_id=f"c-{cid}")
        for email, (cid, _) in people.items()
    ]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()

    async def id_map(email: str) -> None:
        key = f"contacts:email:{contact_key(email, settings.rule_config())}".encode()  # as the writer keys it
        await producer.send_and_wait(
            topic_name(settings, "hubspot.ids"), str(people[email][1]).encode(), key=key
        )

    async def deletion(email: str, n: int) -> None:
        event = HubSpotContactDeletion(
            event_id=f"d-{n}", object_id=people[email][1], occurred_at=AT + timedelta(hours=1)
        )
        await producer.send_and_wait(
            topic_name(settings, "hubspot.events"), encode(event), key=str(event.object_id).encode()
        )

    worker = ServiceProcess("worker", settings, tmp_path / "worker.log")
    try:
        await append_events(settings, created)
        await id_map("ann@example.com")  # the id first, then the deletion
        await deletion("ann@example.com", 1)
        await deletion("bob@example.com", 2)  # the deletion first, then the id
        await deletion("bob@example.com", 2)  # HubSpot retried it: changes nothing
        await wait_until_worker_idle(settings, 90, worker)
        await id_map("bob@example.com")
        await wait_until_worker_idle(settings, 90, worker)
        later = AT + timedelta(days=1)
        updates = [
            SampleEvent(later, "customers/update",
                        customer_body(cid, email, "New", "Name", AT, updated_at=later), event_id=f"u-{cid}")
            for email, (cid, _) in people.items()
        ]  # fmt: skip
        await append_events(settings, updates)
        await wait_until_worker_idle(settings, 90, worker)
        records = await read_all(settings.kafka_bootstrap_servers, topic_name(settings, "hubspot.commands"))
    finally:
        await producer.stop()
        worker.stop()
    renamed = {
        c.record.hubspot_value
        for c in (decode_command(r.value) for r in records)
        if isinstance(c, Upsert) and c.properties.get("firstname") == "New"
    }
    assert renamed == {"cy@example.com"}, "a contact deleted in HubSpot is not written again (C4)"
