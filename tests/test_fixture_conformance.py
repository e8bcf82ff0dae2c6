"""Every real Shopify payload in ../shared/fixtures parses, keeps its unknown fields, and every
field SPEC.md maps (C7 contacts, D6 deals, P1 products) is read from it with Shopify's value."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from schemas.envelope import BODY_MODELS
from schemas.shopify import Cart, Checkout, Customer, Order, Product, ShopifyModel
from streams.mapping import CONTACT_FIELDS, DEAL_FIELDS, PRODUCT_FIELDS, FieldMap, format_value
from tests.shared_fixtures import rest_records, webhook_bodies

REST_MODELS: dict[str, type[ShopifyModel]] = {
    "customers": Customer,
    "orders": Order,
    "checkouts": Checkout,
    "carts": Cart,
    "products": Product,
}

# Which mapping table reads which resource.
MAPPED: dict[str, tuple[FieldMap, ...]] = {
    "customers": CONTACT_FIELDS,
    "orders": DEAL_FIELDS,
    "checkouts": DEAL_FIELDS,
    "products": PRODUCT_FIELDS,
}

# Mapped fields no fixture of that resource carries with a value, and why that is expected.
NOT_IN_ANY_FIXTURE: dict[tuple[str, str], str] = {
    ("orders", "abandoned_checkout_url"): "an order has no recovery URL; checkouts carry it",
    ("checkouts", "cancel_reason"): "checkouts are never cancelled; orders carry it",
    ("checkouts", "cancelled_at"): "checkouts are never cancelled; orders carry it",
    ("checkouts", "financial_status"): "only orders have a financial status",
    ("checkouts", "fulfillment_status"): "only orders have a fulfillment status",
    ("checkouts", "order_number"): "only orders are numbered",
    ("checkouts", "processing_method"): "only orders have a processing method",
    ("checkouts", "current_total_price"): "only orders are refunded (E1's net revenue)",
    ("checkouts", "landing_site"): "the fixtures' checkouts have null landing sites",
    ("checkouts", "referring_site"): "the fixtures' checkouts have null referring sites",
    ("checkouts", "note"): "the fixtures' checkouts have null notes",
    ("customers", "phone"): "the fixtures' customers have null overview phones (C8)",
    ("customers", "tags"): "the fixtures' customers have no tags (absent or empty)",
    ("orders", "fulfillment_status"): "every fixture order is unfulfilled (null)",
    ("orders", "note"): "the fixtures' orders have null notes",
}


def all_records() -> list[tuple[str, str, Path, Any]]:
    """(resource, topic or 'rest', file, raw record) for every fixture record."""
    rows = [(topic.partition("/")[0], topic, f, body) for topic, f, body in webhook_bodies()]
    rows += [(resource, "rest", f, body) for resource, f, body in rest_records()]
    return rows


def parse(resource: str, topic: str, raw: Any) -> ShopifyModel:
    model = BODY_MODELS[topic] if topic != "rest" else REST_MODELS[resource]
    return model.model_validate(raw)


def raw_at(raw: Any, path: str) -> Any:
    current = raw
    for part in path.split("."):
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current


def expected(field: FieldMap, raw_value: Any) -> str | None:
    """What HubSpot should hold for a raw JSON value, computed independently of the models."""
    if raw_value in (None, ""):
        return None
    if field.type == "datetime":
        return format_value(datetime.fromisoformat(str(raw_value).replace("Z", "+00:00")))
    if field.type == "bool":
        return "true" if raw_value else "false"
    if field.type == "number":
        return str(Decimal(str(raw_value)))
    return str(raw_value)


def test_fixtures_are_present_and_cover_every_topic_we_consume() -> None:
    topics = {topic for topic, _, _ in webhook_bodies()}
    assert topics, "no webhook fixtures found"
    assert topics <= set(BODY_MODELS), f"fixtures for topics we do not route: {topics - set(BODY_MODELS)}"


@pytest.mark.parametrize(
    ("resource", "topic", "file", "raw"),
    all_records(),
    ids=lambda v: v.name if isinstance(v, Path) else None,
)
def test_fixture_parses_and_keeps_unknown_fields(resource: str, topic: str, file: Path, raw: Any) -> None:
    model = parse(resource, topic, raw)
    dumped = model.model_dump(mode="json", by_alias=True)
    missing = set(raw) - set(dumped)
    assert not missing, f"{file.name}: fields dropped: {missing}"
    for key, value in model.extra_fields().items():
        assert raw[key] == value, f"{file.name}: extra field {key} changed"


@pytest.mark.parametrize("resource", sorted(MAPPED))
def test_every_mapped_field_is_read_with_shopifys_value(resource: str) -> None:
    """C7, D6, P1: each mapped field is read, per resource, from the fixtures that carry it."""
    fields = MAPPED[resource]
    seen: dict[str, list[str]] = defaultdict(list)
    for res, topic, file, raw in all_records():
        if res != resource or topic.endswith("/delete"):
            continue
        model = parse(res, topic, raw)
        for field in fields:
            raw_value = raw_at(raw, field.source)
            if field.read is not None and field.source in ("images", "variants.price"):
                continue  # derived fields: checked in test_derived_product_fields
            if raw_value in (None, ""):
                continue
            got = format_value(field.value(model))
            assert got == expected(field, raw_value), (
                f"{file.name}: {field.label} ({field.source}) read {got!r}, Shopify sent {raw_value!r}"
            )
            seen[field.source].append(file.name)
    for field in fields:
        if field.source in ("images", "variants.price"):
            continue
        if (resource, field.source) in NOT_IN_ANY_FIXTURE:
            continue
        assert seen[field.source], f"{resource}: no fixture exercises {field.label} ({field.source})"


def test_derived_product_fields() -> None:
    """P1 Images and Price: image URLs joined in order, price from the first variant."""
    for resource, topic, file, raw in all_records():
        if resource != "products" or topic.endswith("/delete"):
            continue
        model = parse(resource, topic, raw)
        assert isinstance(model, Product)
        srcs = [img["src"] for img in raw.get("images") or [] if img.get("src")]
        if not srcs and raw.get("image"):
            srcs = [raw["image"]["src"]]
        assert model.image_urls() == srcs, file.name
        variants = sorted(raw.get("variants") or [], key=lambda v: v.get("position") or 0)
        want = Decimal(str(variants[0]["price"])) if variants else None
        assert model.price() == want, file.name


def test_contact_phone_is_the_overview_phone_never_the_address_phone() -> None:
    """C8: the customers/create fixture has a default-address phone and no overview phone."""
    for resource, topic, file, raw in all_records():
        if resource != "customers" or topic.endswith("/delete"):
            continue
        model = parse(resource, topic, raw)
        assert isinstance(model, Customer)
        props = {f.hubspot_property: format_value(f.value(model)) for f in CONTACT_FIELDS}
        assert props["phone"] == (raw.get("phone") or None), file.name
