"""`shopsync simulate` on a small store made of Shopify's real payloads, mutated the way live
stores send them (SPEC R1, R7; issue 9's last test and its "Done when").

The scenario is generated at test time from the payloads under ``../shared/fixtures/shopify/``
(read in place, never copied here): a product, a customer, a cart, a checkout and the order that
completes it (one journey: they share the cart and checkout tokens), a second checkout that is
abandoned, and two order topics whose bodies are not orders. Their fields are broken as
``../shared/REFERENCE.md`` ("Real payloads are messier than the samples") says real deliveries
are: ``"shipping_address": []`` on both checkouts, a nested customer's ``total_spent`` as
``"N/A"``, money as JSON numbers, timestamps as ``2026-03-02 09:05:00.000Z``, unknown keys, a
customer id beyond 2^53 (and beyond signed 64 bits), a year-9999 date with an offset in a synced
field (the customer's Created at), and ``orders/edited`` and ``orders/risk_assessment_changed``
deliveries (parked, not lost).

What HubSpot should end up holding is computed without the pipeline under test: the same
deliveries, enveloped as the bridge envelopes them, through ``streams.inprocess.InProcessPipeline``
and folded into an account (``handlers.account_fold.fold``). On top of that: the same scenario without
any mutation, through the in-process pipeline too, differs from what ``simulate`` synced in the
mutated field only, so every other field synced unchanged; and concrete values are checked
(both deals, their contacts, amounts, the abandonment and its W2 trigger, the exact customer id).

A second scenario adds one order whose identity is broken (``"id": "not-a-number"``): ``simulate``
exits 3, names the dead letter's reason without its values, and syncs everything else.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from handlers.account_fold import Account, fold
from handlers.loss import EXIT_LOSS, LossReport, from_pipeline
from schemas.envelope import Delivery
from schemas.rawjson import load_body
from streams.inprocess import InProcessPipeline
from streams.topics import UnroutableError, route
from tests.shared_fixtures import webhook_bodies
from tests.writer.conftest import agrees, held

pytestmark = pytest.mark.kafka

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CUSTOMER_ID = 2**63 + 12345
"""Beyond 2^53 (a float would round it) and beyond signed 64 bits: must reach HubSpot exact."""
BUYER = "bob@biller.com"  # customers_create.json's email; the order and its checkout use it too
ABANDONER = "example@email.com"  # checkouts_create.json's email: the abandoned checkout's contact
LOST_BUYER = "lost.buyer@example.com"  # only in the order whose identity is broken
CART_A, TOKEN_A = "cart-completed-a", "checkout-completed-a"
CART_B, TOKEN_B = "cart-abandoned-b", "checkout-abandoned-b"
ORDER_ID = 820982911946154508
OUT_OF_RANGE = "9999-12-31T23:00:00-05:00"  # year 9999 at -05:00: beyond datetime's range in UTC


def _fixtures() -> dict[str, Any]:
    return {topic: body for topic, _, body in webhook_bodies()}


def _stamp(at: datetime, messy: bool) -> str:
    """A timestamp as Shopify's docs write it, or as real stores send it (space, millis, Z)."""
    return f"{at:%Y-%m-%d %H:%M:%S}.000Z" if messy else at.isoformat()


def scenario(mutated: bool, broken_identity: bool = False) -> list[dict[str, Any]]:
    """The store's scenario lines; ``mutated``: with real stores' field problems."""
    fixtures = _fixtures()
    m = mutated
    lines: list[dict[str, Any]] = []

    def add(minutes: int, topic: str, body: dict[str, Any]) -> datetime:
        at = START + timedelta(minutes=minutes)
        lines.append({"at": at.isoformat(), "shopify": topic, "body": body})
        return at

    def money(text: str) -> str | float:
        return float(text) if m else text  # chosen so that the float's shortest text is the same

    def dated(body: dict[str, Any], minutes: int) -> dict[str, Any]:
        at = START + timedelta(minutes=minutes)
        body["created_at"] = body["updated_at"] = _stamp(at, m)
        return body

    product = dated(copy.deepcopy(fixtures["products/create"]), 0)
    product["variants"][0]["price"] = money("19.99")
    if m:
        product["x_future_api_field"] = {"introduced_in": "2027-01", "values": [1, 2]}
    add(0, "products/create", product)

    customer = dated(copy.deepcopy(fixtures["customers/create"]), 1)
    customer["id"] = customer["default_address"]["customer_id"] = CUSTOMER_ID
    customer["created_at"] = OUT_OF_RANGE if m else "2026-03-01T08:00:00-05:00"
    if m:
        customer["x_loyalty_tier"] = "gold"
    add(1, "customers/create", customer)

    def as_nested() -> dict[str, Any]:
        """The customer as an order or checkout nests it (no unknown key of its own)."""
        return {k: v for k, v in copy.deepcopy(customer).items() if not k.startswith("x_")}

    cart = dated(copy.deepcopy(fixtures["carts/create"]), 2)
    cart["id"] = cart["token"] = CART_A
    cart["line_items"][0]["price"] = money("19.99")
    add(2, "carts/create", cart)

    def checkout(minutes: int, token: str, cart_token: str, email: str) -> dict[str, Any]:
        body = dated(copy.deepcopy(fixtures["checkouts/create"]), minutes)
        body.update(token=token, cart_token=cart_token, email=email, total_price=money("421.88"))
        body["abandoned_checkout_url"] = f"https://checkout.local/548380009/checkouts/{token}/recover"
        body["customer"] = as_nested() if email == BUYER else {**body["customer"], "email": email}
        if m:
            body["shipping_address"] = []  # real stores' abandoned checkouts
        return body

    add(3, "checkouts/create", checkout(3, TOKEN_A, CART_A, BUYER))
    add(4, "checkouts/create", checkout(4, TOKEN_B, CART_B, ABANDONER))

    order = dated(copy.deepcopy(fixtures["orders/create"]), 6)
    order.update(
        id=ORDER_ID, email=BUYER, contact_email=BUYER, cart_token=CART_A, checkout_token=TOKEN_A,
        cancel_reason=None, cancelled_at=None, financial_status="paid", total_price=money("404.95"),
        processed_at=_stamp(START + timedelta(minutes=6), m),
    )  # fmt: skip
    order["customer"] = as_nested()
    if m:
        order["customer"]["total_spent"] = "N/A"  # a field nobody syncs must not decide the order
        order["x_future_api_field"] = {"introduced_in": "2027-01"}
    add(6, "orders/create", order)

    # Order topics whose body is not an order: parked whole, not lost.
    add(7, "orders/edited", {"order_edit": {
        "id": 78912328, "app_id": None, "created_at": _stamp(START + timedelta(minutes=7), m),
        "committed_at": _stamp(START + timedelta(minutes=7), m), "notify_customer": False,
        "order_id": ORDER_ID, "staff_note": "", "user_id": None,
        "line_items": {"additions": [{"id": 1}], "removals": []},
    }})  # fmt: skip
    add(8, "orders/risk_assessment_changed", {
        "provider_id": None, "provider_title": None, "risk_level": "low",
        "created_at": _stamp(START + timedelta(minutes=8), m), "order_id": ORDER_ID,
        "admin_graphql_api_id": f"gid://shopify/Order/{ORDER_ID}",
    })  # fmt: skip

    if broken_identity:
        # Completes the abandoned checkout, if it were (wrongly) read: its deal would leave
        # "Checkout Abandoned" and lose its W2 trigger.
        lost = dated(copy.deepcopy(fixtures["orders/create"]), 9)
        lost.update(id="not-a-number", email=LOST_BUYER, contact_email=LOST_BUYER, cart_token=CART_B,
                    checkout_token=TOKEN_B, cancel_reason=None, cancelled_at=None)  # fmt: skip
        lost["customer"]["email"] = LOST_BUYER
        add(9, "orders/create", lost)

    # The abandoned checkout: abandoned 15 minutes after its update, W2 24 hours after that.
    lines.append({"at": (START + timedelta(days=1, hours=1)).isoformat(), "tick": True})
    return lines


def expected(lines: list[dict[str, Any]]) -> tuple[InProcessPipeline, LossReport]:
    """The lines through the in-process pipeline, each delivery enveloped as the bridge does
    (the body parsed exactly, received and triggered at ``at``); what the bridge parks is
    counted as parked, not delivered."""
    pipeline = InProcessPipeline()
    parked = LossReport()
    for line in lines:
        at = datetime.fromisoformat(line["at"])
        if line.get("tick"):
            pipeline.tick(at)
            continue
        topic, raw = line["shopify"], orjson.dumps(line["body"])
        loaded = load_body(raw)
        try:
            route(topic, loaded.value)
        except UnroutableError as exc:
            parked.park(str(exc))
            continue
        event = str(uuid.uuid4())
        pipeline.deliver(Delivery(
            topic=topic, shop_domain="simulated.myshopify.com", webhook_id=event, event_id=event,
            triggered_at=at, api_version="2026-04", received_at=at, body=loaded.value,
            problems=tuple(loaded.problems),
        ))  # fmt: skip
    return pipeline, from_pipeline(pipeline, "shopify.deadletter").merge(parked)


def simulate(tmp_path: Path, kafka_bootstrap: str, lines: list[dict[str, Any]]) -> tuple[int, str, Account]:
    """``shopsync simulate`` as an operator runs it: (exit code, stdout + stderr, account held)."""
    path = tmp_path / "scenario.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines))
    out = tmp_path / "account.json"
    result = subprocess.run(
        [sys.executable, "-m", "shopsync", "simulate", str(path), "--out", str(out)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert out.exists(), output[-3000:]
    return result.returncode, output, held(orjson.loads(out.read_bytes()))


def report_rows(report: LossReport, section: str) -> list[str]:
    """The rendered rows of one section of a loss report ("Field problems", "Dead letters", ...)."""
    rows, inside = [], False
    for line in report.render():
        if not line.startswith(" "):
            inside = line.startswith(section)
        elif inside:
            rows.append(line.strip())
    return rows


def printed_rows(output: str, section: str) -> list[str]:
    rows, inside = [], False
    for line in output.splitlines():
        if line and not line.startswith(" "):
            inside = line.startswith(section)
        elif inside and line.strip():
            rows.append(line.strip())
    return rows


EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


def check_synced(account: Account, pipeline: InProcessPipeline) -> None:
    """The account simulate synced is the one the rules give, field for field, and concrete."""
    problems = agrees(fold(pipeline.commands), account)
    assert not problems, problems[:10]
    deals = account.of("deals")
    contacts = account.of("contacts")
    assert set(contacts) == {BUYER, ABANDONER}, sorted(contacts)
    buyer = contacts[BUYER]
    assert buyer["shopify_customer_id"] == str(CUSTOMER_ID), "the id beyond 2^53 is kept exact"
    assert buyer["firstname"] == "Bob" and buyer["city"] == "Ottawa"
    assert "shopify_customer_created_at" not in buyer, "year 9999 is synced as absent"
    completed = deals[f"cart:{CART_A}"]
    assert completed["dealstage"] == "Processed" and completed["amount"] == "404.95"
    assert completed["shopify_customer_id"] == str(CUSTOMER_ID)
    assert completed["shopify_token"] == "123456abcd" and completed["shopify_cart_token"] == CART_A
    assert str(completed["shopify_abandoned_checkout_url"]).endswith(f"/{TOKEN_A}/recover"), "its checkout's"
    assert completed["shopify_new_customer_order"] == "true", "W1"
    abandoned = deals[f"cart:{CART_B}"]
    assert abandoned["dealstage"] == "Checkout Abandoned" and abandoned["amount"] == "421.88"
    assert abandoned["shopify_abandoned_at"] and abandoned["shopify_abandoned_cart_trigger_at"], "W2"
    assert abandoned["shopify_total_line_items_price"] == "398.00" and abandoned["shopify_currency"] == "USD"
    links = {(a[0][1], a[1][1]) for a in account.associations if a[0][0] == "deals" and a[1][0] == "contacts"}
    assert links == {(f"cart:{CART_A}", BUYER), (f"cart:{CART_B}", ABANDONER)}, links
    assert "product:788032119674292900" in account.of("products")
    product = account.of("products")["product:788032119674292900"]
    assert product["price"] == "19.99" and product["name"] == "Example T-Shirt"
    deal_lines = {a[0][1] for a in account.associations if a[0][0] == "line_items" and a[1][0] == "deals"}
    assert {key.split("|")[0] for key in deal_lines} == {f"cart:{CART_A}", f"cart:{CART_B}"}


def test_mutated_real_payloads_sync_everything_that_parses_and_lose_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    lines = scenario(mutated=True)
    pipeline, report = expected(lines)
    code, output, account = simulate(tmp_path, kafka_bootstrap, lines)
    assert code == 0, output[-3000:]
    assert not pipeline.dead_letters, "the rules lose nothing either"
    assert "Nothing lost: 0 records lost" in output, output[-3000:]
    # Field problems by topic, path and reason, as the rules find them; parked deliveries too.
    printed = printed_rows(output, "Field problems")
    assert printed == report_rows(report, "Field problems"), output[-3000:]
    paths = {(row.split()[1], row.split()[2]) for row in printed}
    assert {
        ("checkouts/create", "shipping_address"), ("orders/create", "customer.total_spent"),
        ("customers/create", "created_at"),
    } <= paths, printed  # fmt: skip
    parked = printed_rows(output, "Parked deliveries")
    assert any("unsupported Shopify topic 'orders/edited'" in row for row in parked), parked
    assert any("unsupported Shopify topic 'orders/risk_assessment_changed'" in row for row in parked), parked
    assert "2 parked" in output
    assert not EMAIL.findall(output.replace(str(tmp_path), "")), "reasons never print payload values"
    check_synced(account, pipeline)
    # Every field other than the mutated ones synced as the clean payloads would have synced it.
    clean, _ = expected(scenario(mutated=False))
    differences = agrees(fold(clean.commands), account)
    created = "expected '2026-03-01T13:00:00.000Z', held None"  # the year-9999 field, synced as absent
    assert differences == [f"('contacts', '{BUYER}') shopify_customer_created_at: {created}"], differences


def test_a_delivery_whose_identity_is_broken_is_the_only_loss_and_exits_3(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    lines = scenario(mutated=True, broken_identity=True)
    pipeline, report = expected(lines)
    assert len(pipeline.dead_letters) == 1
    code, output, account = simulate(tmp_path, kafka_bootstrap, lines)
    assert code == EXIT_LOSS, output[-3000:]
    assert "LOSS: 1 record lost" in output, output[-3000:]
    dead = printed_rows(output, "Dead letters")
    assert dead == report_rows(report, "Dead letters"), output[-3000:]
    assert len(dead) == 1 and "shopify.deadletter" in dead[0] and "orders/create" in dead[0], dead
    assert "identity unreadable (id)" in dead[0] and "not an integer" in dead[0], dead
    assert "not-a-number" not in output and LOST_BUYER not in output, "the reason names no value"
    assert not EMAIL.findall(output.replace(str(tmp_path), "")), "reasons never print payload values"
    assert printed_rows(output, "Field problems") == report_rows(report, "Field problems")
    check_synced(account, pipeline)
