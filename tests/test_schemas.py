"""The Shopify models, the delivery envelope and the commands: tolerant where Shopify is loose,
strict where the product maps a value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from devtools.samplestore import generate
from schemas.commands import (
    AnyCommand,
    Archive,
    Associate,
    RecordRef,
    Upsert,
    command_key,
    decode_command,
    encode_command,
)
from schemas.envelope import BODY_MODELS, Delivery, Tick, decode_log_record, encode
from schemas.shopify import Cart, Checkout, Customer, Deleted, Order, Product
from schemas.types import FinancialStatus, FulfillmentStatus, PublishedScope

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-12-31T19:00:00-05:00", datetime(2022, 1, 1, 0, 0, tzinfo=UTC)),
        ("2022-01-01T00:00:00.000Z", datetime(2022, 1, 1, 0, 0, tzinfo=UTC)),
        ("2022-01-01T00:00:00Z", datetime(2022, 1, 1, 0, 0, tzinfo=UTC)),
        ("2022-01-01T01:00:00.123456+01:00", datetime(2022, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)),
        ("2022-01-01T00:00:00", datetime(2022, 1, 1, 0, 0, tzinfo=UTC)),  # no offset: read as UTC
    ],
)
def test_timestamps_in_every_shopify_form_are_parsed_timezone_aware(text: str, expected: datetime) -> None:
    order = Order.model_validate({"id": 1, "updated_at": text})
    assert order.updated_at == expected
    assert order.updated_at is not None and order.updated_at.tzinfo is not None


def test_blank_and_null_values_mean_absent() -> None:
    order = Order.model_validate({"id": 1, "cancelled_at": "", "total_price": "", "note": "", "email": None})
    assert order.cancelled_at is None and order.total_price is None
    assert order.note is None and order.email is None


def test_invalid_mapped_values_are_rejected_with_the_field_named() -> None:
    with pytest.raises(ValidationError, match="updated_at"):
        Order.model_validate({"id": 1, "updated_at": "last tuesday"})
    with pytest.raises(ValidationError, match="total_price"):
        Order.model_validate({"id": 1, "total_price": "a lot"})
    with pytest.raises(ValidationError, match="id"):
        Customer.model_validate({"email": "x@example.com"})


def test_money_is_decimal_never_float() -> None:
    order = Order.model_validate({"id": 1, "total_price": "0.10", "total_tax": 0.2})
    assert order.total_price == Decimal("0.10")
    assert isinstance(order.total_tax, Decimal)


def test_unknown_status_values_are_kept_not_rejected() -> None:
    order = Order.model_validate({"id": 1, "financial_status": "paid", "fulfillment_status": "on_the_moon"})
    assert order.financial_status is FinancialStatus.PAID
    assert order.fulfillment_status == "on_the_moon"
    assert not isinstance(order.fulfillment_status, FulfillmentStatus)
    product = Product.model_validate({"id": 2, "published_scope": "pos_only", "status": "active"})
    assert product.published_scope == "pos_only"
    assert Product.model_validate({"id": 2, "published_scope": "web"}).published_scope is PublishedScope.WEB


def test_unknown_fields_are_kept_through_a_round_trip() -> None:
    body = {"id": 5, "email": "a@b.co", "brand_new_field_2027": {"nested": [1, 2]}}
    customer = Customer.model_validate(body)
    assert customer.extra_fields() == {"brand_new_field_2027": {"nested": [1, 2]}}
    assert customer.model_dump(mode="json")["brand_new_field_2027"] == {"nested": [1, 2]}


def test_accepts_marketing_from_either_api_generation() -> None:
    """C7 Accepts marketing: the legacy boolean, else the newer email_marketing_consent."""
    assert Customer.model_validate({"id": 1, "accepts_marketing": True}).accepts_email_marketing() is True
    newer = {"id": 1, "email_marketing_consent": {"state": "subscribed"}}
    assert Customer.model_validate(newer).accepts_email_marketing() is True
    newer["email_marketing_consent"] = {"state": "unsubscribed"}
    assert Customer.model_validate(newer).accepts_email_marketing() is False
    assert Customer.model_validate({"id": 1}).accepts_email_marketing() is None


def test_deletion_payloads_have_their_own_models() -> None:
    assert BODY_MODELS["orders/delete"] is Deleted
    assert Deleted.model_validate({"id": 9}).id == 9
    with pytest.raises(ValidationError):
        Deleted.model_validate({})


def test_buyer_email_prefers_the_order_then_the_customer() -> None:
    order = Order.model_validate({"id": 1, "customer": {"id": 2, "email": "c@x.io"}})
    assert order.buyer_email() == "c@x.io"
    checkout = Checkout.model_validate(
        {"token": "t", "email": "e@x.io", "customer": {"id": 2, "email": "c@x.io"}}
    )
    assert checkout.buyer_email() == "e@x.io"


def test_cart_ids_may_be_numbers_or_strings() -> None:
    assert Cart.model_validate({"id": 12}).id == "12"
    assert Cart.model_validate({"id": "abc"}).id == "abc"


def test_every_sample_store_body_fits_its_model() -> None:
    store = generate(customers=60, seed=3)
    for event in store.events:
        BODY_MODELS[event.topic].model_validate(event.body)


def test_sample_store_is_deterministic() -> None:
    a = generate(customers=30, seed=11)
    b = generate(customers=30, seed=11)
    assert [(e.at, e.topic, e.body, e.event_id) for e in a.ordered()] == [
        (e.at, e.topic, e.body, e.event_id) for e in b.ordered()
    ]
    assert [e.body for e in generate(customers=30, seed=12).events] != [e.body for e in a.events]


def test_delivery_envelope_round_trips_through_json() -> None:
    delivery = Delivery(
        topic="orders/create", shop_domain="s.myshopify.com", webhook_id="w", event_id="e",
        triggered_at="2026-03-02T04:00:00-05:00", api_version="2026-04", received_at=AT,
        body={"id": 1, "whatever": [1]},
    )  # fmt: skip
    again = decode_log_record(encode(delivery))
    assert again == delivery
    assert isinstance(again, Delivery) and again.event_time == AT
    assert delivery.resource == "orders" and delivery.action == "create"
    tick = decode_log_record(encode(Tick(at=AT)))
    assert isinstance(tick, Tick) and tick.at == AT


def test_envelope_rejects_records_that_are_neither_delivery_nor_tick() -> None:
    for raw in (b"{not json", b'{"kind": "surprise"}', b'{"kind": "delivery"}', b"[]"):
        with pytest.raises(ValidationError):
            decode_log_record(raw)


def test_parse_body_names_an_unsupported_topic() -> None:
    delivery = Delivery(
        topic="shop/redact", shop_domain="s", webhook_id="w", event_id="e", received_at=AT, body={}
    )
    with pytest.raises(ValueError, match="unsupported Shopify topic"):
        delivery.parse_body()


def test_commands_round_trip_and_are_keyed_by_record() -> None:
    contact = RecordRef(object_type="contacts", id_property="email", id_value="a@b.co")
    deal = RecordRef(object_type="deals", id_property="shopify_deal_key", id_value="cart-1")
    commands: list[AnyCommand] = [
        Upsert(record=contact, properties={"firstname": "A", "phone": None}),
        Archive(record=deal),
        Associate(record=deal, to=contact, association_type_id=3),
    ]
    for command in commands:
        assert decode_command(encode_command(command)) == command
    assert command_key(commands[0]) == "contacts:email:a@b.co"
    assert command_key(commands[2]) == command_key(commands[1])


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(2999, 12, 31),
        timezones=st.just(timezone(timedelta(hours=-5))),
    )
)
def test_any_offset_timestamp_survives_the_envelope(at: datetime) -> None:
    """Any instant in the supported range (``schemas.types.EARLIEST``..``LATEST``)."""
    tick = decode_log_record(encode(Tick(at=at)))
    assert isinstance(tick, Tick) and tick.at == at
