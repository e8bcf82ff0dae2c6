"""Stage 1, as pure functions: which entity keys a Shopify delivery feeds.

The faust routers and the in-process runner (``streams.inprocess``) both call these, so the keys
a delivery is forwarded under are decided in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from config.rules import RuleConfig
from schemas.envelope import Delivery
from schemas.shopify import Company, CompanyContact, CompanyLocation, Customer, Deleted, Order, ShopifyModel
from streams.rules.contact_keys import contact_key
from streams.rules.contacts import email_of
from streams.rules.keys import journey_key

Target = tuple[Literal["contacts", "journeys", "companies", "company-members"], str]


class UnroutableError(ValueError):
    """A delivery no entity can take (the reason is dead-lettered with it)."""


@dataclass(frozen=True)
class OrderMemory:
    """What the orders router remembers of one order id: its journey and its buyer's email (an
    ``orders/delete`` carries only the id, and both the deal and the contact must hear of it), or
    a delete that came first."""

    journey: str | None = None
    pending_delete: bytes | None = None
    email: str | None = None
    """The buyer's contact key: the email, or its pseudonym with ``SHOPSYNC_REDACTABLE`` (G1)."""


@dataclass(frozen=True)
class Routed:
    """Where to forward a delivery (and, for orders, what to remember and what else to forward)."""

    targets: list[Target] = field(default_factory=list)
    memory: OrderMemory | None = None
    also_forward: list[tuple[Target, bytes]] = field(default_factory=list)  # (target, raw delivery)


def route(
    delivery: Delivery,
    body: ShopifyModel,
    raw: Callable[[], bytes],
    memory: OrderMemory | None,
    config: RuleConfig,
) -> Routed:
    """Targets of a validated delivery. ``memory`` is the orders router's record of this order id
    (in its shop); ``raw`` gives the delivery's bytes, kept when a delete comes before its order.
    X3: journeys and companies are keyed in the delivery's shop; contacts by email alone (one
    contact per email across shops), or by its pseudonym with ``SHOPSYNC_REDACTABLE`` (G1)."""
    targets: list[Target] = []
    prefix = config.key_prefix(delivery.shop_domain)
    address = email_of(body)
    email = None if address is None else contact_key(address, config)
    if email is not None:
        targets.append(("contacts", email))
    company = _company_of(delivery, body)
    if company is not None:  # X2: companies, their locations, and B2B orders
        targets.append(("companies", f"{prefix}{company}"))
    member = _member_of(body)
    if member is not None:  # X2: a company contact, and its customer's email, by customer id
        targets.append(("company-members", f"{prefix}{member}"))
    if delivery.resource == "orders":
        known = memory or OrderMemory()
        if isinstance(body, Deleted):
            if known.journey is not None:
                contact: list[Target] = [("contacts", known.email)] if known.email else []
                return Routed(targets=[*targets, *contact, ("journeys", known.journey)])
            return Routed(targets=targets, memory=OrderMemory(pending_delete=raw()))
        key = journey_key(body, prefix)
        if key is None:  # pragma: no cover - every order has a journey (its own id at worst)
            raise UnroutableError(f"{delivery.topic} has no journey")
        targets.append(("journeys", key))
        remembered = OrderMemory(journey=key, email=email or known.email)
        if known.journey == key and known.email == remembered.email:
            return Routed(targets=targets)
        also: list[tuple[Target, bytes]] = []
        if known.pending_delete is not None:  # the delete came first: the order's ends hear of it now
            also = [(target, known.pending_delete) for target in targets]
        return Routed(targets=targets, memory=remembered, also_forward=also)
    if delivery.resource in ("checkouts", "carts"):
        key = journey_key(body, prefix)
        if key is None:
            raise UnroutableError(f"{delivery.topic} carries neither a cart token nor a token: no journey")
        targets.append(("journeys", key))
    return Routed(targets=targets)


def _member_of(body: ShopifyModel) -> str | None:
    """The customer id whose company contacts a delivery feeds (X2): a customer's (for its
    email; ``Customer`` is the customers/create|update model only) or a company contact's."""
    if type(body) is Customer:
        return str(body.id)
    if isinstance(body, CompanyContact):
        number = body.customer_id()
        return None if number is None else str(number)
    return None


def _company_of(delivery: Delivery, body: ShopifyModel) -> str | None:
    """The Shopify company a delivery feeds (X2): a company's own id (its delete too), a
    location's ``company_id``, a B2B order's ``company.id``."""
    if isinstance(body, Company):
        number = body.company_id()
    elif isinstance(body, CompanyLocation):
        number = body.owner_id()
    else:
        number = None
    if number is not None:
        return str(number)
    if isinstance(body, Order) and body.company is not None and body.company.id is not None:
        return str(body.company.id)
    return None
