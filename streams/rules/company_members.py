"""X2: which companies a Shopify customer is a contact of, joined with the customer's email.

A company contact who never ordered is known only from ``company_contacts/*``, whose body names
its customer and company by global id and carries no email; the customer's email is in its
``customers/*`` deliveries. Both reach this entity keyed by the customer id (the bridge appends
company contacts to ``shopify.customers`` under their customer's id), which keeps:

- the customer's newest email (from the newest ``customers/*`` version, by ``updated_at``);
- each company contact of the customer (by its global id): its newest version's company, and a
  delete mark (``company_contacts/delete``; Shopify does not reuse an id, so a late update after
  the delete does not bring the contact back).

What it emits is a :class:`CompanyMember` fact per company whose link changed: "this customer is a
contact of that company, with this email" (``email`` None: no longer, or no email known). The
email is a contact key (``streams.rules.contact_keys``): with ``SHOPSYNC_REDACTABLE`` its
pseudonym, as everywhere a contact is named, so neither this state nor the fact nor the company
row it ends in holds the address (G1: a company's row is sealed under the shop's key, which a
``customers/redact`` does not shred). The
companies entity (``streams.rules.companies``) associates the company with that contact, beside
the contacts of its orders. The contact itself is the customer's, made by the contact rules from
``customers/*`` (C1): nothing here creates one without an email. Like every entity the state keeps
newest versions only, so duplicates, reordering and replay end with the same facts last emitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from config.rules import RuleConfig
from schemas.envelope import Delivery
from schemas.shopify import CompanyContact, Customer
from streams.rules.common import Version, evolve, remember, version_of
from streams.rules.contact_keys import email_contact_key


class CompanyMember(BaseModel):
    """To the companies entity: the customer is (``email`` set: the customer's contact key) or is
    not (None) a contact of it."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["company-member"] = "company-member"
    company_id: int
    customer_id: int
    email: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class EmailSnap:
    version: Version
    email: str | None
    """The contact key of the customer's email (the email, or its pseudonym under G1)."""


@dataclass(frozen=True, slots=True)
class ContactSnap:
    """The newest version of one company contact of this customer."""

    version: Version
    company_id: int | None


class MemberState(BaseModel):
    """One Shopify customer's company contacts and email (keyed by the customer id)."""

    customer_id: int
    prefix: str = ""
    """X3: the key prefix of the customer's shop (empty for the primary shop)."""
    seen: dict[str, datetime] = Field(default_factory=dict)
    email: EmailSnap | None = None
    contacts: dict[str, ContactSnap] = Field(default_factory=dict)
    deleted: dict[str, datetime] = Field(default_factory=dict)
    emitted: dict[str, str] = Field(default_factory=dict)  # company id -> email last announced


@dataclass(frozen=True)
class Outcome:
    state: MemberState
    facts: list[CompanyMember] = field(default_factory=list)


def _apply(state: MemberState, delivery: Delivery, record: object, config: RuleConfig) -> MemberState:
    at = delivery.event_time
    if isinstance(record, Customer) and record.id == state.customer_id:
        version = version_of(record.updated_at, delivery.body, at)
        snap = EmailSnap(version, email_contact_key(record.email, config))
        if snap.version.newer_than(state.email.version if state.email else None):
            return evolve(state, {"email": snap})
    elif isinstance(record, CompanyContact) and record.customer_id() == state.customer_id:
        key = record.admin_graphql_api_id or f"company:{record.company_id()}"
        if delivery.action == "delete":
            if key not in state.deleted:
                return evolve(state, {"deleted": {**state.deleted, key: at}})
            return state
        contact = ContactSnap(version_of(record.updated_at, delivery.body, at), record.company_id())
        known = state.contacts.get(key)
        if contact.version.newer_than(known.version if known else None):
            return evolve(state, {"contacts": {**state.contacts, key: contact}})
    return state


def render(state: MemberState) -> dict[str, str]:
    """Each company the customer is a live contact of, with the customer's email (none: no link)."""
    email = state.email.email if state.email else None
    if email is None:
        return {}
    return {
        str(snap.company_id): email
        for key, snap in state.contacts.items()
        if key not in state.deleted and snap.company_id is not None
    }


def decide(state: MemberState, delivery: Delivery, now: datetime, config: RuleConfig) -> Outcome:
    """Fold a ``customers/*`` or ``company_contacts/*`` delivery; announce the links that changed."""
    seen = remember(state.seen, delivery.event_id, delivery.event_time, config.dedupe_ttl)
    if seen is None:
        return Outcome(state=state)
    after = _apply(evolve(state, {"seen": seen}), delivery, delivery.parse_body(), config)
    view = render(after)
    changed = sorted(k for k in view.keys() | state.emitted.keys() if view.get(k) != state.emitted.get(k))
    facts = [CompanyMember(company_id=int(k), customer_id=state.customer_id, email=view.get(k),
                           at=delivery.received_at)
             for k in changed]  # fmt: skip
    return Outcome(evolve(after, {"emitted": view}), facts)
