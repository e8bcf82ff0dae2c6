"""Orders, carts and companies as HubSpot keeps them: their paths and type ids, properties (the
ones HubSpot sets refused), the order pipeline and its stages, and their association types
(sources in RULES.md)."""

from __future__ import annotations

from typing import Any

import httpx

from hubspot_sandbox.catalog import ORDER_PIPELINE_ID, ORDER_STAGES
from tests.sandbox.support import http_client, post, text_property

V4 = "/crm/v4/associations"
OPEN, PROCESSED = ORDER_STAGES[0][0], ORDER_STAGES[1][0]


async def one(client: httpx.AsyncClient, object_type: str, properties: dict[str, str]) -> str:
    made = await post(client, f"/crm/v3/objects/{object_type}", {"properties": properties}, 201)
    return str(made["id"])


async def test_orders_carts_and_companies_answer_by_every_name_hubspot_accepts(
    client: httpx.AsyncClient,
) -> None:
    order = await one(client, "order", {"hs_order_name": "#1001", "hs_currency_code": "USD"})
    for name in ("order", "orders", "0-123"):
        found = (await client.get(f"/crm/v3/objects/{name}/{order}")).json()
        assert found["id"] == order
        assert set(found["properties"]) == {"hs_createdate", "hs_lastmodifieddate", "hs_object_id"}
    cart = await one(client, "cart", {"hs_cart_name": "c", "hs_external_cart_id": "77"})
    assert (await client.get(f"/crm/v3/objects/0-142/{cart}")).status_code == 200
    company = await one(client, "company", {"name": "Acme", "domain": "acme.example"})
    shown = (await client.get(f"/crm/v3/objects/0-2/{company}")).json()["properties"]
    assert (shown["name"], shown["domain"]) == ("Acme", "acme.example") and "createdate" in shown
    assert (await client.get("/crm/v3/objects/tickets/1")).status_code == 400


async def test_order_and_cart_properties_hubspot_sets_are_refused(client: httpx.AsyncClient) -> None:
    written = {
        "hs_order_name": "#1002",
        "hs_source_store": "shop.example",
        "hs_external_order_id": "450789469",
        "hs_total_price": "12.50",
        "hs_subtotal_price": "10",
        "hs_tax": "1.5",
        "hs_shipping_cost": "1",
        "hs_order_discount": "0",
        "hs_fulfillment_status": "unfulfilled",
        "hs_payment_status": "paid",
        "hs_external_created_date": "2024-03-27T18:04:11Z",
        "hs_external_cancelled_date": "2024-03-28T09:00:00Z",
        "hs_cancellation_reason": "customer",
        "hs_shipping_address_city": "Portland",
    }
    made = await post(
        client, "/crm/v3/objects/order/batch/create", {"inputs": [{"properties": written}]}, 201
    )
    assert made["results"][0]["properties"]["hs_external_order_id"] == "450789469"
    for name in ("hs_homecurrency_amount", "hs_exchange_rate", "hs_createdate", "hs_object_source"):
        refused = await post(client, "/crm/v3/objects/orders", {"properties": {name: "1"}}, 400)
        assert refused["errors"][0]["code"] == "READ_ONLY_VALUE", name
    cart = {"hs_cart_discount": "12", "hs_tags": "frames, lenses", "hs_external_status": "pending"}
    await post(client, "/crm/v3/objects/carts", {"properties": cart}, 201)
    unknown = await post(client, "/crm/v3/objects/carts", {"properties": {"hs_order_name": "x"}}, 400)
    assert unknown["errors"][0]["code"] == "PROPERTY_DOESNT_EXIST"
    bad = await post(client, "/crm/v3/objects/orders", {"properties": {"hs_total_price": "lots"}}, 400)
    assert bad["errors"][0]["code"] == "INVALID_DECIMAL"
    calculated = await post(
        client, "/crm/v3/objects/companies", {"properties": {"num_associated_contacts": "2"}}, 400
    )
    assert calculated["errors"][0]["code"] == "READ_ONLY_VALUE"


async def test_orders_upsert_by_a_custom_unique_property_not_by_the_external_id(
    client: httpx.AsyncClient,
) -> None:
    definition = (await client.get("/crm/v3/properties/orders/hs_external_order_id")).json()
    assert definition["hasUniqueValue"] is False
    by_external = {"inputs": [{"id": "1", "idProperty": "hs_external_order_id", "properties": {}}]}
    await post(client, "/crm/v3/objects/orders/batch/upsert", by_external, 400)
    key = text_property("shopify_order_key", "orderinformation", hasUniqueValue=True)
    await post(client, "/crm/v3/properties/orders", key, 201)
    inputs = [{"id": "shop:1", "idProperty": "shopify_order_key", "properties": {"hs_order_name": "#1"}}]
    first = await post(client, "/crm/v3/objects/orders/batch/upsert", {"inputs": inputs}, 200)
    again = await post(client, "/crm/v3/objects/orders/batch/upsert", {"inputs": inputs}, 200)
    assert first["results"][0]["id"] == again["results"][0]["id"] and again["results"][0]["new"] is False
    read = {"idProperty": "shopify_order_key", "inputs": [{"id": "shop:1"}], "properties": ["hs_order_name"]}
    found = await post(client, "/crm/v3/objects/orders/batch/read", read, 200)
    assert found["results"][0]["properties"]["hs_order_name"] == "#1"
    order_id = first["results"][0]["id"]
    update = {"inputs": [{"id": order_id, "properties": {"hs_order_name": "#1 (edited)"}}]}
    await post(client, "/crm/v3/objects/orders/batch/update", update, 200)
    assert (
        await client.post("/crm/v3/objects/orders/batch/archive", json={"inputs": [{"id": order_id}]})
    ).status_code == 204
    clash = {
        "inputs": [
            {"properties": {"shopify_order_key": "shop:2"}},
            {"properties": {"shopify_order_key": "shop:2"}},
        ]
    }
    await post(client, "/crm/v3/objects/orders/batch/create", clash, 400)  # twice in one batch
    taken = {"inputs": [{"properties": {"shopify_order_key": "shop:1"}}]}
    await post(client, "/crm/v3/objects/orders/batch/create", taken, 201)  # the archived order freed it
    await post(client, "/crm/v3/objects/orders/batch/create", taken, 409)


async def test_the_order_pipeline_is_there_and_order_stages_are_checked(client: httpx.AsyncClient) -> None:
    [pipeline] = (await client.get("/crm/v3/pipelines/orders")).json()["results"]
    assert (pipeline["id"], pipeline["label"]) == (ORDER_PIPELINE_ID, "Order Pipeline")
    assert [s["label"] for s in pipeline["stages"]] == [
        "Open",
        "Processed",
        "Shipped",
        "Delivered",
        "Cancelled",
    ]
    deals = (await client.get("/crm/v3/pipelines/deals")).json()["results"]
    assert [p["id"] for p in deals] == ["default"]
    assert (await client.get(f"/crm/v3/pipelines/0-123/{ORDER_PIPELINE_ID}")).status_code == 200
    assert (await client.get(f"/crm/v3/pipelines/deals/{ORDER_PIPELINE_ID}")).status_code == 404
    assert (await client.get("/crm/v3/pipelines/carts")).status_code == 400

    staged = await one(client, "orders", {"hs_pipeline_stage": OPEN})
    shown = await client.get(f"/crm/v3/objects/orders/{staged}?properties=hs_pipeline,hs_pipeline_stage")
    assert shown.json()["properties"]["hs_pipeline"] == ORDER_PIPELINE_ID
    moved = {"properties": {"hs_pipeline": ORDER_PIPELINE_ID, "hs_pipeline_stage": PROCESSED}}
    assert (await client.patch(f"/crm/v3/objects/orders/{staged}", json=moved)).status_code == 200
    deal_stage = await post(
        client, "/crm/v3/objects/orders", {"properties": {"hs_pipeline_stage": "closedwon"}}, 400
    )
    assert deal_stage["errors"][0]["code"] == "INVALID_OPTION"
    assert deal_stage["errors"][0]["context"]["propertyName"] == ["hs_pipeline_stage"]
    deal_pipeline = await post(
        client, "/crm/v3/objects/orders", {"properties": {"hs_pipeline": "default"}}, 400
    )
    assert deal_pipeline["errors"][0]["context"]["propertyName"] == ["hs_pipeline"]
    await post(client, "/crm/v3/objects/deals", {"properties": {"dealstage": OPEN}}, 400)


async def test_order_pipelines_take_stages_without_metadata_on_paid_tiers(start_sandbox: Any) -> None:
    paid = await start_sandbox(tier="starter")
    async with httpx.AsyncClient(
        base_url=paid.url, headers={"Authorization": "Bearer pat-na1-test-token"}
    ) as c:
        body = {"label": "Wholesale", "stages": [{"label": "Placed"}, {"label": "Sent"}]}
        made = await post(c, "/crm/v3/pipelines/orders", body, 201)
        assert [s["label"] for s in made["stages"]] == ["Placed", "Sent"]
        await post(c, f"/crm/v3/pipelines/orders/{made['id']}/stages", {"label": "Returned"}, 201)
        await post(c, f"/crm/v3/pipelines/orders/{made['id']}/stages", {"label": "Sent"}, 400)
        stage = made["stages"][1]["id"]
        await one(c, "orders", {"hs_pipeline": made["id"], "hs_pipeline_stage": stage})
        await post(c, "/crm/v3/objects/orders", {"properties": {"hs_pipeline_stage": stage}}, 400)
        await post(c, "/crm/v3/pipelines/deals", body, 400)  # deal stages still need a probability


async def test_free_accounts_keep_the_one_order_pipeline(start_sandbox: Any) -> None:
    free = await start_sandbox(tier="free")
    async with http_client(free) as c:
        await post(c, "/crm/v3/pipelines/orders", {"label": "More", "stages": [{"label": "A"}]}, 400)


async def test_labels_list_hubspot_defined_types_of_the_new_pairs(client: httpx.AsyncClient) -> None:
    expected = {
        ("orders", "contacts"): 507,
        ("contacts", "orders"): 508,
        ("orders", "companies"): 509,
        ("companies", "orders"): 510,
        ("orders", "deals"): 512,
        ("orders", "line_items"): 513,
        ("line_items", "orders"): 514,
        ("orders", "carts"): 593,
        ("carts", "orders"): 592,
        ("carts", "contacts"): 586,
        ("contacts", "carts"): 587,
        ("carts", "line_items"): 590,
        ("line_items", "carts"): 591,
        ("companies", "contacts"): 280,
        ("companies", "deals"): 342,
    }
    for (from_type, to_type), type_id in expected.items():
        listed = (await client.get(f"{V4}/{from_type}/{to_type}/labels")).json()["results"]
        assert listed[0] == {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}
    primary = (await client.get(f"{V4}/contacts/companies/labels")).json()["results"]
    assert primary == [
        {"category": "HUBSPOT_DEFINED", "typeId": 279, "label": None},
        {"category": "HUBSPOT_DEFINED", "typeId": 1, "label": "Primary"},
    ]
    assert (await client.get(f"{V4}/carts/companies/labels")).status_code == 400
    assert (await client.get(f"{V4}/products/orders/labels")).status_code == 400


async def test_orders_link_to_their_contact_company_cart_and_line_items(client: httpx.AsyncClient) -> None:
    order, cart = await one(client, "orders", {}), await one(client, "carts", {})
    contact, company = (
        await one(client, "contacts", {"email": "a@example.com"}),
        await one(client, "companies", {}),
    )
    item, other = await one(client, "line_items", {"name": "Mug"}), await one(client, "line_items", {})

    def spec(type_id: int) -> list[dict[str, Any]]:
        return [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]

    for to_type, to_id, type_id in (
        ("contacts", contact, 507),
        ("companies", company, 509),
        ("carts", cart, 593),
    ):
        body = {"inputs": [{"from": {"id": order}, "to": {"id": to_id}, "types": spec(type_id)}]}
        await post(client, f"{V4}/orders/{to_type}/batch/create", body, 201)
    wrong = {"inputs": [{"from": {"id": order}, "to": {"id": contact}, "types": spec(3)}]}
    await post(client, f"{V4}/orders/contacts/batch/create", wrong, 400)
    on_order = {"inputs": [{"from": {"id": item}, "to": {"id": order}, "types": spec(514)}]}
    await post(client, f"{V4}/line_items/orders/batch/create", on_order, 201)
    on_cart = {"inputs": [{"from": {"id": item}, "to": {"id": cart}, "types": spec(591)}]}
    second = await post(client, f"{V4}/line_items/carts/batch/create", on_cart, 207)
    assert "one single parent" in second["errors"][0]["message"]
    cart_item = {"inputs": [{"from": {"id": cart}, "to": {"id": other}}]}
    await post(client, f"{V4}/carts/line_items/batch/associate/default", cart_item, 200)

    found = (await client.get(f"/crm/v4/objects/contacts/{contact}/associations/orders")).json()["results"]
    assert found == [
        {
            "toObjectId": int(order),
            "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 508, "label": None}],
        }
    ]
    primary = {"inputs": [{"from": {"id": contact}, "to": {"id": company}, "types": spec(1)}]}
    made = await post(client, f"{V4}/contacts/companies/batch/create", primary, 201)
    assert made["results"][0]["labels"] == ["Primary"]
    back = (await client.get(f"/crm/v4/objects/companies/{company}/associations/contacts")).json()["results"]
    assert {t["typeId"] for t in back[0]["associationTypes"]} == {2, 280}

    inline: dict[str, Any] = {
        "properties": {"hs_order_name": "#2"},
        "associations": [
            {"to": {"id": contact}, "types": spec(507)},
            {"to": {"id": other}, "types": spec(513)},
        ],
    }
    refused = await post(client, "/crm/v3/objects/orders", inline, 400)  # ``other`` is on the cart
    assert "one single parent" in refused["message"]
    inline["associations"] = inline["associations"][:1]
    await post(client, "/crm/v3/objects/orders", inline, 201)

    dump = (await client.get("/_sandbox/dump")).json()
    assert {a["type_id"] for a in dump["associations"] if a["from_type"] == "orders"} >= {507, 509, 593, 513}
    assert [o["properties"].get("hs_order_name") for o in dump["orders"]] == [None, "#2"]
    assert dump["orders"][0]["stage_label"] is None and len(dump["carts"]) == 1
