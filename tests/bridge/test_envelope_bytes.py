"""The bridge's fast envelope encoding writes exactly what ``schemas.envelope.encode`` writes."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from devtools.samplestore import generate
from handlers.bridge import encode_delivery
from schemas.envelope import Delivery, encode
from schemas.rawjson import load_body
from tests.bridge.test_bridge_limits import nested


def delivery(raw: bytes, topic: str, **headers: object) -> Delivery:
    loaded = load_body(raw)
    fields: dict[str, object] = {
        "topic": topic, "shop_domain": "s.myshopify.com", "webhook_id": "wh-1", "event_id": "evt-1",
        "triggered_at": "2026-03-02T09:00:00Z", "api_version": "2026-04",
        "received_at": datetime(2026, 3, 2, 9, 0, 1, 123456, tzinfo=UTC),
        **headers,
    }  # fmt: skip
    return Delivery.model_validate({**fields, "body": loaded.value, "problems": tuple(loaded.problems)})


def test_every_sample_store_body_encodes_byte_for_byte_alike() -> None:
    events = generate(customers=30, seed=4).ordered()
    assert {e.topic.partition("/")[0] for e in events} >= {"customers", "orders", "checkouts", "carts"}
    for event in events:
        d = delivery(orjson.dumps(event.body), event.topic)
        assert encode_delivery(d) == encode(d), event.topic


def test_exact_integers_cut_subtrees_odd_headers_and_text_encode_alike() -> None:
    raw = (
        b'{"id": 18446744073709551616, "small": -9223372036854775808, "note": "caf\\u00e9 \\ud83d\\ude00",'
        b' "deep": ' + nested(80) + b', "price": "12.50", "ratio": 0.1, "none": null, "ok": true}'
    )
    d = delivery(raw, "orders/create", triggered_at="not a time", api_version=None)
    assert d.problems and d.triggered_at is None and d.body["id"] == str(2**64)
    assert encode_delivery(d) == encode(d)
    assert orjson.loads(encode_delivery(d))["body"]["note"] == "café 😀"
