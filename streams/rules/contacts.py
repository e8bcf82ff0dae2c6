"""Contacts (SPEC C1-C8) and the contact-side triggers: first purchase (W1) and re-engagement (W3).

A contact is keyed by normalised email (by the email's pseudonym with ``SHOPSYNC_REDACTABLE``,
G1: the state then keeps the address as a value, ``ContactState.address``). It is fed by Shopify
customers (C7's properties), by checkouts and orders with an email (their contact details, D3,
and the purchases that drive W1 and W3), and by HubSpot's ``contact.deletion`` (C4). Rules, in
short:

- C1/C2: only records with an email make a contact; the writer upserts by ``email``, which
  creates the contact only when none has that address, else updates it.
- C3: ``customers/delete`` changes nothing in HubSpot.
- C4: after HubSpot deletes a contact, nothing is ever written for that email again (the
  contact is not re-created by a later Shopify update).
- C5/C6: the original-source drill-downs come from the initial import (``INTEGRATION_SYNC`` /
  ``integrations-sync``) when any record of the contact came through it, else from the earliest
  checkout or order (source name; referring site, else landing site), else from the customer.
- C7/C8: the 16 customer properties and ``shopify_customer_id``; the phone is only ever the
  customer overview's. They come from customer records and from the customer object nested in
  checkouts and orders (so a contact made from an order carries its ``customer.id``), and each
  property follows the newest version of the customer that carries it (the customer's
  ``updated_at``, the nested one's too): a newer version's ``null`` clears the property (sent as
  ``None``, which the writer turns into HubSpot's clearing ``""``), a version that leaves a field
  out says nothing about it. Where no customer gives a value, the billing address of the newest
  checkout or order that carries one fills the names and the address (D3).
- X4: email and SMS marketing consent (``streams.rules.consent``), from the same customer
  versions, each channel following its newest ``consent_updated_at`` (``ContactState.consent``).
- Purchases: an order is a purchase unless it is cancelled (``cancelled_at`` set, or financial
  status voided or expired) or deleted (``orders/delete``). Shopify cannot undo either, so an
  order once seen cancelled or deleted stays out of the purchase history whatever arrives later
  (every arrival order ends the same). Only purchases count for W1 and W3, and for
  ``shopify_first_purchase_at`` / ``shopify_last_purchase_at``.
- W1: ``shopify_first_purchase_at`` is the contact's earliest purchase's creation time, and that
  order's deal is told it is a new customer's (see ``journeys.FirstPurchase``). When that order is
  cancelled or deleted, the next purchase becomes the first: the cancelled order's deal is told
  it is not (``shopify_new_customer_order`` false) and the next one's that it is, as when an
  earlier order arrives late. That is what an administrator expects of "new customer": the
  workflow is about the customer's first real purchase, and a cancelled order (mostly cancelled
  within hours, before a welcome sequence's first delay) is none. Each deal's flag is still a
  deterministic function of Shopify's data, so replay writes the same values and never enrols a
  deal twice; a workflow that must stop for the cancelled deal can un-enrol on the flag turning
  false.
- X3 (several shops): one contact per email across shops, as HubSpot dedupes; with a primary
  shop set, ``shopify_shops`` lists every shop whose customer, checkout or order carries the
  email. Per-shop facts combine: orders are told apart by shop (an order id is only unique in
  its shop), so purchases, W1 and W3 span every shop; ``shopify_orders_count`` is the sum of each
  shop's newest count (a count has no currency; no money total is a contact property); every
  other property follows the newest version across shops, as within one shop.
- W3: ``reengage_after`` (default 90 days) after the last purchase, unless another purchase came,
  ``shopify_reengagement_trigger_at`` is set to that due time; each purchase re-arms it. A
  cancelled last purchase re-arms it from the purchase before; a trigger already fired keeps the
  value it was written with.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from config.rules import RuleConfig
from schemas.commands import AnyCommand, PropertyValue, RecordRef
from schemas.envelope import Delivery, HubSpotContactDeletion
from schemas.shopify import Address, Checkout, Customer, CustomerBase, Deleted, Order, ShopifyModel
from streams.mapping import carried_contact_properties, contact_properties, format_value
from streams.rules.common import Version, evolve, remember, upsert_if_changed, version_of
from streams.rules.consent import consents_of, subscription_changes
from streams.rules.contact_keys import is_pseudonym
from streams.rules.journeys import FirstPurchase, order_stage
from streams.rules.keys import CONTACT_SHOPS_PROPERTY, contact_ref, journey_key, normalize_email

IMPORT_DRILL_DOWN = ("INTEGRATION_SYNC", "integrations-sync")  # C5


def contact_upsert_properties(customer: Customer) -> dict[str, PropertyValue]:
    """C7 properties of a customer plus its Shopify id (the email normalised as the key)."""
    props = contact_properties(customer)
    props["email"] = normalize_email(customer.email)
    props["shopify_customer_id"] = str(customer.id)
    return props


@dataclass(frozen=True, slots=True)
class Origin:
    """Where the contact came from (C5/C6). The smallest ``rank`` wins, so arrival order does not
    matter: an import record, else the earliest checkout/order, else the earliest customer."""

    rank: tuple[int, datetime, str]
    drill_down_1: str | None
    drill_down_2: str | None


@dataclass(frozen=True, slots=True)
class Details:
    """One record's contribution to the contact: its version and the properties it carries.

    Kept to read states stored by older versions (``ContactState.customer`` and ``.details``);
    new records are folded into per-property :class:`Stamped` values."""

    version: Version
    properties: dict[str, PropertyValue]


@dataclass(frozen=True, slots=True)
class Stamped:
    """One property's value and the version of the record it came from (newest wins)."""

    version: Version
    value: PropertyValue


Stamps = dict[str, Stamped]


@dataclass(frozen=True, slots=True)
class ContactView:
    """What HubSpot holds (or should hold) for the email: whether the contact exists, its properties."""

    exists: bool = False
    properties: dict[str, PropertyValue] = field(default_factory=dict)


class ContactState(BaseModel):
    """Everything the product knows about one email address."""

    model_config = ConfigDict(frozen=True)

    email: str
    """The contact's key: the email, or (G1, ``SHOPSYNC_REDACTABLE``) its pseudonym."""
    address: str | None = Field(None, exclude_if=lambda value: value is None)
    """G1: the email itself when ``email`` is its pseudonym (what HubSpot's ``email`` property
    gets), learnt from the first record that carries it; absent otherwise, so a state row without
    the setting is what it always was."""
    partition: int = -1
    seen: dict[str, datetime] = Field(default_factory=dict)
    deleted_in_hubspot_at: datetime | None = None
    customer: Details | None = None  # legacy: the newest customer record (see Details)
    details: Details | None = None  # legacy: the newest checkout's or order's details
    profile: Stamps = Field(default_factory=dict)  # C7 + customer id, from customers (nested too)
    billing: Stamps = Field(default_factory=dict)  # D3: names and address from billing addresses
    consent: Stamps = Field(default_factory=dict)  # X4: dated by consent_updated_at, not updated_at
    origin: Origin | None = None
    purchases: dict[str, datetime] = Field(default_factory=dict)  # order id -> created at
    purchase_journeys: dict[str, str] = Field(default_factory=dict)  # order id -> journey key
    voided: dict[str, datetime] = Field(default_factory=dict)  # order id -> cancelled or deleted at
    reengagement_fired_at: datetime | None = None
    reengagement_late: bool = False
    reengagement_basis: datetime | None = None  # the last purchase the fired trigger counted from
    first_purchase_journey: str | None = None
    shops: tuple[str, ...] = ()  # X3: the shops whose records fed the contact, sorted
    shop_counts: dict[str, Stamped] = Field(default_factory=dict)  # X3: shop -> its newest orders count
    emitted: ContactView = Field(default_factory=ContactView)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The new state, the HubSpot commands, and facts for the journey rules (W1)."""

    state: ContactState
    commands: list[AnyCommand] = field(default_factory=list)
    facts: list[FirstPurchase] = field(default_factory=list)


TimerKind = Literal["reengagement"]


def _address_properties(address: Address | None) -> dict[str, PropertyValue]:
    if address is None:
        return {}
    return {
        "firstname": address.first_name,
        "lastname": address.last_name,
        "address": address.address1,
        "city": address.city,
        "country": address.country,
        "state": address.province,
        "zip": address.zip,
    }


def details_of(record: Checkout | Order) -> dict[str, PropertyValue]:
    """D3: the contact details a checkout or order carries (its customer's, else its billing
    address's). C8: a phone only from the customer overview, never from an address."""
    nested = _nested_customer(record)
    billing = {k: v for k, v in _billing_of(record).items() if v is not None}
    return {**billing, **{k: v for k, v in nested.items() if v is not None or k not in billing}}


def _nested_customer(record: Checkout | Order) -> dict[str, PropertyValue]:
    """The customer object's properties, as it carries them (its email is not the contact's key:
    the record's email is), with its Shopify id."""
    if record.customer is None:
        return {}
    props = carried_contact_properties(record.customer)
    props.pop("email", None)
    if record.customer.id is not None:  # an unreadable nested id says nothing about the customer
        props["shopify_customer_id"] = str(record.customer.id)
    return props


def _billing_of(record: Checkout | Order) -> dict[str, PropertyValue]:
    """The names and address of the record's billing address, if it carries one (``null``
    included: the record says it has none)."""
    if "billing_address" not in record.model_fields_set:
        return {}
    return dict.fromkeys(_ADDRESS_PROPERTIES) | _address_properties(record.billing_address)


_ADDRESS_PROPERTIES = ("firstname", "lastname", "address", "city", "country", "state", "zip")


def _stamp(stamps: Stamps, version: Version, props: dict[str, PropertyValue]) -> Stamps:
    """``stamps`` with each of ``props`` taken where ``version`` is newer than the stamp it has:
    per property the newest version wins, so every arrival order ends with the same values."""
    newer = {k: Stamped(version=version, value=v) for k, v in props.items()
             if k not in stamps or version.newer_than(stamps[k].version)}  # fmt: skip
    return {**stamps, **newer} if newer else stamps


def _stamp_consent(stamps: Stamps, customer: CustomerBase, carrier: Version) -> Stamps:
    """X4: ``stamps`` with each consent the customer version carries, dated by its own time."""
    for dated, props in consents_of(customer, carrier):
        stamps = _stamp(stamps, dated, props)
    return stamps


def _newest(*layers: Stamps) -> Stamps:
    merged: Stamps = {}
    for layer in layers:
        for k, stamped in layer.items():
            if k not in merged or stamped.version.newer_than(merged[k].version):
                merged[k] = stamped
    return merged


def _legacy(details: Details | None) -> Stamps:
    if details is None:
        return {}
    return {k: Stamped(version=details.version, value=v) for k, v in details.properties.items()}


def _is_purchase(order: Order) -> bool:
    """A cancelled order (``cancelled_at``, or voided or expired) is not a purchase."""
    return order_stage(order) != "Cancelled"


def purchases(state: ContactState) -> dict[str, datetime]:
    """The contact's purchases (order id -> created at): its orders, less cancelled or deleted."""
    return {k: at for k, at in state.purchases.items() if k not in state.voided}


def _origin_of(record: ShopifyModel, delivery: Delivery, digest: str) -> Origin:
    created = getattr(record, "created_at", None) or delivery.event_time
    if delivery.source == "import":
        return Origin(
            rank=(0, created, digest), drill_down_1=IMPORT_DRILL_DOWN[0], drill_down_2=IMPORT_DRILL_DOWN[1]
        )
    if isinstance(record, Checkout | Order):
        return Origin(
            rank=(1, created, digest),
            drill_down_1=record.source_name,
            drill_down_2=record.referring_site or record.landing_site,
        )
    return Origin(rank=(2, created, digest), drill_down_1="shopify", drill_down_2="customer")


def timers(state: ContactState, config: RuleConfig) -> dict[TimerKind, datetime]:
    bought = purchases(state)
    if not bought or state.deleted_in_hubspot_at is not None:
        return {}
    due = max(bought.values()) + config.reengage_after
    if state.reengagement_fired_at is not None and state.reengagement_fired_at >= due:
        return {}
    return {"reengagement": due}


def fire(state: ContactState, now: datetime, config: RuleConfig) -> ContactState:
    due = timers(state, config).get("reengagement")
    if due is not None and due <= now:
        late = now - due > config.trigger_grace
        basis = max(purchases(state).values())
        return evolve(
            state, {"reengagement_fired_at": due, "reengagement_late": late, "reengagement_basis": basis}
        )
    return state


def next_due(state: ContactState, config: RuleConfig) -> datetime | None:
    pending = timers(state, config)
    return min(pending.values()) if pending else None


def _first_purchase(state: ContactState) -> tuple[str, datetime] | None:
    bought = purchases(state)
    if not bought:
        return None
    order_id, at = min(bought.items(), key=lambda item: (item[1], item[0]))
    return order_id, at


ORDERS_COUNT = "shopify_orders_count"


def _shop_facts(state: ContactState, config: RuleConfig) -> dict[str, PropertyValue]:
    """X3: the shops listed, and the orders count summed over shops once more than one gave one
    (a single shop's count stays the value its customer gave, byte for byte)."""
    if not config.several_shops:
        return {}
    facts: dict[str, PropertyValue] = {CONTACT_SHOPS_PROPERTY: ";".join(state.shops) or None}
    counts = [c.value for c in state.shop_counts.values() if c.value is not None]
    if len(state.shop_counts) > 1:
        facts[ORDERS_COUNT] = str(sum(int(c) for c in counts if c.isdigit())) if counts else None
    return facts


def address_of(state: ContactState) -> str | None:
    """The contact's email: its key, or the address kept beside a pseudonym key (G1); None for a
    pseudonym-keyed state no record with the address has fed (an early orders/delete)."""
    if state.address is not None:
        return state.address
    return None if is_pseudonym(state.email) else state.email


def render(state: ContactState, config: RuleConfig | None = None) -> ContactView:
    """What HubSpot should hold for this email; nothing at all once HubSpot deleted it (C4)."""
    if state.deleted_in_hubspot_at is not None:
        return state.emitted  # frozen as last sent: no further writes, no re-creation
    address = address_of(state)
    if address is None:  # G1: keyed by pseudonym, and no record has said the address yet
        return ContactView(exists=False)
    profile = _newest(_legacy(state.customer), state.profile)
    billing = _newest(_legacy(state.details), state.billing)
    if state.origin is None and not profile and not billing:  # no record has fed it (an orders/delete)
        return ContactView(exists=False)
    props: dict[str, PropertyValue] = {}
    for k in sorted(set(profile) | set(billing)):
        value = profile[k].value if k in profile else None
        props[k] = value if value is not None else (billing[k].value if k in billing else None)
    props.update({k: stamped.value for k, stamped in state.consent.items()})
    props.update(_shop_facts(state, config or RuleConfig()))
    props["email"] = address
    if state.origin is not None:
        props["shopify_source_drill_down_1"] = state.origin.drill_down_1
        props["shopify_source_drill_down_2"] = state.origin.drill_down_2
    first = _first_purchase(state)
    props["shopify_first_purchase_at"] = format_value(first[1]) if first else None
    bought = purchases(state)
    props["shopify_last_purchase_at"] = format_value(max(bought.values())) if bought else None
    trigger = "shopify_reengagement_trigger_at"
    if state.reengagement_late:  # recorded, not written: HubSpot keeps the value it was last sent
        props[trigger] = state.emitted.properties.get(trigger)
    else:
        props[trigger] = format_value(reengagement_trigger(state))
    return ContactView(exists=True, properties=props)


def reengagement_trigger(state: ContactState) -> datetime | None:
    """W3's value: the due time it fired at, unless Shopify's data shows a purchase made between
    the purchase it counted from and that time (an order delivered late): then the contact did
    not go quiet, and every arrival order ends with no trigger until the next one is due."""
    fired, basis = state.reengagement_fired_at, state.reengagement_basis
    if fired is None:
        return None
    if basis is not None and any(basis < at <= fired for at in purchases(state).values()):
        return None
    return fired


def _finish(
    before: ContactState, state: ContactState, event_id: str, now: datetime, config: RuleConfig
) -> Outcome:
    view = render(state, config)
    commands: list[AnyCommand] = []
    if view.exists and state.deleted_in_hubspot_at is None:
        # C4: once created, a contact is only ever updated. If HubSpot deleted it before its
        # contact.deletion reached us, the writer finds nothing and must not re-create it.
        created = before.emitted.exists
        commands = upsert_if_changed(
            contact_of(state),
            view.properties,
            before.emitted.properties if created else None,
            create_if_missing=not created,
        )
    facts: list[FirstPurchase] = []
    first = _first_purchase(state)
    journey = state.purchase_journeys.get(first[0]) if first else None
    if journey != state.first_purchase_journey:
        if state.first_purchase_journey is not None:
            facts.append(FirstPurchase(event_id=f"{event_id}:unset", journey=state.first_purchase_journey,
                                       first=False, at=now))  # fmt: skip
        if journey is not None:
            facts.append(FirstPurchase(event_id=f"{event_id}:set", journey=journey, first=True, at=now))
        state = evolve(state, {"first_purchase_journey": journey})
    return Outcome(state=evolve(state, {"emitted": view}), commands=commands, facts=facts)


def contact_of(state: ContactState) -> RecordRef:
    """The contact's ref: named by its key, with the address beside a pseudonym key (G1)."""
    address = address_of(state)
    if address is None:  # pragma: no cover - only rendered contacts (which have one) get commands
        raise ValueError("a contact without an address has no HubSpot record")
    return contact_ref(address, state.email)


def _apply(state: ContactState, delivery: Delivery, record: ShopifyModel, config: RuleConfig) -> ContactState:
    prefix = config.key_prefix(delivery.shop_domain)  # X3: an order id is unique in its shop only
    if isinstance(record, Deleted):  # orders/delete: the order leaves the purchase history
        if delivery.resource != "orders":
            return state
        return _void(state, f"{prefix}{record.id}", delivery.event_time)
    version = version_of(getattr(record, "updated_at", None), delivery.body, delivery.event_time)
    update: dict[str, object] = {}
    if state.address is None and is_pseudonym(state.email):  # G1: the address the key stands for
        update["address"] = email_of(record)
    shop = delivery.shop_domain.strip().lower()
    if config.several_shops and shop and shop not in state.shops:
        update["shops"] = tuple(sorted({*state.shops, shop}))
    origin = _origin_of(record, delivery, version.digest)
    if state.origin is None or origin.rank < state.origin.rank:
        update["origin"] = origin
    if isinstance(record, Customer):
        props = carried_contact_properties(record)
        props.pop("email", None)  # the key, set by render
        props["shopify_customer_id"] = str(record.id)
        update["profile"] = _stamp(state.profile, version, props)
        update["consent"] = _stamp_consent(state.consent, record, version)
        update["shop_counts"] = _count(state, shop, version, props, config)
    elif isinstance(record, Checkout | Order):
        if record.customer is not None:
            # The nested customer is the customer as of its own updated_at, like a customer record.
            nested = Version(
                updated_at=record.customer.updated_at or version.updated_at, digest=version.digest
            )
            carried = _nested_customer(record)
            update["profile"] = _stamp(state.profile, nested, carried)
            update["consent"] = _stamp_consent(state.consent, record.customer, nested)
            update["shop_counts"] = _count(state, shop, nested, carried, config)
        update["billing"] = _stamp(state.billing, version, _billing_of(record))
        if isinstance(record, Order) and record.created_at is not None:
            order_id = f"{prefix}{record.id}"
            key = journey_key(record, prefix)
            update["purchases"] = {**state.purchases, order_id: record.created_at}
            if key is not None:
                update["purchase_journeys"] = {**state.purchase_journeys, order_id: key}
            if not _is_purchase(record):
                update["voided"] = _void(state, order_id, record.cancelled_at or version.updated_at).voided
    return evolve(state, update)


def _count(
    state: ContactState, shop: str, version: Version, props: dict[str, PropertyValue], config: RuleConfig
) -> dict[str, Stamped]:
    """X3: the shop's orders count, newest version wins within the shop."""
    if not config.several_shops or ORDERS_COUNT not in props:
        return state.shop_counts
    known = state.shop_counts.get(shop)
    if known is not None and not version.newer_than(known.version):
        return state.shop_counts
    return {**state.shop_counts, shop: Stamped(version=version, value=props[ORDERS_COUNT])}


def _void(state: ContactState, order_id: str, at: datetime) -> ContactState:
    """The order leaves the purchase history for good; the earliest time it was known to have
    left is kept, so every arrival order of its versions ends in the same state."""
    known = state.voided.get(order_id)
    if known is not None and known <= at:
        return state
    return evolve(state, {"voided": {**state.voided, order_id: at}})


def decide(state: ContactState, delivery: Delivery, now: datetime, config: RuleConfig) -> Outcome:
    """Fold a customer, checkout or order delivery for this email into the contact."""
    # X3: event ids are a shop's own (an import's are made from record ids): one shop's never
    # drops another's as a duplicate in the one contact they share.
    event_id = config.key_prefix(delivery.shop_domain) + delivery.event_id
    seen = remember(state.seen, event_id, delivery.event_time, config.dedupe_ttl)
    if seen is None:
        return Outcome(state=state)
    record = delivery.parse_body()
    fired = fire(state, now, config)
    after = _apply(evolve(fired, {"seen": seen}), delivery, record, config)
    outcome = _finish(state, after, event_id, now, config)
    emitted = outcome.state.emitted.properties
    if address_of(outcome.state) is None:  # G1: nothing said the address yet, nothing rendered
        return outcome
    moves = subscription_changes(contact_of(outcome.state), state.emitted.properties, emitted, config)
    return replace(outcome, commands=[*outcome.commands, *moves]) if moves else outcome  # X4, opt-in


def decide_deletion(
    state: ContactState, event: HubSpotContactDeletion, now: datetime, config: RuleConfig
) -> Outcome:
    """C4: HubSpot deleted the contact: remember it and never write this email again."""
    if state.deleted_in_hubspot_at is not None:
        return Outcome(state=state)
    after = evolve(state, {"deleted_in_hubspot_at": event.occurred_at})
    return Outcome(state=after)


def on_tick(state: ContactState, now: datetime, config: RuleConfig) -> Outcome:
    return _finish(state, fire(state, now, config), f"tick:{state.email}", now, config)


def email_of(record: ShopifyModel) -> str | None:
    """The contact a record feeds, if any (C2: no email, no contact; D7)."""
    if isinstance(record, Customer):
        return normalize_email(record.email)
    if isinstance(record, Checkout | Order):
        return normalize_email(record.buyer_email())
    return None
