"""The key ring (``handlers.keyring``, not wired into the product yet) on the real broker: keys
made once and acknowledged before use, shared through the key topic, shredded by tombstones that
every ring follows, and a record sealed before the redaction opening as erased everywhere after."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from config import Settings
from devtools.samplestore import customer_body
from handlers.keyring import KeyRing
from schemas.envelope import Delivery
from streams.privacy import compliance_request
from streams.shredding import (
    KEY_TOPIC_CONFIGS,
    decrypt_customer,
    encrypt_customer,
    key_encryption_key,
    key_id,
    redaction_for,
)
from streams.topics import ensure_topics
from streams.topics import key_topic as topic_key

pytestmark = pytest.mark.kafka

SECRET = b"keyring-test-secret"
KEK = key_encryption_key(SECRET)
SHOP = "s.myshopify.com"
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ADA, GRACE = "ada.lovelace@example.com", "grace.hopper@example.com"


async def key_topic(settings: Settings) -> str:
    name = f"{settings.topic_prefix}privacy.keys"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 2, 1, topic_configs=dict(KEY_TOPIC_CONFIGS))])
        async with asyncio.timeout(30):  # created is not yet visible to every client's metadata
            while not [t for t in await admin.describe_topics([name]) if t.get("error_code") == 0]:  # noqa: ASYNC110 (the broker has no event to wait on)
                await asyncio.sleep(0.1)
    finally:
        await admin.close()
    return name


async def until(condition: object, ring: KeyRing, timeout_s: float = 30.0) -> None:
    """Wait for the ring to apply records until ``condition()`` holds (no sleeping: it waits on
    the ring's own signal)."""
    assert callable(condition)
    async with asyncio.timeout(timeout_s):
        while not condition():
            ring.changed.clear()
            await ring.changed.wait()


async def test_keys_are_shared_through_the_topic_and_a_redaction_shreds_them_everywhere(
    settings: Settings,
) -> None:
    topic = await key_topic(settings)
    ada_kid, grace_kid = key_id(SECRET, SHOP, ADA, None), key_id(SECRET, SHOP, GRACE, None)
    assert ada_kid and grace_kid
    writer, reader = (
        KeyRing(settings.kafka_bootstrap_servers, topic, KEK),
        KeyRing(settings.kafka_bootstrap_servers, topic, KEK),
    )
    await writer.start()
    follower: asyncio.Task[None] | None = None
    try:
        ada_ref, ada_key = await writer.key_for(SHOP, ada_kid)
        assert await writer.key_for(SHOP, ada_kid) == (ada_ref, ada_key), "one key a subject, made once"
        body = customer_body(1, ADA, "Ada", "Lovelace", AT, phone="+15556251199")
        sealed = encrypt_customer(body, ada_ref, ada_key, b"\x01" * 12)

        await reader.start()  # a second process: it starts with every key made so far
        assert decrypt_customer(sealed, reader.keys) == body
        grace_ref, _ = await writer.key_for(SHOP, grace_kid)
        assert grace_ref not in reader.keys
        await reader.ensure([grace_ref])  # a record names a key made elsewhere moments ago
        assert grace_ref in reader.keys

        follower = asyncio.create_task(writer.follow())
        redact = Delivery(
            topic="customers/redact", shop_domain=SHOP, webhook_id="w", event_id="e", received_at=AT,
            body={"shop_domain": SHOP, "customer": {"id": 1, "email": ADA}},
        )  # fmt: skip
        shredded = await reader.shred(redaction_for(compliance_request(redact, SECRET), SECRET, reader.held))
        assert shredded == 1 and ada_ref not in reader.keys and grace_ref in reader.keys
        await until(lambda: ada_ref not in writer.keys, writer)  # the other process follows the tombstone
        new_ref, _ = await writer.key_for(SHOP, ada_kid)
        assert new_ref != ada_ref, "a writer never seals again with a shredded key"
    finally:
        if follower is not None:
            follower.cancel()
        await writer.stop()
        await reader.stop()

    fresh = KeyRing(settings.kafka_bootstrap_servers, topic, KEK)  # a replay, from offset 0
    await fresh.start()
    try:
        assert ada_ref not in fresh.keys and grace_ref in fresh.keys and new_ref in fresh.keys
        opened = decrypt_customer(sealed, fresh.keys)
        assert opened["email"] is None and opened["last_name"] is None and opened["id"] == 1
    finally:
        await fresh.stop()


async def test_a_ring_without_its_topic_says_so(settings: Settings) -> None:
    ring = KeyRing(settings.kafka_bootstrap_servers, f"{settings.topic_prefix}privacy.keys", KEK)
    try:
        with pytest.raises(RuntimeError, match="does not exist"):
            await ring.start()
    finally:
        await ring.stop()


async def test_callers_asking_at_once_for_a_new_subject_share_one_key(settings: Settings) -> None:
    """A customer's create and first order reach the bridge together: one key, not one each."""
    topic = await key_topic(settings)
    ring = KeyRing(settings.kafka_bootstrap_servers, topic, KEK)
    await ring.start()
    try:
        kid = key_id(SECRET, SHOP, ADA, None)
        assert kid
        made = await asyncio.gather(*(ring.key_for(SHOP, kid) for _ in range(5)))
        assert len(set(made)) == 1
        assert [r.ref for r in ring.held] == [made[0][0]]
    finally:
        await ring.stop()
    fresh = KeyRing(settings.kafka_bootstrap_servers, topic, KEK)
    await fresh.start()
    try:
        assert list(fresh.keys) == [made[0][0]], "one record on the key topic"
    finally:
        await fresh.stop()


async def test_a_first_start_on_a_key_topic_created_a_moment_ago_logs_no_error(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A deployment's first start: ``ensure_topics`` has just created the key topic, and the ring
    starts at once. Its assignment's offset reset used to meet NotLeaderForPartition (the topic
    listed with a leader, the leader not answering yet), which aiokafka's fetcher logs as an ERROR
    before retrying (seen in most of 15 fresh starts; none since the end offsets are asked first)."""
    caplog.set_level(logging.ERROR, logger="aiokafka")
    for n in range(3):  # three fresh topics: the race is not met on every one
        fresh = settings.model_copy(
            update={"topic_prefix": f"{settings.topic_prefix}fresh{n}.", "seal_personal_data": True}
        )
        await ensure_topics(fresh)
        ring = KeyRing(fresh.kafka_bootstrap_servers, topic_key(fresh), KEK)
        await ring.start()
        try:
            made = await asyncio.gather(*(ring.key_for(SHOP, f"kid{i}") for i in range(5)))
            assert len({ref for ref, _ in made}) == 5
        finally:
            await ring.stop()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
