"""Field types shared by the Shopify models: tolerant where Shopify is loose, strict where we map.

Shopify sends timestamps with offsets (``-05:00``), with ``Z`` and with fractional seconds, sends
money as decimal strings, and sends ``null`` or ``""`` for absent values. These annotated types
turn all of that into one canonical Python value, so the rules never see a naive datetime or a
float amount.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BeforeValidator, PlainSerializer


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _aware(value: datetime) -> datetime:
    # Shopify always sends an offset; a value without one (hand-made test data, an old export)
    # is read as UTC rather than rejected, so no record is lost over a missing "Z".
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _iso(value: datetime) -> str:
    return value.isoformat()


Timestamp = Annotated[
    datetime,
    BeforeValidator(_blank_to_none),
    AfterValidator(_aware),
    PlainSerializer(_iso, return_type=str, when_used="json"),
]
"""A timezone-aware instant parsed from any ISO-8601 form Shopify uses."""

Money = Annotated[
    Decimal,
    BeforeValidator(_blank_to_none),
    PlainSerializer(str, return_type=str, when_used="json"),
]
"""A decimal amount, as Shopify's decimal strings ("19.99") or numbers; never a float."""

MaybeText = Annotated[str | None, BeforeValidator(_blank_to_none)]
"""An optional string where Shopify's empty string means 'no value'."""


def _to_text(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


TextId = Annotated[str, BeforeValidator(_to_text)]
"""An identifier Shopify sends as a string in one API and a number in another (carts)."""


class FinancialStatus(StrEnum):
    """Order financial statuses the product maps to deal stages.

    Any other value is kept as a plain string and treated like ``pending`` (the deal stays
    where an unpaid order would be); see ``streams.rules`` for the mapping.
    """

    PENDING = "pending"
    AUTHORIZED = "authorized"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    VOIDED = "voided"
    EXPIRED = "expired"


class FulfillmentStatus(StrEnum):
    """Order fulfillment statuses; ``None`` means unfulfilled. Unknown values are kept as strings
    and treated as not shipped."""

    FULFILLED = "fulfilled"
    PARTIAL = "partial"
    RESTOCKED = "restocked"
    UNFULFILLED = "unfulfilled"


class PublishedScope(StrEnum):
    """Where a product is published. Unknown values are kept and synced as they are (L1)."""

    WEB = "web"
    GLOBAL = "global"


class ProductStatus(StrEnum):
    """A product's status. Unknown values are kept; only ``active`` counts as sellable."""

    ACTIVE = "active"
    ARCHIVED = "archived"
    DRAFT = "draft"
    UNLISTED = "unlisted"


E = TypeVar("E", bound=StrEnum)


def known_or_text(value: object, enum: type[E]) -> E | str | None:
    """Return ``value`` as a member of ``enum`` when it names one, else as plain text."""
    value = _blank_to_none(value)
    if value is None or isinstance(value, enum):
        return value
    text = str(value)
    try:
        return enum(text)
    except ValueError:
        return text


def _known(enum: type[E]) -> BeforeValidator:
    return BeforeValidator(lambda v: known_or_text(v, enum))


FinancialStatusField = Annotated[FinancialStatus | str | None, _known(FinancialStatus)]
FulfillmentStatusField = Annotated[FulfillmentStatus | str | None, _known(FulfillmentStatus)]
PublishedScopeField = Annotated[PublishedScope | str | None, _known(PublishedScope)]
ProductStatusField = Annotated[ProductStatus | str | None, _known(ProductStatus)]

MaybeTimestamp = Annotated[Timestamp | None, BeforeValidator(_blank_to_none)]
"""An optional :data:`Timestamp`; ``null`` and ``""`` both mean absent."""

MaybeMoney = Annotated[Money | None, BeforeValidator(_blank_to_none)]
"""An optional :data:`Money`; ``null`` and ``""`` both mean absent."""
