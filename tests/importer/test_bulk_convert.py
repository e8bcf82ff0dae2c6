"""The bulk import's pure parts against the local Admin API's real exports: each resource's
GraphQL records become webhook bodies that parse cleanly and say what the sample store's REST
records say; parents are rebuilt from ``__parentId``; lines cut or unreadable are caught."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from devtools import samplestore
from handlers.bulk_convert import CONVERTERS, ConversionError, checkout_token, gid_number
from handlers.bulk_jsonl import rebuild, split_lines
from handlers.importer import import_delivery
from tests.importer.bulk_support import export, numbered, sandbox

CUSTOMERS = 12


def sample_rest() -> dict[str, dict[Any, dict[str, Any]]]:
    """The sample store's final REST bodies, by id (checkouts by token), as the webhooks had them."""
    found: dict[str, dict[Any, dict[str, Any]]] = {
        "customers": {},
        "orders": {},
        "products": {},
        "checkouts": {},
    }
    for _, topic, body in samplestore.happenings(CUSTOMERS, 7):
        resource, _, action = topic.partition("/")
        key = body.get("token") if resource == "checkouts" else body.get("id")
        if resource in found and action == "delete":
            found[resource].pop(key, None)  # the export holds no deleted order
        elif resource in found:
            found[resource][key] = body
    return found


def when(text: object) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


async def converted(tmp_path: Path, resource: str) -> list[dict[str, Any]]:
    async with sandbox(tmp_path, customers=CUSTOMERS) as shop:
        content = await export(shop, resource)
    roots = list(rebuild(iter(numbered(content))))
    assert roots and all(r.problem is None and r.record is not None for r in roots)
    return [CONVERTERS[resource](r.record) for r in roots if r.record is not None]


def parses_cleanly(resource: str, body: dict[str, Any]) -> None:
    """The body is what the rules read: its topic's model takes every field (no field problems)."""
    delivery = import_delivery(resource, body, "sample.myshopify.com", "2026-07")
    assert delivery.parse_body_with_problems().problems == ()


async def test_customers_say_what_the_sample_store_says(tmp_path: Path) -> None:
    rest = sample_rest()["customers"]
    bodies = await converted(tmp_path, "customers")
    assert {b["id"] for b in bodies} == set(rest)
    for body in bodies:
        parses_cleanly("customers", body)
        original = rest[body["id"]]
        for name in ("email", "first_name", "last_name", "phone", "verified_email"):
            assert body[name] == original.get(name), name
        assert when(body["created_at"]) == when(original["created_at"])
        assert body["default_address"]["city"] == original["default_address"]["city"]
        assert body["email_marketing_consent"]["state"] in ("subscribed", "not_subscribed")


async def test_orders_keep_their_line_items_money_and_tokens(tmp_path: Path) -> None:
    rest = sample_rest()["orders"]
    bodies = await converted(tmp_path, "orders")
    assert {b["id"] for b in bodies} == set(rest)
    for body in bodies:
        parses_cleanly("orders", body)
        original = rest[body["id"]]
        assert body["total_price"] == original["total_price"] and isinstance(body["total_price"], str)
        assert body["financial_status"] == original["financial_status"]
        assert body["cart_token"] == original["cart_token"], "2026-07 carries the order's tokens"
        assert body["customer"]["id"] == original["customer"]["id"]
        assert [
            (li["id"], li["variant_id"], li["product_id"], li["quantity"]) for li in body["line_items"]
        ] == [(li["id"], li["variant_id"], li["product_id"], li["quantity"]) for li in original["line_items"]]
        assert [Decimal(li["price"]) for li in body["line_items"]] == [
            Decimal(li["price"]) for li in original["line_items"]
        ]


async def test_products_keep_their_variants(tmp_path: Path) -> None:
    rest = sample_rest()["products"]
    bodies = await converted(tmp_path, "products")
    assert {b["id"] for b in bodies} == set(rest)
    for body in bodies:
        parses_cleanly("products", body)
        original = rest[body["id"]]
        assert body["title"] == original["title"] and body["status"] == original.get("status", "active")
        assert [(v["id"], v["sku"], v["price"], v["product_id"]) for v in body["variants"]] == [
            (v["id"], v["sku"], v["price"], body["id"]) for v in original["variants"]
        ]


async def test_abandoned_checkouts_are_keyed_by_the_token_in_their_recovery_url(tmp_path: Path) -> None:
    rest = sample_rest()["checkouts"]
    bodies = await converted(tmp_path, "checkouts")
    assert bodies
    for body in bodies:
        parses_cleanly("checkouts", body)
        original = rest[body["token"]]
        assert body["id"] == original["id"] and body["email"] == original["email"]
        assert [li["variant_id"] for li in body["line_items"]] == [
            li["variant_id"] for li in original["line_items"]
        ]


def test_the_checkout_token_is_read_from_either_recovery_url_shape() -> None:
    assert checkout_token("https://s.myshopify.com/checkouts/abc123/recover") == "abc123"
    assert checkout_token("https://s.myshopify.com/5/checkouts/ac/tok9/recover?key=k") == "tok9"
    assert checkout_token("https://s.myshopify.com/cart") is None
    assert checkout_token(None) is None


def test_a_gid_of_the_wrong_kind_is_refused() -> None:
    assert gid_number("gid://shopify/Customer/42", "Customer") == 42
    assert gid_number(None) is None
    with pytest.raises(ConversionError):
        gid_number("gid://shopify/Order/42", "Customer")
    with pytest.raises(ConversionError):
        gid_number("42")


def test_children_join_the_parent_before_them_and_bad_lines_are_their_own_problem() -> None:
    lines = [
        {"id": "gid://shopify/Order/1"},
        {"id": "gid://shopify/LineItem/11", "__parentId": "gid://shopify/Order/1"},
        {"id": "gid://shopify/LineItem/12", "__parentId": "gid://shopify/Order/1"},
        {"id": "gid://shopify/Order/2"},
        {"id": "gid://shopify/LineItem/99", "__parentId": "gid://shopify/Order/7"},
        {"id": "gid://shopify/Order/3"},
    ]
    content = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    content = content.replace(b'{"id":"gid://shopify/Order/3"}', b'{"id": oops')
    roots = list(rebuild(iter(numbered(content))))
    assert roots[0].record == {
        "id": "gid://shopify/Order/1",
        "lineItems": [{"id": "gid://shopify/LineItem/11"}, {"id": "gid://shopify/LineItem/12"}],
    }
    assert roots[0].lines == 3 and roots[0].start == 0 and roots[1].start == roots[0].end
    assert roots[1].record == {"id": "gid://shopify/Order/2"}
    assert [r.problem for r in roots[2:]] == [
        "a child line whose parent is not before it",
        roots[3].problem,
    ] and str(roots[3].problem).startswith("unreadable bulk line")
    assert roots[-1].end == len(content)


async def test_lines_cut_across_chunks_are_given_whole_with_their_offsets() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for piece in (b'{"a":', b'1}\n{"b"', b":2}\n", b'{"c":3}'):
            yield piece

    got = [item async for item in split_lines(chunks(), 100)]
    assert got == [(100, b'{"a":1}\n'), (108, b'{"b":2}\n'), (116, b'{"c":3}')]
