"""What the writer sets up in a HubSpot account before its first write, idempotently.

Every custom property the processors write (the Shopify fields of SPEC C7, D6, P1, the unique
keys that make upserts possible, and the trigger properties HubSpot workflows watch), and the
ecommerce deal pipeline with the legacy integration's stages. Existing properties and an existing
pipeline with the same label are reused, so running it again changes nothing. Stage ids are
looked up by label, never hard-coded (ids made in HubSpot's UI are numeric).

What HubSpot requires, and where it says so:
- A property is created with a ``type`` and a ``fieldType`` that go together, in a ``groupName``
  that exists; an option carries ``label``, ``value``, ``displayOrder`` and ``hidden``
  (developers.hubspot.com, "CRM API | Properties": "Property type and fieldType values"; "Create a
  property", request body). The group is HubSpot's own information group of the object type, as
  the account's own properties show it.
- HubSpot computes some properties and refuses writes to them (a property definition's
  ``calculated`` and ``modificationMetadata.readOnlyValue``). The writer sets only the built-in
  properties in ``BUILT_IN``, and the set-up checks each against the account's definitions: one
  HubSpot marks read-only or calculated stops the set-up with its name, instead of every batch
  that writes it failing with 400. A line's discount (Shopify's ``total_discount``) goes to the
  project's own ``shopify_total_discount``, not to HubSpot's ``hs_total_discount``: that "Total
  discount" is HubSpot's product of the unit discount and the quantity (not stated on the HubSpot
  pages reachable here; integrations report it read-only), and writing a computed value is what
  REFERENCE.md warns against.
- Only Sales Hub Starter, Professional and Enterprise accounts can create deal pipelines; every
  account has the default one, id ``default`` (developers.hubspot.com, "CRM API | Pipelines":
  "Default pipelines", "Multiple pipelines"). So the writer uses the pipeline that
  ``SHOPSYNC_HUBSPOT_PIPELINE_ID`` names when it is set, else the one labelled
  ``SHOPSYNC_PIPELINE_LABEL``, creating it where HubSpot allows; where HubSpot refuses, it uses the
  account's default pipeline. Either way the six legacy stages are found by label; any missing is
  reported with where to add it (``PIPELINE_SETTINGS``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from handlers.hubspot_api import HubSpotApi
from handlers.hubspot_client import HubSpotAccessError, HubSpotClient, HubSpotError
from handlers.property_diff import plan_properties, type_differences
from schemas.commands import ObjectType
from streams.mapping import (
    CART_FROM_DEAL,
    CONTACT_FIELDS,
    DEAL_FIELDS,
    ORDER_FROM_DEAL,
    PRODUCT_FIELDS,
    FieldMap,
    PropertyType,
)
from streams.rules.commerce import ORDER_STAGES
from streams.rules.companies import ADDRESS_PROPERTIES
from streams.rules.consent import CONSENT_PROPERTIES
from streams.rules.journeys import STAGES
from streams.rules.keys import CONTACT_SHOPS_PROPERTY, SHOP_PROPERTY

log = logging.getLogger(__name__)

GROUP = {"contacts": "contactinformation", "deals": "dealinformation", "products": "productinformation",
         "line_items": "lineiteminformation", "orders": "orderinformation",
         "carts": "cartinformation", "companies": "companyinformation"}  # fmt: skip
"""HubSpot's own information group of each type, where the custom properties go (when the account's
own properties show that group; else the group its built-in ``ANCHOR`` property is in)."""
ANCHOR: dict[ObjectType, str] = {
    "contacts": "email",
    "deals": "dealname",
    "products": "name",
    "line_items": "name",
    "orders": "hs_order_name",
    "carts": "hs_cart_name",
    "companies": "name",
}

BUILT_IN: dict[ObjectType, set[str]] = {
    "contacts": {"email", "firstname", "lastname", "phone", "address", "city", "state", "zip", "country"},
    "deals": {"dealname", "amount", "dealstage", "pipeline", "closedate"},
    "products": {"name", "description", "price", "hs_sku", "hs_images"},
    "line_items": {"name", "quantity", "price", "hs_product_id", "hs_sku"},
    "companies": {"name", *ADDRESS_PROPERTIES},
}
"""Properties every HubSpot account has, that the writer sets; never created, checked writable."""
COMMERCE_BUILT_IN: dict[ObjectType, set[str]] = {
    "orders": {name for name, _ in ORDER_FROM_DEAL}
    | {"hs_external_order_id", "hs_source_store", "hs_shipping_cost", "hs_pipeline", "hs_pipeline_stage"},
    "carts": {name for name, _ in CART_FROM_DEAL}
    | {"hs_source_store", "hs_shipping_cost", "hs_external_status"},
}
"""X1: HubSpot's own order and cart properties the rules set (``streams.rules.commerce``)."""
ALL_BUILT_IN: dict[ObjectType, set[str]] = {**BUILT_IN, **COMMERCE_BUILT_IN}

FIELD_TYPE: dict[PropertyType, tuple[str, str]] = {
    "string": ("string", "text"),
    "number": ("number", "number"),
    "bool": ("bool", "booleancheckbox"),
    "datetime": ("datetime", "date"),
    "enumeration": ("enumeration", "select"),
}
"""Our property types as HubSpot's (type, fieldType): pairs HubSpot's properties guide lists."""

STAGE_PROBABILITY = {"Checkout Pending": 0.1, "Checkout Abandoned": 0.1, "Checkout Completed": 0.9,
                     "Processed": 1.0, "Shipped": 1.0, "Cancelled": 0.0}  # fmt: skip

DEFAULT_PIPELINE_ID = "default"
ALREADY_EXISTS = "OBJECT_ALREADY_EXISTS"
PIPELINE_SETTINGS = (
    "HubSpot: Settings > Objects > Deals > Pipelines (knowledge.hubspot.com, "
    '"Set up and customize your deal pipelines and deal stages")'
)


@dataclass(frozen=True)
class PropertyDef:
    name: str
    label: str
    type: PropertyType = "string"
    unique: bool = False
    options: tuple[tuple[str, str], ...] = ()  # (label, value); an enumeration's choices

    def payload(self, group: str) -> dict[str, object]:
        """The ``POST`` body HubSpot's "Create a property" takes for this definition."""
        hubspot_type, field_type = FIELD_TYPE[self.type]
        body: dict[str, object] = {
            "name": self.name, "label": self.label, "type": hubspot_type, "fieldType": field_type,
            "groupName": group, "hasUniqueValue": self.unique,
        }  # fmt: skip
        choices = self.options
        if self.type == "bool":
            choices = (("Yes", "true"), ("No", "false"))
        elif self.type == "enumeration" and not choices:
            raise ValueError(f"the enumeration property {self.name} needs its options")
        if choices:
            body["options"] = [
                {"label": label, "value": value, "displayOrder": i, "hidden": False}
                for i, (label, value) in enumerate(choices)
            ]
        return body


def _from_fields(fields: tuple[FieldMap, ...], object_type: ObjectType) -> list[PropertyDef]:
    return [
        PropertyDef(f.hubspot_property, f"Shopify {f.label}", f.type)
        for f in fields
        if f.hubspot_property not in ALL_BUILT_IN[object_type]
    ]


ABANDONED_AT = PropertyDef("shopify_abandoned_at", "Shopify checkout abandoned at", "datetime")
CART_TRIGGER = PropertyDef("shopify_abandoned_cart_trigger_at", "Shopify abandoned-cart trigger", "datetime")
RECOVERED = PropertyDef("shopify_recovered_checkout", "Shopify recovered checkout", "bool")
NEW_CUSTOMER = PropertyDef("shopify_new_customer_order", "Shopify new customer's first order", "bool")
SHOP = PropertyDef(SHOP_PROPERTY, "Shopify shop")
"""X3: the shop of a record of a non-primary shop (empty: the primary shop's)."""
"""The trigger properties (W1, W2) and abandonment facts a deal carries, and an Order or Cart (X1)."""

CUSTOM_PROPERTIES: dict[ObjectType, list[PropertyDef]] = {
    "contacts": [
        *_from_fields(CONTACT_FIELDS, "contacts"),
        PropertyDef("shopify_customer_id", "Shopify customer ID"),
        PropertyDef("shopify_source_drill_down_1", "Original source drill-down 1 (Shopify)"),
        PropertyDef("shopify_source_drill_down_2", "Original source drill-down 2 (Shopify)"),
        PropertyDef("shopify_first_purchase_at", "Shopify first purchase at", "datetime"),
        PropertyDef("shopify_last_purchase_at", "Shopify last purchase at", "datetime"),
        PropertyDef("shopify_reengagement_trigger_at", "Shopify re-engagement trigger", "datetime"),
        # X4: Shopify's marketing consent, every value Shopify documents as an option.
        *(PropertyDef(c.name, c.label, c.type, options=c.options) for c in CONSENT_PROPERTIES),
        PropertyDef(CONTACT_SHOPS_PROPERTY, "Shopify shops"),  # X3: the shops the contact is known in
    ],
    "deals": [
        *_from_fields(DEAL_FIELDS, "deals"),
        PropertyDef("shopify_deal_key", "Shopify purchase journey", unique=True),
        ABANDONED_AT,
        CART_TRIGGER,
        RECOVERED,
        NEW_CUSTOMER,
        SHOP,
    ],
    "products": [
        *_from_fields(PRODUCT_FIELDS, "products"),
        PropertyDef("shopify_product_key", "Shopify product or variant", unique=True),
        PropertyDef("shopify_product_id", "Shopify product ID"),
        PropertyDef("shopify_variant_id", "Shopify variant ID"),
        PropertyDef("shopify_parent_product_id", "Shopify parent product ID"),
        SHOP,
    ],
    "line_items": [
        PropertyDef("shopify_line_item_key", "Shopify line", unique=True),
        PropertyDef("shopify_product_id", "Shopify product ID"),
        PropertyDef("shopify_variant_id", "Shopify variant ID"),
        PropertyDef("shopify_total_discount", "Shopify line discount", "number"),
        SHOP,
    ],
    "companies": [  # X2: B2B companies (streams.rules.companies)
        PropertyDef("shopify_company_id", "Shopify company ID", unique=True),
        PropertyDef("shopify_company_external_id", "Shopify company external ID"),
        PropertyDef("shopify_company_note", "Shopify company note"),
        PropertyDef("shopify_company_created_at", "Shopify company created at", "datetime"),
        PropertyDef("shopify_company_customer_since", "Shopify company customer since", "datetime"),
        PropertyDef("shopify_company_locations", "Shopify company locations"),
        PropertyDef("shopify_company_deleted_at", "Shopify company deleted at", "datetime"),
        SHOP,
    ],
}


def _shopify_fields(object_type: ObjectType) -> list[PropertyDef]:
    """X1: the D6 ``shopify_*`` properties an Order or Cart carries beside HubSpot's own."""
    return [p for p in _from_fields(DEAL_FIELDS, object_type) if p.name.startswith("shopify_")]


COMMERCE_PROPERTIES: dict[ObjectType, list[PropertyDef]] = {
    "orders": [
        *_shopify_fields("orders"),
        PropertyDef("shopify_order_key", "Shopify purchase journey", unique=True),
        NEW_CUSTOMER,
        SHOP,
    ],
    "carts": [
        *_shopify_fields("carts"),
        PropertyDef("shopify_cart_key", "Shopify purchase journey", unique=True),
        ABANDONED_AT,
        CART_TRIGGER,
        RECOVERED,
        SHOP,
    ],
}
"""X1: the custom properties of Orders and Carts, set up only when orders are written. HubSpot's
``hs_external_order_id`` and ``hs_external_cart_id`` are not unique values, so each type gets its
own upsert key (as deals have ``shopify_deal_key``)."""
ALL_PROPERTIES: dict[ObjectType, list[PropertyDef]] = {**CUSTOM_PROPERTIES, **COMMERCE_PROPERTIES}


def definitions(object_type: ObjectType) -> list[PropertyDef]:
    """The custom properties of a type (read when called, so a test may grow the tables)."""
    return CUSTOM_PROPERTIES.get(object_type) or COMMERCE_PROPERTIES[object_type]


COMMERCE_PAIRS: tuple[tuple[ObjectType, ObjectType], ...] = (
    ("orders", "contacts"), ("line_items", "orders"), ("carts", "contacts"), ("line_items", "carts"),
    ("carts", "orders"), ("companies", "orders"),
)  # fmt: skip
"""X1: the associations the rules make with ``DEFAULT_ASSOCIATION``, whose type ids the set-up
looks up (``GET /crm/v4/associations/{from}/{to}/labels``) rather than hard-codes."""
ORDER_PIPELINE_SETTINGS = "HubSpot: Settings > Objects > Orders > Pipelines"


def property_types(commerce_objects: str = "deals") -> tuple[ObjectType, ...]:
    """The object types whose properties the set-up makes: today's four, and orders and carts
    when orders are written (X1). Deals stay in every mode: the reports read them as the deal
    rules decide them, and a later switch to ``deals,orders`` must find them made."""
    types = tuple(CUSTOM_PROPERTIES)
    return (*types, "orders", "carts") if "orders" in commerce_objects.split(",") else types


class AccountSetupError(RuntimeError):
    """The account cannot be used as it is (for example a pipeline with our label but other stages)."""


@dataclass(frozen=True)
class AccountSchema:
    """What the writer needs to know about the account: the pipeline's id and its stage ids."""

    pipeline_id: str
    stage_ids: dict[str, str]  # stage label -> stage id
    time_zone: str | None = None  # the account's zone: its midnight resets the daily limit
    utc_offset_ms: int | None = None
    order_pipeline_id: str = ""  # X1, when orders are written: the order pipeline and its stages
    order_stage_ids: dict[str, str] = field(default_factory=dict)
    association_types: dict[str, int] = field(default_factory=dict)
    """X1: HubSpot's unlabelled association type id of each pair, keyed ``<from>|<to>``."""

    def association_type(self, from_type: str, to_type: str) -> int | None:
        return self.association_types.get(f"{from_type}|{to_type}")


async def ensure_properties(api: HubSpotApi, types: tuple[ObjectType, ...] = tuple(CUSTOM_PROPERTIES)) -> int:
    """Make the account's property definitions hold every custom property the writer writes, with
    the fewest calls HubSpot allows: one ``GET`` per object type (all its definitions at once),
    then, only for a type where something is missing or differs, one ``batch/create`` of what is
    missing and one ``PATCH`` per definition whose options differ (``handlers.property_diff``).
    An account that holds everything costs the four reads and nothing else. Returns how many
    definitions were created or changed.

    Raises ``AccountSetupError``, before writing anything, when a property the writer sets is one
    HubSpot computes or locks, or when an existing property of ours that must be unique (an
    upsert key) is not."""
    accounts: dict[ObjectType, dict[str, dict[str, Any]]] = {}
    for object_type in types:
        accounts[object_type] = {str(p["name"]): p for p in await api.properties(object_type)}
    problems = [p for t, existing in accounts.items() if (p := _unusable(t, existing))]
    if problems:
        raise AccountSetupError("; ".join(problems))
    changed = 0
    for object_type, existing in accounts.items():
        wanted = [p.payload(property_group(object_type, existing)) for p in definitions(object_type)]
        if kept := type_differences(wanted, existing):
            log.warning(
                "the %s properties %s exist in HubSpot with another type than the writer's; they are "
                "used as they are (an integration does not change the type of a property holding values)",
                object_type, ", ".join(kept),
            )  # fmt: skip
        plan = plan_properties(wanted, existing)
        if plan.create:
            changed += await _create_properties(api, object_type, plan.create)
        for name, changes in plan.update.items():
            await api.update_property(object_type, name, changes)
            changed += 1
        if not plan.empty:
            log.info(
                "HubSpot %s properties: %d created, %d updated (%s)", object_type, len(plan.create),
                len(plan.update), ", ".join([*(b["name"] for b in plan.create), *plan.update]),
            )  # fmt: skip
    return changed


async def _create_properties(api: HubSpotApi, object_type: ObjectType, bodies: list[dict[str, Any]]) -> int:
    """Create ``bodies`` in one ``batch/create`` call; return how many HubSpot created. A definition
    made meanwhile by another writer (``OBJECT_ALREADY_EXISTS``, or a 409 for the call, then each
    is created on its own and a 409 accepted) is fine; any other refusal stops the set-up by name."""
    status, answer = await api.create_properties(object_type, bodies)
    if status == 409:
        made = 0
        for body in bodies:
            one, _ = await api.create_property(object_type, body)
            made += one != 409
        return made
    if status >= 400:
        raise AccountSetupError(
            f"HubSpot refused to create {object_type} properties ({status}: {answer.get('message', '')})"
        )
    refused = [
        e for e in answer.get("errors") or [] if isinstance(e, dict) and e.get("category") != ALREADY_EXISTS
    ]
    if refused:
        raise AccountSetupError(
            f"HubSpot refused to create {object_type} properties: "
            + "; ".join(f"{e.get('category')}: {e.get('message')}" for e in refused)
        )
    return len(answer.get("results") or []) if status == 207 else len(bodies)


def property_group(object_type: ObjectType, existing: Mapping[str, Mapping[str, Any]]) -> str:
    """An existing group for our properties: HubSpot's information group of the type, as the
    account's own properties show it, else the group of the type's ``ANCHOR`` property."""
    groups = {str(p.get("groupName")) for p in existing.values() if p.get("groupName")}
    if GROUP[object_type] in groups or not groups:
        return GROUP[object_type]
    anchor = existing.get(ANCHOR[object_type], {}).get("groupName")
    return str(anchor) if anchor else sorted(groups)[0]


def _unusable(object_type: ObjectType, existing: Mapping[str, Mapping[str, Any]]) -> str | None:
    """What makes this type's properties unwritable for us in this account, or None."""
    ours = ALL_BUILT_IN[object_type] | {p.name for p in definitions(object_type)}
    locked = sorted(
        name
        for name in ours & set(existing)
        if existing[name].get("calculated") is True
        or (existing[name].get("modificationMetadata") or {}).get("readOnlyValue") is True
    )
    if locked:
        return (
            f"HubSpot computes or locks the {object_type} properties {', '.join(locked)} in this account "
            "(calculated or readOnlyValue in their definitions), and the writer sets them: every batch "
            "writing them would fail; a project update is needed"
        )
    shared = [p.name for p in definitions(object_type) if p.unique and p.name in existing]
    loose = [n for n in shared if existing[n].get("hasUniqueValue") is False]
    if loose:
        return (
            f"the {object_type} property {', '.join(loose)} exists without unique values; the writer upserts "
            "by it, so it must be unique: delete it in HubSpot (Settings > Properties) and let the writer "
            "create it again"
        )
    return None


async def ensure_pipeline(api: HubSpotApi, label: str, pipeline_id: str = "") -> AccountSchema:
    """The deal pipeline with the legacy stages (D1).

    ``pipeline_id`` set: that existing pipeline, never another. Else the one labelled ``label``,
    created when missing; when HubSpot refuses to create it (a Free account, or a token without
    the right to), the account's default pipeline. Stages are found by label."""
    if pipeline_id:
        status, pipeline = await api.pipeline(pipeline_id)
        if status == 404:
            raise AccountSetupError(
                f"SHOPSYNC_HUBSPOT_PIPELINE_ID names the deal pipeline {pipeline_id!r}, which this HubSpot "
                f"account does not have; use an id from {PIPELINE_SETTINGS}, or '{DEFAULT_PIPELINE_ID}' "
                "for the account's default pipeline"
            )
        return pipeline_schema(pipeline)
    listed = await api.pipelines("deals")
    found = next((p for p in listed if p.get("label") == label), None)
    return pipeline_schema(found if found is not None else await _create_pipeline(api, label, listed))


async def _create_pipeline(api: HubSpotApi, label: str, listed: list[dict[str, Any]]) -> dict[str, Any]:
    stages = [_stage_definition(stage, i) for i, stage in enumerate(STAGES)]
    try:
        status, created = await api.create_pipeline({"label": label, "displayOrder": 99, "stages": stages})
    except (HubSpotError, HubSpotAccessError) as exc:
        fallback = next((p for p in listed if str(p.get("id")) == DEFAULT_PIPELINE_ID), None) or (
            listed[0] if listed else None
        )
        if fallback is None:
            raise AccountSetupError(f"HubSpot refused to create the deal pipeline {label!r} ({exc})") from exc
        log.warning(
            "HubSpot refused to create the deal pipeline %r (%s): only Starter, Professional and "
            "Enterprise accounts may; using the account's pipeline %r (id %s) instead",
            label, exc, fallback.get("label"), fallback.get("id"),
        )  # fmt: skip
        return fallback
    if status == 409:  # made meanwhile by another writer: read it
        made = next((p for p in await api.pipelines("deals") if p.get("label") == label), None)
        if made is None:
            raise AccountSetupError(f"HubSpot says the deal pipeline {label!r} exists, but does not list it")
        return dict(made)
    return created


def _stage_definition(stage: str, order: int) -> dict[str, Any]:
    return {"label": stage, "displayOrder": order, "metadata": {"probability": str(STAGE_PROBABILITY[stage])}}


async def add_missing_stages(api: HubSpotApi, pipeline_id: str = DEFAULT_PIPELINE_ID) -> list[str]:
    """Add the legacy stages a pipeline lacks (by label, as :func:`pipeline_schema` finds them), after its
    own stages: what ``shopsync hubspot add-stages`` does for an operator on a Free account, whose
    one pipeline the writer uses (every plan may edit its pipelines' stages). Returns the labels
    added; a pipeline that has them all is left as it is."""
    status, pipeline = await api.pipeline(pipeline_id)
    if status == 404:
        raise AccountSetupError(f"the account has no deal pipeline with the id {pipeline_id!r}")
    present = {
        str(s.get("label")).strip().casefold() for s in pipeline.get("stages") or [] if isinstance(s, dict)
    }
    last = max((int(s.get("displayOrder") or 0) for s in pipeline.get("stages") or []), default=-1)
    added: list[str] = []
    for stage in STAGES:
        if stage.casefold() not in present:
            status, answer = await api.add_stage(pipeline_id, _stage_definition(stage, last + 1 + len(added)))
            if status >= 400:
                raise AccountSetupError(
                    f"HubSpot refused the stage {stage!r} ({status}: {answer.get('message', '')}); "
                    f"added before it: {added or 'none'}"
                )
            added.append(stage)
    return added


async def add_missing_stages_at(
    base_url: str, token: str, pipeline_id: str = DEFAULT_PIPELINE_ID
) -> list[str]:
    """:func:`add_missing_stages` on the account at ``base_url``, with a client of its own (the
    ``add-stages`` command and simulate's Free-tier set-up)."""
    api = HubSpotApi(HubSpotClient(base_url, token))
    try:
        return await add_missing_stages(api, pipeline_id)
    finally:
        await api.close()


def pipeline_schema(pipeline: Mapping[str, Any]) -> AccountSchema:
    """The pipeline's stage ids by label (exact, else ignoring case and spaces around); every
    legacy stage must be there."""
    stages = [s for s in pipeline.get("stages") or [] if isinstance(s, dict) and not s.get("archived")]
    exact = {str(s.get("label")): str(s["id"]) for s in stages}
    loose = {str(s.get("label")).strip().casefold(): str(s["id"]) for s in stages}
    stage_ids: dict[str, str] = {}
    for stage in STAGES:
        found = exact.get(stage) or loose.get(stage.casefold())
        if found is not None:
            stage_ids[stage] = found
    missing = [s for s in STAGES if s not in stage_ids]
    if missing:
        raise AccountSetupError(
            f"the deal pipeline {pipeline.get('label')!r} (id {pipeline.get('id')}) lacks the stages "
            f"{', '.join(repr(m) for m in missing)}: add stages with these labels to it in "
            f"{PIPELINE_SETTINGS} (or run `shopsync hubspot add-stages --pipeline {pipeline.get('id')}`), "
            "or set SHOPSYNC_HUBSPOT_PIPELINE_ID to a pipeline that has them"
        )
    return AccountSchema(pipeline_id=str(pipeline["id"]), stage_ids=stage_ids)


@dataclass(frozen=True)
class AccountDetails:
    """What ``GET /account-info/v3/details`` says of the account: its portal (hub) id, which names
    the account (the set-up cache is keyed by it), and its time zone (when the daily limit resets).
    All None when the token may not read it."""

    portal_id: str | None = None
    time_zone: str | None = None
    utc_offset_ms: int | None = None


async def account_details(api: HubSpotApi) -> AccountDetails:
    """The account's details, or empty ones when the token may not read them: the writer then
    probes for the daily reset instead of computing it, and sets the account up without a cache."""
    try:
        status, body = await api.account_details()
    except (HubSpotError, HubSpotAccessError):  # a token without the scope still syncs
        return AccountDetails()
    if status != 200:
        return AccountDetails()
    portal, zone, offset = body.get("portalId"), body.get("timeZone"), body.get("utcOffsetMilliseconds")
    return AccountDetails(
        str(portal) if isinstance(portal, int | str) and not isinstance(portal, bool) and portal else None,
        zone if isinstance(zone, str) and zone else None,
        offset if isinstance(offset, int) and not isinstance(offset, bool) else None,
    )


async def account_time_zone(api: HubSpotApi) -> tuple[str | None, int | None]:
    """The account's time zone setting (``GET /account-info/v3/details``), or (None, None)."""
    details = await account_details(api)
    return details.time_zone, details.utc_offset_ms


async def ensure_order_pipeline(api: HubSpotApi, label: str) -> tuple[str, dict[str, str]]:
    """X1: the order pipeline labelled ``label`` (HubSpot's default is "Order Pipeline") and the ids
    of the stages Orders go to, found by label; created with those stages when no pipeline has the
    label and HubSpot allows it, else the account's first order pipeline, which must have them."""
    listed = await api.pipelines("orders")
    found = next((p for p in listed if p.get("label") == label), None)
    if found is None:
        stages = [{"label": stage, "displayOrder": i} for i, stage in enumerate(ORDER_STAGES)]
        try:
            status, created = await api.create_pipeline(
                {"label": label, "displayOrder": 99, "stages": stages}, object_type="orders"
            )
            found = created if status < 400 else None
        except (HubSpotError, HubSpotAccessError) as exc:
            log.warning("HubSpot refused to create the order pipeline %r (%s)", label, exc)
        if found is None:
            found = listed[0] if listed else None
    if found is None:
        raise AccountSetupError(f"the account has no order pipeline and HubSpot refused to create {label!r}")
    stage_ids = order_stage_ids(found)
    missing = [s for s in ORDER_STAGES if s not in stage_ids]
    if missing:
        raise AccountSetupError(
            f"the order pipeline {found.get('label')!r} (id {found.get('id')}) lacks the stages "
            f"{', '.join(repr(m) for m in missing)}: add them in {ORDER_PIPELINE_SETTINGS}, or set "
            "SHOPSYNC_ORDER_PIPELINE_LABEL to a pipeline that has them"
        )
    return str(found["id"]), stage_ids


def order_stage_ids(pipeline: Mapping[str, Any]) -> dict[str, str]:
    """The ids of the stages Orders go to in an order pipeline, found by label (ignoring case and
    surrounding spaces); a stage the pipeline lacks is absent."""
    loose = {
        str(s.get("label")).strip().casefold(): str(s["id"])
        for s in pipeline.get("stages") or []
        if isinstance(s, dict) and not s.get("archived") and s.get("id") is not None
    }
    return {stage: loose[stage.casefold()] for stage in ORDER_STAGES if stage.casefold() in loose}


async def association_type_ids(api: HubSpotApi) -> dict[str, int]:
    """X1: HubSpot's unlabelled (``HUBSPOT_DEFINED``, no label) type id of each pair the rules
    associate, read from the labels endpoint; a pair without one stops the set-up."""
    found: dict[str, int] = {}
    for from_type, to_type in COMMERCE_PAIRS:
        types = await api.association_types(from_type, to_type)
        default = next(
            (t for t in types if t.get("category") == "HUBSPOT_DEFINED" and not t.get("label")), None
        )
        if default is None or not isinstance(default.get("typeId"), int):
            raise AccountSetupError(
                f"HubSpot lists no default association type from {from_type} to {to_type}: the account "
                "may not have Orders and Carts (SHOPSYNC_COMMERCE_OBJECTS=deals needs neither)"
            )
        found[f"{from_type}|{to_type}"] = int(default["typeId"])
    return found


@dataclass(frozen=True)
class CommerceSetup:
    """X1's settings as the set-up needs them: which objects are written, the order pipeline."""

    objects: str = "deals"
    order_pipeline_label: str = "Order Pipeline"


DEALS_ONLY = CommerceSetup()


async def set_up_account(
    api: HubSpotApi,
    pipeline_label: str,
    pipeline_id: str = "",
    details: AccountDetails | None = None,
    commerce: CommerceSetup = DEALS_ONLY,
) -> AccountSchema:
    """The full set-up: properties, then the pipeline, then the account's time zone (``details``,
    when the caller read them already); ``AccountSetupError`` says what an operator has to change
    in HubSpot (or in the settings) before the writer can start. On an account that holds
    everything it reads and writes nothing: seven calls (five property lists, the pipelines, the
    details). With orders written (X1), also the order and cart properties, the order pipeline
    and the six association types: nine calls more. Without deals written, the deal pipeline is
    neither needed nor looked up."""
    writes = commerce.objects.split(",")
    await ensure_properties(api, property_types(commerce.objects))
    if "deals" in writes:
        schema = await ensure_pipeline(api, pipeline_label, pipeline_id)
    else:
        schema = AccountSchema(pipeline_id="", stage_ids={})
    if "orders" in writes:
        order_pipeline, order_stages = await ensure_order_pipeline(api, commerce.order_pipeline_label)
        schema = replace(
            schema, order_pipeline_id=order_pipeline, order_stage_ids=order_stages,
            association_types=await association_type_ids(api),
        )  # fmt: skip
    details = details if details is not None else await account_details(api)
    return replace(schema, time_zone=details.time_zone, utc_offset_ms=details.utc_offset_ms)
