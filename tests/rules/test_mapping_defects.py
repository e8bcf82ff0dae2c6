"""Mapping defects found on real store data (issue 9), as pure-rule tests.

- A newer record's explicit ``null`` clears an older value (deals: the order's nulls win over its
  checkout's values; contacts: each property follows the newest customer version carrying it),
  and a cleared value reaches the writer as ``None`` (sent to HubSpot as ``""``, its clearing value).
- A contact made from an order carries the order's ``customer.id`` as ``shopify_customer_id``.
- A cancelled or deleted order is not a purchase: no first/last purchase, W1 or W3 from it.
- Two lines of one variant keep their money when merged (or split by unit price).
"""

from __future__ import annotations

import dataclasses
import itertools
from datetime import timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from devtools.samplestore import generate
from handlers.account_fold import fold as account_of
from schemas.commands import PropertyValue, Upsert
from schemas.envelope import BODY_MODELS
from schemas.shopify import Order
from schemas.tolerance import parse_tolerant
from streams.mapping import CONTACT_FIELDS, DEAL_FIELDS, FieldMap, carried_properties, format_value
from streams.rules import contacts, journeys
from streams.rules.journeys import FirstPurchase
from streams.rules.keys import journey_key, line_item_ref
from tests.rules.test_contacts import (
    CID,
    CONFIG,
    EMAIL,
    Run,
    customer,
    deliver,
    fold,
    hs_time,
    only_upsert,
    order,
    view,
)
from tests.rules.test_journeys import (
    BASKET,
    DEAL,
    KEY,
    MINUTE,
    SHIRTS,
    SUNGLASSES,
    T0,
    Journey,
    checkout_at,
    deal_upserts,
    delivery,
    order_at,
    variant_key,
)

DAY = timedelta(days=1)


# ---- 1. an explicit null clears: deals ----


def _noted_checkout(at: Any = T0) -> dict[str, Any]:
    body = checkout_at(at)
    body["note"] = "Gift wrap, please"
    return body


def test_d6_the_orders_null_note_clears_the_checkouts_note() -> None:
    """The order completes the checkout: its ``"note": null`` clears the note the checkout gave,
    and the deal's upsert says so (``None``: the writer sends HubSpot's clearing ``""``)."""
    run = Journey()
    run.deliver(delivery("checkouts/update", _noted_checkout(), T0))
    assert run.deal["shopify_note"] == "Gift wrap, please"
    order = order_at(T0 + 5 * MINUTE)
    assert "note" in order and order["note"] is None
    commands = run.deliver(delivery("orders/create", order, T0 + 5 * MINUTE))
    assert run.deal["shopify_note"] is None
    (upsert,) = [c for c in deal_upserts(commands) if c.record == DEAL]
    assert "shopify_note" in upsert.properties and upsert.properties["shopify_note"] is None


def test_d6_in_either_arrival_order_the_deal_ends_without_the_checkouts_note() -> None:
    """The order wins because it completes the checkout, not because it arrived last."""
    checkout = delivery("checkouts/update", _noted_checkout(), T0)
    order = delivery("orders/create", order_at(T0 + 5 * MINUTE), T0 + 5 * MINUTE)
    first, second = Journey(), Journey()
    first.feed([checkout, order])
    second.feed([order, checkout])
    assert first.deal == second.deal
    assert first.deal["shopify_note"] is None


def test_d6_a_field_the_order_leaves_out_keeps_the_checkouts_value() -> None:
    """A field the order's body does not hold says nothing: the checkout's value stands (like the
    abandoned-checkout URL, which orders never have)."""
    run = Journey()
    run.deliver(delivery("checkouts/update", _noted_checkout(), T0))
    order = order_at(T0 + 5 * MINUTE)
    del order["note"]
    run.deliver(delivery("orders/create", order, T0 + 5 * MINUTE))
    assert run.deal["shopify_note"] == "Gift wrap, please"
    assert run.deal["shopify_abandoned_checkout_url"] == checkout_at(T0)["abandoned_checkout_url"]


def test_d6_an_order_with_a_note_keeps_it_and_a_later_null_clears_it() -> None:
    """Between versions of the order, the newest wins, its null included."""
    run = Journey()
    noted = order_at(T0)
    noted["note"] = "Leave at the door"
    run.deliver(delivery("orders/create", noted, T0))
    assert run.deal["shopify_note"] == "Leave at the door"
    run.deliver(delivery("orders/updated", order_at(T0 + MINUTE), T0 + MINUTE))
    assert run.deal["shopify_note"] is None


def test_d6_a_checkout_stored_before_the_fix_still_renders_as_it_did() -> None:
    """Snapshots stored by the previous version held every field (nulls indistinguishable from
    absence): they keep the old rule (only values win), so an upgrade does not clear the URL."""
    run = Journey()
    run.deliver(delivery("checkouts/update", checkout_at(T0), T0))
    run.deliver(delivery("orders/create", order_at(T0 + MINUTE), T0 + MINUTE))
    order = run.state.order
    assert order is not None and run.state.checkout is not None
    legacy_order = dataclasses.replace(
        order, sparse=False, properties={**dict.fromkeys(journeys.DEAL_PROPERTIES), **order.properties}
    )
    state = run.state.model_copy(update={"order": legacy_order})
    props = journeys.render(state, CONFIG).properties
    assert props["shopify_abandoned_checkout_url"] == checkout_at(T0)["abandoned_checkout_url"]


# ---- 1. an explicit null clears: contacts ----


def test_c7_a_newer_customer_versions_null_note_clears_the_contacts_note() -> None:
    """customers/update with ``"note": null`` clears the note the older version gave; HubSpot is
    sent the clear (``None`` in the command), and an arrival in the other order ends the same."""
    old = deliver("customers/update", customer(note="Prefers email"), T0)
    later = T0 + timedelta(hours=1)
    new = deliver("customers/update", customer(updated_at=later, note=None), later)
    run = fold([old, new])
    assert view(run)["shopify_customer_note"] is None
    upsert = only_upsert(run.commands[1:])
    assert upsert.properties == {"email": EMAIL, "shopify_customer_note": None}
    assert fold([new, old]).state.emitted == run.state.emitted


def test_c7_a_customer_version_without_a_field_leaves_it() -> None:
    """A version that leaves a field out (a partial body) says nothing about it."""
    later = T0 + timedelta(hours=1)
    partial = customer(updated_at=later, note=None)
    del partial["note"]
    run = fold([deliver("customers/update", customer(note="Prefers email"), T0),
                deliver("customers/update", partial, later)])  # fmt: skip
    assert view(run)["shopify_customer_note"] == "Prefers email"


def test_c7_an_orders_newer_nested_customer_clears_the_note_an_older_record_gave() -> None:
    """Sources mix: a customer record, then an order whose nested customer is newer (its own
    ``updated_at``) and says ``"note": null``: the note is cleared. An order carrying an older
    nested customer changes nothing the newer record said."""
    later = T0 + timedelta(hours=2)
    record = deliver("customers/update", customer(note="Prefers email"), T0)
    newer = order(60, later, cust=customer(updated_at=later, note=None))
    run = fold([record, deliver("orders/create", newer, later)])
    assert view(run)["shopify_customer_note"] is None

    newest = deliver("customers/update", customer(updated_at=later + DAY, note="VIP"), later + DAY)
    stale = order(61, later + 2 * DAY, cust=customer(updated_at=later, note="stale"))
    run = fold([newest, deliver("orders/create", stale, later + 2 * DAY)], state=run.state)
    assert view(run)["shopify_customer_note"] == "VIP"


def test_c7_contact_sources_converge_in_any_arrival_order() -> None:
    """Per property the newest version wins, whatever order the records arrive in."""
    later = T0 + timedelta(hours=2)
    pool = [
        deliver("customers/update", customer(note="Prefers email", phone="+1 613 555 0100"), T0),
        deliver("orders/create", order(62, later, cust=customer(updated_at=later, note=None)), later),
        deliver("orders/updated", order(63, T0 + MINUTE, cust=customer(note="old")), T0 + MINUTE),
    ]
    views = {tuple(sorted(view(fold(p)).items())) for p in itertools.permutations(pool)}
    assert len(views) == 1
    (only,) = views
    assert dict(only)["shopify_customer_note"] is None


# ---- 2. a contact made from an order carries its customer id ----


def test_c7_a_contact_made_from_an_order_carries_the_orders_customer_id() -> None:
    """No customer record yet: the order's ``customer.id`` is the contact's shopify_customer_id."""
    body = order(64, T0, cust=customer())
    props = only_upsert(fold([deliver("orders/create", body, T0)]).commands).properties
    assert props["shopify_customer_id"] == str(CID) == str(body["customer"]["id"])


def test_c7_a_guest_order_has_no_customer_id_and_clears_none() -> None:
    """An order without a customer (a guest checkout) says nothing about the customer id."""
    run = fold([deliver("orders/create", order(65, T0, cust=customer()), T0)])
    guest = order(66, T0 + DAY, cust=None)
    run = fold([deliver("orders/create", guest, T0 + DAY)], state=run.state)
    assert view(run)["shopify_customer_id"] == str(CID)


# ---- 3. a cancelled or deleted order is not a purchase ----


def _cancelled(n: int, created: Any, at: Any, **kw: Any) -> dict[str, Any]:
    body = order(n, created, cust=customer(), updated_at=at, **kw)
    body["cancelled_at"] = body["updated_at"]
    body["cancel_reason"] = "customer"
    return body


def test_w1_w3_an_order_that_arrives_cancelled_is_no_purchase() -> None:
    """No first or last purchase, no W1 fact, no re-engagement timer."""
    run = fold([deliver("orders/cancelled", _cancelled(70, T0, T0 + MINUTE), T0 + MINUTE)])
    props = view(run)
    assert props["shopify_first_purchase_at"] is None
    assert props["shopify_last_purchase_at"] is None
    assert run.facts == []
    assert contacts.next_due(run.state, CONFIG) is None


def test_w1_w3_voided_and_expired_orders_are_no_purchase() -> None:
    for status in ("voided", "expired"):
        run = fold([deliver("orders/create", order(71, T0, cust=customer(), financial_status=status), T0)])
        assert view(run)["shopify_first_purchase_at"] is None, status
        assert run.facts == [] and contacts.next_due(run.state, CONFIG) is None, status


def test_w1_a_cancelled_first_purchase_passes_the_flag_to_the_next_purchase() -> None:
    """The first order is cancelled after the second was placed: the second becomes the first
    purchase (first_purchase_at moves to it), the cancelled deal is unflagged, the other flagged."""
    first = order(72, T0, cust=customer())
    second = order(73, T0 + 3 * DAY, cust=customer())
    run = fold([deliver("orders/create", first, T0), deliver("orders/create", second, T0 + 3 * DAY)])
    k1, k2 = journey_key(Order.model_validate(first)), journey_key(Order.model_validate(second))
    assert [(f.journey, f.first) for f in run.facts] == [(k1, True)]
    cancel = fold([deliver("orders/cancelled", _cancelled(72, T0, T0 + 4 * DAY), T0 + 4 * DAY)],
                  state=run.state)  # fmt: skip
    assert [(f.journey, f.first) for f in cancel.facts] == [(k1, False), (k2, True)]
    assert view(cancel)["shopify_first_purchase_at"] == hs_time(T0 + 3 * DAY)
    assert view(cancel)["shopify_last_purchase_at"] == hs_time(T0 + 3 * DAY)


def test_w1_a_late_older_uncancelled_version_does_not_bring_the_purchase_back() -> None:
    """Shopify cannot undo a cancellation: an older version delivered after it changes nothing."""
    cancelled = deliver("orders/cancelled", _cancelled(74, T0, T0 + DAY), T0 + DAY)
    created = deliver("orders/create", order(74, T0, cust=customer()), T0 + DAY + MINUTE)
    for pool in ([cancelled, created], [created, cancelled]):
        run = fold(pool)
        assert view(run)["shopify_first_purchase_at"] is None
        assert contacts.next_due(run.state, CONFIG) is None
        flags = {f.journey: f.first for f in run.facts}  # the last word per deal
        assert True not in flags.values()


def test_w3_a_cancelled_last_purchase_re_arms_the_trigger_from_the_one_before() -> None:
    at1, at2 = T0, T0 + 10 * DAY
    run = fold([deliver("orders/create", order(75, at1, cust=customer()), at1),
                deliver("orders/create", order(76, at2, cust=customer()), at2)])  # fmt: skip
    assert contacts.next_due(run.state, CONFIG) == at2 + CONFIG.reengage_after
    run = fold([deliver("orders/cancelled", _cancelled(76, at2, at2 + DAY), at2 + DAY)], state=run.state)
    assert contacts.next_due(run.state, CONFIG) == at1 + CONFIG.reengage_after
    assert view(run)["shopify_last_purchase_at"] == hs_time(at1)


def _deleted(body: dict[str, Any], at: Any) -> Any:
    return deliver("orders/delete", {"id": body["id"]}, at)


def test_w1_w3_a_deleted_order_leaves_the_purchase_history_for_good() -> None:
    """orders/delete (D5) at the contact: the order is no purchase any more, and a late update of
    it does not bring it back. (The body is ``{id}`` only: the rule takes it when the router
    forwards it under the order's email, see the module docstring of ``streams.rules.contacts``.)"""
    body = order(77, T0, cust=customer())
    run = fold([deliver("orders/create", body, T0)])
    key = journey_key(Order.model_validate(body))
    gone = contacts.decide(run.state, _deleted(body, T0 + DAY), T0 + DAY, CONFIG)
    assert [(f.journey, f.first) for f in gone.facts] == [(key, False)]
    (upsert,) = gone.commands
    assert isinstance(upsert, Upsert)
    assert upsert.properties["shopify_first_purchase_at"] is None
    assert upsert.properties["shopify_last_purchase_at"] is None
    assert contacts.next_due(gone.state, CONFIG) is None
    update = order(77, T0, cust=customer(), updated_at=T0 + 2 * DAY)
    late = fold([deliver("orders/updated", update, T0 + 2 * DAY)], state=gone.state)
    assert view(late)["shopify_first_purchase_at"] is None and late.facts == []
    again = contacts.decide(late.state, _deleted(body, T0 + 3 * DAY), T0 + 3 * DAY, CONFIG)
    assert again.commands == [] and again.facts == []


def test_a_delete_alone_makes_no_contact() -> None:
    outcome = contacts.decide(contacts.ContactState(email=EMAIL), _deleted(order(78, T0), T0), T0, CONFIG)
    assert outcome.commands == [] and outcome.facts == []


def test_w1_a_deleted_or_cancelled_order_deal_is_not_a_new_customer_order() -> None:
    """The deal side: whatever the contact said, a Cancelled deal is not a new customer's order."""
    run = Journey()
    run.deliver(delivery("orders/create", order_at(T0), T0))
    fact = FirstPurchase(event_id="fp", journey=KEY, first=True, at=T0)
    run.state = journeys.decide_first_purchase(run.state, fact, T0, CONFIG).state
    assert run.deal["shopify_new_customer_order"] == "true"
    run.deliver(delivery("orders/delete", {"id": order_at(T0)["id"]}, T0 + timedelta(hours=1)))
    assert run.deal["dealstage"] == "Cancelled"
    assert run.deal["shopify_new_customer_order"] == "false"


def _w1_flags(deletions: tuple[int, ...], facts_first: bool) -> dict[int, PropertyValue]:
    """Two orders of one contact, both deleted, the deletions reaching the contact in the order
    given; each journey gets its own order, its own deletion and the contact's facts (before its
    deletion or after it). The deals' final ``shopify_new_customer_order``, by order number."""
    bodies = {n: order(n, T0 + n * DAY, cust=customer()) for n in (1, 2)}
    run = fold([deliver("orders/create", bodies[n], T0 + n * DAY) for n in (1, 2)])
    facts: list[FirstPurchase] = list(run.facts)
    at = T0 + 3 * DAY
    for n in deletions:
        at += timedelta(hours=1)
        outcome = contacts.decide(run.state, _deleted(bodies[n], at), at, CONFIG)
        run.state = outcome.state
        facts += outcome.facts
    flags: dict[int, PropertyValue] = {}
    for n, body in bodies.items():
        key = journey_key(Order.model_validate(body))
        assert key is not None
        deal = Journey(key=key)
        deal.deliver(delivery("orders/create", body, T0 + n * DAY))
        mine = [f for f in facts if f.journey == key]
        gone = delivery("orders/delete", {"id": body["id"]}, T0 + 3 * DAY + n * timedelta(hours=1))
        steps: list[FirstPurchase | Any] = [*mine, gone] if facts_first else [gone, *mine]
        for step in steps:
            if isinstance(step, FirstPurchase):
                deal.state = journeys.decide_first_purchase(deal.state, step, step.at, CONFIG).state
            else:
                deal.deliver(step)
        assert deal.deal["dealstage"] == "Cancelled"
        flags[n] = deal.deal["shopify_new_customer_order"]
    return flags


def test_w1_deleted_orders_of_one_contact_end_the_same_however_their_deletions_interleave() -> None:
    """Found by X3's two-shop simulation: a contact's orders sit on other partitions than the
    contact, so their deletions reach it in either order. Deleting the first order first tells
    the second "first" and then "not first"; deleting the second first tells it nothing. The
    deals' flags used to end false in one case and empty in the other; a cancelled deal with a
    buyer is now false however it was told."""
    ends = {
        tuple(sorted(_w1_flags(deletions, facts_first).items()))
        for deletions in ((1, 2), (2, 1))
        for facts_first in (True, False)
    }
    assert ends == {((1, "false"), (2, "false"))}


# ---- 4. two lines of one variant ----


def _two_lines(body: dict[str, Any], price: str, discount: str) -> dict[str, Any]:
    """``body`` with its first line repeated (same variant) at ``price`` and ``discount``."""
    extra = dict(body["line_items"][0])
    extra["id"] = extra.get("id", 0) + 1 if isinstance(extra.get("id"), int) else "second"
    extra.update({"price": price, "total_discount": discount, "quantity": 1})
    body["line_items"][0]["total_discount"] = "1.00"
    body["line_items"].append(extra)
    return body


def test_p2_two_lines_of_one_variant_at_one_price_sum_quantity_and_discount() -> None:
    body = _two_lines(order_at(T0, lines=[SUNGLASSES]), SUNGLASSES.variant["price"], "2.50")
    (line,) = journeys.lines_of(Order.model_validate(body).line_items)
    assert line.key == variant_key(SUNGLASSES)  # the key deals already hold in HubSpot
    assert line.quantity == SUNGLASSES.quantity + 1
    assert line.price == Decimal(SUNGLASSES.variant["price"])
    assert line.discount == Decimal("3.50")


def test_p2_two_lines_of_one_variant_at_two_prices_keep_both_prices() -> None:
    """A free gift of a variant also bought at full price: two line items, each with its own
    price, quantity and discount, so the deal's money adds up to the order's."""
    body = _two_lines(order_at(T0, lines=[SUNGLASSES, SHIRTS]), "0.00", "0.00")
    lines = {ln.key: ln for ln in journeys.lines_of(Order.model_validate(body).line_items)}
    full = f"{variant_key(SUNGLASSES)}@{Decimal(SUNGLASSES.variant['price']).normalize():f}"
    gift = f"{variant_key(SUNGLASSES)}@0"
    assert set(lines) == {full, gift, variant_key(SHIRTS)}
    assert (lines[full].price, lines[full].quantity, lines[full].discount) == (
        Decimal(SUNGLASSES.variant["price"]), SUNGLASSES.quantity, Decimal("1.00"))  # fmt: skip
    assert (lines[gift].price, lines[gift].quantity) == (Decimal("0.00"), 1)
    total = sum((ln.price or 0) * ln.quantity - (ln.discount or 0) for ln in lines.values())
    items = body["line_items"]
    assert total == sum(Decimal(i["price"]) * i["quantity"] - Decimal(i["total_discount"]) for i in items)


def test_p2_single_lines_keep_their_keys() -> None:
    """Upgrading changes no key of an ordinary deal (one line per variant)."""
    keys = [ln.key for ln in journeys.lines_of(Order.model_validate(order_at(T0)).line_items)]
    assert keys == sorted(variant_key(item) for item in BASKET)


def test_p4_split_lines_keep_their_line_items_from_checkout_to_order() -> None:
    """Keyed by unit price, not by Shopify's line ids (which differ between a checkout and its
    order), split lines are updated in place when the checkout becomes an order."""
    run = Journey()
    checkout = checkout_at(T0, lines=[SUNGLASSES])
    extra = dict(checkout["line_items"][0]) | {"key": "gift-line", "price": "0.00", "quantity": 1}
    checkout["line_items"].append(extra)
    run.deliver(delivery("checkouts/update", checkout, T0))
    before = set(run.state.emitted.lines)
    order = _two_lines(order_at(T0 + MINUTE, lines=[SUNGLASSES]), "0.00", "0.00")
    commands = run.deliver(delivery("orders/create", order, T0 + MINUTE))
    assert set(run.state.emitted.lines) == before and len(before) == 2
    assert not [c for c in commands if c.op == "archive"]
    account = account_of(run.log)
    for key in before:
        assert account.of("line_items")[line_item_ref(KEY, key).id_value]


def test_c7_an_order_whose_nested_customer_id_is_unreadable_sets_no_customer_id() -> None:
    """A nested id that does not fit is synced as absent: no ``"None"`` customer id is written."""
    body = order(67, T0, cust=customer())
    body["customer"]["id"] = "not-an-id"
    props = only_upsert(fold([deliver("orders/create", body, T0)]).commands).properties
    assert props.get("shopify_customer_id") is None


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_property_cancellations_and_deletes_converge_in_any_arrival_order(data: st.DataObject) -> None:
    """Orders, their cancelled versions and deletes, in any order: the same contact, and the
    first-purchase flag ends on the earliest order that is still a purchase (or nowhere)."""
    pool = [
        deliver("customers/update", customer(note="Prefers email"), T0),
        deliver("orders/create", order(80, T0 + DAY, cust=customer()), T0 + DAY),
        deliver("orders/create", order(81, T0 + 2 * DAY, cust=customer()), T0 + 2 * DAY),
        deliver(
            "orders/create", order(82, T0 + 3 * DAY, cust=customer(updated_at=T0 + 3 * DAY)), T0 + 3 * DAY
        ),
        deliver("orders/cancelled", _cancelled(80, T0 + DAY, T0 + 4 * DAY), T0 + 4 * DAY),
        _deleted(order(81, T0), T0 + 5 * DAY),
    ]
    drop = data.draw(st.sets(st.sampled_from([4, 5])))
    kept = [d for i, d in enumerate(pool) if i not in drop]
    perm = data.draw(st.permutations(kept))
    run, reference = (
        Run(state=contacts.ContactState(email=EMAIL)),
        Run(state=contacts.ContactState(email=EMAIL)),
    )
    for target, deliveries in ((run, perm), (reference, kept)):
        for d in deliveries:
            outcome = contacts.decide(target.state, d, d.event_time, CONFIG)
            target.state, target.facts = outcome.state, target.facts + outcome.facts
    assert run.state.emitted == reference.state.emitted
    assert run.state.voided == reference.state.voided
    flags = {f.journey: f.first for f in run.facts}
    gone = {80} if 4 not in drop else set()  # the cancellation was delivered
    gone |= {81} if 5 not in drop else set()  # the delete was delivered
    first = min(n for n in (80, 81, 82) if n not in gone)
    expected = journey_key(Order.model_validate(order(first, T0, cust=customer())))
    assert {j for j, on in flags.items() if on} == {expected}


LINE_SPECS = st.lists(
    st.tuples(
        st.sampled_from([SUNGLASSES, SHIRTS]),
        st.sampled_from(["0.00", "10.00", "10.0", "24.5"]),
        st.sampled_from(["0.00", "1.25", "3.00"]),
        st.integers(min_value=1, max_value=4),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=100, deadline=None)
@given(LINE_SPECS, st.randoms(use_true_random=False))
def test_property_line_items_keep_every_lines_money_in_any_order(specs: list[Any], rnd: Any) -> None:
    """Whatever lines an order holds, the line items add up to them (HubSpot's amount is price x
    quantity - discount), their keys are unique, and the order of the lines does not matter."""
    body = order_at(T0, lines=[SUNGLASSES])
    template = body["line_items"][0]
    items = []
    for n, (item, price, discount, quantity) in enumerate(specs):
        items.append(
            template
            | {"id": n + 1, "product_id": item.product["id"], "variant_id": item.variant["id"]}
            | {"price": price, "total_discount": discount, "quantity": quantity}
        )
    body["line_items"] = items
    lines = journeys.lines_of(Order.model_validate(body).line_items)
    assert len({ln.key for ln in lines}) == len(lines)
    amount = sum(((ln.price or 0) * ln.quantity - (ln.discount or 0) for ln in lines), Decimal(0))
    assert amount == sum(Decimal(i["price"]) * i["quantity"] - Decimal(i["total_discount"]) for i in items)
    rnd.shuffle(body["line_items"])
    shuffled = journeys.lines_of(Order.model_validate(body).line_items)
    assert [ln.properties() for ln in shuffled] == [ln.properties() for ln in lines]
    single = {ln.variant_id for ln in lines if "@" not in ln.key}
    assert all(ln.key == f"variant:{ln.variant_id}" for ln in lines if ln.variant_id in single)


# ---- the mapping tables' short paths read what the field maps say ----

_MAPPED_BODIES = [
    (event.topic, event.body)
    for event in generate(customers=4, seed=5).events
    if event.topic in {"customers/create", "checkouts/update", "orders/paid"}
]


def _reference(fields: tuple[FieldMap, ...], record: Any) -> dict[str, Any]:
    return {f.hubspot_property: format_value(f.value(record)) for f in fields if f.carried_by(record)}


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_carried_properties_are_what_each_field_map_reads(data: st.DataObject) -> None:
    topic, body = data.draw(st.sampled_from(_MAPPED_BODIES))
    body = dict(body)
    keys = sorted(set(body) - {"id", "token", "cart_token"})  # the identity stays readable
    for key in data.draw(st.lists(st.sampled_from(keys), max_size=6)):
        body[key] = data.draw(st.sampled_from([None, [], "", "x", {}]))  # odd shapes, nulls
    for key in data.draw(st.lists(st.sampled_from(keys), max_size=6)):
        body.pop(key, None)
    nested = body.get("default_address") or body.get("customer")
    if isinstance(nested, dict):
        nested = dict(nested)
        for key in data.draw(st.lists(st.sampled_from(sorted(nested) or ["id"]), max_size=4)):
            nested.pop(key, None)
        body["default_address" if "default_address" in body else "customer"] = nested
    record = parse_tolerant(BODY_MODELS[topic], body).record
    for fields in (CONTACT_FIELDS, DEAL_FIELDS):
        assert carried_properties(fields, record) == _reference(fields, record)
    customer = getattr(record, "customer", None) or record
    assert carried_properties(CONTACT_FIELDS, customer) == _reference(CONTACT_FIELDS, customer)
