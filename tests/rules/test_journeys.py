"""The journey rules (SPEC D1-D7, P2, P4, W1, W2, W4) as pure functions, without Kafka.

Every Shopify body comes from the sample-store builders; every instant is passed explicitly as
``now`` (time is data, nothing sleeps). The property tests at the end check what the design card
promises of the processor: idempotent commands, convergence whatever the arrival order, and replay.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.rules import RuleConfig
from devtools.localrun import delivery_for
from devtools.samplestore import (
    PRODUCTS,
    Line,
    SampleEvent,
    cart_body,
    checkout_body,
    customer_body,
    order_body,
    product_body,
    stable_id,
    token,
)
from schemas.commands import AnyCommand, Archive, Associate, Dissociate, PropertyValue, RecordRef, Upsert
from schemas.envelope import Delivery
from schemas.shopify import Cart, Checkout, CheckoutDeleted, Order
from streams.mapping import DEAL_FIELDS, format_value
from streams.rules import journeys
from streams.rules.common import body_digest
from streams.rules.journeys import (
    DEAL_TO_CONTACT,
    LINE_ITEM_TO_DEAL,
    DealView,
    FirstPurchase,
    JourneyState,
)
from streams.rules.keys import contact_ref, deal_ref, journey_key, line_item_ref

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CONFIG = RuleConfig()
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)

PRODUCT_BODIES = [
    product_body(stable_id("product", "journeys", i), spec, T0 - timedelta(days=30))
    for i, spec in enumerate(PRODUCTS)
]

RAW_EMAIL = "Ada.Lovelace@Example.com"  # as the buyer typed it
EMAIL = "ada.lovelace@example.com"  # the contact key (C1: de-duplicated by normalised email)
OTHER_EMAIL = "grace.hopper@example.com"
CUSTOMER = customer_body(stable_id("customer", "ada"), RAW_EMAIL, "Ada", "Lovelace", T0 - timedelta(days=3))
CART = token("cart", "journeys", "ada")
CHECKOUT = token("checkout", "journeys", "ada")
ORDER_ID = stable_id("order", "journeys", "ada")
KEY = f"cart:{CART}"
DEAL = deal_ref(KEY)


def line(product: int, variant: int = 0, quantity: int = 1) -> Line:
    body = PRODUCT_BODIES[product]
    return Line(body, body["variants"][variant], quantity)


SUNGLASSES = line(0, 0, 1)
SHIRTS = line(1, 1, 2)
SHOES = line(3, 2, 1)
BASKET = (SUNGLASSES, SHIRTS)


def variant_key(item: Line) -> str:
    return f"variant:{item.variant['id']}"


# --- payloads (built by the sample store) and deliveries -----------------------------------------


def checkout_at(
    at: datetime,
    *,
    email: str | None = RAW_EMAIL,
    lines: Sequence[Line] = BASKET,
    completed: bool = False,
    cart_token: str = CART,
) -> dict[str, Any]:
    """A checkout version updated at ``at`` (created at T0)."""
    return checkout_body(
        CHECKOUT, cart_token, list(lines), at, T0,
        customer=CUSTOMER if email == RAW_EMAIL else None, email=email,
        completed_at=at if completed else None,
    )  # fmt: skip


def order_at(
    at: datetime,
    *,
    financial_status: str = "paid",
    fulfillment_status: str | None = None,
    cancelled_at: datetime | None = None,
    email: str | None = RAW_EMAIL,
    lines: Sequence[Line] = BASKET,
    cart_token: str | None = CART,
    checkout_token: str | None = CHECKOUT,
    created: datetime | None = None,
) -> dict[str, Any]:
    """An order version updated at ``at``."""
    return order_body(
        ORDER_ID, 1, list(lines), created or at,
        customer=CUSTOMER if email == RAW_EMAIL else None, email=email,
        checkout_token=checkout_token, cart_token=cart_token, financial_status=financial_status,
        fulfillment_status=fulfillment_status, cancelled_at=cancelled_at,
        cancel_reason="customer" if cancelled_at else None, updated_at=at,
    )  # fmt: skip


def cart_at(at: datetime, lines: Sequence[Line] = BASKET) -> dict[str, Any]:
    return cart_body(CART, list(lines), at, T0 - 5 * MINUTE)


def checkout_deleted() -> dict[str, Any]:
    """A ``checkouts/delete`` body: the identity fields of the checkout."""
    body = checkout_at(T0)
    return {k: body[k] for k in ("id", "token", "cart_token")}


def order_deleted() -> dict[str, Any]:
    """An ``orders/delete`` body: just the order id."""
    return {"id": order_at(T0)["id"]}


def delivery(topic: str, body: dict[str, Any], at: datetime, event_id: str | None = None) -> Delivery:
    """The envelope the bridge appends: ``at`` is both Shopify's triggered-at and received-at."""
    eid = event_id or f"ev-{token(topic, body_digest(body), at.isoformat())}"
    return delivery_for(SampleEvent(at=at, topic=topic, body=body, event_id=eid))


def checkout_event(at: datetime, **kwargs: Any) -> Delivery:
    return delivery("checkouts/update", checkout_at(at, **kwargs), at)


def order_event(at: datetime, topic: str = "orders/updated", **kwargs: Any) -> Delivery:
    return delivery(topic, order_at(at, **kwargs), at)


def cart_event(at: datetime, lines: Sequence[Line] = BASKET) -> Delivery:
    return delivery("carts/update", cart_at(at, lines), at)


# --- running one journey --------------------------------------------------------------------------


@dataclass
class Journey:
    """One journey's state fed like the worker feeds it: ``now`` is the newest instant seen."""

    key: str = KEY
    config: RuleConfig = CONFIG
    state: JourneyState = field(init=False)
    now: datetime | None = None
    log: list[AnyCommand] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state = JourneyState(key=self.key)

    def _advance(self, at: datetime) -> datetime:
        self.now = at if self.now is None or at > self.now else self.now
        return self.now

    def deliver(self, item: Delivery) -> list[AnyCommand]:
        outcome = journeys.decide(self.state, item, self._advance(item.received_at), self.config)
        self.state = outcome.state
        self.log += outcome.commands
        return outcome.commands

    def tick(self, at: datetime) -> list[AnyCommand]:
        outcome = journeys.on_tick(self.state, self._advance(at), self.config)
        self.state = outcome.state
        self.log += outcome.commands
        return outcome.commands

    def feed(self, inputs: Iterable[Delivery | datetime]) -> list[AnyCommand]:
        out: list[AnyCommand] = []
        for item in inputs:
            out += self.tick(item) if isinstance(item, datetime) else self.deliver(item)
        return out

    @property
    def deal(self) -> dict[str, PropertyValue]:
        return dict(self.state.emitted.properties)


def deal_upserts(commands: Iterable[AnyCommand]) -> list[Upsert]:
    return [c for c in commands if isinstance(c, Upsert) and c.record.object_type == "deals"]


def archived(commands: Iterable[AnyCommand]) -> list[RecordRef]:
    return [c.record for c in commands if isinstance(c, Archive)]


def contact_links(commands: Iterable[AnyCommand]) -> list[AnyCommand]:
    return [c for c in commands if isinstance(c, Associate | Dissociate) and c.to.object_type == "contacts"]


@dataclass
class Account:
    """What a HubSpot account holds after applying commands in order (the writer's meaning)."""

    records: dict[str, dict[str, str]] = field(default_factory=dict)
    refs: dict[str, RecordRef] = field(default_factory=dict)
    links: set[tuple[str, str, int]] = field(default_factory=set)

    def apply(self, commands: Iterable[AnyCommand]) -> Account:
        for command in commands:
            key = command.record.key
            if isinstance(command, Upsert):
                props = self.records.setdefault(key, {})
                self.refs[key] = command.record
                for name, value in command.properties.items():
                    if value is None:
                        props.pop(name, None)
                    else:
                        props[name] = value
            elif isinstance(command, Archive):  # archived: gone, with its associations
                self.records.pop(key, None)
                self.links = {link for link in self.links if key not in link[:2]}
            elif isinstance(command, Associate):
                assert key in self.records, f"associating {key} before it was upserted"
                if command.to.object_type != "contacts":  # contacts come from the contact rules
                    assert command.to.key in self.records, f"associating to {command.to.key} before upsert"
                self.refs[command.to.key] = command.to
                self.links.add((key, command.to.key, command.association_type_id))
            elif isinstance(command, Dissociate):
                self.links.discard((key, command.to.key, command.association_type_id))
        return self

    def view(self, journey: str) -> tuple[object, ...] | None:
        """The journey's deal, its line items and its contacts, as HubSpot holds them."""
        deal = deal_ref(journey).key
        if deal not in self.records:
            return None
        lines = {
            self.refs[src].id_value.split("|", 1)[1]: self.records[src]
            for src, dst, kind in self.links
            if dst == deal and kind == LINE_ITEM_TO_DEAL
        }
        contacts = {
            self.refs[dst].id_value
            for src, dst, kind in self.links
            if src == deal and kind == DEAL_TO_CONTACT
        }
        return self.records[deal], lines, contacts


def expected_view(journey: str, view: DealView) -> tuple[object, ...] | None:
    """What the account should hold for ``view`` (None values are cleared properties)."""
    if not view.exists:
        return None
    lines = {
        k: {n: v for n, v in {**p, "shopify_line_item_key": f"{journey}|{k}"}.items() if v is not None}
        for k, p in view.lines.items()
    }
    props = {n: v for n, v in view.properties.items() if v is not None}
    return props, lines, {view.contact} if view.contact else set()


# --- D1: stages ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("financial", "fulfillment", "cancelled", "stage"),
    [
        ("pending", None, False, "Checkout Completed"),
        ("authorized", None, False, "Checkout Completed"),
        ("paid", None, False, "Processed"),
        ("partially_paid", None, False, "Processed"),
        ("paid", "partial", False, "Processed"),
        ("paid", "fulfilled", False, "Shipped"),
        ("refunded", None, True, "Cancelled"),
        ("paid", "fulfilled", True, "Cancelled"),
        ("voided", None, False, "Cancelled"),
        ("expired", None, False, "Cancelled"),
    ],
)
def test_d1_order_stage_follows_financial_fulfillment_and_cancellation(
    financial: str, fulfillment: str | None, cancelled: bool, stage: str
) -> None:
    """D1: completed-not-paid -> Checkout Completed, paid -> Processed, fulfilled -> Shipped,
    cancelled_at or voided -> Cancelled."""
    body = order_at(
        T0, financial_status=financial, fulfillment_status=fulfillment, cancelled_at=T0 if cancelled else None
    )
    assert journeys.order_stage(Order.model_validate(body)) == stage


def test_d1_unknown_financial_status_is_treated_like_pending_not_an_error() -> None:
    """D1 (and L1): a financial status Shopify adds later keeps the deal at Checkout Completed and is
    synced as Shopify sends it."""
    body = order_at(T0, financial_status="pending_review_by_bank")
    assert journeys.order_stage(Order.model_validate(body)) == "Checkout Completed"
    run = Journey()
    commands = run.deliver(delivery("orders/create", body, T0))
    (upsert,) = deal_upserts(commands)
    assert upsert.properties["dealstage"] == "Checkout Completed"
    assert upsert.properties["shopify_financial_status"] == "pending_review_by_bank"


def test_d1_checkout_not_completed_is_checkout_pending_in_the_ecommerce_pipeline() -> None:
    """D1: a fresh checkout is a deal in stage Checkout Pending of the product's pipeline."""
    run = Journey()
    (upsert,) = deal_upserts(run.deliver(checkout_event(T0)))
    assert upsert.record == DEAL
    assert upsert.properties["dealstage"] == "Checkout Pending"
    assert upsert.properties["pipeline"] == CONFIG.pipeline_label
    assert upsert.properties["shopify_deal_key"] == KEY


def test_d1_completed_checkout_is_checkout_completed() -> None:
    """D1: a checkout with completed_at (no order seen yet) is Checkout Completed, never abandoned."""
    run = Journey()
    run.deliver(checkout_event(T0, completed=True))
    assert run.deal["dealstage"] == "Checkout Completed"
    assert journeys.timers(run.state, CONFIG) == {}
    assert run.tick(T0 + timedelta(days=3)) == []


@pytest.mark.parametrize("financial", ["pending", "authorized"])
def test_d1_order_not_paid_yet_is_checkout_completed(financial: str) -> None:
    """D1: an order that exists but is pending/authorized is Checkout Completed, not Processed."""
    run = Journey()
    run.deliver(checkout_event(T0))
    run.deliver(order_event(T0 + MINUTE, topic="orders/create", financial_status=financial))
    assert run.deal["dealstage"] == "Checkout Completed"


def test_d1_one_deal_moves_through_processed_shipped_and_cancelled() -> None:
    """D1: the same deal record goes paid -> Processed, fulfilled -> Shipped, cancelled -> Cancelled."""
    run = Journey()
    stages = []
    for item in (
        order_event(T0, topic="orders/create", financial_status="pending"),
        order_event(T0 + MINUTE, topic="orders/paid"),
        order_event(T0 + HOUR, topic="orders/fulfilled", fulfillment_status="fulfilled"),
        order_event(T0 + 2 * HOUR, topic="orders/cancelled", cancelled_at=T0 + 2 * HOUR,
                    financial_status="refunded", fulfillment_status="fulfilled"),
    ):  # fmt: skip
        (upsert,) = deal_upserts(run.deliver(item))
        assert upsert.record == DEAL
        stages.append(upsert.properties["dealstage"])
    assert stages == ["Checkout Completed", "Processed", "Shipped", "Cancelled"]
    assert run.deal["shopify_cancelled_at"] == format_value(T0 + 2 * HOUR)
    assert run.deal["shopify_cancel_reason"] == "customer"


# --- D1: one deal per journey ----------------------------------------------------------------------


def test_d1_journey_key_is_shared_by_the_cart_its_checkout_and_its_order() -> None:
    """D1 (one order, one deal): cart, checkout and order sharing a cart token share a journey key."""
    cart = Cart.model_validate(cart_at(T0))
    checkout = Checkout.model_validate(checkout_at(T0))
    order = Order.model_validate(order_at(T0))
    deleted = CheckoutDeleted.model_validate(checkout_deleted())
    assert journey_key(cart) == journey_key(checkout) == journey_key(order) == journey_key(deleted) == KEY


def test_d1_journey_key_falls_back_to_checkout_token_then_order_id() -> None:
    """D1: without a cart token the checkout token links checkout and order; an order alone is its own
    journey. Distinct purchases never share a key."""
    checkout_body_ = checkout_at(T0)
    checkout_body_["cart_token"] = None
    no_cart_checkout = Checkout.model_validate(checkout_body_)
    no_cart_order = Order.model_validate(order_at(T0, cart_token=None))
    assert journey_key(no_cart_checkout) == journey_key(no_cart_order) == f"checkout:{CHECKOUT}"
    bare = Order.model_validate(order_at(T0, cart_token=None, checkout_token=None))
    assert journey_key(bare) == f"order:{ORDER_ID}"
    other = Order.model_validate(order_at(T0, cart_token=token("cart", "someone else")))
    assert journey_key(other) != KEY


def test_d1_cart_checkout_and_order_of_one_journey_upsert_a_single_deal() -> None:
    """D1/D2: a whole purchase (cart, checkout, completion, order, payment) is one deal record."""
    run = Journey()
    commands = run.feed(
        [
            cart_event(T0 - MINUTE),
            checkout_event(T0),
            checkout_event(T0 + 4 * MINUTE, completed=True),
            order_event(T0 + 4 * MINUTE, topic="orders/create", financial_status="pending"),
            order_event(T0 + 5 * MINUTE, topic="orders/paid"),
        ]
    )
    assert {u.record for u in deal_upserts(commands)} == {DEAL}
    account = Account().apply(commands)
    assert [k for k in account.records if k.startswith("deals:")] == [DEAL.key]
    assert account.records[DEAL.key]["dealstage"] == "Processed"


def test_d1_cart_alone_is_not_a_deal() -> None:
    """D1/D3: a cart without a checkout or order is not (yet) a deal."""
    run = Journey()
    assert run.deliver(cart_event(T0)) == []
    assert not run.state.emitted.exists


def test_d1_d3_recovered_checkout_moves_the_abandoned_deal_forward() -> None:
    """D1/D3/E1: an abandoned checkout later paid is the same deal, now Processed, flagged recovered."""
    run = Journey()
    run.deliver(checkout_event(T0))
    run.tick(T0 + 15 * MINUTE)
    assert run.deal["dealstage"] == "Checkout Abandoned"
    later = T0 + 30 * HOUR
    commands = run.feed([checkout_event(later, completed=True), order_event(later, topic="orders/create")])
    assert {u.record for u in deal_upserts(commands)} == {DEAL}
    assert run.deal["dealstage"] == "Processed"
    assert run.deal["shopify_recovered_checkout"] == "true"
    assert run.deal["shopify_abandoned_at"] == format_value(T0 + 15 * MINUTE)


def test_d1_checkout_completed_without_abandonment_is_not_recovered() -> None:
    """D1/E1: a checkout completed within the abandon window is not a recovered checkout."""
    run = Journey()
    run.feed([checkout_event(T0), order_event(T0 + 5 * MINUTE, topic="orders/create")])
    run.tick(T0 + timedelta(days=2))
    assert run.deal["shopify_recovered_checkout"] is None
    assert run.deal["shopify_abandoned_at"] is None


# --- D2, P2: associations and line items -----------------------------------------------------------


def test_d2_p2_deal_is_associated_with_its_contact_and_line_items_with_their_products() -> None:
    """D2: deal -> contact (type 3, by normalised email), line item -> deal (type 20); P2: each line
    item carries product id, variant id, SKU, quantity and price."""
    run = Journey()
    commands = run.deliver(order_event(T0, topic="orders/create"))
    assert contact_links(commands) == [
        Associate(record=DEAL, to=contact_ref(EMAIL), association_type_id=DEAL_TO_CONTACT)
    ]
    assert DEAL_TO_CONTACT == 3 and LINE_ITEM_TO_DEAL == 20
    for item in BASKET:
        ref = line_item_ref(KEY, variant_key(item))
        (upsert,) = [c for c in commands if isinstance(c, Upsert) and c.record == ref]
        assert upsert.properties["shopify_product_id"] == str(item.product["id"])
        assert upsert.properties["shopify_variant_id"] == str(item.variant["id"])
        assert upsert.properties["hs_sku"] == item.variant["sku"]
        assert upsert.properties["quantity"] == str(item.quantity)
        assert upsert.properties["price"] == item.variant["price"]
        assert Associate(record=ref, to=DEAL, association_type_id=LINE_ITEM_TO_DEAL) in commands
    account = Account().apply(commands)
    assert account.view(KEY) == expected_view(KEY, run.state.emitted)


def test_d2_c1_contact_of_a_checkout_that_later_gives_an_email_is_associated() -> None:
    """D2/C1: a deal whose checkout had no email gets its contact once the buyer gives one."""
    run = Journey()
    assert contact_links(run.deliver(checkout_event(T0, email=None))) == []
    commands = run.deliver(checkout_event(T0 + MINUTE))
    assert contact_links(commands) == [
        Associate(record=DEAL, to=contact_ref(EMAIL), association_type_id=DEAL_TO_CONTACT)
    ]


def test_p2_lines_of_keys_lines_by_variant_and_sums_repeated_variants() -> None:
    """P2: one line item per variant (quantities summed), sorted keys, money kept as Decimal."""
    order = Order.model_validate(order_at(T0, lines=[SHIRTS, SUNGLASSES, line(1, 1, 3)]))
    lines = journeys.lines_of(order.line_items)
    assert [ln.key for ln in lines] == sorted([variant_key(SHIRTS), variant_key(SUNGLASSES)])
    by_key = {ln.key: ln for ln in lines}
    assert by_key[variant_key(SHIRTS)].quantity == 2 + 3
    assert by_key[variant_key(SUNGLASSES)].price == Decimal(SUNGLASSES.variant["price"])
    assert by_key[variant_key(SHIRTS)].sku == SHIRTS.variant["sku"]


def test_p2_lines_of_falls_back_to_product_then_sku_key() -> None:
    """P2: a line without a variant is keyed by its product, one without either by its SKU."""
    body = order_at(T0, lines=[SUNGLASSES, SHIRTS])
    body["line_items"][0]["variant_id"] = None
    body["line_items"][1]["variant_id"] = None
    body["line_items"][1]["product_id"] = None
    keys = [ln.key for ln in journeys.lines_of(Order.model_validate(body).line_items)]
    assert sorted(keys) == sorted([f"product:{SUNGLASSES.product['id']}", f"sku:{SHIRTS.variant['sku']}"])


# --- D3: abandoned checkouts -----------------------------------------------------------------------


def test_d3_checkout_with_email_is_abandoned_abandon_after_its_last_update() -> None:
    """D3: a checkout with an email, not completed nor updated for 15 min, becomes Checkout Abandoned
    with abandoned_at = last update + abandon_after; each update restarts the clock."""
    run = Journey()
    run.deliver(checkout_event(T0))
    run.deliver(checkout_event(T0 + 10 * MINUTE, lines=[SUNGLASSES, SHIRTS, SHOES]))
    assert journeys.timers(run.state, CONFIG) == {"abandon": T0 + 25 * MINUTE}
    assert run.tick(T0 + 25 * MINUTE - timedelta(seconds=1)) == []
    (upsert,) = deal_upserts(run.tick(T0 + 25 * MINUTE))
    assert upsert.properties["dealstage"] == "Checkout Abandoned"
    assert upsert.properties["shopify_abandoned_at"] == format_value(T0 + 25 * MINUTE)
    assert run.state.abandoned_at == T0 + 25 * MINUTE


def test_d3_abandonment_found_late_is_dated_when_it_happened() -> None:
    """D3: a worker that only looks hours later still dates the abandonment at last update + 15 min
    (the timer records its due time, not the tick's)."""
    run = Journey()
    run.deliver(checkout_event(T0))
    run.tick(T0 + 5 * HOUR)
    assert run.deal["shopify_abandoned_at"] == format_value(T0 + 15 * MINUTE)


def test_d3_d4_checkout_without_email_is_never_abandoned() -> None:
    """D3/D4: without an email there is nobody to recover: no abandon timer, only the cleanup."""
    run = Journey()
    run.deliver(checkout_event(T0, email=None))
    assert journeys.timers(run.state, CONFIG) == {"pending-cleanup": T0 + 48 * HOUR}
    assert run.tick(T0 + HOUR) == []
    assert run.deal["dealstage"] == "Checkout Pending"


# --- D4: pending cleanup and checkouts/delete ------------------------------------------------------


def test_d4_pending_deal_without_email_is_archived_after_pending_cleanup_after() -> None:
    """D4: a pending checkout never promoted to abandoned leaves the pipeline after 48 h: its line
    items and deal are archived."""
    run = Journey()
    run.deliver(checkout_event(T0, email=None))
    assert run.tick(T0 + 48 * HOUR - timedelta(seconds=1)) == []
    commands = run.tick(T0 + 48 * HOUR)
    assert commands == [
        Archive(record=line_item_ref(KEY, k)) for k in sorted(variant_key(i) for i in BASKET)
    ] + [Archive(record=DEAL)]
    assert not run.state.emitted.exists
    assert run.tick(T0 + 96 * HOUR) == []
    assert Account().apply(run.log).view(KEY) is None


def test_d4_archived_pending_deal_is_upserted_again_when_the_checkout_gets_an_email() -> None:
    """D4: a checkout archived for lacking an email that later gets one carries on: the deal comes
    back in full (properties, line items, contact), and is abandoned in turn (D3)."""
    run = Journey()
    run.deliver(checkout_event(T0, email=None))
    run.tick(T0 + 48 * HOUR)
    later = T0 + 50 * HOUR
    commands = run.deliver(checkout_event(later))
    (upsert,) = deal_upserts(commands)
    assert upsert.properties["dealstage"] == "Checkout Pending"
    assert Account().apply(run.log).view(KEY) == expected_view(KEY, run.state.emitted)
    assert Associate(record=DEAL, to=contact_ref(EMAIL), association_type_id=3) in commands
    run.tick(later + 15 * MINUTE)
    assert run.deal["dealstage"] == "Checkout Abandoned"


def test_d4_email_given_after_the_cleanup_gives_the_same_deal_in_either_arrival_order() -> None:
    """D4 + Shape (convergence): whether or not the email-less version was seen (and cleaned up)
    before the version with an email, the journey ends with the same deal."""
    first, second = checkout_event(T0, email=None), checkout_event(T0 + 50 * HOUR)
    in_order, reversed_ = Journey(), Journey()
    in_order.feed([first, second])
    reversed_.feed([second, first])
    assert in_order.state.archived_at == T0 + 48 * HOUR  # the cleanup did happen in between
    assert in_order.state.emitted == reversed_.state.emitted
    assert in_order.state.emitted.exists


def test_d4_archived_pending_deal_is_upserted_again_when_the_checkout_completes() -> None:
    """D4: an archived pending deal whose checkout completes (and is ordered) is upserted again with
    everything, as if it had never left the pipeline."""
    run = Journey()
    run.deliver(checkout_event(T0, email=None))
    run.tick(T0 + 48 * HOUR)
    later = T0 + 60 * HOUR
    run.deliver(checkout_event(later, email=None, completed=True))
    assert run.deal["dealstage"] == "Checkout Completed"
    run.deliver(order_event(later, topic="orders/create"))
    assert run.deal["dealstage"] == "Processed"
    assert Account().apply(run.log).view(KEY) == expected_view(KEY, run.state.emitted)


def test_d4_checkouts_delete_archives_a_still_pending_deal() -> None:
    """D4: ``checkouts/delete`` of a checkout still pending removes its deal from the pipeline, and
    the checkout is no longer abandoned or cleaned up afterwards."""
    run = Journey()
    run.deliver(checkout_event(T0))
    commands = run.deliver(delivery("checkouts/delete", checkout_deleted(), T0 + 5 * MINUTE))
    assert Archive(record=DEAL) in commands
    assert journeys.timers(run.state, CONFIG) == {}
    assert run.tick(T0 + timedelta(days=5)) == []


def test_d4_c3_checkouts_delete_leaves_an_abandoned_deal() -> None:
    """D4 (like C3): a deleted checkout that was already abandoned keeps its deal."""
    run = Journey()
    run.deliver(checkout_event(T0))
    run.tick(T0 + 15 * MINUTE)
    commands = run.deliver(delivery("checkouts/delete", checkout_deleted(), T0 + HOUR))
    assert commands == []
    assert run.state.emitted.exists and run.deal["dealstage"] == "Checkout Abandoned"


# --- D5: orders/delete -----------------------------------------------------------------------------


def test_d5_deleted_order_is_cancelled_at_the_deletion_time() -> None:
    """D5: ``orders/delete`` sets the deal to Cancelled with Cancelled at = the deletion's time."""
    run = Journey()
    run.deliver(order_event(T0, topic="orders/create"))
    deleted_at = T0 + 8 * HOUR
    (upsert,) = deal_upserts(run.deliver(delivery("orders/delete", order_deleted(), deleted_at)))
    assert upsert.record == DEAL
    assert upsert.properties["dealstage"] == "Cancelled"
    assert upsert.properties["shopify_cancelled_at"] == format_value(deleted_at)


def test_d5_late_order_update_after_the_delete_does_not_resurrect_the_deal() -> None:
    """D5: an ``orders/updated`` arriving after the delete never moves the deal out of Cancelled,
    nor changes its cancellation; its newer Shopify values are still folded in, so that every
    arrival order of the same versions ends with the same deal."""
    run = Journey()
    run.deliver(order_event(T0, topic="orders/create"))
    run.deliver(delivery("orders/delete", order_deleted(), T0 + 8 * HOUR))
    cancelled_at = run.deal["shopify_cancelled_at"]
    late = order_event(T0 + 9 * HOUR, fulfillment_status="fulfilled")
    commands = run.deliver(late)
    assert run.deal["dealstage"] == "Cancelled"
    assert run.deal["shopify_cancelled_at"] == cancelled_at
    assert all(not isinstance(c, Upsert) or "dealstage" not in c.properties for c in commands)
    assert not [c for c in commands if not isinstance(c, Upsert)], "no archive, no re-association"


# --- D6: deal properties ---------------------------------------------------------------------------


def test_d6_deal_properties_come_from_the_order_and_its_checkout() -> None:
    """D6: every mapped deal property is synced; the order's values win, the checkout's fill gaps
    (the abandoned-checkout URL an order does not carry)."""
    run = Journey()
    run.deliver(checkout_event(T0))
    order = order_at(T0 + 5 * MINUTE)
    run.deliver(delivery("orders/create", order, T0 + 5 * MINUTE))
    deal = run.deal
    assert {f.hubspot_property for f in DEAL_FIELDS} <= set(deal)
    assert deal["dealname"] == order["name"] == "#1001"
    assert deal["amount"] == order["total_price"]
    assert deal["shopify_subtotal_price"] == order["subtotal_price"]
    assert deal["shopify_total_tax"] == order["total_tax"]
    assert deal["shopify_financial_status"] == "paid"
    assert deal["shopify_order_number"] == "1001"
    assert deal["shopify_cart_token"] == CART
    assert deal["shopify_token"] == order["token"]
    assert deal["shopify_currency"] == "USD"
    assert deal["shopify_customer_id"] == str(CUSTOMER["id"])
    assert deal["shopify_created_at"] == format_value(T0 + 5 * MINUTE)
    assert deal["shopify_abandoned_checkout_url"] == checkout_at(T0)["abandoned_checkout_url"]


# --- D7: orders without an email -------------------------------------------------------------------


def test_d7_order_without_email_is_a_deal_with_no_contact() -> None:
    """D7: an order whose customer has no email becomes a deal with no associated contact."""
    key = f"order:{ORDER_ID}"
    run = Journey(key=key)
    commands = run.deliver(
        order_event(T0, topic="orders/create", email=None, cart_token=None, checkout_token=None)
    )
    (upsert,) = deal_upserts(commands)
    assert upsert.record == deal_ref(key) and upsert.properties["dealstage"] == "Processed"
    assert contact_links(commands) == []
    assert run.state.emitted.contact is None
    assert len([c for c in commands if isinstance(c, Associate)]) == len(BASKET)  # line items only


# --- P4: removed items -----------------------------------------------------------------------------


def test_p4_item_removed_from_the_checkout_archives_its_line_item() -> None:
    """P4: a product removed from the checkout has its line item removed from the deal."""
    run = Journey()
    run.deliver(checkout_event(T0))
    commands = run.deliver(checkout_event(T0 + MINUTE, lines=[SUNGLASSES]))
    assert archived(commands) == [line_item_ref(KEY, variant_key(SHIRTS))]
    assert set(run.state.emitted.lines) == {variant_key(SUNGLASSES)}


def test_p4_item_removed_from_the_cart_archives_its_line_item() -> None:
    """P4: a product removed from the cart (after the checkout began) is removed from the deal; a
    quantity change updates the line item rather than archiving it."""
    run = Journey()
    run.deliver(checkout_event(T0))
    commands = run.deliver(cart_event(T0 + MINUTE, lines=[line(1, 1, 5)]))
    assert archived(commands) == [line_item_ref(KEY, variant_key(SUNGLASSES))]
    (line_upsert,) = [c for c in commands if isinstance(c, Upsert) and c.record.object_type == "line_items"]
    assert line_upsert.record == line_item_ref(KEY, variant_key(SHIRTS))
    assert line_upsert.properties["quantity"] == "5"
    assert Account().apply(run.log).view(KEY) == expected_view(KEY, run.state.emitted)


# --- W2, W4: the abandoned-cart trigger ------------------------------------------------------------


def test_w2_abandoned_cart_trigger_is_set_24_hours_after_abandonment() -> None:
    """W2: shopify_abandoned_cart_trigger_at = abandoned_at + 24 h, set once when due."""
    run = Journey()
    run.deliver(checkout_event(T0))
    run.tick(T0 + 15 * MINUTE)
    due = T0 + 15 * MINUTE + 24 * HOUR
    assert journeys.timers(run.state, CONFIG) == {"abandoned-cart": due}
    assert run.tick(due - timedelta(seconds=1)) == []
    (upsert,) = deal_upserts(run.tick(due))
    assert upsert.properties["shopify_abandoned_cart_trigger_at"] == format_value(due)
    assert run.tick(due + HOUR) == []
    assert journeys.timers(run.state, CONFIG) == {}


def test_w2_no_trigger_when_the_checkout_was_completed_first() -> None:
    """W2: "unless the checkout was completed first": an order before the 24 h cancels the trigger."""
    run = Journey()
    run.deliver(checkout_event(T0))
    run.tick(T0 + 15 * MINUTE)
    run.deliver(order_event(T0 + 2 * HOUR, topic="orders/create"))
    assert journeys.timers(run.state, CONFIG) == {}
    run.tick(T0 + 3 * 24 * HOUR)
    assert run.deal["shopify_abandoned_cart_trigger_at"] is None
    assert run.state.abandoned_cart_fired_at is None


def test_w2_trigger_due_longer_ago_than_trigger_grace_is_recorded_but_not_written() -> None:
    """W2: a trigger found due more than trigger_grace ago (a worker down for days) is recorded, so
    it never fires again, but not written: nobody is emailed about a stale cart."""
    run = Journey()
    run.deliver(checkout_event(T0))
    due = T0 + 15 * MINUTE + 24 * HOUR
    run.tick(due + CONFIG.trigger_grace + timedelta(seconds=1))
    assert run.state.abandoned_cart_fired_at == due and run.state.abandoned_cart_late
    assert run.deal["dealstage"] == "Checkout Abandoned"
    assert run.deal["shopify_abandoned_cart_trigger_at"] is None
    assert all(u.properties.get("shopify_abandoned_cart_trigger_at") is None for u in deal_upserts(run.log))
    assert journeys.timers(run.state, CONFIG) == {}


def test_w2_trigger_within_trigger_grace_is_written() -> None:
    """W2: a trigger found due exactly trigger_grace ago is still written."""
    run = Journey()
    run.deliver(checkout_event(T0))
    due = T0 + 15 * MINUTE + 24 * HOUR
    run.tick(due + CONFIG.trigger_grace)
    assert run.deal["shopify_abandoned_cart_trigger_at"] == format_value(due)


def test_w4_abandon_trigger_and_cleanup_delays_are_configurable() -> None:
    """W4: abandon_after, abandoned_cart_delay and pending_cleanup_after come from RuleConfig."""
    config = RuleConfig(
        abandon_after=5 * MINUTE, abandoned_cart_delay=2 * HOUR, pending_cleanup_after=6 * HOUR
    )
    run = Journey(config=config)
    run.deliver(checkout_event(T0))
    assert journeys.timers(run.state, config) == {"abandon": T0 + 5 * MINUTE}
    run.tick(T0 + 5 * MINUTE)
    assert run.deal["shopify_abandoned_at"] == format_value(T0 + 5 * MINUTE)
    run.tick(T0 + 5 * MINUTE + 2 * HOUR)
    assert run.deal["shopify_abandoned_cart_trigger_at"] == format_value(T0 + 5 * MINUTE + 2 * HOUR)

    no_email = Journey(config=config)
    no_email.deliver(checkout_event(T0, email=None))
    assert journeys.timers(no_email.state, config) == {"pending-cleanup": T0 + 6 * HOUR}
    assert Archive(record=DEAL) in no_email.tick(T0 + 6 * HOUR)


def test_w2_fire_applies_every_due_timer_in_order_and_only_once() -> None:
    """W2/D3: ``fire`` applies abandon then the trigger when both are due; firing again is a no-op."""
    run = Journey()
    run.deliver(checkout_event(T0))
    now = T0 + 24 * HOUR + 20 * MINUTE
    fired = journeys.fire(run.state, now, CONFIG)
    assert fired.abandoned_at == T0 + 15 * MINUTE
    assert fired.abandoned_cart_fired_at == T0 + 15 * MINUTE + 24 * HOUR
    assert not fired.abandoned_cart_late
    assert journeys.fire(fired, now, CONFIG) == fired
    assert journeys.fire(run.state, T0 + 14 * MINUTE, CONFIG) == run.state


# --- W1: first purchase ----------------------------------------------------------------------------


def test_w1_first_purchase_fact_marks_the_deal_once() -> None:
    """W1: the contact rules' first-purchase fact sets shopify_new_customer_order; a repeated fact
    changes nothing; a later correction unsets it."""
    run = Journey()
    run.deliver(order_event(T0, topic="orders/create"))
    fact = FirstPurchase(event_id="fp-1", journey=KEY, first=True, at=T0)
    outcome = journeys.decide_first_purchase(run.state, fact, T0, CONFIG)
    (upsert,) = deal_upserts(outcome.commands)
    assert upsert.properties == {"shopify_new_customer_order": "true", "shopify_deal_key": KEY}
    again = journeys.decide_first_purchase(outcome.state, fact, T0, CONFIG)
    assert again.commands == [] and again.state == outcome.state
    undo = FirstPurchase(event_id="fp-2", journey=KEY, first=False, at=T0 + HOUR)
    (upsert,) = deal_upserts(journeys.decide_first_purchase(outcome.state, undo, T0 + HOUR, CONFIG).commands)
    assert upsert.properties["shopify_new_customer_order"] == "false"


# --- render and diff -------------------------------------------------------------------------------


def test_d1_render_of_an_empty_journey_is_no_deal_and_diff_emits_nothing() -> None:
    """D1: a journey with neither checkout nor order renders no deal; no-op diffs are empty."""
    state = JourneyState(key=KEY)
    assert journeys.render(state, CONFIG) == DealView(exists=False)
    assert journeys.diff(KEY, DealView(), DealView()) == []
    run = Journey()
    run.deliver(order_event(T0))
    view = run.state.emitted
    assert journeys.diff(KEY, view, view) == []
    assert journeys.render(run.state, CONFIG) == view


def test_d6_diff_sends_only_changed_properties_with_the_unique_key() -> None:
    """D6 (idempotent upserts): an update sends the changed properties plus the deal's unique key."""
    run = Journey()
    run.deliver(order_event(T0))
    before = run.state.emitted
    after = replace(before, properties={**before.properties, "dealstage": "Shipped"})
    assert journeys.diff(KEY, before, after) == [
        Upsert(record=DEAL, properties={"dealstage": "Shipped", "shopify_deal_key": KEY})
    ]


def test_d2_diff_moves_the_contact_association_when_the_buyer_email_changes() -> None:
    """D2: the deal is associated with the order's contact; a changed email moves the association."""
    run = Journey()
    run.deliver(checkout_event(T0))
    commands = run.deliver(order_event(T0 + MINUTE, email=OTHER_EMAIL))
    assert contact_links(commands) == [
        Dissociate(record=DEAL, to=contact_ref(EMAIL), association_type_id=DEAL_TO_CONTACT),
        Associate(record=DEAL, to=contact_ref(OTHER_EMAIL), association_type_id=DEAL_TO_CONTACT),
    ]


# --- properties: idempotency, convergence, replay ----------------------------------------------------

EMAILS = st.sampled_from([RAW_EMAIL, None, OTHER_EMAIL])
BASKETS = st.lists(
    st.sampled_from([SUNGLASSES, SHIRTS, SHOES, line(4, 1, 2)]),
    min_size=1,
    max_size=3,
    unique_by=lambda ln: ln.variant["id"],
)
STATUSES = st.sampled_from(["pending", "authorized", "paid", "refunded", "voided", "on_hold"])


def instants(window: timedelta, start: timedelta = timedelta(0)) -> st.SearchStrategy[datetime]:
    """Instants in [T0 + start, T0 + start + window], on a 30-second grid (so ties happen)."""
    steps = int(window / timedelta(seconds=30))
    return st.integers(0, steps).map(lambda n: T0 + start + n * timedelta(seconds=30))


@st.composite
def versions(draw: st.DrawFn, window: timedelta, order_window: timedelta | None = None) -> list[Delivery]:
    """Distinct versions of one journey's cart and checkout updated within ``window``, and of its
    order (often none) within ``order_window``; sometimes a ``checkouts/delete``."""
    early = instants(window)
    late = instants(order_window or window)
    usual = draw(EMAILS)  # the buyer's usual answer; now and then a version differs
    emails = st.one_of(st.just(usual), st.just(usual), st.just(usual), EMAILS)
    out: list[Delivery] = []
    for _ in range(draw(st.integers(1, 4))):
        at, email, lines = draw(early), draw(emails), draw(BASKETS)
        out.append(checkout_event(at, email=email, lines=lines, completed=draw(st.integers(0, 3)) == 0))
    placed = draw(late)  # when the order (if any) was created; its versions are not older
    for _ in range(draw(st.sampled_from([0, 0, 1, 2, 3]))):
        at = max(placed, draw(late))
        fulfilled = draw(st.booleans())
        out.append(
            order_event(at, topic=draw(st.sampled_from(["orders/create", "orders/updated", "orders/paid"])),
                        financial_status=draw(STATUSES), email=draw(EMAILS), lines=draw(BASKETS),
                        fulfillment_status="fulfilled" if fulfilled else None,
                        cancelled_at=at if draw(st.booleans()) else None, created=placed)
        )  # fmt: skip
    for _ in range(draw(st.integers(0, 2))):
        out.append(cart_event(draw(early), lines=draw(BASKETS)))
    if draw(st.integers(0, 3)) == 0:
        out.append(delivery("checkouts/delete", checkout_deleted(), draw(late)))
    return out


@st.composite
def histories(draw: st.DrawFn) -> list[Delivery | datetime]:
    """A journey over days, in arrival order, with ticks in between (timers firing): checkout and
    cart versions in the first hours, the order (if any) minutes or days later."""
    items: list[Delivery | datetime] = list(draw(versions(3 * HOUR, timedelta(days=4))))
    items.sort(key=lambda d: d.received_at if isinstance(d, Delivery) else d)
    ticks = draw(st.lists(st.integers(0, 6 * 24 * 60), max_size=6))
    for minutes in ticks:
        items.append(T0 + timedelta(minutes=minutes))
    items.sort(key=lambda d: d.received_at if isinstance(d, Delivery) else d)
    if draw(st.booleans()):  # an order deletion, after the order is known (the router's guarantee)
        orders = [i for i, d in enumerate(items) if isinstance(d, Delivery) and d.resource == "orders"]
        if orders:
            at_index = draw(st.integers(orders[0] + 1, len(items)))
            last = max(d if isinstance(d, datetime) else d.received_at for d in items[:at_index])
            items.insert(at_index, delivery("orders/delete", order_deleted(), last + MINUTE))
    return items


PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)


@PROPERTY_SETTINGS
@given(histories(), st.data())
def test_idempotent_duplicate_delivery_emits_nothing_and_changes_nothing(
    inputs: list[Delivery | datetime], data: st.DataObject
) -> None:
    """Shape (idempotent commands, Shopify's at-least-once deliveries): a delivery received again,
    right away or during Shopify's 4-hour retry window, emits no command and changes no state."""
    run = Journey()
    deliveries = [i for i, d in enumerate(inputs) if isinstance(d, Delivery)]
    index = data.draw(st.sampled_from(deliveries))
    run.feed(inputs[: index + 1])
    original = inputs[index]
    assert isinstance(original, Delivery)
    retry = original.model_copy(update={"webhook_id": "wh-retry"})  # same event id, another delivery
    state = run.state
    assert run.deliver(retry) == []
    assert run.state == state
    window = original.event_time + 4 * HOUR
    run.feed([d for d in inputs[index + 1 :] if (d if isinstance(d, datetime) else d.event_time) <= window])
    state = run.state
    late = retry.model_copy(update={"received_at": max(run.now or T0, original.received_at)})
    assert run.deliver(late) == []
    assert run.state == state


@PROPERTY_SETTINGS
@given(histories(), st.data())
def test_idempotent_same_version_under_another_event_id_changes_no_view(
    inputs: list[Delivery | datetime], data: st.DataObject
) -> None:
    """Shape/D1: the same record version delivered under another topic or event id (orders/paid and
    orders/updated of one body) emits no command."""
    run = Journey()
    run.feed(inputs)
    records = [d for d in inputs if isinstance(d, Delivery) and d.action != "delete"]
    original = data.draw(st.sampled_from(records))
    assert run.now is not None
    again = delivery(original.topic, original.body, run.now, event_id="ev-again")
    view = run.state.emitted
    assert run.deliver(again) == []
    assert run.state.emitted == view


@PROPERTY_SETTINGS
@given(versions(timedelta(minutes=10)), st.data())
def test_convergence_any_arrival_order_of_versions_gives_the_same_deal(
    items: list[Delivery], data: st.DataObject
) -> None:
    """D1 (one deal, newest version wins) and Shape (replay/reordering across topics): versions of
    one journey's checkout, order and cart arriving within the abandon window, in any order, end in
    the same view; so do the timers that fire afterwards (D3, D4, W2)."""
    in_time_order: list[Delivery] = sorted(items, key=lambda d: (d.received_at, d.event_id))
    reference = Journey()
    reference.feed(in_time_order)
    shuffled = Journey()
    shuffled.feed(data.draw(st.permutations(items)))
    assert shuffled.state.emitted == reference.state.emitted
    assert Account().apply(shuffled.log).view(KEY) == expected_view(KEY, reference.state.emitted)
    later = data.draw(st.integers(1, 5 * 24 * 60).map(lambda m: T0 + 10 * MINUTE + m * MINUTE))
    reference.tick(later)
    shuffled.tick(later)
    assert shuffled.state.emitted == reference.state.emitted


@PROPERTY_SETTINGS
@given(histories())
def test_replay_from_a_fresh_state_rebuilds_the_same_deal(inputs: list[Delivery | datetime]) -> None:
    """Shape (replay of topics to rebuild state): replaying the log from a fresh state ends in the
    same view and the same commands; replaying it onto the built state emits nothing."""
    live = Journey()
    live.feed(inputs)
    rebuilt = Journey()
    rebuilt.feed(inputs)
    assert rebuilt.state == live.state
    assert rebuilt.log == live.log
    assert live.feed(inputs) == []
    assert live.state.emitted == rebuilt.state.emitted


@PROPERTY_SETTINGS
@given(histories())
def test_commands_applied_in_order_realise_the_rendered_view(inputs: list[Delivery | datetime]) -> None:
    """D1/D2/D4/P4: applying every emitted command in order leaves HubSpot holding exactly the rendered
    view: one deal, its current line items only, its current contact, nothing after an archive."""
    run = Journey()
    account = Account()
    for item in inputs:
        account.apply(run.feed([item]))
        assert account.view(KEY) == expected_view(KEY, run.state.emitted)
    assert run.state.emitted == journeys.render(run.state, CONFIG)


@PROPERTY_SETTINGS
@given(histories(), st.integers(0, 7 * 24 * 60))
def test_idempotent_tick_twice_at_the_same_now_emits_nothing(
    inputs: list[Delivery | datetime], minutes: int
) -> None:
    """D3/D4/W2: timers fire once; a retried tick at the same ``now`` emits nothing."""
    run = Journey()
    run.feed(inputs)
    now = max(T0 + timedelta(minutes=minutes), run.now or T0)
    run.tick(now)
    state = run.state
    assert journeys.on_tick(state, now, CONFIG).commands == []
    assert journeys.on_tick(state, now, CONFIG).state == state
    assert all(at > now for at in journeys.timers(state, CONFIG).values())
