"""The native fast path (``schemas.native``) agrees with the models' own validators.

Whenever the native validator accepts a body, the exact validator accepts it too and builds the
same record: same classes, same fields set, same extras, same values down to their types (a
``Decimal``'s exponent, a datetime's offset, an enum member or plain text). Whatever it refuses is
left to the exact path, so refusing is always safe; accepting wrongly is what these tests look for.
"""

from __future__ import annotations

import copy
import sys
from datetime import datetime
from decimal import Decimal
from enum import Enum
from types import FrameType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from devtools.samplestore import generate
from schemas.envelope import BODY_MODELS
from schemas.native import validate_clean
from schemas.shopify import Cart, Checkout, Customer, Order, Product, ShopifyModel
from schemas.types import FinancialStatus, ProductStatus
from tests.shared_fixtures import rest_records, webhook_bodies


def exact_form(value: Any) -> Any:
    """A value with everything equality would gloss over spelled out (types, exponents, offsets)."""
    if isinstance(value, BaseModel):
        fields = {name: exact_form(getattr(value, name)) for name in type(value).model_fields}
        extra = {k: exact_form(v) for k, v in (value.__pydantic_extra__ or {}).items()}
        return (type(value).__name__, sorted(value.model_fields_set), fields, extra)
    if isinstance(value, list):
        return ["list", *(exact_form(v) for v in value)]
    if isinstance(value, dict):
        return ("dict", {k: exact_form(v) for k, v in value.items()})
    if isinstance(value, Decimal):
        return ("Decimal", value.as_tuple())
    if isinstance(value, datetime):
        return ("datetime", value.isoformat(), value.utcoffset())
    if isinstance(value, Enum):
        return (type(value).__name__, value.value)
    return (type(value).__name__, value)


def agrees(model: type[ShopifyModel], body: dict[str, Any]) -> bool:
    """Whether the native path accepted ``body`` (and, if so, that it built the exact record)."""
    before = copy.deepcopy(body)
    native = validate_clean(model, body)
    assert body == before, "the native path must not modify the body"
    if native is None:
        return False
    exact = model.model_validate(body)
    assert exact_form(native) == exact_form(exact)
    return True


def test_every_real_payload_and_sample_record_takes_the_native_path_and_agrees() -> None:
    bodies = [(BODY_MODELS[topic], body) for topic, _, body in webhook_bodies() if topic in BODY_MODELS]
    store = generate(customers=40, seed=3)
    bodies += [(BODY_MODELS[event.topic], event.body) for event in store.events]
    accepted = [agrees(model, body) for model, body in bodies]
    assert len(bodies) > 100
    # Real stores' bodies are plain; a fixture may carry an unusual form (a number as text), which
    # is fine, but nearly all must take the fast path or it buys nothing.
    assert sum(accepted) >= 0.9 * len(bodies)


def test_rest_records_agree() -> None:
    models: dict[str, type[ShopifyModel]] = {
        "customers": Customer,
        "orders": Order,
        "checkouts": Checkout,
        "carts": Cart,
        "products": Product,
    }
    for resource, _, record in rest_records():
        agrees(models[resource], record)


def test_a_clean_body_makes_no_python_call() -> None:
    """The point of the fast path: pydantic-core alone (were pydantic to reuse the models' own
    validators, every field would call back into schemas.types)."""
    body = next(event.body for event in generate(customers=3, seed=1).events if event.topic == "orders/paid")
    calls: list[str] = []

    def watch(frame: FrameType, event: str, arg: object) -> None:
        if event == "call":
            calls.append(frame.f_code.co_name)

    sys.setprofile(watch)
    try:
        record = validate_clean(Order, body)
    finally:
        sys.setprofile(None)
    assert isinstance(record, Order)
    assert calls == ["validate_clean"]  # itself, and nothing below it


_ODD_SAMPLES: list[Any] = [
    None, "", " ", "\t\n", "\x1c", "\u3000", "\u200b", "x", " x ", "N/A", "0", "12", " 12 ", "-7", "+7",
    "1.5", "15.00", "-0.00", ".5", "5.", "1e5", "NaN", "Infinity", "1,000.00", "12345678901234567890",
    "1234567890123456789", "-123456789012345678.5", "0." + "1" * 32, "0." + "1" * 33,
    "999999999999999999.99", "0000000000000000000001", "1234567890123456789012345678901234567",
    "2026-03-02T10:19:00+00:00", "2026-03-02T10:19:00Z", "2026-03-02 10:19:00.123-05:00",
    "2026-03-02T10:19:00", "2026-03-02", "1970-01-01T00:00:00Z", "1970-01-01T00:30:00+01:00",
    "1971-01-01T00:00:00+14:00", "2998-12-31T23:59:59-12:00", "2999-12-31T23:00:00-05:00",
    "3000-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-03-02Tgarbage",
    "paid", "PAID", "refunded", "voided", "active", "web", "fulfilled", "someday",
    0, 1, -1, 2, 2**53 + 1, 2**63 - 1, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, 10**30,
    True, False, 0.0, 2.0, 2.5, -1.0, float("nan"), float("inf"), 1e300,
    Decimal("1.50"), Decimal("NaN"), FinancialStatus.PAID, ProductStatus.DRAFT,
    [], [1], {}, {"a": 1}, "x" * 65_536, "x" * 65_537, " " * 65_537,
]  # fmt: skip
"""Values at and beyond every boundary of ``schemas.types``: blanks of every kind, amounts at 18
digits and 34 characters, instants at the ends of the range in extreme offsets, 64-bit limits."""

ODD_VALUES = st.one_of(st.sampled_from(_ODD_SAMPLES), st.text(max_size=12), st.integers(), st.floats())


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out: list[tuple[str | int, ...]] = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


def _put(body: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    copied = copy.deepcopy(body)
    parent: Any = copied
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    return copied


SAMPLES = [
    (BODY_MODELS[event.topic], event.body)
    for event in generate(customers=6, seed=2).events
    if event.topic
    in ("orders/paid", "checkouts/update", "customers/create", "carts/create", "products/create")
]


@pytest.mark.parametrize("model, body", SAMPLES[:12], ids=lambda v: getattr(v, "__name__", "body"))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_value_anywhere_either_takes_the_exact_path_or_parses_the_same(
    model: type[ShopifyModel], body: dict[str, Any], data: st.DataObject
) -> None:
    mutated = body
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(mutated)))
        mutated = _put(mutated, path, data.draw(ODD_VALUES))
    agrees(model, mutated)


@given(value=ODD_VALUES)
@settings(max_examples=300, deadline=None)
def test_any_value_in_every_kind_of_field_agrees(value: Any) -> None:
    fields = ["note", "total_price", "created_at", "checkout_id", "total_weight", "financial_status",
              "fulfillment_status", "test", "customer", "line_items"]  # fmt: skip
    for name in fields:
        agrees(Order, {"id": 1, name: value})
    for name in ["quantity", "price", "variant_id", "sku"]:
        agrees(Order, {"id": 1, "line_items": [{name: value}]})
    for name in ["body_html", "status", "published_scope"]:
        agrees(Product, {"id": 1, name: value})
    agrees(Cart, {"token": "t", "id": value})
