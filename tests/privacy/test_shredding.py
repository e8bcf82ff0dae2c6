"""Crypto-shredding's foundation (``streams.shredding``), property-tested; and on the real broker:
after a redaction (the key's tombstone) no byte of the customer's personal data is readable in
the topic that holds their records."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from cryptography.exceptions import InvalidTag
from hypothesis import given
from hypothesis import strategies as st

from config import Settings
from devtools.samplestore import customer_body
from schemas.compliance import ComplianceRequest
from schemas.envelope import Delivery
from streams.privacy import compliance_request
from streams.shredding import (
    KEY_TOPIC_CONFIGS,
    SHREDDED,
    KeyRecord,
    already_shredded,
    decrypt,
    decrypt_customer,
    encrypt,
    encrypt_customer,
    fold_keys,
    key_encryption_key,
    key_id,
    key_ref,
    kid_of,
    personal_values,
    redaction,
    redaction_for,
    unwrap,
    wrap,
)
from streams.topic_reader import read_all

SECRET = b"shredding-test-secret"
KEK = key_encryption_key(SECRET)
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DATA_KEY = bytes(range(32))
KID = "kid-1"
texts = st.text(min_size=1, max_size=200)
nonces = st.binary(min_size=12, max_size=12)


@given(texts, nonces, st.sampled_from(["email", "addresses[0].city"]))
def test_a_sealed_field_opens_with_its_key_and_shows_nothing(text: str, nonce: bytes, path: str) -> None:
    sealed = encrypt(DATA_KEY, KID, path, text, nonce)
    assert sealed.startswith(f"e1.{KID}.")
    assert decrypt({KID: DATA_KEY}, path, sealed) == text
    if len(text) >= 4:
        assert text not in sealed


@given(texts, nonces)
def test_a_field_moved_or_opened_with_another_key_does_not_open(text: str, nonce: bytes) -> None:
    sealed = encrypt(DATA_KEY, KID, "email", text, nonce)
    with pytest.raises(ValueError, match="does not open"):
        decrypt({KID: DATA_KEY}, "phone", sealed)
    with pytest.raises(ValueError, match="does not open"):
        decrypt({KID: bytes(32)}, "email", sealed)
    assert decrypt({}, "email", sealed) is SHREDDED, "no key: erased, not an error"


@given(st.emails(), st.emails(), st.sampled_from(["a.myshopify.com", "b.myshopify.com"]))
def test_a_key_id_names_one_subject_of_one_shop_and_shows_neither(a: str, b: str, shop: str) -> None:
    kid = key_id(SECRET, shop, a, None)
    assert kid is not None and "@" not in kid and a.lower() not in kid.lower()
    assert kid == key_id(SECRET, shop.upper(), f"  {a.upper()} ", None)
    assert kid != key_id(SECRET, "c.myshopify.com", a, None), "another shop, another subject"
    if a.strip().lower() != b.strip().lower():
        assert kid != key_id(SECRET, shop, b, None)
    assert key_id(SECRET, shop, None, 42) != key_id(SECRET, shop, None, 43)
    assert key_id(SECRET, shop, "no-address", None) is None


customers = st.builds(
    lambda cid, email, first, last, phone: customer_body(cid, email, first, last, AT, phone=phone),
    st.integers(1, 2**53), st.emails(), st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20),
    st.one_of(st.none(), st.from_regex(r"\+1[0-9]{10}", fullmatch=True)),
)  # fmt: skip


@given(customers)
def test_a_customer_body_round_trips_and_its_sealed_form_holds_no_personal_value(
    body: dict[str, object],
) -> None:
    sealed = encrypt_customer(body, KID, DATA_KEY, b"\x07" * 12)
    assert personal_values(sealed) == []
    dumped = orjson.dumps(sealed).decode()
    for value in personal_values(body):
        if len(value) >= 6:
            assert orjson.dumps(value).decode()[1:-1] not in dumped, value
    assert sealed["id"] == body["id"] and sealed["created_at"] == body["created_at"], "ids stay readable"
    assert sealed["_shopsync_sealed"].startswith(f"e1.{KID}."), "one envelope for the record"
    assert decrypt_customer(sealed, {KID: DATA_KEY}) == body


SHOP, OTHER_SHOP = "s.myshopify.com", "t.myshopify.com"


def held_keys() -> list[KeyRecord]:
    """Ada has two keys by email (two bridges met her at once) and one by customer id (a record
    from before she had an email); Grace one; Ada in another shop one."""
    ada = key_id(SECRET, SHOP, "ada@example.com", None)
    ada_by_id = key_id(SECRET, SHOP, None, 1)
    grace = key_id(SECRET, SHOP, "grace@example.com", None)
    ada_elsewhere = key_id(SECRET, OTHER_SHOP, "ada@example.com", None)
    assert ada and ada_by_id and grace and ada_elsewhere
    refs = [
        (SHOP, key_ref(ada, b"v1")), (SHOP, key_ref(ada, b"v2")), (SHOP, key_ref(ada_by_id, b"v1")),
        (SHOP, key_ref(grace, b"v1")), (OTHER_SHOP, key_ref(ada_elsewhere, b"v1")),
    ]  # fmt: skip
    return [KeyRecord(shop, ref, wrap(KEK, ref, DATA_KEY, b"\x01" * 12)) for shop, ref in refs]


def compliance(topic: str, body: dict[str, object], shop: str = SHOP) -> ComplianceRequest:
    delivery = Delivery(
        topic=topic, shop_domain=shop, webhook_id="w", event_id="e", received_at=AT, body=body
    )
    return compliance_request(delivery, SECRET)


def test_customers_redact_tombstones_every_key_of_that_customer_in_that_shop_and_no_other() -> None:
    held = held_keys()
    request = compliance(
        "customers/redact", {"shop_domain": SHOP, "customer": {"id": 1, "email": "ADA@example.com"}}
    )
    stones = redaction_for(request, SECRET, held)
    assert {s.ref for s in stones} == {k.ref for k in held[:3]} and all(s.wrapped is None for s in stones)
    ring = fold_keys([*held, *stones], KEK)
    assert set(ring) == {held[3].ref, held[4].ref}, "Grace, and Ada's record in another shop, are kept"
    assert redaction_for(request, SECRET, [*held, *stones]) == [], "a redelivered request finds nothing left"


def test_shop_redact_tombstones_every_key_of_the_shop_and_a_data_request_none() -> None:
    held = held_keys()
    stones = redaction_for(compliance("shop/redact", {"shop_domain": SHOP}), SECRET, held)
    assert {s.ref for s in stones} == {k.ref for k in held[:4]}
    asked = compliance("customers/data_request", {"shop_domain": SHOP, "customer": {"id": 1}})
    assert redaction_for(asked, SECRET, held) == []


def test_a_redact_applied_again_counts_its_keys_as_shredded_before() -> None:
    """What the redactor logs beside ``keys_shredded``: a request applied again (its HubSpot
    erasure failed, or the redactor stopped before committing it) finds 0 keys left, and says
    how many of its subject's were shredded before, not only "0"."""
    held = held_keys()
    ada = compliance(
        "customers/redact", {"shop_domain": SHOP, "customer": {"id": 1, "email": "ada@example.com"}}
    )
    grace = compliance("customers/redact", {"shop_domain": SHOP, "customer": {"email": "grace@example.com"}})
    assert already_shredded(ada, SECRET, []) == 0
    stones = redaction_for(ada, SECRET, held)
    assert already_shredded(ada, SECRET, stones) == 3 and already_shredded(grace, SECRET, stones) == 0
    shop = compliance("shop/redact", {"shop_domain": SHOP})
    assert already_shredded(shop, SECRET, stones) == 3
    assert (
        already_shredded(compliance("shop/redact", {"shop_domain": OTHER_SHOP}, OTHER_SHOP), SECRET, stones)
        == 0
    )
    asked = compliance("customers/data_request", {"shop_domain": SHOP, "customer": {"id": 1}})
    assert already_shredded(asked, SECRET, stones) == 0


def test_a_key_record_names_its_shop_in_its_topic_key() -> None:
    (record, *_) = held_keys()
    assert KeyRecord.from_topic(record.topic_key, record.wrapped) == record
    assert KeyRecord.from_topic(record.topic_key, None).wrapped is None


@given(customers)
def test_after_redaction_every_personal_field_reads_as_absent(body: dict[str, object]) -> None:
    held = held_keys()
    ada_ref = held[0].ref
    stones = redaction(held, SHOP, {kid_of(ada_ref)})
    ring = fold_keys([*held, *stones], KEK)
    assert ada_ref not in ring and held[3].ref in ring, (
        "the tombstone removes only the redacted subject's keys"
    )
    opened = decrypt_customer(encrypt_customer(body, ada_ref, DATA_KEY, b"\x07" * 12), ring)
    assert opened["email"] is None and opened["first_name"] is None and opened["id"] == body["id"]
    assert "_shopsync_sealed" not in opened and opened.keys() >= body.keys(), "the shape is kept"
    assert personal_values(opened) == []


def test_a_data_key_is_wrapped_under_the_secret_and_bound_to_its_key_ref() -> None:
    wrapped = wrap(KEK, KID, DATA_KEY, b"\x00" * 12)
    assert DATA_KEY not in wrapped and unwrap(KEK, KID, wrapped) == DATA_KEY
    with pytest.raises(InvalidTag):
        unwrap(key_encryption_key(b"another secret"), KID, wrapped)
    with pytest.raises(InvalidTag):
        unwrap(KEK, "kid-other", wrapped)


@pytest.mark.kafka
async def test_after_the_tombstone_no_byte_of_the_customer_is_readable_on_the_broker(
    settings: Settings,
) -> None:
    """The foundation end to end on Kafka (not the product's topics: nothing in the product
    writes sealed records yet): sealed customers on a data topic, their keys on a compacted key
    topic, ``customers/redact`` as the compliance record the bridge keeps, its tombstones, then
    everything read back from offset 0."""
    data, keys = f"{settings.topic_prefix}sealed.customers", f"{settings.topic_prefix}privacy.keys"
    people = {
        "ada": customer_body(1, "ada.lovelace@example.com", "Ada", "Lovelace", AT, phone="+15556251199"),
        "grace": customer_body(2, "grace.hopper@example.com", "Grace", "Hopper", AT, phone="+15550000002"),
    }
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:  # the key topic as the design declares it: compacted
        await admin.create_topics([
            NewTopic(data, 1, 1), NewTopic(keys, 1, 1, topic_configs=dict(KEY_TOPIC_CONFIGS)),
        ])  # fmt: skip
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for body in people.values():
            kid = key_id(SECRET, SHOP, str(body["email"]), None)
            assert kid is not None
            for version in (b"v1", b"v2"):  # two keys of one subject, each sealing one version
                ref, data_key = key_ref(kid, version), os.urandom(32)
                record = KeyRecord(SHOP, ref, wrap(KEK, ref, data_key, os.urandom(12)))
                await producer.send_and_wait(keys, record.wrapped, record.topic_key)
                sealed = encrypt_customer(body, ref, data_key, os.urandom(12))
                await producer.send_and_wait(data, orjson.dumps(sealed), str(body["id"]).encode())
        held = [
            KeyRecord.from_topic(r.key or b"", r.value)
            for r in await read_all(settings.kafka_bootstrap_servers, keys)
        ]
        request = compliance(
            "customers/redact",
            {"shop_domain": SHOP, "customer": {"id": 1, "email": "ada.lovelace@example.com"}},
        )
        for stone in redaction_for(request, SECRET, held):
            await producer.send_and_wait(keys, None, stone.topic_key)
    finally:
        await producer.stop()

    stored = await read_all(settings.kafka_bootstrap_servers, data)
    raw = b"".join(r.value for r in stored)
    for value in (*personal_values(people["ada"]), *personal_values(people["grace"])):
        if len(value) >= 4:
            assert value.encode() not in raw, "nothing personal is stored in the clear"
    read_back = [
        KeyRecord.from_topic(r.key or b"", r.value)
        for r in await read_all(settings.kafka_bootstrap_servers, keys)
    ]
    ring = fold_keys(read_back, KEK)
    opened = [decrypt_customer(orjson.loads(r.value), ring) for r in stored]
    ada = [o for o in opened if o["id"] == 1]
    grace = [o for o in opened if o["id"] == 2]
    assert len(ada) == 2 and all(o["email"] is None and o["last_name"] is None for o in ada)
    assert all(o == people["grace"] for o in grace) and len(grace) == 2, "other customers untouched"
