"""The ecommerce reports (SPEC E1) as pure arithmetic, over a small store whose numbers are worked
out by hand below, through the same rules the worker runs (the in-process engine).

The store (USD; customers A = 101 and B = 102, one guest), product P1 (variants 11 at 10.00, 12 at
12.00) and P2 (variant 21 at 5.00):

day 1 (2026-03-02)
  o1  A      paid     2 x V11 + 1 x V21             25.00
  o2  guest  paid     1 x V12                       12.00
  k1  B      checkout 1 x V12, 12.00, abandoned at 10:15; completed on day 2 by o3 (recovered)
  k2  A      checkout 30.00 (3 x V11), abandoned at 11:15, never completed
day 2 (2026-03-03)
  o3  B      paid     1 x V12                       12.00 (k1's order)
  o4  A      partially refunded: 4 x V21            20.00, current_total_price 15.00
  o5  B      cancelled 5 x V11                      50.00 (leaves revenue)
  o6  A      paid, then deleted in Shopify (D5)     8.00 (leaves revenue)

Revenue: day 1 25 + 12 = 37.00 (2 orders, AOV 18.50); day 2 12 + 15 = 27.00 (2 orders, AOV 13.50,
2 cancelled); total 64.00, 4 orders, AOV 16.00. Abandoned on day 1: k1 and k2, 42.00; recovered k1,
12.00, rate 0.5. Customers: o1 is A's first order (new), o2 a guest's, o3 B's first (new), o4 A's
second (returning): 2 customers, 1 repeat (0.5); CLV = (A 25 + 15, B 12) / 2 = 26.00 (at the end of
day 1: A only, 25.00, rate 0). Products over the counted orders' lines (before refunds): P1 = 20 +
12 + 12 = 44.00 (4 units), P2 = 5 + 20 = 25.00 (5 units); variants V21 25.00 (5), V12 24.00 (2),
V11 20.00 (2).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from schemas.envelope import Delivery
from streams.inprocess import InProcessPipeline
from streams.report_stage import deal_facts
from streams.rules.reports import DealFacts, LineFacts, compute, deals_by_stage, facts_of

DAY1 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
A = {"id": 101, "email": "a@example.com"}
B = {"id": 102, "email": "b@example.com"}
V11 = (1, 11, "Shirt / S", "10.00")
V12 = (1, 12, "Shirt / L", "12.00")
V21 = (2, 21, "Socks", "5.00")


def _lines(*items: tuple[tuple[int, int, str, str], int]) -> list[dict[str, Any]]:
    return [
        {"product_id": p, "variant_id": v, "title": t, "price": price, "quantity": n}
        for (p, v, t, price), n in items
    ]


def _order(oid: int, at: datetime, customer: dict[str, Any] | None, total: str,
           lines: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {
        "id": oid, "name": f"#{oid}", "order_number": oid, "created_at": at.isoformat(),
        "updated_at": at.isoformat(), "currency": "USD", "financial_status": "paid",
        "total_price": total, "line_items": lines, "cart_token": f"cart-o{oid}",
    }  # fmt: skip
    if customer is not None:
        body |= {"customer": customer, "email": customer["email"]}
    return body | extra


def _checkout(token: str, at: datetime, customer: dict[str, Any], total: str,
              lines: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    return {
        "token": token, "cart_token": f"cart-{token}", "email": customer["email"], "customer": customer,
        "created_at": at.isoformat(), "updated_at": at.isoformat(), "currency": "USD",
        "total_price": total, "line_items": lines,
    }  # fmt: skip


def _delivery(topic: str, body: dict[str, Any], at: datetime, n: int) -> Delivery:
    return Delivery(topic=topic, shop_domain="s.myshopify.com", webhook_id=f"w{n}", event_id=f"e{n}",
                    triggered_at=at, received_at=at, body=body)  # fmt: skip


def store() -> list[tuple[datetime, str, dict[str, Any]]]:
    h = timedelta(hours=1)
    o3 = _order(3, DAY2, B, "12.00", _lines((V12, 1)), cart_token="cart-k1", checkout_token="k1")
    o4 = _order(4, DAY2 + 2 * h, A, "20.00", _lines((V21, 4)), financial_status="partially_refunded",
                current_total_price="15.00")  # fmt: skip
    o5 = _order(5, DAY2 + 3 * h, B, "50.00", _lines((V11, 5)))
    cancelled = (DAY2 + 3.5 * h).isoformat()
    o6 = _order(6, DAY2 + 4 * h, A, "8.00", _lines((V21, 1)))
    return [
        (DAY1, "orders/create", _order(1, DAY1, A, "25.00", _lines((V11, 2), (V21, 1)))),
        (DAY1 + 0.5 * h, "orders/create", _order(2, DAY1 + 0.5 * h, None, "12.00", _lines((V12, 1)))),
        (DAY1 + h, "checkouts/create", _checkout("k1", DAY1 + h, B, "12.00", _lines((V12, 1)))),
        (DAY1 + 2 * h, "checkouts/create", _checkout("k2", DAY1 + 2 * h, A, "30.00", _lines((V11, 3)))),
        (DAY2, "orders/create", o3),
        (DAY2 + 2 * h, "orders/create", o4),
        (DAY2 + 3 * h, "orders/create", o5),
        (DAY2 + 3.5 * h, "orders/cancelled", o5 | {"cancelled_at": cancelled, "updated_at": cancelled}),
        (DAY2 + 4 * h, "orders/create", o6),
        (DAY2 + 5 * h, "orders/delete", {"id": 6}),
    ]


def run(events: list[tuple[datetime, str, dict[str, Any]]]) -> InProcessPipeline:
    pipeline = InProcessPipeline()
    for n, (at, topic, body) in enumerate(events):
        pipeline.tick(at)
        pipeline.deliver(_delivery(topic, body, at, n))
    pipeline.tick(DAY2 + timedelta(hours=12))
    return pipeline


def test_the_eight_reports_of_a_small_store_by_hand() -> None:
    reports = compute(run(store()).report_facts.values())
    assert list(reports) == ["USD"]
    usd = reports["USD"]
    assert usd["total"] == {
        "revenue": "64.00", "orders": 4, "average_order_value": "16.00", "cancelled_orders": 2,
        "abandoned_checkouts": 2, "abandoned_value": "42.00", "recovered_checkouts": 1,
        "recovered_value": "12.00", "recovery_rate": 0.5, "new_customer_orders": 2,
        "returning_customer_orders": 1, "guest_orders": 1, "customers": 2, "repeat_customers": 1,
        "repeat_purchase_rate": 0.5, "customer_lifetime_value": "26.00",
    }  # fmt: skip
    day1, day2 = usd["by_day"]
    assert (day1["day"], day1["revenue"], day1["orders"], day1["average_order_value"]) == (
        "2026-03-02", "37.00", 2, "18.50")  # fmt: skip
    assert (day1["abandoned_checkouts"], day1["abandoned_value"], day1["recovered_checkouts"],
            day1["recovery_rate"]) == (2, "42.00", 1, 0.5)  # fmt: skip
    assert (day1["new_customer_orders"], day1["guest_orders"], day1["returning_customer_orders"]) == (1, 1, 0)
    assert (day1["repeat_purchase_rate"], day1["customer_lifetime_value"]) == (0.0, "25.00")
    assert (day2["day"], day2["revenue"], day2["orders"], day2["average_order_value"]) == (
        "2026-03-03", "27.00", 2, "13.50")  # fmt: skip
    assert (day2["cancelled_orders"], day2["abandoned_checkouts"]) == (2, 0)
    assert (day2["new_customer_orders"], day2["returning_customer_orders"]) == (1, 1)
    assert (day2["repeat_purchase_rate"], day2["customer_lifetime_value"]) == (0.5, "26.00")
    ranked = [(r["key"], r["revenue"], r["units"]) for r in usd["top_products_by_revenue"]]
    assert ranked == [("product:1", "44.00", 4), ("product:2", "25.00", 5)]
    assert [r["key"] for r in usd["top_products_by_units"]] == ["product:2", "product:1"]
    ranked = [(r["key"], r["revenue"], r["units"]) for r in usd["top_variants_by_revenue"]]
    assert ranked == [("variant:21", "25.00", 5), ("variant:12", "24.00", 2), ("variant:11", "20.00", 2)]
    assert [r["key"] for r in usd["top_variants_by_units"]] == ["variant:21", "variant:12", "variant:11"]
    assert usd["top_variants_by_revenue"][0]["title"] == "Socks"


def test_deals_by_stage_counts_every_existing_deal() -> None:
    stages = deals_by_stage(run(store()).report_facts.values())
    assert stages == {"Cancelled": 2, "Checkout Abandoned": 1, "Processed": 4}


def test_reports_do_not_depend_on_duplicates_or_the_order_facts_are_folded_in() -> None:
    """Replay rebuilds them exactly: a duplicate delivery changes nothing, and the fold is the
    same in any order of the journeys."""
    events = store()
    once = run(events).report_facts
    twice = run([e for e in events for _ in (0, 1)]).report_facts
    assert twice == once
    shuffled = list(once.values())
    random.Random(3).shuffle(shuffled)
    assert compute(shuffled) == compute(once.values())


def test_a_deal_archived_for_good_leaves_every_report() -> None:
    """D4: a pending checkout without an email is archived after 48 h; its facts say it is gone."""
    body = {"token": "k9", "created_at": DAY1.isoformat(), "updated_at": DAY1.isoformat(),
            "currency": "USD", "total_price": "9.00", "line_items": []}  # fmt: skip
    pipeline = InProcessPipeline()
    pipeline.deliver(_delivery("checkouts/create", body, DAY1, 1))
    assert pipeline.report_facts["checkout:k9"].stage == "Checkout Pending"
    pipeline.tick(DAY1 + timedelta(hours=49))
    assert not pipeline.report_facts["checkout:k9"].exists
    assert compute(pipeline.report_facts.values()) == {}


def test_facts_read_from_a_hubspot_record_equal_the_rules_view() -> None:
    """The same reader serves the rules' view and HubSpot's record (the account comparison)."""
    pipeline = run(store())
    state = pipeline.journey_states["cart:cart-o4"]
    view = state.emitted
    assert facts_of(state.key, view.properties["dealstage"], view.properties, view.lines.values()) == (
        deal_facts(state)
    )
    facts = deal_facts(state)
    assert (facts.net, facts.amount, facts.customer) == (Decimal("15.00"), Decimal("20.00"), "101")
    assert facts.lines == (LineFacts(product="product:2", variant="variant:21", title="Socks", quantity=4,
                                     revenue=Decimal("20.00")),)  # fmt: skip


def test_refunded_without_a_current_total_counts_nothing_and_other_currencies_stay_apart() -> None:
    def deal(key: str, currency: str, amount: str, status: str) -> DealFacts:
        props = {"amount": amount, "shopify_currency": currency, "shopify_financial_status": status,
                 "shopify_created_at": "2026-03-02T09:00:00.000Z"}  # fmt: skip
        return facts_of(key, "Processed", props, [])

    reports = compute([deal("a", "EUR", "10.00", "refunded"), deal("b", "EUR", "7.00", "paid"),
                       deal("c", "USD", "3.333", "paid")])  # fmt: skip
    assert (reports["EUR"]["total"]["revenue"], reports["EUR"]["total"]["orders"]) == ("7.00", 2)
    assert reports["EUR"]["total"]["average_order_value"] == "3.50"
    assert reports["USD"]["total"]["revenue"] == "3.33"
