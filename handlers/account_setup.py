"""What the writer sets up in a HubSpot account before its first write, idempotently.

Every custom property the processors write (the Shopify fields of SPEC C7, D6, P1, the unique
keys that make upserts possible, and the trigger properties HubSpot workflows watch), and the
ecommerce deal pipeline with the legacy integration's stages. Existing properties and an existing
pipeline with the same label are reused, so running it again changes nothing. Stage ids are
looked up by label, never hard-coded (ids made in HubSpot's UI are numeric).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from handlers.hubspot_client import HubSpotAccessError, HubSpotClient, HubSpotError
from schemas.commands import ObjectType
from streams.mapping import CONTACT_FIELDS, DEAL_FIELDS, PRODUCT_FIELDS, FieldMap, PropertyType
from streams.rules.journeys import STAGES

GROUP = {"contacts": "contactinformation", "deals": "dealinformation", "products": "productinformation",
         "line_items": "lineiteminformation"}  # fmt: skip

BUILT_IN: dict[ObjectType, set[str]] = {
    "contacts": {"email", "firstname", "lastname", "phone", "address", "city", "state", "zip", "country"},
    "deals": {"dealname", "amount", "dealstage", "pipeline", "closedate"},
    "products": {"name", "description", "price", "hs_sku", "hs_images"},
    "line_items": {"name", "quantity", "price", "hs_product_id", "hs_sku", "hs_total_discount"},
}
"""Properties every HubSpot account has; never created."""

STAGE_PROBABILITY = {"Checkout Pending": 0.1, "Checkout Abandoned": 0.1, "Checkout Completed": 0.9,
                     "Processed": 1.0, "Shipped": 1.0, "Cancelled": 0.0}  # fmt: skip


@dataclass(frozen=True)
class PropertyDef:
    name: str
    label: str
    type: PropertyType = "string"
    unique: bool = False

    def payload(self, object_type: ObjectType) -> dict[str, object]:
        hubspot_type, field_type = {
            "string": ("string", "text"),
            "number": ("number", "number"),
            "bool": ("bool", "booleancheckbox"),
            "datetime": ("datetime", "date"),
            "enumeration": ("enumeration", "select"),
        }[self.type]
        body: dict[str, object] = {
            "name": self.name, "label": self.label, "type": hubspot_type, "fieldType": field_type,
            "groupName": GROUP[object_type], "hasUniqueValue": self.unique,
        }  # fmt: skip
        if self.type == "bool":
            body["options"] = [
                {"label": "Yes", "value": "true", "displayOrder": 0},
                {"label": "No", "value": "false", "displayOrder": 1},
            ]
        return body


def _from_fields(fields: tuple[FieldMap, ...], object_type: ObjectType) -> list[PropertyDef]:
    return [
        PropertyDef(f.hubspot_property, f"Shopify {f.label}", f.type)
        for f in fields
        if f.hubspot_property not in BUILT_IN[object_type]
    ]


CUSTOM_PROPERTIES: dict[ObjectType, list[PropertyDef]] = {
    "contacts": [
        *_from_fields(CONTACT_FIELDS, "contacts"),
        PropertyDef("shopify_customer_id", "Shopify customer ID"),
        PropertyDef("shopify_source_drill_down_1", "Original source drill-down 1 (Shopify)"),
        PropertyDef("shopify_source_drill_down_2", "Original source drill-down 2 (Shopify)"),
        PropertyDef("shopify_first_purchase_at", "Shopify first purchase at", "datetime"),
        PropertyDef("shopify_last_purchase_at", "Shopify last purchase at", "datetime"),
        PropertyDef("shopify_reengagement_trigger_at", "Shopify re-engagement trigger", "datetime"),
    ],
    "deals": [
        *_from_fields(DEAL_FIELDS, "deals"),
        PropertyDef("shopify_deal_key", "Shopify purchase journey", unique=True),
        PropertyDef("shopify_abandoned_at", "Shopify checkout abandoned at", "datetime"),
        PropertyDef("shopify_abandoned_cart_trigger_at", "Shopify abandoned-cart trigger", "datetime"),
        PropertyDef("shopify_recovered_checkout", "Shopify recovered checkout", "bool"),
        PropertyDef("shopify_new_customer_order", "Shopify new customer's first order", "bool"),
    ],
    "products": [
        *_from_fields(PRODUCT_FIELDS, "products"),
        PropertyDef("shopify_product_key", "Shopify product or variant", unique=True),
        PropertyDef("shopify_product_id", "Shopify product ID"),
        PropertyDef("shopify_variant_id", "Shopify variant ID"),
        PropertyDef("shopify_parent_product_id", "Shopify parent product ID"),
    ],
    "line_items": [
        PropertyDef("shopify_line_item_key", "Shopify line", unique=True),
        PropertyDef("shopify_product_id", "Shopify product ID"),
        PropertyDef("shopify_variant_id", "Shopify variant ID"),
    ],
}


class AccountSetupError(RuntimeError):
    """The account cannot be used as it is (for example a pipeline with our label but other stages)."""


@dataclass(frozen=True)
class AccountSchema:
    """What the writer needs to know about the account: the pipeline's id and its stage ids."""

    pipeline_id: str
    stage_ids: dict[str, str]  # stage label -> stage id
    time_zone: str | None = None  # the account's zone: its midnight resets the daily limit
    utc_offset_ms: int | None = None


async def ensure_properties(client: HubSpotClient) -> int:
    """Create every custom property that does not exist yet; return how many were created."""
    created = 0
    for object_type, wanted in CUSTOM_PROPERTIES.items():
        _, body = await client.call("GET", f"/crm/v3/properties/{object_type}")
        existing = {p.get("name") for p in body.get("results", [])}
        for prop in wanted:
            if prop.name in existing:
                continue
            status, _ = await client.call(
                "POST", f"/crm/v3/properties/{object_type}", json=prop.payload(object_type)
            )
            created += status != 409  # 409: made meanwhile by another writer; that is fine
    return created


async def ensure_pipeline(client: HubSpotClient, label: str) -> AccountSchema:
    """The ecommerce pipeline with the legacy stages (D1): found by label, else created."""
    _, body = await client.call("GET", "/crm/v3/pipelines/deals")
    pipeline = next((p for p in body.get("results", []) if p.get("label") == label), None)
    if pipeline is None:
        stages = [
            {"label": stage, "displayOrder": i, "metadata": {"probability": str(STAGE_PROBABILITY[stage])}}
            for i, stage in enumerate(STAGES)
        ]
        _, pipeline = await client.call(
            "POST", "/crm/v3/pipelines/deals", json={"label": label, "displayOrder": 99, "stages": stages}
        )
    stage_ids = {s["label"]: str(s["id"]) for s in pipeline.get("stages", [])}
    missing = [s for s in STAGES if s not in stage_ids]
    if missing:
        raise AccountSetupError(
            f"the deal pipeline {label!r} exists but lacks the stages {missing}; add them in HubSpot "
            "or set SHOPSYNC_PIPELINE_LABEL to a new pipeline's label"
        )
    return AccountSchema(pipeline_id=str(pipeline["id"]), stage_ids=stage_ids)


async def account_time_zone(client: HubSpotClient) -> tuple[str | None, int | None]:
    """The account's time zone setting (``GET /account-info/v3/details``), or (None, None) when
    the token may not read it: the writer then probes for the daily reset instead of computing it."""
    try:
        status, body = await client.call("GET", "/account-info/v3/details")
    except (HubSpotError, HubSpotAccessError):  # a token without the scope still syncs
        return None, None
    if status != 200:
        return None, None
    zone, offset = body.get("timeZone"), body.get("utcOffsetMilliseconds")
    return (
        zone if isinstance(zone, str) and zone else None,
        offset if isinstance(offset, int) and not isinstance(offset, bool) else None,
    )


async def set_up_account(client: HubSpotClient, pipeline_label: str) -> AccountSchema:
    await ensure_properties(client)
    schema = await ensure_pipeline(client, pipeline_label)
    zone, offset = await account_time_zone(client)
    return replace(schema, time_zone=zone, utc_offset_ms=offset)
