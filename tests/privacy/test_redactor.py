"""The redactor (``handlers.redactor``) on the real broker: a ``customers/redact`` on the
compliance topic shreds that customer's keys in that shop and no one else's, a ``shop/redact``
every key of the shop, each request is applied once (its offset committed after the tombstones
were acknowledged), and a key made after the request is not the redactor's business."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer

from config import Settings
from handlers.keyring import KeyRing
from handlers.redactor import UnreadableRequestError, redact_once
from schemas.envelope import Delivery
from streams import topics
from streams.privacy import compliance_key, compliance_request
from streams.shredding import KeyRecord, key_encryption_key, key_id, redaction
from streams.topics import ensure_topics, topic_name
from tests.privacy.test_keyring import key_topic

pytestmark = pytest.mark.kafka

SECRET = b"redactor-test-secret"
KEK = key_encryption_key(SECRET)
SHOP, OTHER = "s.myshopify.com", "t.myshopify.com"
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ADA, GRACE = "ada.lovelace@example.com", "grace.hopper@example.com"


async def request(settings: Settings, topic: str, shop: str, body: dict[str, object], event: str) -> None:
    """A compliance request on the topic, as the bridge appends it (pseudonymised, keyed by shop)."""
    delivery = Delivery(
        topic=topic, shop_domain=shop, webhook_id=f"w-{event}", event_id=event, received_at=AT,
        body={"shop_domain": shop, **body},
    )  # fmt: skip
    record = compliance_request(delivery, SECRET)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            topic_name(settings, "shopify.compliance"),
            record.model_dump_json().encode(),
            key=compliance_key(record),
        )
    finally:
        await producer.stop()


async def test_redacts_shred_their_subjects_keys_once_and_nothing_else(settings: Settings) -> None:
    await ensure_topics(settings)
    keys = await key_topic(settings)
    compliance = topic_name(settings, "shopify.compliance")
    group = f"{settings.app_id}.redactor"
    bootstrap = settings.kafka_bootstrap_servers

    ring = KeyRing(bootstrap, keys, KEK)
    await ring.start()
    try:
        ada = (await ring.key_for(SHOP, key_id(SECRET, SHOP, ADA, None) or ""))[0]
        ada_by_id = (await ring.key_for(SHOP, key_id(SECRET, SHOP, None, 1) or ""))[0]
        grace = (await ring.key_for(SHOP, key_id(SECRET, SHOP, GRACE, None) or ""))[0]
        ada_elsewhere = (await ring.key_for(OTHER, key_id(SECRET, OTHER, ADA, None) or ""))[0]
    finally:
        await ring.stop()

    await request(settings, "customers/data_request", SHOP, {"customer": {"id": 1, "email": ADA}}, "e1")
    await request(
        settings,
        "customers/redact",
        SHOP,
        {"customer": {"id": 1, "email": " Ada.Lovelace@Example.com"}},
        "e2",
    )
    applied = await redact_once(bootstrap, compliance, keys, group, KEK, SECRET)
    assert [(a.topic, a.shredded) for a in applied] == [
        ("customers/data_request", 0),
        ("customers/redact", 2),
    ]

    fresh = KeyRing(bootstrap, keys, KEK)  # what a replay from offset 0 holds
    await fresh.start()
    try:
        assert ada not in fresh.keys and ada_by_id not in fresh.keys  # by email and by customer id
        assert grace in fresh.keys, "another customer of the shop is untouched"
        assert ada_elsewhere in fresh.keys, "the same address in another shop is another shop's"
        later = (await fresh.key_for(SHOP, key_id(SECRET, SHOP, ADA, None) or ""))[0]  # a new order after
    finally:
        await fresh.stop()

    assert await redact_once(bootstrap, compliance, keys, group, KEK, SECRET) == [], "applied once"

    await request(settings, "shop/redact", SHOP, {"shop_id": 7}, "e3")
    applied = await redact_once(bootstrap, compliance, keys, group, KEK, SECRET)
    assert [(a.topic, a.shredded) for a in applied] == [("shop/redact", 2)]  # Grace's and the later one
    after = KeyRing(bootstrap, keys, KEK)
    await after.start()
    try:
        assert grace not in after.keys and later not in after.keys
        assert ada_elsewhere in after.keys, "another shop's keys stay"
    finally:
        await after.stop()


async def test_a_running_reader_drops_a_key_shredded_elsewhere_before_its_next_batch(
    settings: Settings,
) -> None:
    """The worker's opener holds every key it has read; a redact applied by the redactor must
    reach it without a restart, or a running worker would still open the customer's records."""
    from pydantic import SecretStr

    from handlers.sealer import Opener

    sealing = settings.model_copy(
        update={"seal_personal_data": True, "privacy_secret": SecretStr(SECRET.decode())}
    )
    await ensure_topics(sealing)
    kek = key_encryption_key(sealing.privacy_key())
    maker = KeyRing(settings.kafka_bootstrap_servers, topics.key_topic(sealing), kek)
    await maker.start()
    opener = Opener(sealing, refresh_s=0.0)
    try:
        ref, _ = await maker.key_for(SHOP, key_id(SECRET, SHOP, ADA, None) or "")
        await opener.ensure([])  # starts it: the ring read to its end
        assert ref in opener.keys
        await maker.shred(redaction_for_shop(maker))
        await opener.ensure([])  # the next batch, naming nothing new
        assert ref not in opener.keys
    finally:
        await opener.stop()
        await maker.stop()


def redaction_for_shop(ring: KeyRing) -> list[KeyRecord]:
    return redaction(ring.held, SHOP, None)


async def test_a_record_the_redactor_cannot_read_stops_it_and_is_never_committed_past(
    settings: Settings,
) -> None:
    await ensure_topics(settings)
    keys = await key_topic(settings)
    compliance = topic_name(settings, "shopify.compliance")
    group = f"{settings.app_id}.redactor"
    bootstrap = settings.kafka_bootstrap_servers
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:  # a newer bridge's request, say: a field this version does not know
        await producer.send_and_wait(
            compliance, b'{"kind": "compliance", "topic": "shop/redact", "new": 1}', key=SHOP.encode()
        )
    finally:
        await producer.stop()
    await request(settings, "shop/redact", SHOP, {"shop_id": 7}, "e9")
    for _ in range(2):  # restarted: it stops on the same record again, the redact after it waits
        with pytest.raises(UnreadableRequestError, match="is not a compliance request"):
            await redact_once(bootstrap, compliance, keys, group, KEK, SECRET)
