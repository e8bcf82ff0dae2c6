"""B2B companies (SPEC X2): a Shopify company, its locations and its orders, as one HubSpot company.

Shopify Plus shops sell to companies: a company (``companies/*``) has locations
(``company_locations/*``, each naming its ``company_id``), and an order placed for one carries
``company: {id, location_id}``. All three reach this entity keyed by the Shopify company id, and it
renders one HubSpot company upserted by ``shopify_company_id``:

- the company's ``name``, and its external id, note, creation and customer-since dates as
  ``shopify_company_*`` properties;
- the *main location*'s address as HubSpot's own company address properties (``address``,
  ``address2``, ``city``, ``state``, ``zip``, ``country``, ``phone``): the earliest created
  location still there (ties: the lower id), its billing address, else its shipping address;
- every location the company is known to have in ``shopify_company_locations`` (``<name> (<id>)``,
  or the id alone for a location known only from an order), by id;
- associations: company to each of its orders' contacts and to each of its company contacts
  (``company_contacts/*``, joined with their customer's email by ``streams.rules.company_members``,
  so a contact who never ordered is linked too) (HubSpot's 280), to each order's deal
  where deals are written (342) and to each order's Order where orders are written (X1's
  ``DEFAULT_ASSOCIATION``, looked up at set-up like the other commerce pairs).

A company first known from an order or a company contact is created with what that says (its
id, the location id) and filled in when its webhook comes. Like every entity, the state keeps the
newest version of each record (the company, each location, each order; each member's newest
fact), so duplicates, reordering and replay end in the same company. ``companies/delete`` does
not archive the HubSpot company: its orders and contacts stay history (as C3 keeps a deleted
customer's contact, D5 a deleted order's deal), so the company is marked with
``shopify_company_deleted_at`` and keeps its associations; a late update never clears the mark.
A deleted location leaves the list (and the address, if it was the main one). A company contact
deleted in Shopify (``company_contacts/delete``) unlinks its contact, unless an order links it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from config.rules import RuleConfig
from schemas.commands import DEFAULT_ASSOCIATION, AnyCommand, Associate, Dissociate, PropertyValue, RecordRef
from schemas.envelope import Delivery
from schemas.shopify import Address, Company, CompanyLocation, Order
from streams.mapping import format_value
from streams.rules.common import Version, evolve, remember, upsert_if_changed, version_of
from streams.rules.company_members import CompanyMember
from streams.rules.contact_keys import contact_link_ref, email_contact_key
from streams.rules.keys import (
    company_ref,
    deal_ref,
    journey_key,
    order_ref,
    shop_mark,
)

COMPANY_TO_CONTACT = 280
COMPANY_TO_DEAL = 342
"""HubSpot's HUBSPOT_DEFINED unlabelled type ids (company to contact, company to deal); the
company to Order type is read at set-up (``DEFAULT_ASSOCIATION``), as X1's pairs are."""
ADDRESS_PROPERTIES = ("address", "address2", "city", "state", "zip", "country", "phone")
COMPANY_PROPERTIES = (
    "name",
    "shopify_company_external_id",
    "shopify_company_note",
    "shopify_company_created_at",
    "shopify_company_customer_since",
)
Linked = Literal["contacts", "deals", "orders"]


@dataclass(frozen=True, slots=True)
class CompanySnap:
    """The newest ``companies/*`` version: its HubSpot properties."""

    version: Version
    properties: dict[str, PropertyValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LocationSnap:
    """The newest version of one company location."""

    version: Version
    name: str | None = None
    created_at: datetime | None = None
    address: dict[str, PropertyValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OrderLink:
    """What the newest version of one B2B order says about its company."""

    version: Version
    journey: str
    email: str | None = None
    """The buyer's contact key (``streams.rules.contact_keys``): the normalised email, or with
    ``SHOPSYNC_REDACTABLE`` its pseudonym, so a company's row (sealed under the shop's key, G1)
    never holds a customer's address."""
    location_id: int | None = None


@dataclass(frozen=True, slots=True)
class CompanyView:
    """What HubSpot should hold for the company: its properties and the records it is linked to."""

    exists: bool = False
    properties: dict[str, PropertyValue] = field(default_factory=dict)
    contacts: tuple[str, ...] = ()
    """Contact keys (emails, or their pseudonyms under ``SHOPSYNC_REDACTABLE``)."""
    deals: tuple[str, ...] = ()
    orders: tuple[str, ...] = ()


class CompanyState(BaseModel):
    """One Shopify company's entity state (keyed by the Shopify company id)."""

    company_id: int
    prefix: str = ""
    """X3: the key prefix of the company's shop (empty for the primary shop)."""
    seen: dict[str, datetime] = Field(default_factory=dict)
    company: CompanySnap | None = None
    deleted_at: datetime | None = None
    locations: dict[str, LocationSnap] = Field(default_factory=dict)
    deleted_locations: dict[str, datetime] = Field(default_factory=dict)
    orders: dict[str, OrderLink] = Field(default_factory=dict)
    members: dict[str, str | None] = Field(default_factory=dict)
    """Customer id -> contact key of each company contact (None: no longer one, or no email
    known): the email, or its pseudonym under ``SHOPSYNC_REDACTABLE`` (G1)."""
    emitted: CompanyView = Field(default_factory=CompanyView)


@dataclass(frozen=True)
class Outcome:
    state: CompanyState
    commands: list[AnyCommand] = field(default_factory=list)


def _address(location: CompanyLocation) -> dict[str, PropertyValue]:
    address: Address = location.billing_address or location.shipping_address or Address()
    return {
        "address": address.address1,
        "address2": address.address2,
        "city": address.city,
        "state": address.province,
        "zip": address.zip,
        "country": address.country,
        "phone": location.phone or address.phone,
    }


def _company_properties(company: Company) -> dict[str, PropertyValue]:
    return {
        "name": company.name,
        "shopify_company_external_id": company.external_id,
        "shopify_company_note": company.note,
        "shopify_company_created_at": format_value(company.created_at),
        "shopify_company_customer_since": format_value(company.customer_since),
    }


def _apply(state: CompanyState, delivery: Delivery, record: object, config: RuleConfig) -> CompanyState:
    at = delivery.event_time
    if isinstance(record, Company) and delivery.action == "delete":
        if state.deleted_at is None:
            return evolve(state, {"deleted_at": at})
    elif isinstance(record, Company):
        company = CompanySnap(version_of(record.updated_at, delivery.body, at), _company_properties(record))
        if company.version.newer_than(state.company.version if state.company else None):
            return evolve(state, {"company": company})
    elif isinstance(record, CompanyLocation) and record.location_id() is not None:
        key = str(record.location_id())
        if delivery.topic.endswith("/delete"):
            if key not in state.deleted_locations:
                return evolve(state, {"deleted_locations": {**state.deleted_locations, key: at}})
            return state
        version = version_of(record.updated_at, delivery.body, at)
        known = state.locations.get(key)
        if version.newer_than(known.version if known else None):
            snap = LocationSnap(version, record.name, record.created_at, _address(record))
            return evolve(state, {"locations": {**state.locations, key: snap}})
    elif isinstance(record, Order) and record.company is not None and record.company.id == state.company_id:
        journey = journey_key(record, state.prefix)
        key = str(record.id)
        version = version_of(record.updated_at, delivery.body, at)
        linked = state.orders.get(key)
        if journey is not None and version.newer_than(linked.version if linked else None):
            contact = email_contact_key(record.buyer_email(), config)
            link = OrderLink(version, journey, contact, record.company.location_id)
            return evolve(state, {"orders": {**state.orders, key: link}})
    return state


def _main_location(state: CompanyState) -> LocationSnap | None:
    """The earliest created location still there (no date: last), ties by the lower id."""
    live = [(int(k), s) for k, s in state.locations.items() if k not in state.deleted_locations]
    if not live:
        return None
    far = datetime.max.replace(tzinfo=UTC)
    return min(live, key=lambda item: (item[1].created_at or far, item[0]))[1]


def _location_list(state: CompanyState) -> str | None:
    names: dict[int, str | None] = {int(k): s.name for k, s in state.locations.items()}
    for link in state.orders.values():
        if link.location_id is not None:
            names.setdefault(link.location_id, None)
    entries = [f"{name} ({i})" if name else str(i) for i, name in sorted(names.items())
               if str(i) not in state.deleted_locations]  # fmt: skip
    return "; ".join(entries) or None


def render(state: CompanyState, config: RuleConfig) -> CompanyView:
    """What HubSpot should hold for the company, from the state alone."""
    if state.company is None and not state.orders and not state.locations and not state.members:
        return CompanyView()
    props: dict[str, PropertyValue] = {"shopify_company_id": f"{state.prefix}{state.company_id}"}
    props |= shop_mark(state.prefix, config)  # X3: the company names its shop
    if state.company is not None:
        props |= state.company.properties
    if state.locations or state.orders:
        props["shopify_company_locations"] = _location_list(state)
    if state.locations:  # an address is known only from a location webhook; none left clears it
        main = _main_location(state)
        props |= main.address if main is not None else dict.fromkeys(ADDRESS_PROPERTIES)
    if state.deleted_at is not None:
        props["shopify_company_deleted_at"] = format_value(state.deleted_at)
    journeys = tuple(sorted({link.journey for link in state.orders.values()}))
    emails = {link.email for link in state.orders.values() if link.email}
    return CompanyView(
        exists=True,
        properties=props,
        contacts=tuple(sorted(emails | {email for email in state.members.values() if email})),
        deals=journeys if config.writes("deals") else (),
        orders=journeys if config.writes("orders") else (),
    )


def _link_changes(
    record: RecordRef, before: tuple[str, ...], after: tuple[str, ...], kind: Linked
) -> list[AnyCommand]:
    """The company's links of one kind (its contacts by contact key: a pseudonym's ref names the
    contact by it alone, without the address, G1)."""
    to_ref = {
        "contacts": contact_link_ref,
        "deals": deal_ref,
        "orders": order_ref,
    }[kind]
    type_id = {"contacts": COMPANY_TO_CONTACT, "deals": COMPANY_TO_DEAL, "orders": DEFAULT_ASSOCIATION}[kind]
    gone = [
        Dissociate(record=record, to=to_ref(k), association_type_id=type_id) for k in before if k not in after
    ]
    new = [
        Associate(record=record, to=to_ref(k), association_type_id=type_id) for k in after if k not in before
    ]
    return [*gone, *new]


def diff(
    company_id: int,
    before: CompanyView,
    after: CompanyView,
    prefix: str = "",
) -> list[AnyCommand]:
    """The commands taking HubSpot from ``before`` to ``after``: the upsert first, so the writer
    (which makes associations after every upsert of its window, and holds one whose end is not in
    HubSpot yet) links the company once both ends exist."""
    if not after.exists:
        return []
    record = company_ref(company_id, prefix)
    commands = upsert_if_changed(record, after.properties, before.properties if before.exists else None)
    for kind in ("contacts", "deals", "orders"):
        commands += _link_changes(record, getattr(before, kind), getattr(after, kind), kind)
    return commands


def _finish(state: CompanyState, config: RuleConfig) -> Outcome:
    view = render(state, config)
    return Outcome(
        evolve(state, {"emitted": view}), diff(state.company_id, state.emitted, view, state.prefix)
    )


def decide_member(state: CompanyState, fact: CompanyMember, config: RuleConfig) -> Outcome:
    """A customer became (or stopped being) a contact of the company, or changed its email."""
    key = str(fact.customer_id)
    if key in state.members and state.members[key] == fact.email:
        return Outcome(state=state)
    return _finish(evolve(state, {"members": {**state.members, key: fact.email}}), config)


def decide(state: CompanyState, delivery: Delivery, now: datetime, config: RuleConfig) -> Outcome:
    """Fold one company, location or B2B order delivery into the company."""
    seen = remember(state.seen, delivery.event_id, delivery.event_time, config.dedupe_ttl)
    if seen is None:
        return Outcome(state=state)  # a duplicate changes nothing and emits nothing
    after = _apply(evolve(state, {"seen": seen}), delivery, delivery.parse_body(), config)
    return _finish(after, config)
