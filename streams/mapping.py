"""Which Shopify field becomes which HubSpot property (SPEC C7, D6, P1), and how values are written.

One table per HubSpot object. Each row names the SPEC's label for the field, the HubSpot property
it is written to, and where the value comes from in the Shopify record, so the mapping is data
that the writer's account set-up, the README and the fixture conformance test all read. Values are
written as Shopify holds them (L1): text untranslated, money as Shopify's decimal string,
booleans as HubSpot checkbox strings, instants as UTC ISO-8601 with milliseconds.

A record *carries* a field when its body holds it, ``null`` included (:meth:`FieldMap.carried_by`).
The rules use that to tell "Shopify says this is now empty" (a ``null``: the property is cleared,
``None`` in a command, which the writer sends as HubSpot's clearing value ``""``) from "this record
says nothing about it" (the field is absent, for example an order has no abandoned-checkout URL:
an older record's value stands).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel

from schemas.commands import PropertyValue
from schemas.shopify import Checkout, CustomerBase, Order, Product, ShopifyModel

PropertyType = Literal["string", "number", "bool", "datetime", "enumeration"]


def format_value(value: Any) -> PropertyValue:
    """The string HubSpot stores for a Shopify value (deterministic: replay writes the same)."""
    if value is None:
        return None
    if type(value) is str:  # the usual case first (an exact str: a StrEnum member is an Enum below)
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        # YYYY-MM-DDTHH:MM:SS.mmmZ (milliseconds truncated); years are 4 digits (1970..3000+).
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, Decimal | int | float):
        return str(value)
    if isinstance(value, list):
        return ";".join(str(v) for v in value) if value else None
    return str(value)


@dataclass(frozen=True)
class FieldMap:
    """One synced field: SPEC label, HubSpot property, Shopify source path and value type."""

    label: str
    hubspot_property: str
    source: str
    type: PropertyType = "string"
    read: Callable[[Any], Any] | None = None
    also: tuple[str, ...] = ()
    """Other source paths ``read`` looks at (the record carries the field if it holds any)."""

    @cached_property
    def _paths(self) -> tuple[tuple[str, ...], ...]:
        """``source`` and ``also``, split into attribute names once (fields are read per event)."""
        return tuple(tuple(path.split(".")) for path in (self.source, *self.also))

    def value(self, record: ShopifyModel) -> Any:
        """The raw Shopify value (before formatting) this field reads from ``record``."""
        if self.read is not None:
            return self.read(record)
        current: Any = record
        for part in self._paths[0]:
            current = getattr(current, part, None)
            if current is None:
                return None
        return current

    def carried_by(self, record: ShopifyModel) -> bool:
        """Whether ``record`` holds this field at all, ``null`` included (a parent given as
        ``null`` holds its children as ``null``: ``"default_address": null`` says the city is
        empty). A field the body leaves out is not carried: the record says nothing about it."""
        return any(_holds(record, path) for path in self._paths)


def _holds(record: ShopifyModel, path: tuple[str, ...]) -> bool:
    current: Any = record
    for part in path:
        if not isinstance(current, BaseModel):  # null (or a list) above the leaf: carried as such
            return True
        if part not in current.model_fields_set:
            return False
        current = getattr(current, part, None)
    return True


_Plan = tuple[tuple[str, str | None, tuple[str, str] | None, FieldMap], ...]
_PLANS: dict[int, tuple[tuple[FieldMap, ...], _Plan]] = {}


def _plan(fields: tuple[FieldMap, ...]) -> _Plan:
    """Each field of a table as (property, its attribute when the field is one plain attribute of
    the record, its two attributes when it is one of a nested object, the field). Every event
    reads its record through a table, so these common cases skip the general path walk; plans are
    kept per table object."""
    known = _PLANS.get(id(fields))
    if known is not None and known[0] is fields:
        return known[1]
    entries = []
    for f in fields:
        plain = f.read is None and not f.also
        parts = f.source.split(".")
        attr = f.source if plain and len(parts) == 1 else None
        nested = (parts[0], parts[1]) if plain and len(parts) == 2 else None
        entries.append((f.hubspot_property, attr, nested, f))
    plan = tuple(entries)
    _PLANS[id(fields)] = (fields, plan)
    return plan


def properties(fields: tuple[FieldMap, ...], record: ShopifyModel) -> dict[str, PropertyValue]:
    """HubSpot properties for ``record`` under a mapping table."""
    return {
        prop: format_value(getattr(record, attr, None) if attr is not None else f.value(record))
        for prop, attr, _, f in _plan(fields)
    }


def carried_properties(fields: tuple[FieldMap, ...], record: ShopifyModel) -> dict[str, PropertyValue]:
    """HubSpot properties for the fields ``record`` carries (``None`` where it carries a null).

    The same as ``{f.hubspot_property: format_value(f.value(record)) for f in fields if
    f.carried_by(record)}``, with the walk of a plain attribute (or a nested object's) inlined."""
    carried = record.model_fields_set
    out: dict[str, PropertyValue] = {}
    for prop, attr, nested, f in _plan(fields):
        if attr is not None:
            if attr in carried:
                value = getattr(record, attr)
                out[prop] = value if value is None or type(value) is str else format_value(value)
        elif nested is not None:
            head, leaf = nested
            if head in carried:
                parent = getattr(record, head)
                if isinstance(parent, BaseModel):
                    if leaf in parent.model_fields_set:
                        value = getattr(parent, leaf)
                        out[prop] = value if value is None or type(value) is str else format_value(value)
                else:  # null (or a list) above the leaf: carried as such
                    out[prop] = format_value(f.value(record))
        elif f.carried_by(record):
            out[prop] = format_value(f.value(record))
    return out


# C7: contact properties. C8: the phone is the customer overview's, never the default address's.
CONTACT_FIELDS: tuple[FieldMap, ...] = (
    FieldMap("Accepts marketing", "shopify_accepts_marketing", "accepts_marketing", "bool",
             read=lambda c: c.accepts_email_marketing(), also=("email_marketing_consent",)),
    FieldMap("Created at", "shopify_customer_created_at", "created_at", "datetime"),
    FieldMap("First name", "firstname", "first_name"),
    FieldMap("Last name", "lastname", "last_name"),
    FieldMap("Email", "email", "email"),
    FieldMap("Phone", "phone", "phone"),
    FieldMap("Note", "shopify_customer_note", "note"),
    FieldMap("Orders count", "shopify_orders_count", "orders_count", "number"),
    FieldMap("Tags", "shopify_customer_tags", "tags"),
    FieldMap("Tax exempt", "shopify_tax_exempt", "tax_exempt", "bool"),
    FieldMap("Verified email", "shopify_verified_email", "verified_email", "bool"),
    FieldMap("Street address", "address", "default_address.address1"),
    FieldMap("City", "city", "default_address.city"),
    FieldMap("Country", "country", "default_address.country"),
    FieldMap("State/Province", "state", "default_address.province"),
    FieldMap("Zip code", "zip", "default_address.zip"),
)  # fmt: skip


def _customer_id(record: Order | Checkout) -> int | None:
    return record.customer.id if record.customer is not None else None


# D6: deal properties, read from an order or from a checkout (fields a checkout lacks read None).
DEAL_FIELDS: tuple[FieldMap, ...] = (
    FieldMap("Abandoned checkout URL", "shopify_abandoned_checkout_url", "abandoned_checkout_url"),
    FieldMap("Buyer accepts marketing", "shopify_buyer_accepts_marketing",
             "buyer_accepts_marketing", "bool"),
    FieldMap("Customer ID", "shopify_customer_id", "customer.id", read=_customer_id),
    FieldMap("Cancel reason", "shopify_cancel_reason", "cancel_reason"),
    FieldMap("Cart token", "shopify_cart_token", "cart_token"),
    FieldMap("Cancelled at", "shopify_cancelled_at", "cancelled_at", "datetime"),
    FieldMap("Created at", "shopify_created_at", "created_at", "datetime"),
    FieldMap("Currency", "shopify_currency", "currency"),
    FieldMap("Financial status", "shopify_financial_status", "financial_status"),
    FieldMap("Fulfillment status", "shopify_fulfillment_status", "fulfillment_status"),
    FieldMap("Landing site", "shopify_landing_site", "landing_site"),
    FieldMap("Name", "dealname", "name"),
    FieldMap("Note", "shopify_note", "note"),
    FieldMap("Order number", "shopify_order_number", "order_number", "number"),
    FieldMap("Processing method", "shopify_processing_method", "processing_method"),
    FieldMap("Referring site", "shopify_referring_site", "referring_site"),
    FieldMap("Source name", "shopify_source_name", "source_name"),
    FieldMap("Subtotal price", "shopify_subtotal_price", "subtotal_price", "number"),
    FieldMap("Taxes included", "shopify_taxes_included", "taxes_included", "bool"),
    FieldMap("Token", "shopify_token", "token"),
    FieldMap("Total discounts", "shopify_total_discounts", "total_discounts", "number"),
    FieldMap("Total line items price", "shopify_total_line_items_price",
             "total_line_items_price", "number"),
    FieldMap("Total price", "amount", "total_price", "number"),
    FieldMap("Current total price", "shopify_current_total_price", "current_total_price", "number"),
    FieldMap("Total tax", "shopify_total_tax", "total_tax", "number"),
    FieldMap("Total weight", "shopify_total_weight", "total_weight", "number"),
)  # fmt: skip

# X1: what an Order or Cart reads that a deal does not (the deal's table stays D6's exactly).
COMMERCE_FIELDS: tuple[FieldMap, ...] = (
    FieldMap("Shipping", "hs_shipping_cost", "total_shipping_price_set.shop_money.amount", "number"),
)

# X1: HubSpot's own order properties, each from the D6 deal property holding the same Shopify field
# (the journey decides once; an Order is another rendering of that decision). Besides these, an
# Order carries every ``shopify_*`` D6 property, the shop (``hs_source_store``), the order id
# (``hs_external_order_id``), the shipping cost and its pipeline and stage.
ORDER_FROM_DEAL: tuple[tuple[str, str], ...] = (
    ("hs_order_name", "dealname"),
    ("hs_currency_code", "shopify_currency"),
    ("hs_total_price", "amount"),
    ("hs_subtotal_price", "shopify_subtotal_price"),
    ("hs_order_discount", "shopify_total_discounts"),
    ("hs_tax", "shopify_total_tax"),
    ("hs_payment_status", "shopify_financial_status"),
    ("hs_fulfillment_status", "shopify_fulfillment_status"),
    ("hs_external_created_date", "shopify_created_at"),
    ("hs_external_cancelled_date", "shopify_cancelled_at"),
    ("hs_cancellation_reason", "shopify_cancel_reason"),
)
# X1: HubSpot's own cart properties, from the abandoned checkout's D6 properties.
CART_FROM_DEAL: tuple[tuple[str, str], ...] = (
    ("hs_cart_name", "dealname"),
    ("hs_external_cart_id", "shopify_token"),
    ("hs_currency_code", "shopify_currency"),
    ("hs_total_price", "amount"),
    ("hs_cart_discount", "shopify_total_discounts"),
    ("hs_tax", "shopify_total_tax"),
)

# P1: product properties.
PRODUCT_FIELDS: tuple[FieldMap, ...] = (
    FieldMap("Title", "name", "title"),
    FieldMap("Body_HTML", "description", "body_html"),
    FieldMap("Created at", "shopify_created_at", "created_at", "datetime"),
    FieldMap("Handle", "shopify_handle", "handle"),
    FieldMap("Images", "hs_images", "images", read=lambda p: p.image_urls()),
    FieldMap("Product type", "shopify_product_type", "product_type"),
    FieldMap("Published at", "shopify_published_at", "published_at", "datetime"),
    FieldMap("Published scope", "shopify_published_scope", "published_scope"),
    FieldMap("Tags", "shopify_tags", "tags"),
    FieldMap("Vendor", "shopify_vendor", "vendor"),
    FieldMap("Price", "price", "variants.price", "number", read=lambda p: p.price()),
)  # fmt: skip


def contact_properties(customer: CustomerBase) -> dict[str, PropertyValue]:
    return properties(CONTACT_FIELDS, customer)


def deal_properties(record: Order | Checkout) -> dict[str, PropertyValue]:
    return properties(DEAL_FIELDS, record)


def carried_contact_properties(customer: CustomerBase) -> dict[str, PropertyValue]:
    """C7 properties of the fields a customer (a record, or one nested in an order) carries."""
    return carried_properties(CONTACT_FIELDS, customer)


def carried_deal_properties(record: Order | Checkout) -> dict[str, PropertyValue]:
    """D6 properties of the fields an order or checkout carries."""
    return carried_properties(DEAL_FIELDS, record)


def carried_commerce_properties(record: Order | Checkout) -> dict[str, PropertyValue]:
    """X1: the Order- and Cart-only properties (shipping) of the fields a record carries."""
    return carried_properties(COMMERCE_FIELDS, record)


def product_properties(product: Product) -> dict[str, PropertyValue]:
    return properties(PRODUCT_FIELDS, product)
