"""Deals (SPEC D1-D7), their line items (P2, P4) and the abandoned-cart trigger (W2).

A *journey* is one purchase: the cart, the checkouts made from it and the order that completes
it. They share a key (:func:`journey_key`), so one journey is one deal, never two. The deal's
stage follows the journey:

================== ==========================================================================
Checkout Pending   a checkout exists, not completed, not (yet) abandoned
Checkout Abandoned the checkout has an email and was neither completed nor updated for
                   ``abandon_after`` (default 15 min; Shopify sends no webhook for this)
Checkout Completed the checkout is completed or an order exists that is not paid yet
Processed          the order is paid (also partially paid or refunded in part or in full)
Shipped            the order is fulfilled
Cancelled          the order is cancelled, voided or expired, or deleted in Shopify (D5)
================== ==========================================================================

D4: a pending checkout without an email that is not completed within ``pending_cleanup_after``
(48 h) leaves the pipeline: its deal is archived (HubSpot keeps it restorable for 90 days). If
that checkout later moves on (an email, a completion, an order), the deal is upserted again and
the journey carries on as if nothing had happened. ``checkouts/delete`` archives a deal that is
still pending; a deal that got further (abandoned, completed, an order) stays, as a customer's
contact stays when the customer is deleted (C3).

D6: the order completes the checkout, so its values win for every field it carries, nulls
included; fields it never has keep the checkout's (:func:`deal_fields`). P2: lines of one variant
merge without losing money (:func:`lines_of`). W1: a deal whose order is cancelled or deleted is
never a new customer's order, whatever the contact rules said.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from config.rules import RuleConfig
from schemas.commands import AnyCommand, PropertyValue
from schemas.envelope import Delivery
from schemas.shopify import (
    Cart,
    CartLineItem,
    Checkout,
    CheckoutDeleted,
    CheckoutLineItem,
    Deleted,
    Order,
    OrderLineItem,
    ShopifyModel,
)
from schemas.types import FinancialStatus, FulfillmentStatus
from streams.mapping import DEAL_FIELDS, carried_commerce_properties, carried_deal_properties, format_value
from streams.rules.common import Version, evolve, remember, version_of
from streams.rules.keys import deal_ref, line_item_ref, normalize_email, shop_mark
from streams.rules.views import ObjectKind, ObjectView, diff_object

Stage = Literal[
    "Checkout Pending", "Checkout Abandoned", "Checkout Completed", "Processed", "Shipped", "Cancelled"
]
STAGES: tuple[Stage, ...] = (
    "Checkout Pending",
    "Checkout Abandoned",
    "Checkout Completed",
    "Processed",
    "Shipped",
    "Cancelled",
)
DEAL_TO_CONTACT = 3
LINE_ITEM_TO_DEAL = 20
TimerKind = Literal["abandon", "abandoned-cart", "pending-cleanup"]
DEAL_PROPERTIES = tuple(f.hubspot_property for f in DEAL_FIELDS)


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a cart, checkout or order, as synced to a HubSpot line item (P2)."""

    key: str
    product_id: int | None = None
    variant_id: int | None = None
    sku: str | None = None
    title: str | None = None
    quantity: int = 0
    price: Decimal | None = None
    discount: Decimal | None = None

    def properties(self) -> dict[str, PropertyValue]:
        return {
            "name": self.title,
            "quantity": str(self.quantity),
            "price": format_value(self.price),
            "hs_sku": self.sku,
            "shopify_total_discount": format_value(self.discount),
            "shopify_product_id": format_value(self.product_id),
            "shopify_variant_id": format_value(self.variant_id),
        }


def _line_key(product_id: int | None, variant_id: int | None, sku: str | None, title: str | None) -> str:
    if variant_id is not None:
        return f"variant:{variant_id}"
    if product_id is not None:
        return f"product:{product_id}"
    return f"sku:{sku}" if sku else f"title:{title}"


def _unit_price(price: Decimal | None) -> str:
    """A unit price as a key part: the same amount always reads the same ("10.0" and "10.00")."""
    return "none" if price is None else format(price.normalize(), "f")


def _sum(amounts: list[Decimal | None]) -> Decimal | None:
    known = [a for a in amounts if a is not None]
    return sum(known, Decimal(0)) if known else None


def lines_of(items: list[OrderLineItem] | list[CheckoutLineItem] | list[CartLineItem]) -> tuple[Line, ...]:
    """The deal's line items (P2): one per variant (else product, SKU, title), keyed by it.

    Shopify may hold several lines of one variant (a line with an engraving property, a free gift
    of a product also bought at full price). A HubSpot line item has one unit price, a quantity
    and a total discount, and HubSpot's amount is ``price x quantity - discount``, so:

    - lines of one variant at one unit price merge: quantities and discounts are summed (the
      amount is the sum of the lines'), the key stays ``variant:<id>``;
    - lines of one variant at different unit prices cannot merge without losing money, so each
      unit price gets its own line item, keyed ``variant:<id>@<price>`` (lines at that price merged
      as above).

    The key scheme of every other line is the one deals already hold in HubSpot (line-item keys are
    natural keys there; changing them for all lines would duplicate the line items of existing deals
    on upgrade). Prices rather than Shopify's line ids tell the split lines apart because a cart, its
    checkout and its order give the same line different ids (a checkout line's ``key``, an order
    line's ``id``): keyed by price, a split line keeps its line item when the checkout becomes an
    order instead of being archived and created again.
    """
    groups: dict[str, list[OrderLineItem | CheckoutLineItem | CartLineItem]] = {}
    for item in items:
        groups.setdefault(_line_key(item.product_id, item.variant_id, item.sku, item.title), []).append(item)
    lines: list[Line] = []
    for key, group in groups.items():
        if len(group) == 1:  # the usual line: nothing to merge (the same values as merging one)
            (item,) = group
            discount = _sum([getattr(item, "total_discount", None)])
            lines.append(Line(key, item.product_id, item.variant_id, item.sku, item.title, item.quantity,
                              item.price, discount))  # fmt: skip
            continue
        by_price: dict[str, list[OrderLineItem | CheckoutLineItem | CartLineItem]] = {}
        for item in group:
            by_price.setdefault(_unit_price(item.price), []).append(item)
        for price, same in by_price.items():
            # Which line names the merged one must not depend on the lines' order ("10.0", "10.00").
            first = min(same, key=lambda i: (str(i.price), i.title or "", i.sku or ""))
            lines.append(
                Line(
                    key=key if len(by_price) == 1 else f"{key}@{price}",
                    product_id=first.product_id,
                    variant_id=first.variant_id,
                    sku=first.sku,
                    title=first.title,
                    quantity=sum(i.quantity for i in same),
                    price=first.price,
                    discount=_sum([getattr(i, "total_discount", None) for i in same]),
                )
            )
    return tuple(sorted(lines, key=lambda line: line.key))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The newest version of one Shopify record of the journey (cart, checkout or order)."""

    version: Version
    properties: dict[str, PropertyValue] = field(default_factory=dict)
    sparse: bool = False
    """``properties`` holds exactly the fields the record carries (``None``: a null Shopify sent).
    False only in snapshots stored by an older version, which held every field."""
    lines: tuple[Line, ...] = ()
    email: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    completed_at: datetime | None = None
    stage: Stage | None = None
    source: str = "webhook"
    commerce: dict[str, PropertyValue] = field(default_factory=dict)
    """X1: the Order/Cart-only fields the record carries (``streams.mapping.COMMERCE_FIELDS``)."""


DealView = ObjectView
"""What HubSpot should hold for a journey's deal: the deal, its line items, its contact."""
DEAL = ObjectKind(record=deal_ref, line=line_item_ref, line_to_record=LINE_ITEM_TO_DEAL,
                  record_to_contact=DEAL_TO_CONTACT)  # fmt: skip


class JourneyState(BaseModel):
    """Everything the product knows about one purchase journey."""

    model_config = ConfigDict(frozen=True)

    key: str
    partition: int = -1
    seen: dict[str, datetime] = Field(default_factory=dict)
    cart: Snapshot | None = None
    checkout: Snapshot | None = None
    order: Snapshot | None = None
    order_id: int | None = None
    checkout_deleted_at: datetime | None = None
    order_deleted_at: datetime | None = None
    abandoned_at: datetime | None = None
    abandoned_cart_fired_at: datetime | None = None
    abandoned_cart_late: bool = False
    archived_at: datetime | None = None
    new_customer: bool | None = None
    shop: str | None = None
    """X1: the shop the journey's records came from (an Order's and a Cart's source store)."""
    emitted: DealView = Field(default_factory=DealView)
    """The journey's deal as last decided: what HubSpot holds when deals are written, and what
    the reports read in every mode (E1)."""
    deal_written: bool = True
    """Whether ``emitted`` was written to HubSpot as a deal (False while deals are not written,
    so switching them on writes every deal whole). States stored before X1 were written."""
    emitted_order: ObjectView = Field(default_factory=ObjectView)
    emitted_cart: ObjectView = Field(default_factory=ObjectView)
    """X1: the journey's Order and Cart as last written (empty while orders are not written)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """A rule's result: the new state and the HubSpot commands to send."""

    state: JourneyState
    commands: list[AnyCommand] = field(default_factory=list)


class FirstPurchase(BaseModel):
    """From the contact rules (W1): this journey's order is (or is no longer) the contact's first."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["first-purchase"] = "first-purchase"
    event_id: str
    journey: str
    first: bool
    at: datetime


def order_stage(order: Order) -> Stage:
    """D1: the deal stage of an order. "Completed" is not "paid" (a common connector mistake)."""
    financial = order.financial_status
    if order.cancelled_at is not None or financial in (FinancialStatus.VOIDED, FinancialStatus.EXPIRED):
        return "Cancelled"
    if order.fulfillment_status == FulfillmentStatus.FULFILLED:
        return "Shipped"
    if financial in (
        FinancialStatus.PAID,
        FinancialStatus.PARTIALLY_PAID,
        FinancialStatus.PARTIALLY_REFUNDED,
        FinancialStatus.REFUNDED,
    ):
        return "Processed"
    return "Checkout Completed"  # pending, authorized, or a status we do not know


def _completed(state: JourneyState) -> bool:
    return state.order is not None or (state.checkout is not None and state.checkout.completed_at is not None)


def timers(state: JourneyState, config: RuleConfig) -> dict[TimerKind, datetime]:
    """The journey's pending timers and when each is due (derived from the state alone).

    A timer is pending only while Shopify's data says the checkout was still open at its due
    time (not completed, not deleted by then), so a completion or deletion that arrives late
    cancels what it should, and one that arrives early does not cancel what had already
    happened by its own time: every order of arrival ends the same.
    """
    due: dict[TimerKind, datetime] = {}
    done = completed_at(state)
    deleted = state.checkout_deleted_at

    def open_at(at: datetime) -> bool:
        return (done is None or done > at) and (deleted is None or deleted > at)

    checkout = state.checkout
    if checkout is not None and checkout.updated_at is not None and state.abandoned_at is None:
        if checkout.email:
            at = checkout.updated_at + config.abandon_after
            if open_at(at):
                due["abandon"] = at
        elif state.archived_at is None:
            at = checkout.updated_at + config.pending_cleanup_after
            if open_at(at):
                due["pending-cleanup"] = at
    if state.abandoned_at is not None and state.abandoned_cart_fired_at is None:
        at = state.abandoned_at + config.abandoned_cart_delay
        if open_at(at):
            due["abandoned-cart"] = at
    return due


def fire(state: JourneyState, now: datetime, config: RuleConfig) -> JourneyState:
    """Apply every timer due at ``now``, earliest first. A fired timer records its due time, so
    firing again (a replay, a retried tick) changes nothing."""
    while True:
        due = {kind: at for kind, at in timers(state, config).items() if at <= now}
        if not due:
            return state
        kind, at = min(due.items(), key=lambda item: (item[1], item[0]))
        if kind == "abandon":
            state = evolve(state, {"abandoned_at": at})
        elif kind == "abandoned-cart":
            late = now - at > config.trigger_grace
            state = evolve(state, {"abandoned_cart_fired_at": at, "abandoned_cart_late": late})
        else:
            state = evolve(state, {"archived_at": at})


def completed_at(state: JourneyState) -> datetime | None:
    """When the purchase was completed, by Shopify's data: the checkout's ``completed_at`` or the
    order's creation, whichever is earlier (an order without a date counts as completed now)."""
    times = [t for t in (state.checkout.completed_at if state.checkout else None,) if t is not None]
    if state.order is not None:
        times.append(state.order.created_at or state.order.version.updated_at)
    return min(times) if times else None


def effective_abandonment(state: JourneyState) -> datetime | None:
    """The abandonment, unless Shopify's data shows the purchase completed before it was due.

    A delivery can arrive after the worker's clock passed the abandonment time although the
    buyer completed in time (a late webhook); judging by the data's own times makes every order
    of arrival end in the same deal.
    """
    done = completed_at(state)
    if state.abandoned_at is None or (done is not None and done <= state.abandoned_at):
        return None
    return state.abandoned_at


def abandoned_cart_trigger(state: JourneyState) -> datetime | None:
    """W2's value: the due time it fired at, unless Shopify's data shows the checkout completed
    or deleted before then, or it was found too late to be useful."""
    fired = state.abandoned_cart_fired_at
    done, deleted = completed_at(state), state.checkout_deleted_at
    if fired is None or state.abandoned_cart_late or effective_abandonment(state) is None:
        return None
    if (done is not None and done <= fired) or (deleted is not None and deleted <= fired):
        return None
    return fired


def stage(state: JourneyState) -> Stage | None:
    if state.order_deleted_at is not None:  # D5; a delete with nothing to cancel makes no deal
        return "Cancelled" if state.order is not None or state.checkout is not None else None
    if state.order is not None:
        return state.order.stage
    if state.checkout is None:
        return None
    if state.checkout.completed_at is not None:
        return "Checkout Completed"
    if effective_abandonment(state) is not None:
        return "Checkout Abandoned"
    return "Checkout Pending"


def deal_fields(state: JourneyState) -> dict[str, PropertyValue]:
    """D6: the deal's Shopify properties, from its checkout and the order that completes it.

    The order is the newer record of the purchase, so for every field the order carries its value
    wins, a ``null`` included: the order saying ``"note": null`` clears the checkout's note. A
    field the order never has (the abandoned-checkout URL) keeps the checkout's value. Every D6
    property is in the result (``None``: empty), so the deal is a function of the state alone.
    """
    props: dict[str, PropertyValue] = dict.fromkeys(DEAL_PROPERTIES)
    for snap in (state.checkout, state.order):
        if snap is None:
            continue
        if snap.sparse:
            props.update(snap.properties)
        else:  # a snapshot stored before ``sparse`` existed: its nulls cannot be told from absence
            props.update({k: v for k, v in snap.properties.items() if v is not None})
    return props


def shop_marks(state: JourneyState, config: RuleConfig) -> dict[str, PropertyValue]:
    """X3: the property naming the journey's shop, on each of its records (``keys.shop_mark``)."""
    return shop_mark(config.key_prefix(state.shop), config)  # the domain in lower case, as its keys


def line_views(
    lines: tuple[Line, ...], state: JourneyState, config: RuleConfig
) -> dict[str, dict[str, PropertyValue]]:
    """The line items of one object, by line key, each marked with its shop (X3)."""
    marks = shop_marks(state, config)
    return {line.key: {**line.properties(), **marks} for line in lines}


def new_customer_flag(state: JourneyState, current: str | None) -> bool | None:
    """W1's ``shopify_new_customer_order`` of the journey's deal (and Order) in stage ``current``:
    true on the buyer's first purchase, false on every other order of a known buyer, empty on an
    order without one (a guest checkout with no email: no contact to be new).

    The contact rules' facts say which order is the first (``decide_first_purchase``); an order
    they never spoke of is not it. Deciding "not first" from silence matters: whether the contact
    speaks of an order that is not its first depends on arrival order (an order that was first
    until an earlier one arrived is told "not first"; one that came after the first is told
    nothing; of two deleted orders, the second is told "first" and then "not first" only if the
    first's deletion came before the second's), and the contact's orders sit on other partitions
    than it, so that order differs between a live run and a replay. A cancelled or deleted order
    is no purchase, whatever was said. Every arrival order thus ends in the same value.
    """
    told = state.new_customer
    if told is None:
        has_buyer = state.order is not None and state.order.email is not None
        return False if has_buyer else None
    return False if current == "Cancelled" else told


def render(state: JourneyState, config: RuleConfig) -> DealView:
    """What HubSpot should hold for this journey, from the state alone."""
    current = stage(state)
    # D4's archive is for a checkout without an email; one that has got an email since carries on.
    cleaned_up = state.archived_at is not None and not (state.checkout is not None and state.checkout.email)
    pending_gone = cleaned_up or state.checkout_deleted_at is not None
    if current is None or (current == "Checkout Pending" and pending_gone):
        return DealView(exists=False)
    props = deal_fields(state)
    props.update(
        {
            "pipeline": config.pipeline_label,
            "dealstage": current,
            "shopify_deal_key": state.key,
            "shopify_abandoned_at": format_value(effective_abandonment(state)),
            "shopify_abandoned_cart_trigger_at": format_value(abandoned_cart_trigger(state)),
            "shopify_recovered_checkout": "true"
            if effective_abandonment(state) and _completed(state)
            else None,
            "shopify_new_customer_order": format_value(new_customer_flag(state, current)),
        }
    )
    if state.order_deleted_at is not None:
        props["shopify_cancelled_at"] = format_value(state.order_deleted_at)  # D5
    props |= shop_marks(state, config)
    if state.order is not None:
        lines = state.order.lines
    else:
        newest = [s for s in (state.cart, state.checkout) if s is not None]
        lines = max(newest, key=lambda s: s.version.updated_at).lines if newest else ()
    email = (state.order.email if state.order else None) or (state.checkout.email if state.checkout else None)
    return DealView(
        exists=True,
        properties=props,
        lines=line_views(lines, state, config),
        contact=email,
    )


def diff(key: str, before: DealView, after: DealView, config: RuleConfig | None = None) -> list[AnyCommand]:
    """The commands that take HubSpot from ``before`` to ``after`` for one journey's deal."""
    return diff_object(DEAL, key, before, after, config)


def _snapshot(record: Checkout | Order | Cart, delivery: Delivery) -> Snapshot:
    version = version_of(record.updated_at, delivery.body, delivery.event_time)
    if isinstance(record, Cart):
        return Snapshot(version=version, lines=lines_of(record.line_items), updated_at=record.updated_at,
                        created_at=record.created_at, source=delivery.source)  # fmt: skip
    props = carried_deal_properties(record)
    if isinstance(record, Order):
        return Snapshot(
            version=version, properties=props, sparse=True, lines=lines_of(record.line_items),
            email=normalize_email(record.buyer_email()), created_at=record.created_at,
            updated_at=record.updated_at, stage=order_stage(record), source=delivery.source,
            commerce=carried_commerce_properties(record),
        )  # fmt: skip
    return Snapshot(
        version=version, properties=props, sparse=True, lines=lines_of(record.line_items),
        email=normalize_email(record.buyer_email()), created_at=record.created_at,
        updated_at=record.updated_at or record.created_at, completed_at=record.completed_at,
        source=delivery.source,
    )  # fmt: skip


def _apply(state: JourneyState, delivery: Delivery, record: ShopifyModel) -> JourneyState:
    if isinstance(record, Cart):
        snap = _snapshot(record, delivery)
        if snap.version.newer_than(state.cart.version if state.cart else None):
            return evolve(state, {"cart": snap})
    elif isinstance(record, Checkout):
        snap = _snapshot(record, delivery)
        if snap.version.newer_than(state.checkout.version if state.checkout else None):
            return evolve(state, {"checkout": snap})
    elif isinstance(record, Order):
        # After orders/delete a late update is still folded in (so every arrival order ends with
        # the newest version), but the deal stays Cancelled: the delete is never undone.
        snap = _snapshot(record, delivery)
        if snap.version.newer_than(state.order.version if state.order else None):
            return evolve(state, {"order": snap, "order_id": record.id})
    elif isinstance(record, CheckoutDeleted):
        if state.checkout_deleted_at is None:
            return evolve(state, {"checkout_deleted_at": delivery.event_time})
    elif isinstance(record, Deleted) and delivery.resource == "orders" and state.order_deleted_at is None:
        return evolve(state, {"order_deleted_at": delivery.event_time, "order_id": record.id})
    return state


def _finish(before: JourneyState, state: JourneyState, config: RuleConfig) -> Outcome:
    """One decision, rendered as every object the settings write (X1): the deal (always decided:
    the reports read it in every mode), and the Order and Cart when orders are written."""
    view = render(state, config)
    update: dict[str, object] = {"emitted": view}
    commands: list[AnyCommand] = []
    if config.writes("deals"):
        commands += diff(state.key, state.emitted if state.deal_written else DealView(), view, config)
        if not state.deal_written:
            update["deal_written"] = True
    elif state.deal_written:
        update["deal_written"] = False
    if config.writes("orders"):
        from streams.rules.commerce import render_cart, render_order, write_commerce

        order, cart = render_order(state, config), render_cart(state, config)
        commands += write_commerce(state, order, cart, config)
        update |= {"emitted_order": order, "emitted_cart": cart}
    return Outcome(state=evolve(state, update), commands=commands)


def decide(state: JourneyState, delivery: Delivery, now: datetime, config: RuleConfig) -> Outcome:
    """Fold one Shopify delivery (cart, checkout or order) into the journey."""
    seen = remember(state.seen, delivery.event_id, delivery.event_time, config.dedupe_ttl)
    if seen is None:
        return Outcome(state=state)  # a duplicate delivery changes nothing and emits nothing
    record = delivery.parse_body()
    fired = fire(state, now, config)
    update: dict[str, object] = {"seen": seen}
    if fired.shop is None:
        update["shop"] = delivery.shop_domain
    after = _apply(evolve(fired, update), delivery, record)
    return _finish(state, after, config)


def decide_first_purchase(
    state: JourneyState, fact: FirstPurchase, now: datetime, config: RuleConfig
) -> Outcome:
    """W1: mark (or unmark) the journey's deal as its contact's first purchase."""
    seen = remember(state.seen, fact.event_id, fact.at, config.dedupe_ttl)
    if seen is None:
        return Outcome(state=state)
    fired = fire(state, now, config)
    after = evolve(fired, {"seen": seen, "new_customer": fact.first})
    return _finish(state, after, config)


def on_tick(state: JourneyState, now: datetime, config: RuleConfig) -> Outcome:
    """Fire what is due at ``now`` (called for the journeys the timer index says are due)."""
    return _finish(state, fire(state, now, config), config)


def next_due(state: JourneyState, config: RuleConfig) -> datetime | None:
    pending = timers(state, config)
    return min(pending.values()) if pending else None
