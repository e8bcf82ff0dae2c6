"""Every stage of the worker as a ``streams.processor.Kind``: how it starts a state, decides an
input, fires its timers, and how its states are stored as table rows.

Stage 1, the routers, re-key what Shopify and HubSpot send onto the keys the rules use (the
contact's email, the purchase journey, a HubSpot object id); the orders router remembers each
order's journey and email, because ``orders/delete`` carries only the order id. Stage 2 holds the
entities: contacts and journeys (with timers), products, and the join of HubSpot's contact
deletions with the writer's id map. Both engines (faust, in-process) run these same kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, TypeAdapter

from config.rules import RuleConfig
from schemas.envelope import Delivery, HubSpotContactDeletion, Tick, encode
from schemas.shopify import ShopifyModel
from streams.deletions import ContactIdMapping, HubSpotObjectState, on_deletion, on_mapping
from streams.processor import Forward, Kind, Outcome, PoisonError
from streams.report_stage import REPORTS, report_forwards
from streams.routing import OrderMemory, UnroutableError, route
from streams.rules import companies, company_members, contacts, journeys, products
from streams.rules.company_members import CompanyMember
from streams.rules.contact_keys import email_contact_key
from streams.rules.journeys import FirstPurchase
from streams.rules.keys import split_key
from streams.rules.reports import DealFacts

ContactInput = Delivery | Tick | HubSpotContactDeletion
JourneyInput = Delivery | Tick | FirstPurchase
_KIND_PREFIX = b'{"kind":"'


@dataclass(frozen=True)
class InputCodec:
    """Reads a topic's records: each one of a few models, validated once.

    Every input model starts with its ``kind`` (``schemas.envelope.encode`` writes fields in model
    order), so the model is picked from the first bytes and validated directly: a smart union
    tries its members in turn, which costs four times as much on a delivery of a few KB. Anything
    else (a record written another way) goes through the union, which says what is wrong."""

    union: TypeAdapter[Any]
    by_kind: dict[bytes, type[BaseModel]]

    def decode(self, raw: bytes) -> Any:
        if raw.startswith(_KIND_PREFIX):
            end = raw.find(b'"', len(_KIND_PREFIX))
            model = self.by_kind.get(raw[len(_KIND_PREFIX) : end])
            if model is not None:
                return model.model_validate_json(raw)
        return self.union.validate_json(raw)


def _codec(*models: type[BaseModel]) -> InputCodec:
    kinds = {m.model_fields["kind"].default.encode(): m for m in models}
    union: Any = models[0]
    for model in models[1:]:
        union = union | model
    return InputCodec(TypeAdapter(union), kinds)


LOG_RECORDS = _codec(Delivery, Tick)
"""What the Shopify topics hold (a tick there has nothing to fire)."""
INPUTS: dict[str, InputCodec] = {
    "contacts": _codec(Delivery, Tick, HubSpotContactDeletion),
    "journeys": _codec(Delivery, Tick, FirstPurchase),
    "companies": _codec(Delivery, Tick, CompanyMember),
    "company-members": _codec(Delivery, Tick),
}


def instant_of(record: Delivery | Tick | HubSpotContactDeletion | FirstPurchase) -> datetime:
    """The instant an input happened at, by its own data: what it is decided at (timers due by
    then fire first), so its outcome does not depend on what else reached its partition before it."""
    if isinstance(record, Tick | FirstPurchase):
        return record.at
    if isinstance(record, HubSpotContactDeletion):
        return record.occurred_at
    return record.received_at


@dataclass(frozen=True)
class Rows:
    """How a kind's states are stored in a table (JSON-able dicts) and read back."""

    to_row: Callable[[Any], dict[str, Any]]
    from_row: Callable[[dict[str, Any]], Any]


def model_rows(model: type[BaseModel]) -> Rows:
    return Rows(lambda state: state.model_dump(mode="json"), model.model_validate)


# ---- stage 1: routers ----


@dataclass(frozen=True)
class Routable:
    """A Shopify delivery as the routers take it: decoded and parsed once, with its bytes."""

    delivery: Delivery
    body: ShopifyModel
    raw: bytes | None = None
    """The bytes it came as (the faust engine forwards them as they are). The in-process engine
    has the delivery itself and leaves this out: :meth:`encoded` then encodes it, only when the
    bytes are needed (a delete kept until its order comes, a dead letter)."""

    def encoded(self) -> bytes:
        return self.raw if self.raw is not None else encode(self.delivery)


def router_key(routable: Routable, config: RuleConfig) -> str:
    """The routers' state key: the order id in its shop for orders (their memory: X3, two shops'
    orders with one id never share it), none for the rest."""
    if routable.delivery.resource != "orders":
        return ""
    return config.key_prefix(routable.delivery.shop_domain) + str(getattr(routable.body, "id", ""))


def product_key(delivery: Delivery, body: ShopifyModel, config: RuleConfig) -> str:
    """The products stage's key: the product id in its shop (X3)."""
    return config.key_prefix(delivery.shop_domain) + str(int(getattr(body, "id", 0)))


def _route(state: OrderMemory | None, routable: Routable, now: datetime, config: RuleConfig) -> Outcome:
    try:
        routed = route(routable.delivery, routable.body, routable.encoded, state, config)
    except UnroutableError as exc:
        raise PoisonError(str(exc)) from exc
    forwards = [Forward(name, key, routable.delivery, routable.raw) for name, key in routed.targets]
    forwards += [Forward(name, key, raw=pending) for (name, key), pending in routed.also_forward]
    return Outcome(routed.memory if routed.memory is not None else state, forwards=forwards)


def _memory_row(memory: OrderMemory) -> dict[str, Any]:
    pending = memory.pending_delete.decode() if memory.pending_delete else None
    return {"journey": memory.journey, "pending_delete": pending, "email": memory.email}


def _memory_from_row(row: dict[str, Any]) -> OrderMemory:
    pending = row.get("pending_delete")
    return OrderMemory(
        journey=row.get("journey"),
        pending_delete=pending.encode() if pending else None,
        email=row.get("email"),
    )


ROUTER = Kind(name="route", new=lambda key: None, decide=_route, instant=lambda record: None)
ROUTER_ROWS = Rows(_memory_row, _memory_from_row)


def _route_deletion(
    state: None, deletion: HubSpotContactDeletion, now: datetime, config: RuleConfig
) -> Outcome:
    """HubSpot's contact.deletion: to the contact if it came with an email (an older bridge),
    else to the join with the id map, by HubSpot object id (``streams.deletions``). The contact
    is keyed by the email, or its pseudonym (G1)."""
    email = email_contact_key(deletion.email, config)
    if email is not None:
        return Outcome(state, forwards=[Forward("contacts", email, deletion)])
    return Outcome(state, forwards=[Forward("hubspot-objects", str(deletion.object_id), deletion)])


def _route_mapping(state: None, mapping: ContactIdMapping, now: datetime, config: RuleConfig) -> Outcome:
    """The writer's id map: a contact's HubSpot id goes on to the join, keyed by that id."""
    return Outcome(state, forwards=[Forward("hubspot-objects", str(mapping.object_id), mapping)])


DELETION_ROUTER = Kind(
    name="route-deletions", new=lambda key: None, decide=_route_deletion, instant=lambda r: None
)
ID_ROUTER = Kind(name="route-ids", new=lambda key: None, decide=_route_mapping, instant=lambda r: None)


# ---- stage 2: entities ----


def _join(
    state: HubSpotObjectState,
    record: ContactIdMapping | HubSpotContactDeletion,
    now: datetime,
    config: RuleConfig,
) -> Outcome:
    if isinstance(record, ContactIdMapping):
        new, released = on_mapping(state, record)
    else:
        new, released = on_deletion(state, record)
    forwards = [Forward("contacts", d.email or "", d) for d in released]
    return Outcome(new, forwards=forwards)


HUBSPOT_OBJECTS = Kind(
    name="hubspot-objects", new=lambda key: HubSpotObjectState(), decide=_join, instant=lambda r: None
)


def _product(state: products.ProductState, delivery: Delivery, now: datetime, config: RuleConfig) -> Outcome:
    outcome = products.decide(state, delivery, now, config)
    return Outcome(outcome.state, outcome.commands)


def _received_at(record: object) -> datetime | None:
    """A Shopify delivery's instant; other inputs carry none of their own."""
    return record.received_at if isinstance(record, Delivery) else None


PRODUCTS = Kind(
    name="products",
    new=lambda key: products.ProductState(product_id=int(split_key(key)[1]), prefix=split_key(key)[0]),
    decide=_product,
    instant=_received_at,
)


def _contact_outcome(outcome: contacts.Outcome) -> Outcome:
    facts = [Forward("journeys", fact.journey, fact) for fact in outcome.facts]
    return Outcome(outcome.state, outcome.commands, facts)


def _decide_contact(
    state: contacts.ContactState, record: Delivery | HubSpotContactDeletion, now: datetime, config: RuleConfig
) -> Outcome:
    if isinstance(record, HubSpotContactDeletion):
        return _contact_outcome(contacts.decide_deletion(state, record, now, config))
    return _contact_outcome(contacts.decide(state, record, now, config))


def _decide_journey(
    state: journeys.JourneyState, record: Delivery | FirstPurchase, now: datetime, config: RuleConfig
) -> Outcome:
    if isinstance(record, FirstPurchase):
        outcome = journeys.decide_first_purchase(state, record, now, config)
    else:
        outcome = journeys.decide(state, record, now, config)
    return Outcome(outcome.state, outcome.commands, report_forwards(state, outcome.state))


def _journey_tick(state: journeys.JourneyState, now: datetime, config: RuleConfig) -> Outcome:
    outcome = journeys.on_tick(state, now, config)
    return Outcome(outcome.state, outcome.commands, report_forwards(state, outcome.state))


def _company(
    state: companies.CompanyState, record: Delivery | CompanyMember, now: datetime, config: RuleConfig
) -> Outcome:
    if isinstance(record, CompanyMember):
        outcome = companies.decide_member(state, record, config)
    else:
        outcome = companies.decide(state, record, now, config)
    return Outcome(outcome.state, outcome.commands)


def _company_member(
    state: company_members.MemberState, delivery: Delivery, now: datetime, config: RuleConfig
) -> Outcome:
    outcome = company_members.decide(state, delivery, now, config)
    forwards = [Forward("companies", f"{state.prefix}{fact.company_id}", fact) for fact in outcome.facts]
    return Outcome(outcome.state, forwards=forwards)


COMPANIES = Kind(
    name="companies",
    new=lambda key: companies.CompanyState(company_id=int(split_key(key)[1]), prefix=split_key(key)[0]),
    decide=_company,
    instant=_received_at,
)
"""X2: B2B companies, keyed by Shopify company id (no timers: a company never waits for time)."""
COMPANY_MEMBERS = Kind(
    name="company-members",
    new=lambda key: company_members.MemberState(customer_id=int(split_key(key)[1]), prefix=split_key(key)[0]),
    decide=_company_member,
    instant=_received_at,
)
"""X2: each customer's company contacts joined with its email, keyed by Shopify customer id (in its
shop, X3: a non-primary shop's key is prefixed, and so are its facts' company keys)."""


CONTACTS = Kind(
    name="contacts",
    new=lambda key: contacts.ContactState(email=key),
    decide=_decide_contact,
    instant=instant_of,
    on_tick=lambda state, now, config: _contact_outcome(contacts.on_tick(state, now, config)),
    next_due=contacts.next_due,
)
JOURNEYS = Kind(
    name="journeys",
    new=lambda key: journeys.JourneyState(key=key),
    decide=_decide_journey,
    instant=instant_of,
    on_tick=_journey_tick,
    next_due=journeys.next_due,
)
TIMED: tuple[Kind, ...] = (CONTACTS, JOURNEYS)
KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        ROUTER,
        DELETION_ROUTER,
        ID_ROUTER,
        HUBSPOT_OBJECTS,
        PRODUCTS,
        COMPANIES,
        COMPANY_MEMBERS,
        *TIMED,
        REPORTS,
    )
}
ROWS: dict[str, Rows] = {
    "route": ROUTER_ROWS,
    "hubspot-objects": model_rows(HubSpotObjectState),
    "products": model_rows(products.ProductState),
    "contacts": model_rows(contacts.ContactState),
    "journeys": model_rows(journeys.JourneyState),
    "companies": model_rows(companies.CompanyState),
    "company-members": model_rows(company_members.MemberState),
    "reports": model_rows(DealFacts),  # E1: each journey's deal facts (streams.report_stage)
}


def what_of(record: Any) -> str:
    """How a rejection's reason names the input (one wording for both engines)."""
    delivery = record.delivery if isinstance(record, Routable) else record
    if isinstance(delivery, Delivery):
        return f"body does not fit {delivery.topic}"
    return f"not a valid {type(record).__name__}"


def decode_forward(target: str, raw: bytes) -> Any:
    """A forwarded input from its bytes (the in-process engine, for what was forwarded as bytes:
    an order's delete that came before the order)."""
    if target in INPUTS:
        return INPUTS[target].decode(raw)
    if target == REPORTS.name:
        return DealFacts.model_validate_json(raw)
    if orjson_kind(raw) == "contact-id":
        return ContactIdMapping.model_validate_json(raw)
    return HubSpotContactDeletion.model_validate_json(raw)


def encode_forward(forward: Forward) -> bytes:
    """A forward's bytes (the faust engine): the bytes that came, else the record encoded."""
    if forward.raw is not None:
        return forward.raw
    assert isinstance(forward.record, BaseModel), "a forward carries a record or its bytes"
    return encode(forward.record)


def orjson_kind(raw: bytes) -> object:
    """The ``kind`` field of a JSON object's bytes (None if it has none)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value.get("kind") if isinstance(value, dict) else None
