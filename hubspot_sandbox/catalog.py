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
    BuiltIn("createdate", "Create Date", "datetime", "date", "{group}", read_only=True),
    BuiltIn("lastmodifieddate", "Last Modified Date", "datetime", "date", "{group}", read_only=True),
    BuiltIn("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", "{group}", read_only=True),
)


def _calculated_amount(name: str, label: str) -> BuiltIn:
    return BuiltIn(name, label, "number", "number", "lineiteminformation", read_only=True, calculated=True)


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
}

DEFAULT_GROUPS = {
    "contacts": "contactinformation",
    "deals": "dealinformation",
    "products": "productinformation",
    "line_items": "lineiteminformation",
}
"""Each object's information group: its built-ins are in it, and every account has it."""


def built_ins(object_type: str) -> tuple[BuiltIn, ...]:
    group = DEFAULT_GROUPS[object_type]
    """Every type has the four computed properties; their group is the type's own."""
    common = tuple(replace(b, group=group) for b in _COMMON)
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
    )
}


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
