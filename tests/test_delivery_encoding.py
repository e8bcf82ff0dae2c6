"""``encode`` writes a delivery with orjson alone, byte for byte what pydantic's JSON dump gave."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devtools.samplestore import generate
from schemas.envelope import Delivery, decode_log_record, encode
from schemas.problems import FieldProblem
from schemas.types import FinancialStatus

AT = datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-5)))


class Colour(enum.Enum):
    RED = "red"


def slow(delivery: Delivery) -> bytes:
    return orjson.dumps(delivery.model_dump(mode="json", exclude_none=False))


def delivery(body: dict[str, Any], **fields: Any) -> Delivery:
    base: dict[str, Any] = {"topic": "orders/create", "shop_domain": "s.myshopify.com", "webhook_id": "w",
                            "event_id": "e", "received_at": AT}  # fmt: skip
    return Delivery.model_validate({**base, **fields, "body": body})


def same_as_pydantic(d: Delivery) -> None:
    try:
        want = slow(d)
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc)):
            encode(d)
        return
    assert encode(d) == want


def test_sample_deliveries_encode_as_before_and_read_back() -> None:
    for event in generate(customers=10, seed=4).events:
        d = delivery(event.body, topic=event.topic, triggered_at=AT - timedelta(seconds=1), source="import")
        same_as_pydantic(d)
        assert decode_log_record(encode(d)) == d


def test_headers_problems_and_offsets_encode_as_before() -> None:
    problems = (FieldProblem(path="a.b", reason="nested deeper than 64 levels: stored as null"),)
    same_as_pydantic(delivery({"id": 1}, problems=problems, api_version="2026-04"))
    same_as_pydantic(delivery({"id": 1}, received_at=datetime(2026, 1, 1, tzinfo=UTC), triggered_at=None))


ODD = st.sampled_from(
    [Decimal("1.50"), datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1), (1, 2), {1, 2}, b"raw",
     FinancialStatus.PAID, Colour.RED, uuid.UUID(int=5), 2**64, -(2**63) - 1, float("nan"), float("inf"),
     {1: "int key"}, {"nested": (Decimal("2"),)}]
)  # fmt: skip
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=8) | ODD,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=12,
)


@given(body=st.dictionaries(st.text(max_size=6), JSON, max_size=5))
@settings(max_examples=300, deadline=None)
def test_any_body_encodes_as_pydantic_would_or_fails_alike(body: dict[str, Any]) -> None:
    same_as_pydantic(delivery(body))
