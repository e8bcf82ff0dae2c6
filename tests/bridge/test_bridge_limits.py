"""The bridge keeps what Shopify sent (big integers, deep nesting), and sizes agree end to end (R1, R6).

Over real HTTP and the real broker, like ``test_bridge.py``; the worker test runs the worker as its
own process, like ``tests/test_worker_smoke.py``.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from config import Settings
from devtools.localrun import ServiceProcess, wait_for_records, wait_until_worker_idle
from devtools.samplestore import customer_body, order_body
from schemas.commands import Upsert, decode_command
from schemas.envelope import Delivery, decode_log_record, encode
from schemas.rawjson import MAX_BODY_DEPTH, cut_deep, load_body
from streams.topic_reader import read_all
from streams.topics import UnroutableError, ensure_topics, internal_topic, route, topic_name
from tests.bridge.test_bridge import AT, bridge, bridge_settings, records, signed

U64 = 2**64


def nested(depth: int) -> bytes:
    """JSON text nesting ``depth`` containers, lists and objects in turn (too deep for orjson to
    write, so it is written by hand)."""
    opens = [b"[" if level % 2 == 0 else b'{"a":' for level in range(depth)]
    closes = [b"]" if level % 2 == 0 else b"}" for level in reversed(range(depth))]
    return b"".join(opens) + b"1" + b"".join(closes)


def depth_of(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


# ---- without a broker: the parser itself ----


def test_integers_stay_exact_and_never_become_floats() -> None:
    raw = (
        b'{"id": 9007199254740993, "u64max": 18446744073709551615, "i64min": -9223372036854775808, '
        b'"u64": 18446744073709551616, "beyond": 18446744073709551626, "below": -9223372036854775809, '
        b'"huge": ' + b"7" * 5000 + b', "money": 12.5, "text": "123456789012345678901234"}'
    )
    body = load_body(raw).value
    assert body["id"] == 2**53 + 1 and isinstance(body["id"], int)
    assert body["u64max"] == U64 - 1 and body["i64min"] == -(2**63)
    assert (body["u64"], body["beyond"], body["below"]) == (str(U64), str(U64 + 10), str(-(2**63) - 1))
    assert body["huge"] == "7" * 5000, "beyond a double too: kept, not refused"
    assert body["money"] == 12.5 and body["text"] == "123456789012345678901234"
    assert not any(isinstance(v, float) for k, v in body.items() if k != "money")
    # A clean body takes the fast path and gives exactly what orjson gives.
    clean = orjson.dumps(customer_body(2**53 + 1, "a@example.com", "A", "B", AT))
    assert load_body(clean).value == orjson.loads(clean)


def test_deep_subtrees_become_null_with_their_paths() -> None:
    raw = b'{"id": 1, "line_items": [{"properties": ' + nested(300) + b'}], "email": "a@example.com"}'
    loaded = load_body(raw)
    assert loaded.value["id"] == 1 and loaded.value["email"] == "a@example.com"
    assert depth_of(loaded.value) == MAX_BODY_DEPTH
    (problem,) = loaded.problems
    assert problem.path.startswith("line_items[0].properties[0].a[0].a")
    assert "deeper than 64" in problem.reason
    assert cut_deep(b'{"a": [1, {"b": {"c": [[]]}}], "k\\"": {"r": {}}}', 3) == (
        b'{"a": [1, {"b": null}], "k\\"": {"r": {}}}',
        ["a[1].b"],
    )
    for broken in (b'{"a": ', b"[" * 3000, b'{"a": NaN}', b"}}"):
        with pytest.raises(ValueError):
            load_body(broken)


def test_topics_that_are_not_full_records_are_unroutable_and_full_orders_are_routed() -> None:
    assert route("orders/partially_fulfilled", {"id": 5}) == ("shopify.orders", b"5")
    not_records: tuple[tuple[str, dict[str, object]], ...] = (
        ("orders/edited", {"order_edit": {"id": 1, "order_id": 5}}),
        ("orders/risk_assessment_changed", {"order_id": 5, "risk_level": "high"}),
        ("orders/risk_assessment_changed", {"id": 9, "order_id": 5, "risk_level": "high"}),
        ("orders/shopify_protect_eligibility_changed", {"order_id": 5, "status": "active"}),
        ("customers/redact", {"id": 3}),
    )
    for topic, body in not_records:
        with pytest.raises(UnroutableError, match="unsupported Shopify topic"):
            route(topic, body)


# ---- the bridge over HTTP, appending to the real broker ----


async def test_big_ids_are_kept_exact_from_the_bridge_to_the_parsed_record(settings: Settings) -> None:
    settings = bridge_settings(settings)
    await ensure_topics(settings)
    exact = customer_body(2**53 + 1, "a@example.com", "A", "B", AT)
    exact["last_order_id"] = U64 - 1
    raw_exact = orjson.dumps(exact)
    raw_big = (
        orjson.dumps({**exact, "id": 1})[:-1]
        + b', "big": 18446744073709551616, "bigger": 18446744073709551626}'
    )
    raw_big_id = raw_exact.replace(b"9007199254740993", b"18446744073709551616", 1)
    async with bridge(settings) as url, httpx.AsyncClient(base_url=url) as http:
        for n, raw in enumerate((raw_exact, raw_big, raw_big_id)):
            answer = await http.post(
                "/webhooks/shopify", content=raw, headers=signed(raw, "customers/create", event_id=f"e{n}")
            )
            assert answer.status_code == 200, answer.text
    stored = {}
    for value in await records(settings, "shopify.customers"):
        delivery = decode_log_record(value)
        assert isinstance(delivery, Delivery)
        stored[delivery.event_id] = delivery
    assert stored["e0"].body["id"] == 2**53 + 1 and stored["e0"].body["last_order_id"] == U64 - 1
    assert stored["e0"].parse_body().id == 2**53 + 1  # type: ignore[attr-defined]
    assert (stored["e1"].body["big"], stored["e1"].body["bigger"]) == (str(U64), str(U64 + 10))
    assert stored["e2"].body["id"] == str(U64), "an id beyond 64 bits is kept as its digits, not a float"
    keys = {
        r.key
        for r in await read_all(settings.kafka_bootstrap_servers, topic_name(settings, "shopify.customers"))
    }
    assert {b"9007199254740993", str(U64).encode()} <= keys


async def test_a_body_nested_300_and_3000_deep_is_stored_and_decodable(settings: Settings) -> None:
    settings = bridge_settings(settings)
    await ensure_topics(settings)
    async with bridge(settings) as url, httpx.AsyncClient(base_url=url) as http:
        for depth in (300, 3000):  # 3000: deeper than orjson reads at all
            body = customer_body(depth, "deep@example.com", "Deep", "Nest", AT)
            raw = orjson.dumps(body)[:-1] + b',"metafields":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"
            answer = await http.post(
                "/webhooks/shopify",
                content=raw,
                headers=signed(raw, "customers/update", event_id=f"d{depth}"),
            )
            assert answer.status_code == 200, answer.text
    stored = [decode_log_record(v) for v in await records(settings, "shopify.customers")]
    assert len(stored) == 2
    for delivery in stored:
        assert isinstance(delivery, Delivery)
        assert delivery.body["email"] == "deep@example.com" and delivery.body["first_name"] == "Deep"
        assert depth_of(delivery.body) == MAX_BODY_DEPTH
        (problem,) = delivery.problems
        assert problem.path == ".".join(["metafields"] + ["a"] * (MAX_BODY_DEPTH - 1))
        assert delivery.parse_body().id in (300, 3000)  # type: ignore[attr-defined]
        assert decode_log_record(encode(delivery)) == delivery, "the stored record re-encodes"


async def test_orders_edited_and_risk_topics_are_parked_partially_fulfilled_is_an_order(
    settings: Settings,
) -> None:
    settings = bridge_settings(settings)
    await ensure_topics(settings)
    order = order_body(
        41, 1, [], AT, customer=None, email="o@example.com", checkout_token=None, cart_token=None,
        fulfillment_status="partial",
    )  # fmt: skip
    deliveries = [
        ("orders/partially_fulfilled", order),
        (
            "orders/edited",
            {"order_edit": {"id": 7, "order_id": 41, "line_items": {"additions": [], "removals": []}}},
        ),
        ("orders/risk_assessment_changed", {"order_id": 41, "risk_level": "high", "provider_id": None}),
    ]
    async with bridge(settings) as url, httpx.AsyncClient(base_url=url) as http:
        for n, (topic, body) in enumerate(deliveries):
            raw = orjson.dumps(body)
            answer = await http.post(
                "/webhooks/shopify", content=raw, headers=signed(raw, topic, event_id=f"o{n}")
            )
            assert answer.status_code == 200, answer.text
    (order_record,) = await records(settings, "shopify.orders")
    delivery = decode_log_record(order_record)
    assert isinstance(delivery, Delivery) and delivery.topic == "orders/partially_fulfilled"
    assert delivery.parse_body().id == 41  # type: ignore[attr-defined]
    parked = {
        orjson.loads(v)["delivery"]["topic"]: orjson.loads(v)
        for v in await records(settings, "shopify.parking")
    }
    assert set(parked) == {"orders/edited", "orders/risk_assessment_changed"}
    assert "not the order" in parked["orders/edited"]["reason"]
    assert parked["orders/edited"]["delivery"]["body"]["order_edit"]["order_id"] == 41, "kept whole"


async def test_size_limits_on_both_sides_of_the_bridge(settings: Settings) -> None:
    settings = bridge_settings(settings, max_record_bytes=3_000_000)
    limit = settings.bridge_body_limit()
    await ensure_topics(settings)

    def body_of(size: int, customer_id: int) -> bytes:
        raw = orjson.dumps(customer_body(customer_id, "big@example.com", "Big", "Body", AT, note=""))
        pad = size - len(raw)
        return raw.replace(b'"note":""', b'"note":"' + b"x" * pad + b'"', 1)

    async with bridge(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:

        async def post(raw: bytes, event_id: str, **extra: str) -> httpx.Response:
            headers = {**signed(raw, "customers/update", event_id=event_id), **extra}
            return await http.post("/webhooks/shopify", content=raw, headers=headers)

        over = body_of(limit + 1, 1)
        assert len(over) == limit + 1
        assert (await post(over, "over")).status_code == 413
        two_mb = body_of(2_000_000, 2)  # over aiokafka's default 1 MiB request size: once a 503 forever
        assert (await post(two_mb, "2mb")).status_code == 200
        at_limit = body_of(limit, 3)
        assert (await post(at_limit, "at")).status_code == 200
        # Headers are part of the envelope: at the body limit with huge headers, the record is over.
        long = {f"X-Shopify-{h}": "h" * 8000 for h in ("Shop-Domain", "API-Version", "Webhook-Id")}
        too_big = await post(at_limit, "headers", **long)
        assert too_big.status_code == 413 and "SHOPSYNC_MAX_RECORD_BYTES" in too_big.json()["message"]

    stored = {
        r.key: r.value
        for r in await read_all(settings.kafka_bootstrap_servers, topic_name(settings, "shopify.customers"))
    }
    assert set(stored) == {b"2", b"3"}, "exactly the accepted ones, nothing of the refused"
    for key, size in ((b"2", 2_000_000), (b"3", limit)):
        delivery = decode_log_record(stored[key])
        assert isinstance(delivery, Delivery)
        assert len(orjson.dumps(delivery.body)) == size
        assert len(stored[key]) <= settings.max_delivery_bytes()


async def alter_max_message_bytes(settings: Settings, topic: str, value: int) -> None:
    """Set one topic's max.message.bytes, keeping its other overrides (AlterConfigs replaces all)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        (described,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        entries = described.resources[0][4]
        configs = {e[0]: e[1] for e in entries if e[3] == 1}
        configs["max.message.bytes"] = str(value)
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)])
        for _ in range(50):  # until the broker reports it (it applies dynamic configs at once)
            (now,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            if {e[0]: e[1] for e in now.resources[0][4]}.get("max.message.bytes") == str(value):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"the broker did not report max.message.bytes={value} for {topic} in 5 s")
    finally:
        await admin.close()


async def test_an_older_smaller_topic_is_refused_413_then_raised_by_ensure_topics(settings: Settings) -> None:
    settings = bridge_settings(settings, max_record_bytes=3_000_000)
    await ensure_topics(settings)
    name = topic_name(settings, "shopify.customers")
    await alter_max_message_bytes(settings, name, 1_000_000)  # as a topic made before this setting
    raw = orjson.dumps(customer_body(5, "c@example.com", "C", "D", AT, note="n" * 1_500_000))
    async with bridge(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        refused = await http.post("/webhooks/shopify", content=raw, headers=signed(raw, "customers/update"))
        assert refused.status_code == 413, "refused, not a 503 Shopify retries until it gives up"
        assert not any((await ensure_topics(settings)).values())  # creates nothing, raises the limit
        stored = await http.post("/webhooks/shopify", content=raw, headers=signed(raw, "customers/update"))
        assert stored.status_code == 200, stored.text
    (value,) = await records(settings, "shopify.customers")
    delivery = decode_log_record(value)
    assert isinstance(delivery, Delivery) and delivery.body["note"] == "n" * 1_500_000


# ---- the worker on near-limit records ----


async def test_the_worker_forwards_a_near_limit_record_or_dead_letters_it_with_its_reason(
    settings: Settings, tmp_path: Path
) -> None:
    settings = bridge_settings(settings, max_record_bytes=3_000_000)
    await ensure_topics(settings, internal=True)
    worker = ServiceProcess("worker", settings, tmp_path / "worker.log")
    try:
        async with bridge(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:

            async def post(customer_id: int, email: str, size: int) -> None:
                # The bulk is in a field nobody syncs: the record is large, its contact state is not
                # (a synced property that large is HubSpot's to refuse, and the state's to hold).
                body = {**customer_body(customer_id, email, "Near", "Limit", AT), "x_blob": ""}
                raw = orjson.dumps(body)
                raw = raw.replace(b'"x_blob":""', b'"x_blob":"' + b"x" * (size - len(raw)) + b'"', 1)
                answer = await http.post(
                    "/webhooks/shopify", content=raw,
                    headers=signed(raw, "customers/update", event_id=f"w{customer_id}"),
                )  # fmt: skip
                assert answer.status_code == 200, answer.text

            # Just under the bridge's limit: the router forwards it, the contact agent syncs it.
            await post(1, "near@example.com", settings.bridge_body_limit())
            commands = await wait_for_records(
                settings.kafka_bootstrap_servers, topic_name(settings, "hubspot.commands"), 1, worker
            )
            await wait_until_worker_idle(settings, 90, worker)
            # An internal topic made smaller than the setting (by an older version): the forward is
            # refused by Kafka, and the record is dead-lettered with that reason, not skipped; the
            # record after it is still handled.
            await alter_max_message_bytes(settings, internal_topic(settings, "contacts"), 1_000_000)
            await post(2, "refused@example.com", 1_500_000)
            letters = await wait_for_records(
                settings.kafka_bootstrap_servers, topic_name(settings, "shopify.deadletter"), 1, worker
            )
            await alter_max_message_bytes(settings, internal_topic(settings, "contacts"), 8_000_000)
            await post(3, "after@example.com", 1_000)
            commands = await wait_for_records(
                settings.kafka_bootstrap_servers, topic_name(settings, "hubspot.commands"), 2, worker
            )
    finally:
        worker.stop()
    synced = {}
    for value in commands:
        command = decode_command(value)
        assert isinstance(command, Upsert)
        synced[command.record.id_value] = command
    assert set(synced) == {"near@example.com", "after@example.com"}
    (letter,) = [orjson.loads(v) for v in letters]
    assert "too large" in letter["reason"] and "MessageSizeTooLarge" in letter["reason"]
    assert letter["topic"] == topic_name(settings, "shopify.customers") and letter["key"] == "2"
    original = decode_log_record(base64.b64decode(letter["original_base64"]))
    assert isinstance(original, Delivery) and original.body["id"] == 2
