"""Property values and definitions HubSpot refuses: read-only and calculated properties on every
write, negative line-item prices, unknown groups, type/fieldType pairs HubSpot does not allow, and
options without what HubSpot's schema requires (sources in hubspot_sandbox/RULES.md)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.sandbox.support import post, text_property

CALCULATED = '"{}" is a calculated property; its value cannot be set.'
WRITES = ("batch/create", "batch/update", "batch/upsert", "create_one", "update_one")


async def make_product(client: httpx.AsyncClient) -> str:
    product = {"inputs": [{"properties": {"name": "Mug", "price": "10", "hs_sku": "MUG-1"}}]}
    return str(
        (await post(client, "/crm/v3/objects/products/batch/create", product, 201))["results"][0]["id"]
    )


async def unique_line_key(client: httpx.AsyncClient) -> None:
    body = text_property("line_key", "lineiteminformation", hasUniqueValue=True)
    await post(client, "/crm/v3/properties/line_items", body, 201)


async def write(
    client: httpx.AsyncClient, how: str, object_id: str, properties: dict[str, Any]
) -> httpx.Response:
    """Write ``properties`` to line items in one of HubSpot's five ways (update ones to ``object_id``)."""
    base = "/crm/v3/objects/line_items"
    if how == "create_one":
        return await client.post(base, json={"properties": properties})
    if how == "update_one":
        return await client.patch(f"{base}/{object_id}", json={"properties": properties})
    item: dict[str, Any] = {"properties": properties}
    if how == "batch/update":
        item["id"] = object_id
    if how == "batch/upsert":
        item.update(id="line-1", idProperty="line_key")
    return await client.post(f"{base}/{how}", json={"inputs": [item]})


@pytest.mark.parametrize("how", WRITES)
@pytest.mark.parametrize(
    "name",
    [
        "hs_total_discount",
        "amount",
        "hs_pre_discount_amount",
        "hs_object_id",
        "createdate",
        "hs_lastmodifieddate",
    ],
)
async def test_calculated_and_read_only_properties_are_refused_on_every_write(
    client: httpx.AsyncClient, how: str, name: str
) -> None:
    await unique_line_key(client)
    product = await make_product(client)
    made = await post(
        client,
        "/crm/v3/objects/line_items/batch/upsert",
        {"inputs": [{"id": "line-1", "idProperty": "line_key", "properties": {"hs_product_id": product}}]},
        200,
    )
    refused = await write(client, how, made["results"][0]["id"], {"quantity": "1", name: "5"})
    assert refused.status_code == 400, refused.text
    body = refused.json()
    assert body["category"] == "VALIDATION_ERROR"
    assert body["errors"] == [
        {"message": CALCULATED.format(name), "code": "READ_ONLY_VALUE", "context": {"propertyName": [name]}}
    ]


async def test_line_item_discount_and_amounts_are_calculated_by_hubspot(client: httpx.AsyncClient) -> None:
    product = await make_product(client)
    item = {"properties": {"hs_product_id": product, "quantity": "3", "discount": "1.5"}}
    made = (await post(client, "/crm/v3/objects/line_items/batch/create", {"inputs": [item]}, 201))[
        "results"
    ][0]
    wanted = "?properties=price,hs_pre_discount_amount,hs_total_discount,amount"
    read = (await client.get(f"/crm/v3/objects/line_items/{made['id']}{wanted}")).json()["properties"]
    assert (read["price"], read["hs_pre_discount_amount"], read["hs_total_discount"], read["amount"]) == (
        "10",
        "30.00",
        "4.50",
        "25.50",
    )
    change = {"inputs": [{"id": made["id"], "properties": {"discount": "", "hs_discount_percentage": "10"}}]}
    await post(client, "/crm/v3/objects/line_items/batch/update", change, 200)
    read = (await client.get(f"/crm/v3/objects/line_items/{made['id']}{wanted}")).json()["properties"]
    assert (read["hs_total_discount"], read["amount"]) == ("3.00", "27.00")
    defs = {p["name"]: p for p in (await client.get("/crm/v3/properties/line_items")).json()["results"]}
    assert defs["hs_total_discount"]["calculated"] is True
    assert defs["hs_total_discount"]["modificationMetadata"]["readOnlyValue"] is True
    assert defs["discount"]["modificationMetadata"]["readOnlyValue"] is False


async def test_a_negative_line_item_price_is_refused(client: httpx.AsyncClient) -> None:
    body = await post(
        client,
        "/crm/v3/objects/line_items/batch/create",
        {"inputs": [{"properties": {"price": "-1.00"}}]},
        400,
    )
    assert body["category"] == "VALIDATION_ERROR"
    assert body["errors"][0]["context"] == {"propertyName": ["price"]}
    await post(
        client, "/crm/v3/objects/line_items/batch/create", {"inputs": [{"properties": {"price": "0"}}]}, 201
    )


def definition(**changes: Any) -> dict[str, Any]:
    return text_property("shopify_flag", "dealinformation", **changes)


YES_NO = [
    {"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
    {"label": "No", "value": "false", "displayOrder": 1, "hidden": False},
]


async def test_a_property_in_an_unknown_group_is_refused_until_the_group_exists(
    client: httpx.AsyncClient,
) -> None:
    body = await post(client, "/crm/v3/properties/deals", definition(groupName="shopify"), 400)
    assert body["category"] == "VALIDATION_ERROR" and "shopify" in body["message"]
    await post(client, "/crm/v3/properties/deals/groups", {"name": "shopify", "label": "Shopify"}, 201)
    groups = (await client.get("/crm/v3/properties/deals/groups")).json()["results"]
    assert [g["name"] for g in groups] == ["dealinformation", "shopify"]
    created = await post(client, "/crm/v3/properties/deals", definition(groupName="shopify"), 201)
    assert created["groupName"] == "shopify"
    again = await post(
        client, "/crm/v3/properties/deals/groups", {"name": "shopify", "label": "Shopify"}, 409
    )
    assert again["category"] == "OBJECT_ALREADY_EXISTS"


@pytest.mark.parametrize(
    ("type_", "field_type"),
    [
        ("bool", "text"),
        ("bool", "select"),
        ("datetime", "number"),
        ("date", "text"),
        ("number", "text"),
        ("string", "number"),
        ("string", "booleancheckbox"),
        ("enumeration", "text"),
    ],
)
async def test_type_and_field_type_pairs_outside_hubspots_table_are_refused(
    client: httpx.AsyncClient, type_: str, field_type: str
) -> None:
    options = YES_NO if type_ in ("bool", "enumeration") else None
    body = await post(
        client, "/crm/v3/properties/deals", definition(type=type_, fieldType=field_type, options=options), 400
    )
    assert body["category"] == "VALIDATION_ERROR" and field_type in body["message"]


@pytest.mark.parametrize(
    ("type_", "field_type"),
    [
        ("bool", "booleancheckbox"),
        ("enumeration", "select"),
        ("enumeration", "booleancheckbox"),
        ("datetime", "date"),
        ("date", "date"),
        ("string", "textarea"),
        ("number", "number"),
    ],
)
async def test_pairs_in_hubspots_table_are_created(
    client: httpx.AsyncClient, type_: str, field_type: str
) -> None:
    options = YES_NO if type_ in ("bool", "enumeration") else None
    await post(
        client, "/crm/v3/properties/deals", definition(type=type_, fieldType=field_type, options=options), 201
    )


@pytest.mark.parametrize("missing", ["hidden", "label", "value"])
async def test_options_need_label_value_and_hidden(client: httpx.AsyncClient, missing: str) -> None:
    options = [{k: v for k, v in option.items() if k != missing} for option in YES_NO]
    body = await post(
        client,
        "/crm/v3/properties/deals",
        definition(type="bool", fieldType="booleancheckbox", options=options),
        400,
    )
    assert body["category"] == "VALIDATION_ERROR" and f"options[0].{missing}" in body["message"]


async def test_an_enumeration_needs_options_and_a_string_takes_none(client: httpx.AsyncClient) -> None:
    await post(client, "/crm/v3/properties/deals", definition(type="enumeration", fieldType="select"), 400)
    await post(client, "/crm/v3/properties/deals", definition(options=YES_NO), 400)
