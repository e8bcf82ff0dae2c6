"""SPEC R1, field by field: a field that does not fit is read as absent and reported as a problem;
only a body's identity can fail the whole record (``schemas.tolerance``, ``schemas.types``).

Unit tests per shape of bad value, then properties over every real payload in
``../shared/fixtures/shopify``: any one field mutated into any bad shape parses, keeps the
identity and every other field, reports problems only on the mutated path, and no rule raises.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any, ClassVar

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from schemas import tolerance
from schemas.envelope import BODY_MODELS, Delivery
from schemas.native import validate_clean
from schemas.problems import FieldProblem, IdentityError
from schemas.shopify import (
    Cart,
    Checkout,
    CheckoutDeleted,
    Customer,
    Deleted,
    Order,
    Product,
    ShopifyModel,
)
from schemas.tolerance import SAFE_MESSAGE_TYPES, format_path, parse_tolerant
from schemas.types import INT_MAX, INT_MIN, UNFIT_TYPES, Id, ListOf, MaybeText
from streams.inprocess import InProcessPipeline
from tests.shared_fixtures import rest_records, webhook_bodies

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SECRET = "ada.secret.value@example.com"  # a value that must never reach a reason or a message


def problems_of(model: type[ShopifyModel], body: dict[str, Any]) -> dict[str, str]:
    return {p.path: p.reason for p in parse_tolerant(model, body).problems}


def only_problem(model: type[ShopifyModel], body: dict[str, Any], path: str) -> str:
    found = problems_of(model, body)
    assert list(found) == [path], found
    return found[path]


# ---- objects and lists ----


def test_an_empty_list_where_an_address_belongs_is_absent_and_the_checkout_syncs() -> None:
    """The real-store case of issue 9: ``"shipping_address": []`` on an abandoned checkout."""
    body = {"token": "t1", "email": "a@b.co", "shipping_address": [], "billing_address": {"city": "Oslo"}}
    parsed = parse_tolerant(Checkout, body)
    assert isinstance(parsed.record, Checkout)
    assert parsed.record.shipping_address is None
    assert parsed.record.billing_address is not None and parsed.record.billing_address.city == "Oslo"
    assert parsed.record.email == "a@b.co"
    assert [p.path for p in parsed.problems] == ["shipping_address"]
    assert parsed.problems[0].reason.startswith("model_type")


def test_blank_text_where_an_object_belongs_is_a_problem_and_an_empty_object_is_empty() -> None:
    assert only_problem(Order, {"id": 1, "shipping_address": ""}, "shipping_address").startswith("model_type")
    parsed = parse_tolerant(Order, {"id": 1, "shipping_address": {}, "customer": {}})
    assert parsed.problems == ()
    assert parsed.record.model_dump()["shipping_address"]["city"] is None


def test_line_items_that_are_not_a_list_are_absent_with_a_problem() -> None:
    for bad in ({}, "N/A", 3, {"0": {"id": 1}}):
        parsed = parse_tolerant(Order, {"id": 1, "line_items": bad})
        assert isinstance(parsed.record, Order) and parsed.record.line_items == []
        assert [p.path for p in parsed.problems] == ["line_items"]
    assert parse_tolerant(Order, {"id": 1, "line_items": None}).problems == ()  # null: none


def test_a_line_that_is_not_an_object_is_dropped_and_the_others_keep_their_indexes() -> None:
    lines = [{"sku": "a"}, "garbage", {"sku": "c", "price": "N/A"}, {"sku": "d"}]
    parsed = parse_tolerant(Order, {"id": 1, "line_items": lines})
    assert isinstance(parsed.record, Order)
    assert [line.sku for line in parsed.record.line_items] == ["a", "c", "d"]
    assert parsed.record.line_items[1].price is None
    assert {p.path for p in parsed.problems} == {"line_items[1]", "line_items[2].price"}


def test_a_variant_without_a_readable_id_is_dropped_and_the_product_syncs() -> None:
    variants = [{"id": "x", "price": "1"}, {"id": 2, "price": "N/A"}, {"price": "3"}, {"id": 4}]
    parsed = parse_tolerant(Product, {"id": 9, "title": "Shirt", "variants": variants})
    assert isinstance(parsed.record, Product) and parsed.record.title == "Shirt"
    assert [v.id for v in parsed.record.variants] == [2, 4]
    assert parsed.record.variants[0].price is None
    paths = [p.path for p in parsed.problems]
    assert set(paths) == {"variants[0].id", "variants[1].price", "variants[2].id"}
    assert any("dropped" in p.reason for p in parsed.problems if p.path == "variants[0].id")


def test_a_nested_customers_garbage_never_loses_its_order() -> None:
    """Issue 9: a nested customer's ``total_spent`` that is not a decimal lost the order."""
    body = {"id": 7, "email": "a@b.co", "customer": {"id": 5, "email": "a@b.co", "total_spent": "lots"}}
    parsed = parse_tolerant(Order, body)
    assert isinstance(parsed.record, Order) and parsed.record.customer is not None
    assert parsed.record.customer.email == "a@b.co" and parsed.record.customer.id == 5
    assert parsed.record.customer.total_spent is None
    assert [p.path for p in parsed.problems] == ["customer.total_spent"]


def test_nested_ids_are_optional_where_the_rules_do_not_need_them() -> None:
    body = {
        "id": 7,
        "customer": {"id": "N/A", "email": "a@b.co"},
        "line_items": [{"id": [], "variant_id": 3, "quantity": 1}],
        "billing_address": {"id": {}, "city": "Oslo"},
    }
    parsed = parse_tolerant(Order, body)
    assert isinstance(parsed.record, Order)
    assert parsed.record.customer is not None and parsed.record.customer.email == "a@b.co"
    assert parsed.record.customer.id is None
    assert parsed.record.line_items[0].variant_id == 3 and parsed.record.line_items[0].id is None
    assert parsed.record.billing_address is not None and parsed.record.billing_address.city == "Oslo"
    assert {p.path for p in parsed.problems} == {"customer.id", "line_items[0].id", "billing_address.id"}
    assert not [p for p in parsed.problems if "dropped" in p.reason]


class _Inner(ShopifyModel):
    id: Id
    note: MaybeText = None


class _Outer(ShopifyModel):
    identity: ClassVar[tuple[str, ...]] = ("id",)

    id: Id
    inner: _Inner | None = None
    inners: ListOf[_Inner] = Field(default_factory=list)


def test_a_nested_object_missing_a_required_field_is_dropped_whether_optional_or_in_a_list() -> None:
    body = {"id": 1, "inner": {"note": "x"}, "inners": [{"id": 1}, {"id": "bad"}, {"id": 3}]}
    parsed = parse_tolerant(_Outer, body)
    assert isinstance(parsed.record, _Outer)
    assert parsed.record.inner is None and [i.id for i in parsed.record.inners] == [1, 3]
    assert [p.path for p in parsed.problems] == ["inner.id", "inners[1].id", "inners[1].id"]
    assert parsed.problems[0].reason.startswith("missing") and "dropped" in parsed.problems[0].reason
    assert parsed.problems[1].reason.startswith("integer_parsing")


def test_an_identity_error_carries_the_problems_found() -> None:
    with pytest.raises(IdentityError) as caught:
        parse_tolerant(Order, {"id": "N/A", "total_price": "x"}, "orders/create")
    assert [p.path for p in caught.value.problems] == ["id"]
    assert str(caught.value) == "orders/create: identity unreadable (id): id: integer_parsing: not an integer"


# ---- timestamps ----


@pytest.mark.parametrize(
    "bad",
    [
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:59-05:00",
        "1969-12-31T23:59:59Z",
        "3000-01-01T00:00:00Z",
        "2999-12-31T23:00:00-05:00",  # year 2999 locally, year 3000 in UTC
    ],
)
def test_timestamps_out_of_range_are_problems(bad: str) -> None:
    reason = only_problem(Order, {"id": 1, "updated_at": bad}, "updated_at")
    assert reason.startswith("timestamp_range")


@pytest.mark.parametrize("bad", ["12345", 12345, 1.5, "N/A", "last tuesday", True, [], {}])
def test_timestamps_that_are_not_iso_text_are_problems(bad: object) -> None:
    assert only_problem(Order, {"id": 1, "created_at": bad}, "created_at")


def test_timestamps_in_range_in_every_form_are_read() -> None:
    for text, want in [
        ("2019-01-01 00:00:00.000Z", datetime(2019, 1, 1, tzinfo=UTC)),
        ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC)),
        ("2999-12-31T23:59:59Z", datetime(2999, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ]:
        parsed = parse_tolerant(Order, {"id": 1, "updated_at": text})
        assert parsed.problems == () and isinstance(parsed.record, Order)
        assert parsed.record.updated_at == want


def test_any_accepted_timestamp_survives_years_of_delay_in_any_timezone() -> None:
    """The range exists so timers never overflow: 10 years past the latest instant still fits."""
    latest = datetime(2999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert (latest + timedelta(days=3650)).astimezone(UTC).year == 3009


def test_an_unreadable_triggered_at_header_falls_back_to_the_received_time() -> None:
    for header in ("9999-12-31T23:59:59-05:00", "soon", "0001-01-01T00:00:00+05:00"):
        delivery = Delivery(
            topic="orders/create", shop_domain="s", webhook_id="w", event_id="e",
            triggered_at=header, received_at=AT, body={"id": 1},
        )  # fmt: skip
        assert delivery.triggered_at is None and delivery.event_time == AT


# ---- money ----


@pytest.mark.parametrize(
    "bad", ["NaN", "nan", "Infinity", "-Infinity", "sNaN", "N/A", "-", "1,000.00", "1_000", "1e3", "12 EUR",
            "\uff11\uff12", True, False, [], {}, float("nan"), float("inf"), "1" * 19, 10**18, 1e300],
)  # fmt: skip
def test_money_that_is_not_a_finite_sane_amount_is_a_problem(bad: object) -> None:
    reason = only_problem(Order, {"id": 1, "total_price": bad}, "total_price")
    assert reason.split(":")[0] in {"money_parsing", "money_type", "money_range"}


@pytest.mark.parametrize(
    ("value", "want"),
    [("19.99", "19.99"), (" 19.99 ", "19.99"), (19.99, "19.99"), (0.1 + 0.2, "0.30000000000000004"),
     (10, "10"), ("-0.50", "-0.50"), (".5", "0.5"), ("7.", "7"), ("", None), (None, None)],
)  # fmt: skip
def test_money_is_read_from_numbers_and_decimal_text_never_through_float_noise(
    value: object, want: str | None
) -> None:
    parsed = parse_tolerant(Order, {"id": 1, "total_price": value})
    assert parsed.problems == () and isinstance(parsed.record, Order)
    assert parsed.record.total_price == (Decimal(want) if want is not None else None)
    assert parsed.record.total_price is None or isinstance(parsed.record.total_price, Decimal)


# ---- integers ----


@pytest.mark.parametrize(
    ("value", "want"),
    [(2**53 + 1, 2**53 + 1), (str(2**53 + 1), 2**53 + 1), (INT_MAX, INT_MAX), (str(INT_MAX), INT_MAX),
     (INT_MIN, INT_MIN), ("42", 42), (" 42 ", 42)],
)  # fmt: skip
def test_ids_are_exact_up_to_64_bits(value: object, want: int) -> None:
    parsed = parse_tolerant(Order, {"id": 1, "checkout_id": value})
    assert parsed.problems == () and isinstance(parsed.record, Order)
    assert parsed.record.checkout_id == want and type(parsed.record.checkout_id) is int


@pytest.mark.parametrize(
    "bad",
    [2**64, 2**64 + 10, str(2**64), str(2**64 + 10), INT_MIN - 1, "9" * 400, 1.5, 5.0, 1.8446744073709552e19,
     True, "N/A", "12a", "1_000", "\uff11\uff12", [], {}],
)  # fmt: skip
def test_ids_that_are_not_64_bit_integers_are_problems(bad: object) -> None:
    reason = only_problem(Order, {"id": 1, "checkout_id": bad}, "checkout_id")
    assert reason.split(":")[0] in {"integer_type", "integer_parsing", "integer_range"}


def test_counts_accept_whole_floats_and_refuse_fractions() -> None:
    parsed = parse_tolerant(Order, {"id": 1, "total_weight": 2.0, "line_items": [{"quantity": "3"}]})
    assert parsed.problems == () and isinstance(parsed.record, Order)
    assert parsed.record.total_weight == 2 and parsed.record.line_items[0].quantity == 3
    parsed = parse_tolerant(Order, {"id": 1, "line_items": [{"quantity": 2.5}, {"quantity": None}]})
    assert isinstance(parsed.record, Order)
    assert [line.quantity for line in parsed.record.line_items] == [0, 0]
    assert [p.path for p in parsed.problems] == ["line_items[0].quantity"]


# ---- text and enumerations ----


def test_numbers_in_text_fields_become_their_exact_text() -> None:
    body = {"id": 1, "note": 2**64 + 10, "billing_address": {"zip": 12345, "phone": 4.5}}
    parsed = parse_tolerant(Order, body)
    assert parsed.problems == () and isinstance(parsed.record, Order)
    assert parsed.record.note == str(2**64 + 10)
    assert parsed.record.billing_address is not None
    assert parsed.record.billing_address.zip == "12345" and parsed.record.billing_address.phone == "4.5"


@pytest.mark.parametrize("bad", [True, [], {}, ["a"], {"a": 1}, float("nan")])
def test_objects_lists_and_booleans_in_text_fields_are_problems(bad: object) -> None:
    assert only_problem(Order, {"id": 1, "note": bad}, "note").startswith("text_type")


def test_unknown_enum_values_are_kept_and_objects_are_problems() -> None:
    parsed = parse_tolerant(Order, {"id": 1, "financial_status": "on_hold", "fulfillment_status": 3})
    assert parsed.problems == () and isinstance(parsed.record, Order)
    assert parsed.record.financial_status == "on_hold" and parsed.record.fulfillment_status == "3"
    bad: object
    for bad in ([], {}, {"state": "paid"}, True):
        assert only_problem(Order, {"id": 1, "financial_status": bad}, "financial_status")


def test_unknown_keys_are_kept_and_are_no_problem() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(300):
        node["n"] = {}
        node = node["n"]
    parsed = parse_tolerant(Order, {"id": 1, "brand_new_2027": deep, "customer": {"also_new": [1]}})
    assert parsed.problems == () and isinstance(parsed.record, Order)
    assert parsed.record.extra_fields() == {"brand_new_2027": deep}


def test_a_deeply_nested_object_is_one_problem_in_a_value_and_kept_as_an_unknown_key() -> None:
    deep = nested(300)
    for field in ("note", "total_price", "created_at", "financial_status", "checkout_id", "line_items"):
        assert list(problems_of(Order, {"id": 1, field: deep})) == [field], field
    assert list(problems_of(Order, {"id": 1, "shipping_address": [deep]})) == ["shipping_address"]
    parsed = parse_tolerant(Order, {"id": 1, "customer": deep, "line_items": [deep]})
    assert parsed.problems == () and isinstance(parsed.record, Order)  # objects with unknown keys
    assert parsed.record.customer is not None and parsed.record.customer.extra_fields() == deep


# ---- identity ----


@pytest.mark.parametrize(
    ("topic", "body"),
    [
        ("orders/create", {}),
        ("orders/create", {"id": "N/A"}),
        ("orders/create", {"id": 2**64}),
        ("orders/create", {"id": str(2**64 + 10)}),
        ("orders/create", {"id": 1.8446744073709552e19}),
        ("orders/create", {"id": None}),
        ("orders/delete", {"id": []}),
        ("customers/update", {"id": True, "email": SECRET}),
        ("customers/delete", {}),
        ("products/update", {"id": {}, "title": "x"}),
        ("products/delete", {"id": ""}),
        ("checkouts/create", {"id": 1, "email": SECRET}),
        ("checkouts/update", {"token": [], "cart_token": ""}),
        ("checkouts/delete", {"id": 1}),
        ("carts/update", {"line_items": []}),
        ("carts/create", {"id": 1.5, "token": None}),
    ],
)
def test_only_an_unreadable_identity_fails_the_record(topic: str, body: dict[str, Any]) -> None:
    delivery = Delivery(topic=topic, shop_domain="s", webhook_id="w", event_id="e", received_at=AT, body=body)
    with pytest.raises(IdentityError, match="identity unreadable") as caught:
        delivery.parse_body()
    assert isinstance(caught.value, ValueError)  # the routers' dead-letter path catches ValueError
    assert topic in str(caught.value) and SECRET not in str(caught.value)
    with pytest.raises(IdentityError):
        delivery.parse_body_with_problems()


@pytest.mark.parametrize(
    ("model", "body", "field", "want"),
    [
        (Checkout, {"token": None, "cart_token": "c1"}, "cart_token", "c1"),
        (Checkout, {"token": "t1", "cart_token": {}}, "token", "t1"),
        (CheckoutDeleted, {"id": 3, "cart_token": "c1"}, "cart_token", "c1"),
        (Cart, {"id": 12}, "id", "12"),
        (Cart, {"id": [], "token": "tok"}, "token", "tok"),
        (Order, {"id": "42"}, "id", 42),
        (Customer, {"id": 2**53 + 1}, "id", 2**53 + 1),
        (Deleted, {"id": INT_MAX}, "id", INT_MAX),
    ],
)
def test_an_identity_holds_when_any_of_its_fields_is_readable(
    model: type[ShopifyModel], body: dict[str, Any], field: str, want: object
) -> None:
    assert getattr(parse_tolerant(model, body).record, field) == want


def test_an_unsupported_topic_is_still_a_plain_value_error() -> None:
    delivery = Delivery(
        topic="shop/redact", shop_domain="s", webhook_id="w", event_id="e", received_at=AT, body={}
    )
    with pytest.raises(ValueError, match="unsupported Shopify topic") as caught:
        delivery.parse_body()
    assert not isinstance(caught.value, IdentityError)


# ---- reasons, determinism, cost ----


def test_reasons_never_carry_the_value() -> None:
    body = {
        "id": 1, "email": {"value": SECRET}, "note": [SECRET], "total_price": SECRET, "created_at": SECRET,
        "financial_status": {"x": SECRET}, "checkout_id": SECRET, "buyer_accepts_marketing": SECRET,
        "shipping_address": SECRET, "line_items": [SECRET, {"price": SECRET, "quantity": SECRET}],
        "customer": {"id": SECRET, "email_marketing_consent": {"consent_updated_at": SECRET}},
    }  # fmt: skip
    problems = parse_tolerant(Order, body).problems
    assert len(problems) == 13
    for problem in problems:
        assert (
            SECRET not in problem.reason and "ada" not in problem.reason and "example" not in problem.reason
        )


def test_safe_message_types_have_templates_that_cannot_quote_the_input() -> None:
    """Reasons copy pydantic's message only for these types: none of their templates holds a
    placeholder filled from the input (only schema facts such as a class name or a bound)."""
    from pydantic_core._pydantic_core import list_all_errors

    schema_only = {"{class_name}", "{expected}", "{max_digits}", "{decimal_places}", "{whole_digits}",
                   "{expected_plural}", "{error}"}  # fmt: skip
    templates: dict[str, str] = {str(e["type"]): e["message_template_python"] for e in list_all_errors()}
    for kind in SAFE_MESSAGE_TYPES:
        template = templates[kind]
        placeholders = {part.split("}")[0] for part in template.split("{")[1:]}
        assert {f"{{{p}}}" for p in placeholders} <= schema_only, (kind, template)
    # "{error}" is allowed only where it is the date parser's fixed complaint, never a foreign text
    with_error = {k for k in SAFE_MESSAGE_TYPES if "{error}" in templates[k]}
    assert with_error <= {"datetime_parsing", "datetime_from_date_parsing", "date_parsing"}
    assert not UNFIT_TYPES & set(templates), "custom types must not shadow pydantic's"


def test_the_same_body_always_yields_the_same_problems() -> None:
    body = {
        "id": 1,
        "line_items": [{"price": "x"}, "y", {"quantity": 1.5}],
        "shipping_address": [],
        "note": {},
    }
    first = parse_tolerant(Order, body).problems
    assert first == parse_tolerant(Order, copy.deepcopy(body)).problems
    want = ["note", "line_items[0].price", "line_items[1]", "line_items[2].quantity", "shipping_address"]
    assert [p.path for p in first] == want


def test_the_body_is_never_modified() -> None:
    body = {"id": 1, "line_items": [{"price": "x"}, "y"], "customer": {"total_spent": "z"}}
    before = copy.deepcopy(body)
    parse_tolerant(Order, body)
    assert body == before


def test_a_clean_body_costs_one_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = Order.model_validate

    def counting(obj: Any, *args: Any, **kwargs: Any) -> Order:
        calls.append("exact")
        return original(obj, *args, **kwargs)

    def counting_native(model: type[ShopifyModel], body: dict[str, Any]) -> ShopifyModel | None:
        calls.append("native")
        return validate_clean(model, body)

    monkeypatch.setattr(Order, "model_validate", counting)
    monkeypatch.setattr(tolerance, "validate_clean", counting_native)
    parse_tolerant(Order, {"id": 1, "total_price": "1.00"})
    assert calls == ["native"]  # one validation, in pydantic-core alone (schemas.native)
    parse_tolerant(Order, {"id": 1, "total_price": "x"})
    assert calls == ["native", "native", "exact", "exact"]  # a problem: the exact path, one more pass


def test_every_fixture_parses_without_problems() -> None:
    for topic, body in cases():
        assert parse_tolerant(BODY_MODELS[topic], body, topic).problems == (), topic


def test_format_path() -> None:
    assert format_path(("line_items", 0, "price")) == "line_items[0].price"
    assert format_path(("id",)) == "id" and format_path(()) == ""


# ---- properties over the real payloads ----

REST_TOPICS = {"customers": "customers/update", "orders": "orders/updated", "checkouts": "checkouts/update",
               "carts": "carts/update", "products": "products/update"}  # fmt: skip

Path = tuple[str | int, ...]


@cache
def _cases() -> tuple[tuple[str, bytes], ...]:
    rows = [(topic, orjson.dumps(body)) for topic, _, body in webhook_bodies()]
    rows += [(REST_TOPICS[resource], orjson.dumps(body)) for resource, _, body in rest_records()]
    return tuple(rows)


def cases() -> list[tuple[str, dict[str, Any]]]:
    """(topic, fresh body) for every fixture record; bodies are parsed again each time."""
    return [(topic, orjson.loads(raw)) for topic, raw in _cases()]


def paths(value: Any, here: Path = ()) -> Iterator[Path]:
    """Every path to a value inside ``value`` (keys and list indexes, at any depth)."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*here, key)
            yield from paths(child, (*here, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield (*here, index)
            yield from paths(child, (*here, index))


def objects(value: Any, here: Path = ()) -> Iterator[Path]:
    """Every path to an object (where an unknown key can be added), the body itself included."""
    if isinstance(value, dict):
        yield here
        for key, child in value.items():
            yield from objects(child, (*here, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from objects(child, (*here, index))


def nested(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth - 1):
        node["n"] = {}
        node = node["n"]
    return root


SHAPES: dict[str, Any] = {
    "empty list": [],
    "empty object": {},
    "empty text": "",
    "placeholder": "N/A",
    "garbage": "\u2603 garbage \x00 ]]}",
    "number as text": "12345",
    "decimal as text": "19.99",
    "text as number": 12345,
    "fraction": 1.5,
    "year 1": "0001-01-01T00:00:00+05:00",
    "year 9999": "9999-12-31T23:59:59-05:00",
    "2^53+1": 2**53 + 1,
    "2^64": 2**64,
    "2^64+10": 2**64 + 10,
    "2^64 as digits": str(2**64),
    "2^64+10 as digits": str(2**64 + 10),
    "boolean": True,
    "null": None,
    "deep object": nested(300),
}


def set_at(body: dict[str, Any], path: Path, value: Any) -> dict[str, Any]:
    mutated = copy.deepcopy(body)
    parent: Any = mutated
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    return mutated


def on_path(problem: FieldProblem, mutated: Path) -> bool:
    """Whether a problem is at the mutated path, above it (an object dropped) or below it."""
    text = format_path(mutated)
    above = {format_path(mutated[:n]) for n in range(1, len(mutated) + 1)}
    return problem.path in above or problem.path.startswith((f"{text}.", f"{text}["))


_ABSENT = object()


def assert_unchanged_off_path(base: Any, got: Any, mutated: Path | None, drop_ok: bool, at: str = "") -> None:
    """Everything in ``got`` equals ``base`` except on the mutated path; an object on that path
    may be gone only when ``drop_ok`` (a required field of it was reported missing)."""
    if mutated is None:
        assert got == base, f"{at}: changed"
        return
    if not mutated:
        return  # the mutated value itself: anything that fits, or absent
    head, rest = mutated[0], mutated[1:]
    if isinstance(base, dict):
        if got is None or got is _ABSENT:
            assert drop_ok, f"{at}: object dropped without a missing-field problem"
            return
        assert isinstance(got, dict), f"{at}: not an object any more"
        for key in set(base) | set(got):
            sub = rest if key == head else None
            assert_unchanged_off_path(
                base.get(key, _ABSENT), got.get(key, _ABSENT), sub, drop_ok, f"{at}.{key}"
            )
    elif isinstance(base, list):
        if got is _ABSENT or got == []:
            assert drop_ok or rest == () or not base, f"{at}: list emptied"
            return
        assert isinstance(got, list) and isinstance(head, int)
        if len(got) == len(base):
            for index, (b, g) in enumerate(zip(base, got, strict=True)):
                assert_unchanged_off_path(b, g, rest if index == head else None, drop_ok, f"{at}[{index}]")
        else:
            # the mutated element itself is gone (it did not fit), or an element it made unusable
            assert (drop_ok or rest == ()) and len(got) == len(base) - 1, f"{at}: elements lost"
            assert got == base[:head] + base[head + 1 :], f"{at}: other elements changed"
    elif base is _ABSENT:
        return  # an unknown key added on the mutated path
    else:
        raise AssertionError(f"{at}: a scalar on the mutated path")


def assert_64_bit(value: Any, at: str = "") -> None:
    """No mapped field (nested included) holds an integer orjson and the state tables cannot."""
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            assert_64_bit(getattr(value, name), f"{at}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert_64_bit(item, f"{at}[{index}]")
    elif isinstance(value, int) and not isinstance(value, bool):
        assert INT_MIN <= value <= INT_MAX, at


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, dict[str, Any], dict[str, Any], Path, str]:
    """(topic, body, mutated body, mutated path, shape name): one field of one fixture broken."""
    topic, body = draw(st.sampled_from(cases()))
    if draw(st.integers(0, 9)) == 0:
        where = draw(st.sampled_from(list(objects(body))))
        key = draw(st.sampled_from(["brand_new_field_2027", "x-unknown", "id_v2"]))
        value = draw(st.sampled_from(list(SHAPES.values())))
        path: Path = (*where, key)
        return topic, body, set_at(body, path, value) if where else {**body, key: value}, path, "unknown key"
    path = draw(st.sampled_from(list(paths(body))))
    shape = draw(st.sampled_from(sorted(SHAPES)))
    return topic, body, set_at(body, path, SHAPES[shape]), path, shape


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
def test_any_one_broken_field_leaves_the_identity_and_every_other_field(
    case: tuple[str, dict[str, Any], dict[str, Any], Path, str],
) -> None:
    topic, body, mutated, path, shape = case
    model = BODY_MODELS[topic]
    base = parse_tolerant(model, body, topic)
    try:
        parsed = parse_tolerant(model, mutated, topic)
    except IdentityError as exc:
        assert len(path) == 1 and path[0] in model.identity, f"{topic} {format_path(path)} ({shape}): {exc}"
        return
    if path[0] not in model.identity:
        for name in model.identity:
            assert getattr(parsed.record, name) == getattr(base.record, name), name
    assert type(parsed.record) is type(base.record)
    wrong = [p for p in parsed.problems if not on_path(p, path)]
    assert not wrong, f"{topic} {format_path(path)} ({shape}): problems elsewhere: {wrong}"
    drop_ok = any(p.reason.startswith("missing") for p in parsed.problems)
    assert_unchanged_off_path(base.record.model_dump(), parsed.record.model_dump(), path, drop_ok)
    assert_64_bit(parsed.record)
    assert parse_tolerant(model, mutated, topic).problems == parsed.problems  # deterministic


# ---- the rules, end to end in one process ----

STORABLE: dict[str, Any] = {
    # What the bridge stores for shapes JSON on Kafka cannot carry as they are: integers beyond
    # 64 bits as their exact digits (schemas.rawjson), nesting within the stored depth.
    **{name: value for name, value in SHAPES.items() if name not in ("2^64", "2^64+10", "deep object")},
    "deep object": nested(40),
}


def delivery(topic: str, body: dict[str, Any], n: int, at: datetime) -> Delivery:
    return Delivery(
        topic=topic, shop_domain="s.myshopify.com", webhook_id=f"w{n}", event_id=f"e{n}",
        triggered_at=at, received_at=at, body=body,
    )  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_no_rule_raises_on_a_broken_field(data: st.DataObject) -> None:
    """Every fixture delivered, then one of them again with one field broken, then time passes
    far enough for every timer to fire: nothing escapes, and only an identity dead-letters."""
    pipeline = InProcessPipeline()
    rows = cases()
    for n, (topic, body) in enumerate(rows):
        pipeline.deliver(delivery(topic, body, n, AT + timedelta(minutes=n)))
    assert pipeline.dead_letters == []
    topic, body = data.draw(st.sampled_from(rows))
    path = data.draw(st.sampled_from(list(paths(body))))
    shape = data.draw(st.sampled_from(sorted(STORABLE)))
    broken = set_at(body, path, STORABLE[shape])
    pipeline.deliver(delivery(topic, broken, len(rows), AT + timedelta(hours=1)))
    for days in (1, 3, 30, 120, 400):
        pipeline.tick(AT + timedelta(days=days))
    identity = len(path) == 1 and path[0] in BODY_MODELS[topic].identity
    assert identity or pipeline.dead_letters == [], (topic, format_path(path), shape, pipeline.dead_letters)


def test_text_longer_than_hubspot_holds_is_a_field_problem_and_the_rest_syncs() -> None:
    """A 2 MB note would fail its whole HubSpot batch and bloat every state write: absent instead."""
    from schemas.shopify import Customer
    from schemas.tolerance import parse_tolerant
    from schemas.types import MAX_TEXT_CHARS

    body = {"id": 1, "email": "a@example.com", "note": "x" * (MAX_TEXT_CHARS + 1), "first_name": "Al"}
    record, problems = parse_tolerant(Customer, body, "customers/create")
    assert isinstance(record, Customer)
    assert record.note is None and record.first_name == "Al"
    assert [p.path for p in problems] == ["note"]
    assert "x" * 10 not in problems[0].reason
    record, problems = parse_tolerant(Customer, {**body, "note": "x" * MAX_TEXT_CHARS}, "customers/create")
    assert problems == () and isinstance(record, Customer) and record.note is not None
