"""What every HubSpot account has before anyone writes to it: the object types, their built-in
properties, the HubSpot-defined association types and the default deal pipeline."""

from __future__ import annotations

from dataclasses import dataclass, replace

from hubspot_sandbox.errors import HubSpotError


@dataclass(frozen=True)
class ObjectType:
    name: str  # the plural name used in paths: "contacts"
    type_id: str  # HubSpot's object type id: "0-1"
    upper: str  # how HubSpot names it in messages: "CONTACT"
    modified_property: str  # the last-modified property HubSpot always returns for it
    defaults: tuple[str, ...]  # the properties a read returns when none are asked for
    created_property: str = "createdate"  # the creation stamp: orders and carts call it hs_createdate


OBJECT_TYPES: dict[str, ObjectType] = {
    t.name: t
    for t in (
        ObjectType(
            "contacts",
            "0-1",
            "CONTACT",
            "lastmodifieddate",
            ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
        ),
        ObjectType(
            "deals",
            "0-3",
            "DEAL",
            "hs_lastmodifieddate",
            (
                "amount",
                "closedate",
                "createdate",
                "dealname",
                "dealstage",
                "hs_lastmodifieddate",
                "hs_object_id",
                "pipeline",
            ),
        ),
        ObjectType(
            "products",
            "0-7",
            "PRODUCT",
            "hs_lastmodifieddate",
            ("createdate", "description", "hs_lastmodifieddate", "hs_object_id", "name", "price"),
        ),
        ObjectType(
            "line_items",
            "0-8",
            "LINE_ITEM",
            "hs_lastmodifieddate",
            (
                "createdate",
                "hs_lastmodifieddate",
                "hs_object_id",
                "hs_product_id",
                "name",
                "price",
                "quantity",
            ),
        ),
        ObjectType(
            "companies",
            "0-2",
            "COMPANY",
            "hs_lastmodifieddate",
            ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
        ),
        # Orders and carts: HubSpot's guides name the path segment in the singular
        # (``/crm/v3/objects/order``, ``/crm/v3/objects/cart``); the plural and the type ids
        # (0-123, 0-142) are accepted too. Their creation stamp is ``hs_createdate`` (the guides'
        # example answers), and a read without ``properties`` returns the stamps and the id.
        ObjectType(
            "orders",
            "0-123",
            "ORDER",
            "hs_lastmodifieddate",
            ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
            created_property="hs_createdate",
        ),
        ObjectType(
            "carts",
            "0-142",
            "CART",
            "hs_lastmodifieddate",
            ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
            created_property="hs_createdate",
        ),
    )
}

_ALIASES: dict[str, str] = {
    "contacts": "contacts",
    "contact": "contacts",
    "0-1": "contacts",
    "deals": "deals",
    "deal": "deals",
    "0-3": "deals",
    "products": "products",
    "product": "products",
    "0-7": "products",
    "line_items": "line_items",
    "line_item": "line_items",
    "lineitems": "line_items",
    "0-8": "line_items",
    "companies": "companies",
    "company": "companies",
    "0-2": "companies",
    "orders": "orders",
    "order": "orders",
    "0-123": "orders",
    "carts": "carts",
    "cart": "carts",
    "0-142": "carts",
}


def resolve_type(name: str) -> ObjectType:
    """The object type a path names, by name or by HubSpot's numeric id (``0-3`` is deals)."""
    canonical = _ALIASES.get(name.lower())
    if canonical is None:
        raise HubSpotError(400, "VALIDATION_ERROR", f"Unable to infer object type from: {name}")
    return OBJECT_TYPES[canonical]


@dataclass(frozen=True)
class BuiltIn:
    """A property every account has. ``calculated`` ones HubSpot computes from others (their
    definition says ``calculated: true``); both they and the record stamps are read-only values:
    a write naming one fails with 400 ``READ_ONLY_VALUE``."""

    name: str
    label: str
    type: str
    field_type: str
    group: str
    options: tuple[str, ...] = ()
    read_only: bool = False
    calculated: bool = False


# Set by HubSpot on every record: id, creation and modification dates ("This value is set
# automatically by HubSpot", HubSpot's default property pages, e.g.
# https://knowledge.hubspot.com/properties/hubspots-default-line-item-properties). HubSpot's
# answer to writing one: 400, `READ_ONLY_VALUE`, '"hs_object_id" is a calculated property; its
# value cannot be set.' (a captured HubSpot answer, https://github.com/mautic/mautic/pull/8785).
_COMMON = (
    BuiltIn("hs_object_id", "Record ID", "number", "number", "{group}", read_only=True, calculated=True),
    BuiltIn("lastmodifieddate", "Last Modified Date", "datetime", "date", "{group}", read_only=True),
    BuiltIn("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", "{group}", read_only=True),
)


def _calculated_amount(name: str, label: str) -> BuiltIn:
    return BuiltIn(name, label, "number", "number", "lineiteminformation", read_only=True, calculated=True)


def _calculated(name: str, label: str, group: str, kind: str = "number") -> BuiltIn:
    return BuiltIn(
        name, label, kind, "number" if kind == "number" else "text", group, read_only=True, calculated=True
    )


def _commerce_common(group: str) -> tuple[BuiltIn, ...]:
    """What orders and carts share: the store, the currency and the money; and what HubSpot sets
    on them (the guides' example answers carry ``hs_exchange_rate``, ``hs_homecurrency_amount``,
    ``hs_created_by_user_id`` and ``hs_object_source`` without the request naming them)."""
    return (
        BuiltIn("hs_source_store", "Source store", "string", "text", group),
        BuiltIn("hs_currency_code", "Currency", "string", "text", group),
        BuiltIn("hs_total_price", "Total", "number", "number", group),
        BuiltIn("hs_tax", "Tax", "number", "number", group),
        BuiltIn("hs_shipping_cost", "Shipping cost", "number", "number", group),
        _calculated("hs_exchange_rate", "Exchange rate", group),
        _calculated("hs_homecurrency_amount", "Amount in company currency", group),
        _calculated("hs_created_by_user_id", "Created by user ID", group),
        _calculated("hs_object_source", "Record source", group, kind="string"),
    )


def _addresses(prefix: str, label: str, group: str) -> tuple[BuiltIn, ...]:
    parts = ("name", "street", "city", "state", "postal_code", "country", "phone")
    return tuple(
        BuiltIn(f"{prefix}_{p}", f"{label} {p.replace('_', ' ')}", "string", "text", group) for p in parts
    )


LIFECYCLE_STAGES = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)

BUILT_IN_PROPERTIES: dict[str, tuple[BuiltIn, ...]] = {
    "contacts": (
        BuiltIn("email", "Email", "string", "text", "contactinformation"),
        BuiltIn("firstname", "First Name", "string", "text", "contactinformation"),
        BuiltIn("lastname", "Last Name", "string", "text", "contactinformation"),
        BuiltIn("phone", "Phone Number", "string", "phonenumber", "contactinformation"),
        BuiltIn("address", "Street Address", "string", "text", "contactinformation"),
        BuiltIn("city", "City", "string", "text", "contactinformation"),
        BuiltIn("state", "State/Region", "string", "text", "contactinformation"),
        BuiltIn("zip", "Postal Code", "string", "text", "contactinformation"),
        BuiltIn("country", "Country/Region", "string", "text", "contactinformation"),
        BuiltIn(
            "lifecyclestage",
            "Lifecycle Stage",
            "enumeration",
            "radio",
            "contactinformation",
            LIFECYCLE_STAGES,
        ),
    ),
    "deals": (
        BuiltIn("dealname", "Deal Name", "string", "text", "dealinformation"),
        BuiltIn("amount", "Amount", "number", "number", "dealinformation"),
        # Options of these two are the pipelines and their stages, checked against the pipelines table.
        BuiltIn("dealstage", "Deal Stage", "enumeration", "radio", "dealinformation"),
        BuiltIn("pipeline", "Pipeline", "enumeration", "select", "dealinformation"),
        BuiltIn("closedate", "Close Date", "datetime", "date", "dealinformation"),
    ),
    "products": (
        BuiltIn("name", "Name", "string", "text", "productinformation"),
        BuiltIn("description", "Description", "string", "textarea", "productinformation"),
        BuiltIn("price", "Unit price", "number", "number", "productinformation"),
        BuiltIn("hs_sku", "SKU", "string", "text", "productinformation"),
        BuiltIn("hs_images", "Product Image URL", "string", "text", "productinformation"),
    ),
    "line_items": (
        BuiltIn("name", "Name", "string", "text", "lineiteminformation"),
        BuiltIn("quantity", "Quantity", "number", "number", "lineiteminformation"),
        BuiltIn("price", "Unit price", "number", "number", "lineiteminformation"),
        BuiltIn("hs_product_id", "Product ID", "number", "number", "lineiteminformation"),
        BuiltIn("hs_sku", "SKU", "string", "text", "lineiteminformation"),
        # What a buyer is given off: per unit (`discount`, an amount) or as a percentage. These
        # are the writable inputs of HubSpot's line-item pricing.
        BuiltIn("discount", "Unit discount", "number", "number", "lineiteminformation"),
        BuiltIn("hs_discount_percentage", "Discount Percentage", "number", "number", "lineiteminformation"),
        # HubSpot's line-item calculation properties (pre-discount amount = price x quantity; total
        # discount from the unit discount or percentage; net price `amount` = the difference):
        # HubSpot computes them, so they are refused on write (calculated_values.py keeps them).
        # Sources: "HubSpot's default line item properties" (Pricing),
        # https://knowledge.hubspot.com/properties/hubspots-default-line-item-properties, and the
        # calculation as HubSpot partners document it,
        # https://help.hubdo.com/how-does-hubspot-calculate-and-round-line-item-net-price-when-discounted-by-percentage
        _calculated_amount("hs_pre_discount_amount", "Pre-discount amount"),
        _calculated_amount("hs_total_discount", "Total discount"),
        _calculated_amount("amount", "Net price"),
    ),
    "companies": (
        BuiltIn("name", "Company name", "string", "text", "companyinformation"),
        BuiltIn("domain", "Company Domain Name", "string", "text", "companyinformation"),
        BuiltIn("website", "Website URL", "string", "text", "companyinformation"),
        BuiltIn("phone", "Phone Number", "string", "phonenumber", "companyinformation"),
        BuiltIn("address", "Street Address", "string", "text", "companyinformation"),
        BuiltIn("address2", "Street Address 2", "string", "text", "companyinformation"),
        BuiltIn("city", "City", "string", "text", "companyinformation"),
        BuiltIn("state", "State/Region", "string", "text", "companyinformation"),
        BuiltIn("zip", "Postal Code", "string", "text", "companyinformation"),
        BuiltIn("country", "Country/Region", "string", "text", "companyinformation"),
        BuiltIn("description", "Description", "string", "textarea", "companyinformation"),
        BuiltIn("numberofemployees", "Number of Employees", "number", "number", "companyinformation"),
        BuiltIn("annualrevenue", "Annual Revenue", "number", "number", "companyinformation"),
        BuiltIn(
            "lifecyclestage",
            "Lifecycle Stage",
            "enumeration",
            "radio",
            "companyinformation",
            LIFECYCLE_STAGES,
        ),
        # Counts HubSpot keeps from the company's associations ("HubSpot's default company
        # properties": calculated, not writable).
        _calculated("num_associated_contacts", "Number of Associated Contacts", "companyinformation"),
        _calculated("num_associated_deals", "Number of Associated Deals", "companyinformation"),
    ),
    # The orders guide's properties and its "Order properties" list (sources in RULES.md).
    "orders": (
        *_commerce_common("orderinformation"),
        BuiltIn("hs_order_name", "Name", "string", "text", "orderinformation"),
        BuiltIn("hs_external_order_id", "External order ID", "string", "text", "orderinformation"),
        BuiltIn("hs_external_order_status", "External order status", "string", "text", "orderinformation"),
        BuiltIn("hs_external_order_url", "External order URL", "string", "text", "orderinformation"),
        BuiltIn("hs_external_created_date", "External created date", "datetime", "date", "orderinformation"),
        BuiltIn(
            "hs_external_cancelled_date", "External cancelled date", "datetime", "date", "orderinformation"
        ),
        BuiltIn("hs_cancellation_reason", "Cancellation reason", "string", "text", "orderinformation"),
        # Options of these two are the order pipelines and their stages (pipelines table).
        BuiltIn("hs_pipeline", "Pipeline", "enumeration", "select", "orderinformation"),
        BuiltIn("hs_pipeline_stage", "Stage", "enumeration", "radio", "orderinformation"),
        BuiltIn("hs_subtotal_price", "Subtotal", "number", "number", "orderinformation"),
        BuiltIn("hs_order_discount", "Order discount", "number", "number", "orderinformation"),
        BuiltIn("hs_discount_codes", "Discount codes", "string", "text", "orderinformation"),
        BuiltIn("hs_fulfillment_status", "Fulfillment status", "string", "text", "orderinformation"),
        BuiltIn("hs_payment_status", "Payment status", "string", "text", "orderinformation"),
        BuiltIn(
            "hs_shipping_tracking_number", "Shipping tracking number", "string", "text", "orderinformation"
        ),
        *_addresses("hs_shipping_address", "Shipping", "orderinformation"),
        *_addresses("hs_billing_address", "Billing", "orderinformation"),
        BuiltIn("hs_billing_address_email", "Billing email", "string", "text", "orderinformation"),
    ),
    # The carts guide's properties (its create example; sources in RULES.md).
    "carts": (
        *_commerce_common("cartinformation"),
        BuiltIn("hs_cart_name", "Name", "string", "text", "cartinformation"),
        BuiltIn("hs_external_cart_id", "External cart ID", "string", "text", "cartinformation"),
        BuiltIn("hs_external_status", "External status", "string", "text", "cartinformation"),
        BuiltIn("hs_cart_discount", "Cart discount", "number", "number", "cartinformation"),
        BuiltIn("hs_tags", "Tags", "string", "text", "cartinformation"),
    ),
}

DEFAULT_GROUPS = {
    "contacts": "contactinformation",
    "deals": "dealinformation",
    "products": "productinformation",
    "line_items": "lineiteminformation",
    "companies": "companyinformation",
    "orders": "orderinformation",
    "carts": "cartinformation",
}
"""Each object's information group: its built-ins are in it, and every account has it."""


def built_ins(object_type: str) -> tuple[BuiltIn, ...]:
    """Every type has the computed properties (its creation stamp named as HubSpot names it);
    their group is the type's own."""
    group = DEFAULT_GROUPS[object_type]
    created = BuiltIn(
        OBJECT_TYPES[object_type].created_property, "Create Date", "datetime", "date", group, read_only=True
    )
    common = tuple(replace(b, group=group) for b in (_COMMON[0], created, *_COMMON[1:]))
    return common + BUILT_IN_PROPERTIES[object_type]


@dataclass(frozen=True)
class AssociationType:
    """One direction of an association type: HubSpot's unlabelled default of a pair, or a label
    an account defined (``USER_DEFINED``, made through the labels endpoint)."""

    from_type: str
    to_type: str
    type_id: int
    inverse_id: int
    category: str = "HUBSPOT_DEFINED"
    label: str | None = None


# The HubSpot-defined (unlabelled) association types the writer uses; both directions are stored.
ASSOCIATION_TYPES: dict[tuple[str, str], AssociationType] = {
    (a.from_type, a.to_type): a
    for a in (
        AssociationType("deals", "contacts", 3, 4),
        AssociationType("contacts", "deals", 4, 3),
        AssociationType("deals", "line_items", 19, 20),
        AssociationType("line_items", "deals", 20, 19),
        # Orders, carts and companies: HubSpot's association type ids (v4 "Association type id
        # values"; the orders and carts guides point to them and to the labels endpoint).
        AssociationType("orders", "contacts", 507, 508),
        AssociationType("contacts", "orders", 508, 507),
        AssociationType("orders", "companies", 509, 510),
        AssociationType("companies", "orders", 510, 509),
        AssociationType("deals", "orders", 511, 512),
        AssociationType("orders", "deals", 512, 511),
        AssociationType("orders", "line_items", 513, 514),
        AssociationType("line_items", "orders", 514, 513),
        AssociationType("carts", "orders", 592, 593),
        AssociationType("orders", "carts", 593, 592),
        AssociationType("carts", "contacts", 586, 587),
        AssociationType("contacts", "carts", 587, 586),
        AssociationType("carts", "line_items", 590, 591),
        AssociationType("line_items", "carts", 591, 590),
        AssociationType("contacts", "companies", 279, 280),
        AssociationType("companies", "contacts", 280, 279),
        AssociationType("deals", "companies", 341, 342),
        AssociationType("companies", "deals", 342, 341),
    )
}

HUBSPOT_LABELLED: dict[tuple[str, str], tuple[AssociationType, ...]] = {
    (a.from_type, a.to_type): (a,)
    for a in (
        AssociationType("contacts", "companies", 1, 2, label="Primary"),
        AssociationType("companies", "contacts", 2, 1, label="Primary"),
        AssociationType("deals", "companies", 5, 6, label="Primary"),
        AssociationType("companies", "deals", 6, 5, label="Primary"),
    )
}
"""HubSpot's own labelled types: the primary company of a contact or deal. Like a label an account
makes, a labelled link also carries the pair's unlabelled default."""

PARENT_TYPES = frozenset({"deals", "orders", "carts"})
"""The objects a line item may belong to; "line items belong to one single parent object"."""


@dataclass(frozen=True)
class StageSeed:
    id: str
    label: str
    probability: str
    closed: bool


DEFAULT_PIPELINE_ID = "default"
DEFAULT_PIPELINE_LABEL = "Sales Pipeline"
DEFAULT_STAGES = (
    StageSeed("appointmentscheduled", "Appointment Scheduled", "0.2", False),
    StageSeed("qualifiedtobuy", "Qualified To Buy", "0.4", False),
    StageSeed("presentationscheduled", "Presentation Scheduled", "0.6", False),
    StageSeed("decisionmakerboughtin", "Decision Maker Bought-In", "0.8", False),
    StageSeed("contractsent", "Contract Sent", "0.9", False),
    StageSeed("closedwon", "Closed Won", "1.0", True),
    StageSeed("closedlost", "Closed Lost", "0.0", True),
)

ORDER_PIPELINE_ID = "14a2e10e-5471-408a-906e-c51f3b04369e"
ORDER_PIPELINE_LABEL = "Order Pipeline"
ORDER_STAGES = (
    ("4b27b500-f031-4927-9811-68a0b525cbae", "Open"),
    ("937ea84d-0a4f-4dcf-9028-3f9c2aafbf03", "Processed"),
    ("aa99e8d0-c1d5-4071-b915-d240bbb1aed9", "Shipped"),
    ("3725360f-519b-4b18-a593-494d60a29c9f", "Delivered"),
    ("3c85a297-e9ce-400b-b42e-9f16853d69d6", "Cancelled"),
)
"""The order pipeline HubSpot gives every account, with its stage ids: the same ids in every
account the public integrations that read ``GET /crm/v3/pipelines/orders`` quote."""


@dataclass(frozen=True)
class PipelineFields:
    """Where an object with pipelines keeps them: its pipeline and stage properties, the pipeline a
    stage given alone belongs to."""

    pipeline: str
    stage: str
    default_pipeline: str


PIPELINE_FIELDS = {
    "deals": PipelineFields("pipeline", "dealstage", DEFAULT_PIPELINE_ID),
    "orders": PipelineFields("hs_pipeline", "hs_pipeline_stage", ORDER_PIPELINE_ID),
}
"""The objects the sandbox keeps pipelines for (HubSpot has them for deals, tickets, orders and a
few more; carts, contacts, companies, products and line items have none)."""
