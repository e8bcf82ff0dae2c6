"""Decoding a topic's records by their leading ``kind`` gives what the union would, cheaper."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from pydantic import BaseModel, ValidationError

from schemas.envelope import Delivery, HubSpotContactDeletion, Tick, encode
from streams.entities import INPUTS, LOG_RECORDS, InputCodec
from streams.rules.journeys import FirstPurchase

AT = datetime(2026, 3, 1, tzinfo=UTC)
DELIVERY = Delivery(
    topic="customers/create", shop_domain="s.myshopify.com", webhook_id="w1", event_id="e1",
    api_version="2025-07", received_at=AT, body={"id": 1, "email": "a@example.com"},
)  # fmt: skip


@pytest.mark.parametrize(
    ("codec", "record"),
    [
        (LOG_RECORDS, DELIVERY),
        (LOG_RECORDS, Tick(at=AT)),
        (INPUTS["contacts"], HubSpotContactDeletion(object_id=7, event_id="h1", occurred_at=AT)),
        (INPUTS["journeys"], FirstPurchase(event_id="e", journey="j", first=True, at=AT)),
    ],
)
def test_each_kind_decodes_to_its_model_in_both_ways(codec: InputCodec, record: BaseModel) -> None:
    raw = encode(record)
    assert codec.decode(raw) == record
    reordered = orjson.dumps(dict(reversed(list(orjson.loads(raw).items()))))
    assert not reordered.startswith(b'{"kind"')
    assert codec.decode(reordered) == record


def test_a_model_the_topic_does_not_hold_or_a_broken_record_is_refused() -> None:
    fact = encode(FirstPurchase(event_id="e", journey="j", first=True, at=AT))
    with pytest.raises(ValidationError):
        INPUTS["contacts"].decode(fact)
    with pytest.raises(ValidationError):
        LOG_RECORDS.decode(b'{"kind":"delivery","topic":')
    with pytest.raises(ValidationError):
        LOG_RECORDS.decode(b'{"kind":"tick"}')
