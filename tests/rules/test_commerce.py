"""X1: a journey's HubSpot Order and Cart, in each ``SHOPSYNC_COMMERCE_OBJECTS`` mode, as pure rules.

The journeys come from the journey tests' builders (sample-store bodies, instants passed as data).
Per mode: ``deals`` emits exactly what it always did and nothing of orders or carts; ``orders``
emits Orders and Carts and no deal; ``deals,orders`` emits both, the deal's commands exactly those
of ``deals``. The property tests run the journey tests' generated histories in every mode:
duplicates emit nothing, any arrival order ends in the same Order and Cart, replay rebuilds them,
and the commands applied in order realise them (with every association's ends upserted first).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from config.rules import RuleConfig, RuleSettings
from schemas.commands import DEFAULT_ASSOCIATION, AnyCommand, Archive, Associate, Dissociate, Upsert
from schemas.envelope import Delivery
from streams.rules import journeys
from streams.rules.commerce import render_cart, render_order
from streams.rules.journeys import FirstPurchase, JourneyState
from streams.rules.keys import cart_line_ref, cart_ref, contact_ref, deal_ref, order_line_ref, order_ref
from streams.rules.views import ObjectView
from tests.rules.test_journeys import (
    BASKET,
    CHECKOUT,
    EMAIL,
    HOUR,
    KEY,
    MINUTE,
    ORDER_ID,
    T0,
    Journey,
    checkout_event,
    delivery,
    histories,
    order_deleted,
    order_event,
    variant_key,
    versions,
)

DEALS = RuleConfig()
ORDERS = RuleConfig(commerce_objects="orders")
BOTH = RuleConfig(commerce_objects="deals,orders")
MODES = {"deals": DEALS, "orders": ORDERS, "deals,orders": BOTH}
COMMERCE = ("orders", "carts")


def of_type(commands: Iterable[AnyCommand], *types: str) -> list[AnyCommand]:
    return [c for c in commands if c.record.object_type in types]


def upsert_of(commands: Iterable[AnyCommand], ref_key: str) -> Upsert:
    (found,) = [c for c in commands if isinstance(c, Upsert) and c.record.key == ref_key]
    return found


def is_commerce(command: AnyCommand) -> bool:
    """An order's or cart's command (its line items included: keyed ``<journey>|order|...``)."""
    if command.record.object_type in COMMERCE:
        return True
    return command.record.object_type == "line_items" and (
        "|order|" in command.record.id_value or "|cart|" in command.record.id_value
    )


def abandoned_then_bought() -> list[Delivery]:
    """A checkout with an email left for an hour (abandoned after 15 min), then the order, paid."""
    return [checkout_event(T0), checkout_event(T0 + 2 * HOUR, completed=True), order_event(T0 + 2 * HOUR)]


# --- the setting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "mode"), [("deals", "deals"), ("orders", "orders"), ("orders, deals", "deals,orders"),
                      ("DEALS,orders", "deals,orders")],
)  # fmt: skip
def test_x1_setting_reads_every_mode(raw: str, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPSYNC_COMMERCE_OBJECTS", raw)
    config = RuleSettings().rule_config()
    assert config.commerce_objects == mode
    assert config.writes("deals") == ("deals" in mode) and config.writes("orders") == ("orders" in mode)


def test_x1_setting_defaults_to_deals_and_refuses_anything_else(monkeypatch: pytest.MonkeyPatch) -> None:
    assert RuleSettings().commerce_objects == "deals"
    monkeypatch.setenv("SHOPSYNC_COMMERCE_OBJECTS", "quotes")
    with pytest.raises(ValidationError, match="commerce objects must be one of"):
        RuleSettings()


# --- deals mode: nothing new ----------------------------------------------------------------------


def test_x1_deals_mode_writes_no_order_and_no_cart() -> None:
    run = Journey(config=DEALS)
    run.feed([*abandoned_then_bought(), T0 + 3 * HOUR])
    assert run.log and not [c for c in run.log if is_commerce(c)]
    assert run.state.emitted_order == ObjectView() and run.state.emitted_cart == ObjectView()


# --- orders mode: the Order ----------------------------------------------------------------------


def test_x1_order_carries_hubspot_order_properties_pipeline_and_stage() -> None:
    run = Journey(config=ORDERS)
    commands = run.deliver(order_event(T0, fulfillment_status=None))
    props = upsert_of(commands, order_ref(KEY).key).properties
    assert props["hs_order_name"] == "#1001"
    assert props["hs_external_order_id"] == str(ORDER_ID)
    assert props["hs_source_store"] == "sample-store.myshopify.com"
    assert props["hs_pipeline"] == "Order Pipeline" and props["hs_pipeline_stage"] == "Processed"
    assert props["hs_payment_status"] == "paid" and props["hs_currency_code"] == "USD"
    assert props["shopify_order_key"] == KEY
    deal = journeys.render(run.state, ORDERS).properties
    assert props["hs_total_price"] == deal["amount"] and props["hs_tax"] == deal["shopify_total_tax"]
    assert props["hs_subtotal_price"] == deal["shopify_subtotal_price"]
    assert props["hs_order_discount"] == deal["shopify_total_discounts"]
    assert props["hs_external_created_date"] == deal["shopify_created_at"]
    assert {k: v for k, v in deal.items() if k.startswith("shopify_") and k != "shopify_deal_key"
            and k not in ("shopify_abandoned_at", "shopify_abandoned_cart_trigger_at",
                          "shopify_recovered_checkout")}.items() <= props.items()  # fmt: skip
    assert not of_type(commands, "deals")


@pytest.mark.parametrize(
    ("financial", "fulfillment", "cancelled", "stage"),
    [("pending", None, False, "Open"), ("authorized", None, False, "Open"),
     ("paid", None, False, "Processed"), ("paid", "fulfilled", False, "Shipped"),
     ("refunded", None, True, "Cancelled"), ("voided", None, False, "Cancelled")],
)  # fmt: skip
def test_x1_order_stage_is_mapped_from_shopify_status(
    financial: str, fulfillment: str | None, cancelled: bool, stage: str
) -> None:
    run = Journey(config=ORDERS)
    run.deliver(order_event(T0, financial_status=financial, fulfillment_status=fulfillment,
                            cancelled_at=T0 if cancelled else None))  # fmt: skip
    order = run.state.emitted_order.properties
    assert order["hs_pipeline_stage"] == stage
    if cancelled:
        assert order["hs_external_cancelled_date"] == "2026-03-02T09:00:00.000Z"
        assert order["hs_cancellation_reason"] == "customer"


def test_x1_order_shipping_cost_is_shopify_shop_money() -> None:
    item = order_event(T0)
    body = dict(item.body)
    body["total_shipping_price_set"] = {"shop_money": {"amount": "7.50", "currency_code": "USD"}}
    run = Journey(config=ORDERS)
    run.deliver(delivery("orders/create", body, T0))
    assert run.state.emitted_order.properties["hs_shipping_cost"] == "7.50"


def test_x1_order_is_associated_with_its_contact_and_its_own_line_items() -> None:
    run = Journey(config=ORDERS)
    commands = run.deliver(order_event(T0))
    order = order_ref(KEY)
    links = {(c.record.key, c.to.key) for c in commands if isinstance(c, Associate)}
    assert (order.key, contact_ref(EMAIL).key) in links
    for item in BASKET:
        line = order_line_ref(KEY, variant_key(item))
        assert (line.key, order.key) in links
        assert upsert_of(commands, line.key).properties["shopify_variant_id"] == str(item.variant["id"])
    assert all(c.association_type_id == DEFAULT_ASSOCIATION for c in commands if isinstance(c, Associate))


def test_x1_d5_deleted_order_is_cancelled_at_the_deletion() -> None:
    run = Journey(config=ORDERS)
    run.deliver(order_event(T0))
    commands = run.deliver(delivery("orders/delete", order_deleted(), T0 + HOUR))
    props = upsert_of(commands, order_ref(KEY).key).properties
    assert props["hs_pipeline_stage"] == "Cancelled"
    assert props["hs_external_cancelled_date"] == "2026-03-02T10:00:00.000Z"


def test_x1_d7_order_without_email_has_no_contact() -> None:
    run = Journey(config=ORDERS)
    commands = run.deliver(order_event(T0, email=None))
    assert run.state.emitted_order.exists
    assert not [c for c in commands if isinstance(c, Associate) and c.to.object_type == "contacts"]


def test_x1_w1_first_purchase_is_marked_on_the_order_once() -> None:
    run = Journey(config=ORDERS)
    run.deliver(order_event(T0))
    fact = FirstPurchase(event_id="fp-1", journey=KEY, first=True, at=T0 + MINUTE)
    outcome = journeys.decide_first_purchase(run.state, fact, T0 + MINUTE, ORDERS)
    assert upsert_of(outcome.commands, order_ref(KEY).key).properties["shopify_new_customer_order"] == "true"
    assert journeys.decide_first_purchase(outcome.state, fact, T0 + MINUTE, ORDERS).commands == []


# --- orders mode: the Cart -----------------------------------------------------------------------


def test_x1_d3_an_abandoned_checkout_becomes_a_cart_and_a_pending_one_does_not() -> None:
    run = Journey(config=ORDERS)
    assert run.deliver(checkout_event(T0)) == []  # pending: no cart yet (and no deal in orders mode)
    commands = run.tick(T0 + 16 * MINUTE)
    cart = upsert_of(commands, cart_ref(KEY).key).properties
    assert cart["hs_external_status"] == "abandoned" and cart["shopify_cart_key"] == KEY
    assert cart["hs_external_cart_id"] == CHECKOUT
    assert cart["shopify_abandoned_at"] == "2026-03-02T09:15:00.000Z"
    assert cart["shopify_abandoned_checkout_url"] and cart["hs_total_price"]
    links = {(c.record.key, c.to.key) for c in commands if isinstance(c, Associate)}
    assert (cart_ref(KEY).key, contact_ref(EMAIL).key) in links
    assert {(cart_line_ref(KEY, variant_key(i)).key, cart_ref(KEY).key) for i in BASKET} <= links
    assert not of_type(commands, "deals", "orders")


def test_x1_w2_abandoned_cart_trigger_is_set_on_the_cart_24_hours_later() -> None:
    run = Journey(config=ORDERS)
    run.feed([checkout_event(T0), T0 + 16 * MINUTE])
    commands = run.tick(T0 + 15 * MINUTE + 24 * HOUR)
    props = upsert_of(commands, cart_ref(KEY).key).properties
    assert props == {"shopify_abandoned_cart_trigger_at": "2026-03-03T09:15:00.000Z", "shopify_cart_key": KEY}


def test_x1_recovered_cart_is_associated_with_its_order() -> None:
    run = Journey(config=ORDERS)
    run.feed([checkout_event(T0), T0 + HOUR])
    commands = run.feed(abandoned_then_bought()[1:])
    cart = run.state.emitted_cart.properties
    assert cart["hs_external_status"] == "recovered" and cart["shopify_recovered_checkout"] == "true"
    link = [c for c in commands if isinstance(c, Associate) and c.record == cart_ref(KEY)
            and c.to == order_ref(KEY)]  # fmt: skip
    assert len(link) == 1
    order_at = next(i for i, c in enumerate(commands) if isinstance(c, Upsert) and c.record == order_ref(KEY))
    assert order_at < commands.index(link[0]), "the order is upserted before the cart links to it"


def test_x1_checkout_completed_in_time_makes_no_cart() -> None:
    run = Journey(config=ORDERS)
    done = T0 + 5 * MINUTE
    run.feed([checkout_event(T0), checkout_event(done, completed=True), order_event(done), T0 + 2 * HOUR])
    assert not run.state.emitted_cart.exists and run.state.emitted_order.exists


# --- deals,orders: both, the deal unchanged -----------------------------------------------------


def test_x1_both_modes_write_the_deal_exactly_as_deals_mode_and_the_order_as_orders_mode() -> None:
    inputs: list[Delivery | datetime] = [
        *abandoned_then_bought(),
        T0 + 30 * HOUR,
        delivery("orders/delete", order_deleted(), T0 + 31 * HOUR),
    ]
    deals, orders, both = Journey(config=DEALS), Journey(config=ORDERS), Journey(config=BOTH)
    for run in (deals, orders, both):
        run.feed(inputs)
    assert [c for c in both.log if not is_commerce(c)] == deals.log
    assert [c for c in both.log if is_commerce(c)] == orders.log
    assert both.state.emitted == deals.state.emitted == orders.state.emitted  # one decision, every mode


def test_x1_switching_deals_to_both_writes_the_order_whole_and_back_writes_the_deal_whole() -> None:
    run = Journey(config=DEALS)
    run.feed(abandoned_then_bought())
    run.config = BOTH
    commands = run.deliver(order_event(T0 + 3 * HOUR, fulfillment_status="fulfilled"))
    order = upsert_of(commands, order_ref(KEY).key).properties
    assert order.keys() >= {"hs_order_name", "hs_external_order_id", "hs_pipeline", "shopify_order_key"}
    run.config = ORDERS
    run.deliver(order_event(T0 + 4 * HOUR, fulfillment_status="fulfilled", financial_status="refunded"))
    assert not run.state.deal_written
    run.config = DEALS
    commands = run.deliver(order_event(T0 + 5 * HOUR, fulfillment_status="fulfilled",
                                       financial_status="partially_refunded"))  # fmt: skip
    deal = upsert_of(commands, deal_ref(KEY).key).properties
    assert deal.keys() >= {"dealname", "pipeline", "dealstage", "amount", "shopify_deal_key"}


# --- properties, in every mode ---------------------------------------------------------------------


@dataclass
class Held:
    """What HubSpot holds after commands applied in order; every association's ends must exist."""

    records: dict[str, dict[str, str]] = field(default_factory=dict)
    links: set[tuple[str, str]] = field(default_factory=set)

    def apply(self, commands: Iterable[AnyCommand]) -> Held:
        for command in commands:
            key = command.record.key
            if isinstance(command, Upsert):
                props = self.records.setdefault(key, {})
                for name, value in command.properties.items():
                    if value is None:
                        props.pop(name, None)
                    else:
                        props[name] = value
            elif isinstance(command, Archive):
                self.records.pop(key, None)
                self.links = {link for link in self.links if key not in link}
            elif isinstance(command, Associate):
                assert key in self.records, f"associating {key} before it was upserted"
                if command.to.object_type != "contacts":
                    assert command.to.key in self.records, f"associating to {command.to.key} first"
                self.links.add((key, command.to.key))
            elif isinstance(command, Dissociate):
                self.links.discard((key, command.to.key))
        return self

    def object(self, ref_key: str) -> tuple[object, ...] | None:
        if ref_key not in self.records:
            return None
        lines = {s for s, d in self.links if d == ref_key and s.startswith("line_items:")}
        return (
            self.records[ref_key],
            {s: self.records[s] for s in lines},
            {d for s, d in self.links if s == ref_key},
        )


def expected(view: ObjectView, ref_key: str, line_ref: object, link: str | None) -> tuple[object, ...] | None:
    if not view.exists:
        return None
    lines = {}
    for k, p in view.lines.items():
        ref = line_ref(KEY, k)  # type: ignore[operator]
        lines[ref.key] = {n: v for n, v in {**p, ref.id_property: ref.id_value}.items() if v is not None}
    ends = {contact_ref(view.contact).key} if view.contact else set()
    if link:
        ends.add(order_ref(view.linked or "").key)
    return {n: v for n, v in view.properties.items() if v is not None}, lines, ends


def commerce_of(run: Journey) -> tuple[ObjectView, ObjectView]:
    return run.state.emitted_order, run.state.emitted_cart


PROPERTY_SETTINGS = settings(max_examples=30, deadline=None)
mode_names = st.sampled_from(sorted(MODES))


@PROPERTY_SETTINGS
@given(mode_names, histories(), st.data())
def test_x1_duplicate_delivery_emits_nothing_in_every_mode(
    mode: str, inputs: list[Delivery | datetime], data: st.DataObject
) -> None:
    run = Journey(config=MODES[mode])
    positions = [i for i, d in enumerate(inputs) if isinstance(d, Delivery)]
    index = data.draw(st.sampled_from(positions))
    run.feed(inputs[: index + 1])
    original = inputs[index]
    assert isinstance(original, Delivery)
    state = run.state
    assert run.deliver(original.model_copy(update={"webhook_id": "wh-retry"})) == []
    assert run.state == state


@PROPERTY_SETTINGS
@given(mode_names, versions(10 * MINUTE), st.data())
def test_x1_any_arrival_order_gives_the_same_order_and_cart_in_every_mode(
    mode: str, items: list[Delivery], data: st.DataObject
) -> None:
    config = MODES[mode]
    reference, shuffled = Journey(config=config), Journey(config=config)
    ordered: list[Delivery] = sorted(items, key=lambda d: (d.received_at, d.event_id))
    reference.feed(ordered)
    shuffled.feed(data.draw(st.permutations(items)))
    assert commerce_of(shuffled) == commerce_of(reference)
    assert shuffled.state.emitted == reference.state.emitted
    later = T0 + 10 * MINUTE + data.draw(st.integers(1, 3 * 24 * 60)) * MINUTE
    reference.tick(later)
    shuffled.tick(later)
    assert commerce_of(shuffled) == commerce_of(reference)


@PROPERTY_SETTINGS
@given(mode_names, histories())
def test_x1_replay_rebuilds_the_same_objects_and_commands_in_every_mode(
    mode: str, inputs: list[Delivery | datetime]
) -> None:
    live, rebuilt = Journey(config=MODES[mode]), Journey(config=MODES[mode])
    live.feed(inputs)
    rebuilt.feed(inputs)
    assert rebuilt.state == live.state and rebuilt.log == live.log
    assert live.feed(inputs) == []


@PROPERTY_SETTINGS
@given(mode_names, histories())
def test_x1_commands_applied_in_order_realise_the_order_and_cart_in_every_mode(
    mode: str, inputs: list[Delivery | datetime]
) -> None:
    config = MODES[mode]
    run, held = Journey(config=config), Held()
    for item in inputs:
        held.apply(run.feed([item]))
        order, cart = commerce_of(run)
        if config.writes("orders"):
            assert held.object(order_ref(KEY).key) == expected(
                order, order_ref(KEY).key, order_line_ref, None
            )
            assert held.object(cart_ref(KEY).key) == expected(
                cart, cart_ref(KEY).key, cart_line_ref, cart.linked
            )
        else:
            assert not [k for k in held.records if k.startswith(COMMERCE)]
    state: JourneyState = run.state
    if config.writes("orders"):
        assert commerce_of(run) == (render_order(state, config), render_cart(state, config))
