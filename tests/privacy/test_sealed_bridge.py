"""The bridge with ``SHOPSYNC_SEAL_PERSONAL_DATA`` on, over real HTTP and the real broker (G1):
Shopify's own payloads, signed over the bytes as sent, land on their topics with no personal value
readable, their keys on ``privacy.keys``, and open, with those keys, to what Shopify sent."""

from __future__ import annotations

import httpx
import orjson
import pytest
from pydantic import SecretStr

from config import Settings
from schemas.envelope import Delivery, decode_log_record
from schemas.sealing import SEALED_FIELD, opening, personal_part, sealed_ref, spec_for
from streams.shredding import KeyRecord, fold_keys, key_encryption_key
from streams.topic_reader import read_all
from streams.topics import ensure_topics, key_topic, topic_name
from tests.bridge.test_bridge import bridge, bridge_settings, signed
from tests.shared_fixtures import require_fixtures

pytestmark = pytest.mark.kafka

PRIVACY_SECRET = "sealed-bridge-secret"
SHOP = "s.myshopify.com"


def personal_texts(topic: str, body: dict[str, object]) -> list[bytes]:
    """The body's personal values as they would appear in JSON (long enough to be unambiguous)."""
    spec = spec_for(topic)
    assert spec is not None
    values = [v for part in personal_part(body, spec).values() for v in part.values()]
    return [
        orjson.dumps(v)[1:-1] if isinstance(v, str) else orjson.dumps(v) for v in values if len(str(v)) >= 5
    ]


async def test_the_bridge_seals_personal_values_and_appends_their_keys_first(settings: Settings) -> None:
    sealed_settings = bridge_settings(
        settings, seal_personal_data=True, privacy_secret=SecretStr(PRIVACY_SECRET)
    )
    created = await ensure_topics(sealed_settings)
    assert created[key_topic(sealed_settings)], "the key topic is declared while sealing is on"
    webhooks = require_fixtures() / "webhooks"
    sent = {
        "customers/create": (webhooks / "customers_create.json").read_bytes(),
        "orders/create": (webhooks / "orders_create.json").read_bytes(),
        "orders/edited": orjson.dumps(  # parked (not a full record): sealed whole
            {"order_edit": {"id": 1, "order_id": 820982911946154508}, "email": "parked.person@example.com"}
        ),
    }
    async with bridge(sealed_settings) as url, httpx.AsyncClient(base_url=url) as http:
        for n, (topic, raw) in enumerate(sent.items()):
            answer = await http.post(
                "/webhooks/shopify", content=raw, headers=signed(raw, topic, event_id=f"e{n}")
            )
            assert answer.status_code == 200, answer.text  # the HMAC is over the bytes Shopify sent

    bootstrap = sealed_settings.kafka_bootstrap_servers
    stored = {
        name: [r.value for r in await read_all(bootstrap, topic_name(sealed_settings, name))]
        for name in ("shopify.customers", "shopify.orders", "shopify.parking")
    }
    assert [len(v) for v in stored.values()] == [1, 1, 1]
    raw = b"".join(v for values in stored.values() for v in values)
    for topic in ("customers/create", "orders/create"):
        texts = personal_texts(topic, orjson.loads(sent[topic]))
        assert len(texts) >= 8, "the fixtures hold names, emails, phones and addresses"
        for text in texts:
            assert text not in raw, f"a personal value of {topic} is readable on its topic"
    assert b"parked.person@example.com" not in raw

    key_records = [
        KeyRecord.from_topic(r.key or b"", r.value)
        for r in await read_all(bootstrap, key_topic(sealed_settings))
    ]
    assert key_records and all(k.shop == SHOP and k.wrapped for k in key_records)
    ring = fold_keys(key_records, key_encryption_key(PRIVACY_SECRET.encode()))
    for name, topic in (("shopify.customers", "customers/create"), ("shopify.orders", "orders/create")):
        record = decode_log_record(stored[name][0])
        assert isinstance(record, Delivery)
        original = orjson.loads(sent[topic])
        assert record.body["id"] == original["id"], "ids stay readable"
        assert record.body.get("updated_at") == original.get("updated_at")
        ref = sealed_ref(record.body)
        assert ref is not None and ref in ring, "every record is sealed under a key the key topic holds"
        plain = Delivery(**{**record.model_dump(), "body": original}).parse_body_with_problems()
        with opening(ring):
            assert record.parse_body_with_problems() == plain, "opens to what Shopify sent"
    parked = orjson.loads(stored["shopify.parking"][0])["delivery"]["body"]
    assert list(parked) == [SEALED_FIELD] and sealed_ref(parked) in ring


async def test_with_sealing_off_the_bridge_stores_what_shopify_sent(settings: Settings) -> None:
    plain_settings = bridge_settings(settings)
    created = await ensure_topics(plain_settings)
    assert key_topic(plain_settings) not in created, "no key topic while sealing is off"
    raw = (require_fixtures() / "webhooks" / "customers_create.json").read_bytes()
    async with bridge(plain_settings) as url, httpx.AsyncClient(base_url=url) as http:
        answer = await http.post("/webhooks/shopify", content=raw, headers=signed(raw, "customers/create"))
        assert answer.status_code == 200
    (stored,) = await read_all(
        plain_settings.kafka_bootstrap_servers, topic_name(plain_settings, "shopify.customers")
    )
    record = decode_log_record(stored.value)
    assert isinstance(record, Delivery) and record.body == orjson.loads(raw)


async def test_a_slow_key_topic_load_is_not_restarted_by_each_delivery_s_timeout(settings: Settings) -> None:
    """The bridge waits for a seal within its append budget; the key topic's first read (a
    million keys) can take longer. A timed-out delivery must not throw the half-read ring away,
    or every delivery restarts the read and is answered 503 for ever."""
    import asyncio

    from handlers.sealer import Sealer

    sealing = settings.model_copy(
        update={"seal_personal_data": True, "privacy_secret": SecretStr(PRIVACY_SECRET)}
    )
    await ensure_topics(sealing)
    sealer = Sealer(sealing)
    starts = 0
    real_start = sealer.ring.start

    async def slow_start() -> None:
        nonlocal starts
        starts += 1
        await asyncio.sleep(0.5)  # the read of a large key topic
        await real_start()

    sealer.ring.start = slow_start  # type: ignore[method-assign]
    try:
        assert not sealer.readiness()  # the bridge's /readyz: loading, and loading has begun
        for _ in range(3):  # deliveries that give up within their budget meanwhile
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(sealer.start(), 0.05)
        await sealer.start()
        assert sealer.readiness() and starts == 1
    finally:
        await sealer.stop()
