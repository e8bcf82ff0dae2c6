"""What travels on the ``shopify.*`` topics: a delivery envelope around the raw body, or a tick.

The bridge writes one :class:`Delivery` per webhook: the delivery headers Shopify sent, when the
bridge received it, and the body exactly as parsed JSON (unknown fields and all), so a replay years
later sees what Shopify said, and a newer model can re-read an older record. The processors read
the body through its resource model (:data:`BODY_MODELS`) with the tolerant parse
(``schemas.tolerance``, SPEC R1): a field that does not fit is read as absent and reported as a
field problem, and only a body whose identity cannot be read fails (:class:`IdentityError`). The
ticker writes :class:`Tick` records into the same partitions: the log carries "now".
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from schemas.problems import FieldProblem, IdentityError
from schemas.sealing import open_body
from schemas.shopify import (
    Cart,
    Checkout,
    CheckoutDeleted,
    Company,
    CompanyContact,
    CompanyLocation,
    Customer,
    CustomerDeleted,
    Deleted,
    Order,
    Product,
    ShopifyModel,
)
from schemas.tolerance import Parsed, parse_tolerant
from schemas.types import LenientTimestamp, Timestamp

__all__ = [
    "BODY_MODELS", "Delivery", "FieldProblem", "HubSpotContactDeletion", "IdentityError", "LogRecord",
    "Parsed", "Tick", "decode_log_record", "encode",
]  # fmt: skip

Source = Literal["webhook", "import"]

BODY_MODELS: dict[str, type[ShopifyModel]] = {
    "customers/create": Customer,
    "customers/update": Customer,
    "customers/delete": CustomerDeleted,
    "orders/create": Order,
    "orders/updated": Order,
    "orders/paid": Order,
    "orders/fulfilled": Order,
    "orders/cancelled": Order,
    "orders/partially_fulfilled": Order,  # a full order, like orders/fulfilled
    "orders/link_requested": Order,  # API 2026-01+: a full order (a buyer asked for a new link)
    "orders/delete": Deleted,
    "checkouts/create": Checkout,
    "checkouts/update": Checkout,
    "checkouts/delete": CheckoutDeleted,
    "carts/create": Cart,
    "carts/update": Cart,
    "products/create": Product,
    "products/update": Product,
    "products/delete": Deleted,
    "companies/create": Company,  # X2
    "companies/update": Company,
    "companies/delete": Company,  # the whole company, named like the others
    "company_locations/create": CompanyLocation,
    "company_locations/update": CompanyLocation,
    "company_locations/delete": CompanyLocation,
    "company_contacts/create": CompanyContact,  # X2: a company's contacts, named by their customer
    "company_contacts/update": CompanyContact,
    "company_contacts/delete": CompanyContact,
}
"""Every Shopify webhook topic the product consumes, and the model its body must satisfy.

Only topics whose body is a whole record are here. Order topics whose body is something else
(``orders/edited``: ``{"order_edit": {...}}``, the edit's additions and removals;
``orders/risk_assessment_changed``: ``{"order_id", "risk_level", ...}``;
``orders/shopify_protect_eligibility_changed``) are parked by the bridge, not read as orders: the
full order they concern arrives as ``orders/updated``."""


RECENT_PARSES = 1024
"""How many deliveries' parsed bodies are kept (the most recently parsed). The router and every
rule a delivery reaches read its body, one after the other or within one batch: they share one
parse. Bounded rather than kept on each delivery for its whole life, because a parsed body is a
few dozen objects the garbage collector would scan again and again (issue 11's profile: the
collector was most of the rules' time)."""


_RECENT: OrderedDict[int, tuple[Delivery, Parsed]] = OrderedDict()
"""Parses by ``id(delivery)``; an entry holds its delivery, so the id cannot be reused meanwhile
(and a delivery is frozen: a ``model_copy`` with another body is another object)."""


class Delivery(BaseModel):
    """One Shopify webhook delivery (or one record of the initial import), as appended to Kafka."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["delivery"] = "delivery"
    topic: str = Field(description="Shopify's X-Shopify-Topic, e.g. 'orders/create'.")
    shop_domain: str = Field(description="X-Shopify-Shop-Domain, e.g. 'example.myshopify.com'.")
    webhook_id: str = Field(description="X-Shopify-Webhook-Id: unique for each delivery.")
    event_id: str = Field(
        description="X-Shopify-Event-Id: shared by all deliveries of one merchant action; the "
        "key duplicates are dropped on."
    )
    triggered_at: LenientTimestamp = Field(
        None, description="X-Shopify-Triggered-At; absent when it is not a readable, in-range instant."
    )
    api_version: str | None = Field(None, description="X-Shopify-API-Version, e.g. '2026-04'.")
    received_at: Timestamp = Field(description="When the bridge (or importer) received it.")
    source: Source = Field("webhook", description="'import' for the initial import (SPEC C5).")
    body: dict[str, Any] = Field(
        description="The webhook's JSON body as Shopify sent it; integers beyond 64 bits as their "
        "exact digits, containers nested deeper than schemas.rawjson.MAX_BODY_DEPTH as null."
    )
    problems: tuple[FieldProblem, ...] = Field(
        (), description="Where the bridge could not store the body as sent (a subtree nested too "
        "deep, stored as null): field problems of this delivery, like those its parse finds."
    )  # fmt: skip

    def parse_body(self) -> ShopifyModel:
        """The body as its topic's model, every field that does not fit read as absent.

        Raises :class:`IdentityError` when the body's identity cannot be read and ``ValueError``
        for a topic the product does not consume; never for any other field (SPEC R1).
        """
        return self.parse_body_with_problems().record

    def parse_body_with_problems(self) -> Parsed:
        """Like :meth:`parse_body`, with the field problems found (paths and reasons, no values).

        A clean body costs one validation, and a delivery read again soon (by the router, then
        its rules) is not parsed again (:data:`RECENT_PARSES`); the same body always yields the
        same problems. Bodies are read-only: nothing may change one in place once it is parsed.

        A sealed body (SPEC G1, ``schemas.sealing``) is opened here, the one place a delivery's
        body is read, with the keys the shell gave (``with schemas.sealing.opening(keys):``
        around the batch): the rules see the values as sent, or, for a subject whose key was
        shredded, its personal fields as absent. A sealed body read outside any ``opening``
        raises ``schemas.sealing.SealedBodyError`` (a ``ValueError``: a dead letter that says so).
        """
        recent = _RECENT.get(id(self))
        if recent is not None and recent[0] is self:
            return recent[1]
        model = BODY_MODELS.get(self.topic)
        if model is None:
            raise ValueError(f"unsupported Shopify topic {self.topic!r}")
        parsed = parse_tolerant(model, open_body(self.body, self.topic), self.topic)
        if self.problems:
            parsed = parsed._replace(problems=self.problems + parsed.problems)
        _RECENT[id(self)] = (self, parsed)
        while len(_RECENT) > RECENT_PARSES:
            _RECENT.popitem(last=False)
        return parsed

    @property
    def resource(self) -> str:
        """The resource part of the topic: 'orders' for 'orders/create'."""
        return self.topic.partition("/")[0]

    @property
    def action(self) -> str:
        """The action part of the topic: 'create' for 'orders/create'."""
        return self.topic.partition("/")[2]

    @property
    def event_time(self) -> datetime:
        """When this happened: Shopify's triggered-at if given, else when it was received."""
        return self.triggered_at or self.received_at


class Tick(BaseModel):
    """A clock record: the partition's stream time has reached ``at``; fire what is due."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["tick"] = "tick"
    at: Timestamp


class HubSpotContactDeletion(BaseModel):
    """A HubSpot contact deletion, as appended to ``hubspot.events`` (C4).

    The bridge appends one for each ``contact.deletion``, ``contact.privacyDeletion`` (GDPR
    permanent deletion; HubSpot sends it in addition to ``contact.deletion``) and generic
    ``object.deletion`` of a contact (``objectTypeId`` "0-1") event, named by the contact's HubSpot
    id only: it never calls HubSpot while answering HubSpot's webhook (R5), so ``email`` is None
    there and the worker fills it in from the writer's id map (``hubspot.ids``). ``kind`` is
    "contact.deletion" for all of them because C4 applies alike; ``privacy`` says the deletion
    was a GDPR one. ``event_id`` is HubSpot's ``eventId``: a replayed webhook is appended again
    with the same one, and applying a deletion twice changes nothing.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    kind: Literal["contact.deletion"] = "contact.deletion"
    event_id: str
    object_id: int
    email: str | None = None
    occurred_at: Timestamp
    privacy: bool = False


LogRecord = Annotated[Delivery | Tick, Field(discriminator="kind")]
"""Anything on a ``shopify.*`` topic."""

_LOG_RECORD: TypeAdapter[Delivery | Tick] = TypeAdapter(LogRecord)


def decode_log_record(raw: bytes) -> Delivery | Tick:
    """Parse a ``shopify.*`` record's value (raises ``pydantic.ValidationError`` if malformed)."""
    return _LOG_RECORD.validate_json(raw)


_PLAIN_JSON = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS
)
"""orjson options under which it writes only what pydantic's JSON mode writes the same way (str,
int, float, bool, None, lists, dicts with text keys); anything else raises, to :func:`_refuse`."""


def _refuse(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def _delivery_json(delivery: Delivery) -> bytes:
    """A delivery's JSON with orjson alone: the fields in declaration order, instants as
    ``isoformat()``, the body as it is. Raises ``TypeError`` for a body holding anything but
    plain JSON values (only hand-made ones do: parsed bodies never)."""
    triggered = delivery.triggered_at
    problems = [{"path": p.path, "reason": p.reason} for p in delivery.problems]
    return orjson.dumps(
        {
            "kind": delivery.kind,
            "topic": delivery.topic,
            "shop_domain": delivery.shop_domain,
            "webhook_id": delivery.webhook_id,
            "event_id": delivery.event_id,
            "triggered_at": None if triggered is None else triggered.isoformat(),
            "api_version": delivery.api_version,
            "received_at": delivery.received_at.isoformat(),
            "source": delivery.source,
            "body": delivery.body,
            "problems": problems,
        },
        default=_refuse,
        option=_PLAIN_JSON,
    )


def encode(model: BaseModel) -> bytes:
    """Compact JSON bytes for any of these models (orjson over pydantic's JSON-mode dump).

    A delivery, the record written most, is written by orjson directly when its body holds only
    plain JSON values (the same bytes, without pydantic walking the body first)."""
    if type(model) is Delivery:
        try:
            return _delivery_json(model)
        except TypeError:  # orjson.JSONEncodeError is one
            pass
    return orjson.dumps(model.model_dump(mode="json", exclude_none=False))
