"""Field types shared by the Shopify models: each accepts what Shopify means, and refuses the rest.

Shopify sends timestamps with offsets (``-05:00``), with ``Z`` and with fractional seconds, sends
money as decimal strings (and sometimes numbers), ids as numbers or digit strings, and ``null`` or
``""`` for absent values. These annotated types turn all of that into one canonical Python value,
so the rules never see a naive datetime or a float amount.

What does not fit is refused with a :class:`~pydantic_core.PydanticCustomError` whose type is one
of :data:`UNFIT_TYPES` and whose message is fixed text: the tolerant parse
(``schemas.tolerance``) turns it into a field problem, and problems must never carry the value
(personal data). Refusing is the point: a wrong value (a float's binary noise, a bool read as 1)
or a value that crashes later (a year-9999 date overflowing a timer, an id orjson cannot encode)
is worse than an absent one, which SPEC R1 syncs as absent and reports.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WrapValidator
from pydantic_core import PydanticCustomError

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""The earliest instant a :data:`Timestamp` holds (Shopify was founded in 2006; epoch zero is the
oldest placeholder stores send)."""

LATEST = datetime(3000, 1, 1, tzinfo=UTC)
"""Timestamps must be before this. Far enough that no real date is refused, near enough that any
delay the rules add (days, months, years) stays far below ``datetime.max`` in every timezone."""

INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
"""The integers the product holds: what fits in 64 bits (signed or unsigned), which is what orjson
and Kafka's JSON records can carry exactly. Python's ints are unbounded; the state tables are not."""

MONEY_MAX_DIGITS = 34
"""At most this many significant digits in an amount (Decimal128's precision)."""

MONEY_LIMIT = Decimal(10) ** 18
"""Amounts must be smaller than this in magnitude: beyond it, a value is garbage, not money
(``Decimal.adjusted() < 18``)."""

UNFIT_TYPES = frozenset(
    {"text_type", "integer_type", "integer_parsing", "integer_range", "money_type", "money_parsing",
     "money_range", "timestamp_type", "timestamp_parsing", "timestamp_range", "enum_type", "enum_value",
     "text_too_long"}
)  # fmt: skip
"""Error types these validators raise. Their messages are fixed text (never the value), so the
tolerant parse may copy them into a field problem's reason."""


def _unfit(kind: str, message: str) -> PydanticCustomError:
    assert kind in UNFIT_TYPES, kind
    return PydanticCustomError(kind, message)


def _blank_to_none(value: Any) -> Any:
    # Every field of every body passes here: the cheapest test first (``type() is``, no strip).
    if type(value) is str and (not value or value.isspace()):
        return None
    return value


# ---- timestamps ----

_ISO_DATE = re.compile(r"\s*[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _timestamp_input(value: Any) -> Any:
    # Pydantic reads numbers and digit strings as Unix times; Shopify never sends those, so a
    # number here is a value of the wrong kind (a quantity in the wrong column), not a date.
    if isinstance(value, str):
        if not _ISO_DATE.match(value):
            raise _unfit("timestamp_parsing", "not an ISO-8601 timestamp (YYYY-MM-DD...)")
        return value
    if isinstance(value, datetime):
        return value
    raise _unfit("timestamp_type", "expected an ISO-8601 timestamp as text")


def _aware(value: datetime) -> datetime:
    # Shopify always sends an offset; a value without one (hand-made test data, an old export)
    # is read as UTC rather than rejected, so no record is lost over a missing "Z".
    value = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    # Comparing aware datetimes never overflows, converting them can: year 1 at +05:00 or year
    # 9999 at -05:00 is outside datetime's range in UTC, and raises OverflowError in the timers.
    if not EARLIEST <= value < LATEST:
        raise _unfit("timestamp_range", "outside the supported range 1970-01-01..2999-12-31 UTC")
    return value


def _iso(value: datetime) -> str:
    return value.isoformat()


Timestamp = Annotated[
    datetime,
    BeforeValidator(_timestamp_input),
    AfterValidator(_aware),
    PlainSerializer(_iso, return_type=str, when_used="json"),
]
"""A timezone-aware instant in [1970-01-01, 3000-01-01) UTC, parsed from any ISO-8601 form Shopify
uses (``T`` or a space, ``Z`` or an offset, with or without fractions). Numbers are refused."""

MaybeTimestamp = Annotated[Timestamp | None, BeforeValidator(_blank_to_none)]
"""An optional :data:`Timestamp`; ``null`` and ``""`` both mean absent."""


def _none_when_unreadable(value: Any, handler: Callable[[Any], Any]) -> Any:
    try:
        return handler(value)
    except ValueError:  # pydantic's ValidationError is a ValueError
        return None


LenientTimestamp = Annotated[MaybeTimestamp, WrapValidator(_none_when_unreadable)]
"""A :data:`MaybeTimestamp` that reads as absent when it does not fit, for values that are hints
rather than data (a delivery header): the envelope must never be refused over one."""


# ---- money ----

_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def _money(value: Any) -> Any:
    if type(value) is str:  # Shopify's usual form first: a decimal string
        text = value.strip()
        if not text:
            return None
        if not _DECIMAL_TEXT.fullmatch(text):
            raise _unfit("money_parsing", "not a decimal amount")
        amount = Decimal(text)
        if len(text) <= MONEY_MAX_DIGITS and amount.adjusted() < 18:
            return amount  # short plain decimal text: finite and within every bound
    elif value is None:
        return None
    elif isinstance(value, bool):
        raise _unfit("money_type", "expected a decimal amount, got a boolean")
    elif isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _unfit("money_range", "not a finite amount")
        amount = Decimal(str(value))  # the shortest text that reads back as this float: no noise
    else:
        raise _unfit("money_type", "expected a decimal amount as text or a number")
    if not amount.is_finite() or (amount and amount.adjusted() >= 18):  # |amount| >= 10^18
        raise _unfit("money_range", "amount out of range (|amount| < 10^18)")
    if len(amount.as_tuple().digits) > MONEY_MAX_DIGITS:
        raise _unfit("money_range", f"more than {MONEY_MAX_DIGITS} significant digits")
    return amount


Money = Annotated[
    Decimal,
    BeforeValidator(_money),
    PlainSerializer(str, return_type=str, when_used="json"),
]
"""A finite decimal amount below 10^18, from Shopify's decimal strings ("19.99") or numbers.
Never a float (a float is read through its shortest text, 0.1 -> Decimal("0.1")); ``NaN``,
``Infinity``, exponents, thousands separators and placeholders ("N/A") are refused."""

MaybeMoney = Annotated[Money | None, BeforeValidator(_blank_to_none)]
"""An optional :data:`Money`; ``null`` and ``""`` both mean absent."""


# ---- integers ----

_INTEGER_TEXT = re.compile(r"[+-]?[0-9]{1,40}")


def _integer(value: Any, floats: bool) -> int:
    if type(value) is int and INT_MIN <= value <= INT_MAX:  # the usual case, first
        return value
    if isinstance(value, bool):
        raise _unfit("integer_type", "expected an integer, got a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if not _INTEGER_TEXT.fullmatch(text):
            raise _unfit("integer_parsing", "not an integer")
        number = int(text)
    elif isinstance(value, float):
        # A float id has lost digits already (orjson reads integers beyond 64 bits as floats);
        # a float count is accepted only when it is a whole number a float holds exactly.
        if not (floats and value.is_integer() and abs(value) <= 2**53):
            raise _unfit("integer_type", "expected an integer, got a number with a fraction or beyond 2^53")
        number = int(value)
    else:
        raise _unfit("integer_type", "expected an integer")
    if not INT_MIN <= number <= INT_MAX:
        raise _unfit("integer_range", "integer beyond 64 bits")
    return number


def _id(value: Any) -> Any:
    return _integer(value, floats=False)


def _maybe_id(value: Any) -> Any:
    if value is None:
        return None
    value = _blank_to_none(value)
    return None if value is None else _integer(value, floats=False)


def _maybe_count(value: Any) -> Any:
    if value is None:
        return None
    value = _blank_to_none(value)
    return None if value is None else _integer(value, floats=True)


def _count_or_zero(value: Any) -> Any:
    value = _blank_to_none(value)
    return 0 if value is None else _integer(value, floats=True)


Id = Annotated[int, BeforeValidator(_id)]
"""A Shopify numeric id: an integer or its digit string, in 64 bits, kept exact (ids pass 2^53).
Floats are refused (they lost digits on the way), and so are booleans."""

MaybeId = Annotated[int | None, BeforeValidator(_maybe_id)]
"""An optional :data:`Id`; ``null`` and ``""`` both mean absent."""

MaybeCount = Annotated[int | None, BeforeValidator(_maybe_count)]
"""An optional count or measure (orders count, grams, position): like :data:`MaybeId`, and a
whole-number float (``2.0``) is read as its integer."""

Quantity = Annotated[int, BeforeValidator(_count_or_zero)]
"""A line's quantity: a :data:`MaybeCount` where absent means 0."""


# ---- text ----


MAX_TEXT_CHARS = 65_536
"""The most characters a HubSpot text property holds: a longer value would fail its whole batch at
HubSpot (and bloat every state and changelog write), so it is a field problem here instead."""


def _text(value: Any) -> Any:
    if type(value) is str and len(value) > MAX_TEXT_CHARS:
        raise _unfit("text_too_long", f"longer than {MAX_TEXT_CHARS} characters, HubSpot's limit for text")
    if value is None or type(value) is str:
        return value
    if isinstance(value, str):
        return str(value)  # a str subclass (a StrEnum member): its plain text
    if isinstance(value, bool):
        raise _unfit("text_type", "expected text, got a boolean")
    if isinstance(value, int | Decimal):
        return str(value)  # a zip or a phone sent as a number: its exact digits
    if isinstance(value, float) and math.isfinite(value):
        return str(value)
    raise _unfit("text_type", "expected text, got an object, a list or a non-finite number")


def _maybe_text(value: Any) -> Any:
    if type(value) is str and len(value) <= MAX_TEXT_CHARS:
        return None if not value or value.isspace() else value
    return _text(value)


MaybeText = Annotated[str | None, BeforeValidator(_maybe_text)]
"""Optional text where Shopify's empty string means 'no value'. A number becomes its exact text
(a zip sent as ``12345`` is ``"12345"``); objects, lists and booleans are refused."""

RawText = Annotated[str | None, BeforeValidator(_text)]
"""Optional text kept exactly, ``""`` included (HTML bodies); otherwise like :data:`MaybeText`."""


def _text_id(value: Any) -> Any:
    if isinstance(value, float):  # an id that passed 2^64 and lost its digits in a float
        raise _unfit("text_type", "expected an id as text or an integer, got a float")
    if isinstance(value, int) and not isinstance(value, bool):
        _integer(value, floats=False)  # in 64 bits, like every numeric id
    return _text(value)


def _maybe_text_id(value: Any) -> Any:
    return _text_id(_blank_to_none(value))


TextId = Annotated[str, BeforeValidator(_text_id)]
"""An identifier Shopify sends as a string in one API and a number in another (carts): the text,
or the integer's digits. Floats are refused, like booleans, objects and lists."""

MaybeTextId = Annotated[str | None, BeforeValidator(_maybe_text_id)]
"""An optional :data:`TextId`; ``null`` and ``""`` both mean absent."""

GID_PATTERN = r"^gid://shopify/[A-Za-z]+/[0-9]{1,20}$"
_GID = re.compile(GID_PATTERN)


def _maybe_gid(value: Any) -> Any:
    text = _maybe_text(value)
    if text is not None and not _GID.fullmatch(text):
        raise _unfit("gid_format", "not a Shopify global id (gid://shopify/<Type>/<digits>)")
    return text


MaybeGid = Annotated[str | None, BeforeValidator(_maybe_gid)]
"""An optional Admin GraphQL global id (``gid://shopify/Customer/123``), as the B2B webhooks name
records by (``customer_admin_graphql_api_id``); :func:`gid_number` reads its numeric id."""


def gid_number(gid: str | None) -> int | None:
    """The numeric id at the end of a global id (the REST id of the same record), if it fits 64 bits."""
    if gid is None or not _GID.fullmatch(gid):
        return None
    number = int(gid.rsplit("/", 1)[1])
    return number if number <= INT_MAX else None


# ---- enumerations ----


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
    """Return ``value`` as a member of ``enum`` when it names one, else as plain text.

    A new enum value is kept (Shopify adds them; L1 syncs them as they are), a number becomes its
    text, but an object, a list or a boolean is not a value of any enumeration and is refused.
    """
    value = _blank_to_none(value)
    if value is None or isinstance(value, enum):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise _unfit("enum_type", "expected a status as text")
    text = _text(value)
    try:
        return enum(text)
    except ValueError:
        return str(text)


def _known(enum: type[E]) -> BeforeValidator:
    return BeforeValidator(lambda v: known_or_text(v, enum))


class EmailMarketingState(StrEnum):
    """``email_marketing_consent.state`` (Shopify's CustomerEmailMarketingState; REST sends the
    values in lower case). ``redacted`` and ``invalid`` are set by Shopify itself."""

    SUBSCRIBED = "subscribed"
    NOT_SUBSCRIBED = "not_subscribed"
    UNSUBSCRIBED = "unsubscribed"
    PENDING = "pending"
    REDACTED = "redacted"
    INVALID = "invalid"


class SmsMarketingState(StrEnum):
    """``sms_marketing_consent.state`` (Shopify's CustomerSmsMarketingState: no ``invalid``)."""

    SUBSCRIBED = "subscribed"
    NOT_SUBSCRIBED = "not_subscribed"
    UNSUBSCRIBED = "unsubscribed"
    PENDING = "pending"
    REDACTED = "redacted"


class MarketingOptInLevel(StrEnum):
    """``opt_in_level`` of either consent, and the legacy ``marketing_opt_in_level`` (Shopify's
    CustomerMarketingOptInLevel, the M3AAWG levels; ``unknown`` is Shopify's own value)."""

    SINGLE_OPT_IN = "single_opt_in"
    CONFIRMED_OPT_IN = "confirmed_opt_in"
    UNKNOWN = "unknown"


class ConsentCollectedFrom(StrEnum):
    """``sms_marketing_consent.consent_collected_from`` (Shopify's CustomerConsentCollectedFrom,
    sent in upper case by REST as by GraphQL)."""

    SHOPIFY = "SHOPIFY"
    OTHER = "OTHER"


def only_known(value: object, enum: type[E]) -> E | None:
    """``value`` as the member of ``enum`` it names (in any letter case: REST and GraphQL differ),
    else refused. For values that become HubSpot enumeration options: HubSpot refuses a whole
    batch over one value that is not an option, so a value Shopify adds is a field problem
    (reported, synced as absent) until the enumeration learns it, never a failed batch."""
    value = _blank_to_none(value)
    if value is None or isinstance(value, enum):
        return value
    if not isinstance(value, str):
        raise _unfit("enum_type", "expected a consent value as text")
    for member in enum:
        if member.value.casefold() == value.strip().casefold():
            return member
    raise _unfit("enum_value", f"not one of Shopify's documented {enum.__name__} values")


def _only(enum: type[E]) -> BeforeValidator:
    return BeforeValidator(lambda v: only_known(v, enum))


EmailMarketingStateField = Annotated[EmailMarketingState | None, _only(EmailMarketingState)]
SmsMarketingStateField = Annotated[SmsMarketingState | None, _only(SmsMarketingState)]
MarketingOptInLevelField = Annotated[MarketingOptInLevel | None, _only(MarketingOptInLevel)]
ConsentCollectedFromField = Annotated[ConsentCollectedFrom | None, _only(ConsentCollectedFrom)]

FinancialStatusField = Annotated[FinancialStatus | str | None, _known(FinancialStatus)]
FulfillmentStatusField = Annotated[FulfillmentStatus | str | None, _known(FulfillmentStatus)]
PublishedScopeField = Annotated[PublishedScope | str | None, _known(PublishedScope)]
ProductStatusField = Annotated[ProductStatus | str | None, _known(ProductStatus)]


# ---- lists ----

T = TypeVar("T")


def _null_to_empty(value: Any) -> Any:
    return [] if value is None else value


ListOf = Annotated[list[T], BeforeValidator(_null_to_empty)]
"""A list of nested records where ``null`` means none. Anything else that is not a list is
refused (the tolerant parse then syncs the list as empty and reports it)."""
