"""The HubSpot sandbox over real HTTP: HubSpot's shapes and semantics, limits, webhooks, faults
and persistence, as a writer will meet them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from pydantic import ValidationError

from hubspot_sandbox import Sandbox, SandboxConfig, running_sandbox, sign, verify
from tests.sandbox.conftest import StartSandbox
from tests.sandbox.support import SECRET, TOKEN, http_client, post

RATE_HEADERS = (
    "X-HubSpot-RateLimit-Max",
    "X-HubSpot-RateLimit-Remaining",
    "X-HubSpot-RateLimit-Interval-Milliseconds",
    "X-HubSpot-RateLimit-Daily",
    "X-HubSpot-RateLimit-Daily-Remaining",
)


async def upsert(
    client: httpx.AsyncClient, object_type: str, id_property: str, items: dict[str, dict[str, Any]]
) -> Any:
    inputs = [{"id": key, "idProperty": id_property, "properties": props} for key, props in items.items()]
    return await post(client, f"/crm/v3/objects/{object_type}/batch/upsert", {"inputs": inputs}, 200)


async def create_unique_property(client: httpx.AsyncClient, object_type: str, name: str) -> Any:
    """In the integration's own group, made first as HubSpot requires (409 when it exists)."""
    group = {"name": "shopify", "label": "Shopify"}
    groups = f"/crm/v3/properties/{object_type}/groups"
    assert (await client.post(groups, json=group)).status_code in (201, 409)
    body = {
        "name": name,
        "label": name,
        "type": "string",
        "fieldType": "text",
        "groupName": "shopify",
        "hasUniqueValue": True,
    }
    return await post(client, f"/crm/v3/properties/{object_type}", body, 201)


async def create_pipeline(client: httpx.AsyncClient, label: str = "Ecommerce Pipeline") -> Any:
    stages = [
        "Checkout Pending",
        "Checkout Abandoned",
        "Checkout Completed",
        "Processed",
        "Shipped",
        "Cancelled",
    ]
    body = {
        "label": label,
        "displayOrder": 1,
        "stages": [
            {"label": s, "displayOrder": i, "metadata": {"probability": "1.0" if s == "Shipped" else "0.5"}}
            for i, s in enumerate(stages)
        ],
    }
    return await post(client, "/crm/v3/pipelines/deals", body, 201)


async def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_crm_calls_without_the_bearer_token_get_401_with_rate_limit_headers(sandbox: Sandbox) -> None:
    async with httpx.AsyncClient(base_url=sandbox.url) as anonymous:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            response = await anonymous.get("/crm/v3/objects/contacts/1", headers=headers)
            assert response.status_code == 401
            body = response.json()
            assert body["category"] == "INVALID_AUTHENTICATION"
            assert body["message"].startswith("Authentication credentials not found")
            assert body["correlationId"]
            assert all(h in response.headers for h in RATE_HEADERS)
        assert (await anonymous.get("/_sandbox/stats")).status_code == 200


async def test_contact_upsert_by_email_creates_then_updates_case_insensitively(
    client: httpx.AsyncClient,
) -> None:
    first = await upsert(client, "contacts", "email", {"Ada@Example.com": {"firstname": "Ada"}})
    assert first["status"] == "COMPLETE" and first["startedAt"] and first["completedAt"]
    [created] = first["results"]
    assert created["new"] is True and created["id"].isdigit() and created["archived"] is False
    assert created["properties"]["email"] == "ada@example.com"
    assert created["properties"]["firstname"] == "Ada"
    assert created["createdAt"] and created["updatedAt"]

    second = await upsert(
        client, "contacts", "email", {"ADA@example.COM": {"lastname": "Lovelace", "firstname": ""}}
    )
    [updated] = second["results"]
    assert updated["new"] is False and updated["id"] == created["id"]

    read = await client.get(
        f"/crm/v3/objects/contacts/{created['id']}", params={"properties": "firstname,lastname"}
    )
    assert read.status_code == 200
    assert read.json()["properties"]["lastname"] == "Lovelace"
    assert read.json()["properties"]["firstname"] is None  # "" cleared it
    by_email = await client.get("/crm/v3/objects/contacts/ada@EXAMPLE.com", params={"idProperty": "email"})
    assert by_email.json()["id"] == created["id"]


async def test_deal_upsert_by_a_unique_property_created_first(client: httpx.AsyncClient) -> None:
    definition = await create_unique_property(client, "deals", "shopify_deal_key")
    assert definition["name"] == "shopify_deal_key" and definition["hasUniqueValue"] is True
    listed = (await client.get("/crm/v3/properties/deals")).json()["results"]
    assert {"dealname", "dealstage", "pipeline", "amount", "shopify_deal_key"} <= {p["name"] for p in listed}
    again = await client.post("/crm/v3/properties/deals", json={**definition, "hasUniqueValue": True})
    assert again.status_code == 409
    assert (await client.get("/crm/v3/properties/deals/shopify_deal_key")).json()["hasUniqueValue"] is True

    first = await upsert(
        client, "deals", "shopify_deal_key", {"cart:abc": {"dealname": "Cart abc", "amount": "10.50"}}
    )
    second = await upsert(
        client, "deals", "shopify_deal_key", {"cart:abc": {"amount": 12}, "order:1": {"dealname": "Order 1"}}
    )
    assert first["results"][0]["new"] is True
    flags = {r["properties"]["shopify_deal_key"]: (r["new"], r["id"]) for r in second["results"]}
    assert flags["cart:abc"] == (False, first["results"][0]["id"])
    assert flags["order:1"][0] is True
    assert second["results"][0]["properties"]["amount"] == "12"  # stored as a string

    not_unique = await client.post(
        "/crm/v3/objects/deals/batch/upsert",
        json={"inputs": [{"id": "x", "idProperty": "dealname", "properties": {}}]},
    )
    assert not_unique.status_code == 400


async def test_more_than_100_inputs_is_a_validation_error(client: httpx.AsyncClient) -> None:
    inputs = [{"properties": {"email": f"c{i}@example.com"}} for i in range(101)]
    body = await post(client, "/crm/v3/objects/contacts/batch/create", {"inputs": inputs}, 400)
    assert body["category"] == "VALIDATION_ERROR"
    await post(client, "/crm/v3/objects/contacts/batch/create", {"inputs": inputs[:100]}, 201)


async def test_writing_an_unknown_property_is_400_property_doesnt_exist(client: httpx.AsyncClient) -> None:
    body = await post(
        client,
        "/crm/v3/objects/contacts/batch/upsert",
        {"inputs": [{"id": "a@example.com", "idProperty": "email", "properties": {"shopify_nope": "1"}}]},
        400,
    )
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR"
    assert body["message"].startswith("Property values were not valid")
    [error] = body["errors"]
    assert error["code"] == "PROPERTY_DOESNT_EXIST"
    assert error["message"] == 'Property "shopify_nope" does not exist'
    assert error["context"] == {"propertyName": ["shopify_nope"]}
    # Nothing of the rejected batch was written.
    assert (await client.get("/_sandbox/dump")).json()["contacts"] == []


async def test_creating_a_duplicate_unique_value_is_409_naming_the_existing_id(
    client: httpx.AsyncClient,
) -> None:
    created = await post(
        client,
        "/crm/v3/objects/contacts/batch/create",
        {"inputs": [{"properties": {"email": "x@example.com"}}]},
        201,
    )
    existing = created["results"][0]["id"]
    body = await post(
        client,
        "/crm/v3/objects/contacts/batch/create",
        {"inputs": [{"properties": {"email": "X@Example.com"}}]},
        409,
    )
    assert body["category"] == "CONFLICT" and f"Existing ID: {existing}" in body["message"]

    await create_unique_property(client, "products", "shopify_product_key")
    product = {"inputs": [{"properties": {"name": "Mug", "shopify_product_key": "product:1"}}]}
    first = await post(client, "/crm/v3/objects/products/batch/create", product, 201)
    clash = await post(client, "/crm/v3/objects/products/batch/create", product, 409)
    assert f"Existing ID: {first['results'][0]['id']}" in clash["message"]


async def test_batches_with_some_missing_ids_answer_207_with_the_good_results(
    client: httpx.AsyncClient,
) -> None:
    created = await post(
        client,
        "/crm/v3/objects/contacts/batch/create",
        {"inputs": [{"properties": {"email": "a@example.com"}}, {"properties": {"email": "b@example.com"}}]},
        201,
    )
    a, b = (r["id"] for r in created["results"])
    update = {
        "inputs": [
            {"id": a, "properties": {"city": "Paris"}},
            {"id": "999999", "properties": {"city": "Rome"}},
        ]
    }
    body = await post(client, "/crm/v3/objects/contacts/batch/update", update, 207)
    assert body["status"] == "COMPLETE" and body["numErrors"] == 1
    assert [r["properties"]["city"] for r in body["results"]] == ["Paris"]
    [error] = body["errors"]
    assert error["status"] == "error" and error["category"] == "OBJECT_NOT_FOUND"
    assert error["context"] == {"ids": ["999999"]}

    read = {"inputs": [{"id": a}, {"id": "424242"}, {"id": "434343"}], "properties": ["city"]}
    body = await post(client, "/crm/v3/objects/contacts/batch/read", read, 207)
    assert [r["id"] for r in body["results"]] == [a]
    assert body["results"][0]["properties"]["city"] == "Paris"
    assert body["errors"][0]["context"]["ids"] == ["424242", "434343"]

    by_email = {"inputs": [{"id": "B@EXAMPLE.COM"}, {"id": "c@example.com"}], "idProperty": "email"}
    body = await post(client, "/crm/v3/objects/contacts/batch/read", by_email, 207)
    assert [r["id"] for r in body["results"]] == [b] and body["errors"][0]["context"]["ids"] == [
        "c@example.com"
    ]

    # HubSpot answers 204 to an archive whatever its ids name (a missing one too)
    await post(client, "/crm/v3/objects/contacts/batch/archive", {"inputs": [{"id": b}, {"id": "5"}]}, 204)
    await post(client, "/crm/v3/objects/contacts/batch/archive", {"inputs": [{"id": a}, {"id": b}]}, 204)
    assert (await client.get("/_sandbox/dump")).json()["archived"]["contacts"] == 2


async def test_pipelines_are_created_with_numeric_ids_and_deal_stages_are_checked(
    client: httpx.AsyncClient,
) -> None:
    pipelines = (await client.get("/crm/v3/pipelines/deals")).json()["results"]
    assert [(p["id"], p["label"]) for p in pipelines] == [("default", "Sales Pipeline")]

    created = await create_pipeline(client)
    assert created["id"].isdigit() and created["label"] == "Ecommerce Pipeline"
    stages = {s["label"]: s for s in created["stages"]}
    assert all(s["id"].isdigit() for s in stages.values())
    assert stages["Shipped"]["metadata"]["probability"] == "1.0"
    fetched = (await client.get(f"/crm/v3/pipelines/deals/{created['id']}")).json()
    assert fetched == created
    assert len((await client.get("/crm/v3/pipelines/deals")).json()["results"]) == 2
    assert (await client.get("/crm/v3/pipelines/deals/123")).status_code == 404

    pending = stages["Checkout Pending"]["id"]
    ok = {"inputs": [{"properties": {"dealname": "d", "pipeline": created["id"], "dealstage": pending}}]}
    deal = (await post(client, "/crm/v3/objects/deals/batch/create", ok, 201))["results"][0]
    assert deal["properties"]["dealstage"] == pending

    for props in (
        {"pipeline": created["id"], "dealstage": "appointmentscheduled"},  # a stage of another pipeline
        {"pipeline": created["id"], "dealstage": "Checkout Pending"},  # a label, not an id
        {"pipeline": "424242", "dealstage": pending},
    ):
        body = await post(
            client, "/crm/v3/objects/deals/batch/create", {"inputs": [{"properties": props}]}, 400
        )
        assert body["category"] == "VALIDATION_ERROR"
    moved = {"inputs": [{"id": deal["id"], "properties": {"pipeline": "default"}}]}
    await post(client, "/crm/v3/objects/deals/batch/update", moved, 400)  # its stage is not in "default"
    only_stage = {"inputs": [{"properties": {"dealname": "e", "dealstage": "closedwon"}}]}
    made = await post(client, "/crm/v3/objects/deals/batch/create", only_stage, 201)
    assert made["results"][0]["properties"]["pipeline"] == "default"


async def test_line_items_need_an_existing_product_and_take_its_details(client: httpx.AsyncClient) -> None:
    product = {"inputs": [{"properties": {"name": "Mug", "price": "9.99", "hs_sku": "MUG-1"}}]}
    product_id = (await post(client, "/crm/v3/objects/products/batch/create", product, 201))["results"][0][
        "id"
    ]
    item = {"inputs": [{"properties": {"hs_product_id": product_id, "quantity": "2"}}]}
    created = (await post(client, "/crm/v3/objects/line_items/batch/create", item, 201))["results"][0]
    assert created["properties"]["name"] == "Mug" and created["properties"]["price"] == "9.99"
    missing = {"inputs": [{"properties": {"hs_product_id": "987654", "quantity": "1"}}]}
    body = await post(client, "/crm/v3/objects/line_items/batch/create", missing, 400)
    assert body["errors"][0]["context"] == {"propertyName": ["hs_product_id"]}
    bad_number = {"inputs": [{"properties": {"hs_product_id": product_id, "quantity": "two"}}]}
    await post(client, "/crm/v3/objects/line_items/batch/create", bad_number, 400)


async def test_associations_are_created_read_archived_and_removed_with_their_record(
    client: httpx.AsyncClient,
) -> None:
    contact = (await upsert(client, "contacts", "email", {"a@example.com": {}}))["results"][0]["id"]
    deal = (await post(client, "/crm/v3/objects/deals/batch/create", {"inputs": [{"properties": {}}]}, 201))[
        "results"
    ][0]["id"]
    items = await post(
        client, "/crm/v3/objects/line_items/batch/create", {"inputs": [{"properties": {}}] * 2}, 201
    )
    item_ids = [r["id"] for r in items["results"]]

    def link(to_id: str, type_id: int) -> dict[str, Any]:
        spec = {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}
        return {"from": {"id": deal}, "to": {"id": to_id}, "types": [spec]}

    body = await post(
        client, "/crm/v4/associations/deals/contacts/batch/create", {"inputs": [link(contact, 3)]}, 201
    )
    assert body["status"] == "COMPLETE"
    assert body["results"][0]["fromObjectTypeId"] == "0-3" and body["results"][0]["toObjectTypeId"] == "0-1"
    body = await post(
        client,
        "/crm/v4/associations/0-3/line_items/batch/create",
        {"inputs": [link(i, 19) for i in item_ids]},
        201,
    )
    assert len(body["results"]) == 2
    await post(
        client, "/crm/v4/associations/deals/contacts/batch/create", {"inputs": [link(contact, 19)]}, 400
    )
    partial = {"inputs": [link(contact, 3), link("777777", 3)]}
    body = await post(client, "/crm/v4/associations/deals/contacts/batch/create", partial, 207)
    assert body["errors"][0]["context"]["ids"] == ["777777"]

    from_contact = (await client.get(f"/crm/v4/objects/contacts/{contact}/associations/deals")).json()[
        "results"
    ]
    assert from_contact == [
        {
            "toObjectId": int(deal),
            "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 4, "label": None}],
        }
    ]
    from_deal = (await client.get(f"/crm/v4/objects/deals/{deal}/associations/line_items")).json()["results"]
    assert sorted(r["toObjectId"] for r in from_deal) == sorted(int(i) for i in item_ids)
    assert from_deal[0]["associationTypes"][0]["typeId"] == 19

    to_deal = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 20}]
    inline = {"properties": {}, "associations": [{"to": {"id": deal}, "types": to_deal}]}
    third = await post(client, "/crm/v3/objects/line_items/batch/create", {"inputs": [inline]}, 201)
    from_deal = (await client.get(f"/crm/v4/objects/deals/{deal}/associations/line_items")).json()["results"]
    assert int(third["results"][0]["id"]) in {r["toObjectId"] for r in from_deal}
    await post(client, "/crm/v3/objects/line_items/batch/archive", {"inputs": [third["results"][0]]}, 204)

    unlink = {"inputs": [{"from": {"id": deal}, "to": [{"id": item_ids[0]}]}]}
    await post(client, "/crm/v4/associations/deals/line_items/batch/archive", unlink, 204)
    from_item = await client.get(f"/crm/v4/objects/line_items/{item_ids[0]}/associations/deals")
    assert from_item.json()["results"] == []

    await post(client, "/crm/v3/objects/contacts/batch/archive", {"inputs": [{"id": contact}]}, 204)
    assert (await client.get(f"/crm/v4/objects/deals/{deal}/associations/contacts")).json()["results"] == []
    rows = (await client.get("/_sandbox/dump")).json()["associations"]
    assert {(r["from_type"], r["to_type"], r["type_id"]) for r in rows} == {
        ("deals", "line_items", 19),
        ("line_items", "deals", 20),
    }


async def test_search_filters_by_eq_and_pages(client: httpx.AsyncClient) -> None:
    people = {f"p{i}@example.com": {"city": "Paris" if i % 2 else "Rome"} for i in range(7)}
    await upsert(client, "contacts", "email", people)
    query = {
        "filterGroups": [{"filters": [{"propertyName": "city", "operator": "EQ", "value": "paris"}]}],
        "properties": ["email", "city"],
        "limit": 2,
    }
    first = await post(client, "/crm/v3/objects/contacts/search", query, 200)
    assert first["total"] == 3 and len(first["results"]) == 2
    second = await post(
        client, "/crm/v3/objects/contacts/search", {**query, "after": first["paging"]["next"]["after"]}, 200
    )
    assert "paging" not in second
    emails = [r["properties"]["email"] for r in first["results"] + second["results"]]
    assert emails == ["p1@example.com", "p3@example.com", "p5@example.com"]
    by_email = {
        "filterGroups": [
            {"filters": [{"propertyName": "email", "operator": "EQ", "value": "P4@EXAMPLE.COM"}]}
        ]
    }
    assert (await post(client, "/crm/v3/objects/contacts/search", by_email, 200))["total"] == 1
    unknown = {"filterGroups": [{"filters": [{"propertyName": "nope", "operator": "EQ", "value": "x"}]}]}
    await post(client, "/crm/v3/objects/contacts/search", unknown, 400)


async def test_ten_second_limit_answers_429_with_retry_after(start_sandbox: StartSandbox) -> None:
    sandbox = await start_sandbox(rate_limit_per_10s=3)
    async with http_client(sandbox) as client:
        remaining = []
        for _ in range(3):
            response = await client.get("/crm/v3/pipelines/deals")
            assert response.status_code == 200
            assert response.headers["X-HubSpot-RateLimit-Max"] == "3"
            assert response.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
            remaining.append(response.headers["X-HubSpot-RateLimit-Remaining"])
        assert remaining == ["2", "1", "0"]
        refused = await client.get("/crm/v3/pipelines/deals")
        assert refused.status_code == 429
        body = refused.json()
        assert body["errorType"] == "RATE_LIMIT" and body["policyName"] == "TEN_SECONDLY_ROLLING"
        assert body["message"] == "You have reached your ten_secondly_rolling limit."
        assert body["status"] == "error" and body["correlationId"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 10
        assert all(h in refused.headers for h in RATE_HEADERS)
        stats = (await client.get("/_sandbox/stats")).json()
        assert stats["rate_limited"] == 1 and stats["requests"]["GET /crm/v3/pipelines/{object_type}"] == 4

        # A "429 storm" switched on and off at runtime.
        await post(client, "/_sandbox/faults", {"rate_limit_per_10s": 1000}, 200)
        assert (await client.get("/crm/v3/pipelines/deals")).status_code == 200
        await post(client, "/_sandbox/faults", {"rate_limit_per_10s": 0}, 200)
        assert (await client.get("/crm/v3/pipelines/deals")).status_code == 429


async def test_daily_limit_answers_429_daily(start_sandbox: StartSandbox) -> None:
    sandbox = await start_sandbox(rate_limit_daily=2)
    async with http_client(sandbox) as client:
        first = await client.get("/crm/v3/pipelines/deals")
        assert first.headers["X-HubSpot-RateLimit-Daily"] == "2"
        assert first.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "1"
        assert (await client.get("/crm/v3/pipelines/deals")).status_code == 200
        refused = await client.get("/crm/v3/pipelines/deals")
        assert refused.status_code == 429
        assert refused.json()["policyName"] == "DAILY"
        assert refused.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"


async def test_a_restart_on_the_same_database_keeps_the_account(tmp_path: Path) -> None:
    config = SandboxConfig(db_path=tmp_path / "kept.db", token=TOKEN)
    async with running_sandbox(config) as first, http_client(first) as client:
        await create_unique_property(client, "deals", "shopify_deal_key")
        pipeline = await create_pipeline(client)
        contact = (await upsert(client, "contacts", "email", {"kept@example.com": {"firstname": "K"}}))[
            "results"
        ][0]
        before = (await client.get("/_sandbox/dump")).json()
    async with running_sandbox(config) as second, http_client(second) as client:
        assert (await client.get("/_sandbox/dump")).json() == before
        again = await upsert(client, "contacts", "email", {"KEPT@example.com": {}})
        assert again["results"][0] == {**again["results"][0], "id": contact["id"], "new": False}
        assert (await client.get(f"/crm/v3/pipelines/deals/{pipeline['id']}")).json() == pipeline
        deal = await upsert(client, "deals", "shopify_deal_key", {"order:1": {}})
        assert int(deal["results"][0]["id"]) > int(contact["id"])  # ids are never reused


class Receiver:
    """A tiny webhook endpoint that records what it got and fails the first ``fail_first`` calls."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.calls: list[tuple[str, dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append((str(request.url), dict(request.headers), await request.read()))
        return web.Response(status=500 if len(self.calls) <= self.fail_first else 204)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    hooks = Receiver(fail_first=1)
    app = web.Application()
    app.router.add_post("/hooks/hubspot", hooks.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield hooks, f"http://{host}:{port}/hooks/hubspot"
    finally:
        await runner.cleanup()


async def test_archiving_a_contact_sends_a_signed_deletion_webhook_and_keeps_it_readable(
    start_sandbox: StartSandbox, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    sandbox = await start_sandbox(
        webhook_url=url, webhook_secret=SECRET, webhook_backoff_s=0.02, portal_id=777
    )
    async with http_client(sandbox) as client:
        contact = (await upsert(client, "contacts", "email", {"Gone@Example.com": {}}))["results"][0]["id"]
        await post(client, "/crm/v3/objects/contacts/batch/archive", {"inputs": [{"id": contact}]}, 204)
        await eventually(lambda: len(hooks.calls) == 2)  # the first delivery failed and was retried

        for attempt, (called_url, headers, raw) in enumerate(hooks.calls):
            assert called_url == url and headers["Content-Type"] == "application/json"
            timestamp, signature = headers["X-HubSpot-Request-Timestamp"], headers["X-HubSpot-Signature-v3"]
            assert signature == sign(SECRET, "POST", called_url, raw, timestamp)
            assert verify(SECRET, "POST", called_url, raw, timestamp, signature)
            assert not verify("another-secret", "POST", called_url, raw, timestamp, signature)
            events = httpx.Response(200, content=raw).json()
            [event] = events
            assert event["subscriptionType"] == "contact.deletion" and event["changeFlag"] == "DELETED"
            assert event["objectId"] == int(contact) and event["portalId"] == 777
            assert event["attemptNumber"] == attempt and event["changeSource"] == "CRM"
            assert all(
                isinstance(event[k], int) for k in ("eventId", "subscriptionId", "appId", "occurredAt")
            )

        # The receiver learns the deleted contact's email from the archived record.
        live = await client.get(f"/crm/v3/objects/contacts/{contact}")
        assert live.status_code == 404 and live.json()["category"] == "OBJECT_NOT_FOUND"
        archived = await client.get(
            f"/crm/v3/objects/contacts/{contact}", params={"archived": "true", "properties": "email"}
        )
        assert archived.status_code == 200
        assert (
            archived.json()["archived"] is True
            and archived.json()["properties"]["email"] == "gone@example.com"
        )

        # Archiving frees the email: an upsert makes a new contact; DELETE sends another webhook.
        reborn = (await upsert(client, "contacts", "email", {"gone@example.com": {}}))["results"][0]
        assert reborn["new"] is True and reborn["id"] != contact
        assert (await client.delete(f"/crm/v3/objects/contacts/{reborn['id']}")).status_code == 204
        await eventually(lambda: len(hooks.calls) == 3)
        stats = (await client.get("/_sandbox/stats")).json()["webhooks"]
        assert stats == {"attempts": 3, "delivered": 2, "failed": 0}


async def test_gdpr_delete_is_permanent_and_notifies(
    start_sandbox: StartSandbox, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    hooks.fail_first = 0
    sandbox = await start_sandbox(webhook_url=url, webhook_secret=SECRET)
    async with http_client(sandbox) as client:
        made = await upsert(client, "contacts", "email", {"a@example.com": {}, "b@example.com": {}})
        a, b = (r["id"] for r in made["results"])
        await post(client, "/crm/v3/objects/contacts/gdpr-delete", {"objectId": a}, 204)
        await post(
            client,
            "/crm/v3/objects/contacts/gdpr-delete",
            {"objectId": "B@example.com", "idProperty": "email"},
            204,
        )
        for gone in (a, b):
            assert (await client.get(f"/crm/v3/objects/contacts/{gone}")).status_code == 404
            assert (
                await client.get(f"/crm/v3/objects/contacts/{gone}", params={"archived": "true"})
            ).status_code == 404
        await post(client, "/crm/v3/objects/contacts/gdpr-delete", {"objectId": a}, 404)
        await eventually(lambda: len(hooks.calls) == 2)
        deleted = {httpx.Response(200, content=raw).json()[0]["objectId"] for _, _, raw in hooks.calls}
        assert deleted == {int(a), int(b)}
        dump = (await client.get("/_sandbox/dump")).json()
        assert dump["contacts"] == [] and dump["archived"]["contacts"] == 0


def test_signature_helper_rejects_stale_or_tampered_deliveries() -> None:
    body, uri, now = b'[{"objectId":1}]', "https://bridge.example.com/hubspot?x=1", 1_700_000_000_000
    signature = sign(SECRET, "POST", uri, body, now)
    assert verify(SECRET, "post", uri, body.decode(), str(now), signature, now=now + 1000)
    assert not verify(SECRET, "POST", uri, body + b" ", now, signature, now=now)
    assert not verify(SECRET, "POST", uri, body, now, signature, now=now + 5 * 60 * 1000 + 1)
    assert not verify(SECRET, "POST", uri, body, "not-a-number", signature)


async def test_injected_5xx_answers_before_any_work_until_switched_off(client: httpx.AsyncClient) -> None:
    settings = await post(client, "/_sandbox/faults", {"fault_5xx_rate": 1.0}, 200)
    assert settings["fault_5xx_rate"] == 1.0
    statuses = set()
    for i in range(12):
        response = await client.post(
            "/crm/v3/objects/contacts/batch/create",
            json={"inputs": [{"properties": {"email": f"f{i}@example.com"}}]},
        )
        statuses.add(response.status_code)
        assert response.json()["status"] == "error" and response.json()["category"]
        assert "X-HubSpot-RateLimit-Remaining" in response.headers
    assert statuses <= {500, 502, 503} and len(statuses) > 1
    assert (await client.get("/_sandbox/dump")).json()["contacts"] == []  # no work was done
    assert (await client.get("/_sandbox/stats")).json()["injected_5xx"] == 12

    await post(client, "/_sandbox/faults", {"fault_5xx_rate": 0}, 200)
    await upsert(client, "contacts", "email", {"ok@example.com": {}})
    await post(client, "/_sandbox/faults", {"fault_5xx_rate": 2}, 400)
    await post(client, "/_sandbox/faults", {"surprise": 1}, 400)


async def test_dropped_connections_get_no_answer_and_do_no_work(client: httpx.AsyncClient) -> None:
    await post(client, "/_sandbox/faults", {"drop_rate": 1.0, "latency_ms": 5}, 200)
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post("/crm/v3/objects/contacts/batch/create", json={"inputs": [{"properties": {}}]})
    await post(client, "/_sandbox/faults", {"drop_rate": 0.0, "latency_ms": 0}, 200)
    dump = (await client.get("/_sandbox/dump")).json()
    assert dump["contacts"] == []
    assert (await client.get("/_sandbox/stats")).json()["dropped"] == 1


async def test_dump_holds_the_live_account_in_id_order_and_reset_wipes_it(client: httpx.AsyncClient) -> None:
    pipeline = await create_pipeline(client)
    stage = next(s for s in pipeline["stages"] if s["label"] == "Processed")
    await create_unique_property(client, "deals", "shopify_deal_key")
    contacts = await upsert(
        client, "contacts", "email", {"b@example.com": {"firstname": "B"}, "a@example.com": {}}
    )
    deal = await upsert(
        client,
        "deals",
        "shopify_deal_key",
        {"order:1": {"dealname": "Order 1", "pipeline": pipeline["id"], "dealstage": stage["id"]}},
    )
    product = await post(client, "/crm/v3/objects/products", {"properties": {"name": "Mug"}}, 201)
    assert product["properties"]["name"] == "Mug"
    spare = await post(client, "/crm/v3/objects/products", {"properties": {"name": "Old"}}, 201)
    assert (await client.delete(f"/crm/v3/objects/products/{spare['id']}")).status_code == 204
    deal_id, contact_id = deal["results"][0]["id"], contacts["results"][0]["id"]
    spec = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]
    association = {"inputs": [{"from": {"id": deal_id}, "to": {"id": contact_id}, "types": spec}]}
    await post(client, "/crm/v4/associations/deals/contacts/batch/create", association, 201)

    dump = (await client.get("/_sandbox/dump")).json()
    assert set(dump) == {
        "contacts",
        "deals",
        "products",
        "line_items",
        "companies",
        "orders",
        "carts",
        "associations",
        "pipelines",
        "order_pipelines",
        "subscriptions",  # X4: email subscription statuses, by address
        "archived",
    }
    assert [c["properties"]["email"] for c in dump["contacts"]] == ["b@example.com", "a@example.com"]
    assert [int(c["id"]) for c in dump["contacts"]] == sorted(int(c["id"]) for c in dump["contacts"])
    assert dump["contacts"][0]["properties"] == {"email": "b@example.com", "firstname": "B"}
    [dumped_deal] = dump["deals"]
    assert dumped_deal["stage_label"] == "Processed" and dumped_deal["pipeline_label"] == "Ecommerce Pipeline"
    assert [p["properties"]["name"] for p in dump["products"]] == ["Mug"]
    assert dump["archived"] == {
        "contacts": 0,
        "deals": 0,
        "products": 1,
        "line_items": 0,
        "companies": 0,
        "orders": 0,
        "carts": 0,
    }
    assert dump["associations"] == [
        {"from_type": "contacts", "from_id": contact_id, "to_type": "deals", "to_id": deal_id, "type_id": 4},
        {"from_type": "deals", "from_id": deal_id, "to_type": "contacts", "to_id": contact_id, "type_id": 3},
    ]
    assert [p["label"] for p in dump["pipelines"]] == ["Sales Pipeline", "Ecommerce Pipeline"]
    assert [p["label"] for p in dump["order_pipelines"]] == ["Order Pipeline"]

    await post(client, "/_sandbox/reset", {}, 200)
    wiped = (await client.get("/_sandbox/dump")).json()
    assert wiped["contacts"] == [] and wiped["associations"] == [] and len(wiped["pipelines"]) == 1
    assert (await client.get("/crm/v3/properties/deals/shopify_deal_key")).status_code == 404
    assert (await client.get("/_sandbox/stats")).json()["total"] == 1


async def test_single_record_routes_and_listing(client: httpx.AsyncClient) -> None:
    made = [
        await post(client, "/crm/v3/objects/products", {"properties": {"name": f"P{i}"}}, 201)
        for i in range(3)
    ]
    patched = await client.patch(
        f"/crm/v3/objects/products/{made[0]['id']}", json={"properties": {"price": "5"}}
    )
    assert patched.status_code == 200 and patched.json()["properties"]["price"] == "5"
    assert (await client.patch("/crm/v3/objects/products/999999", json={"properties": {}})).status_code == 404
    page = (await client.get("/crm/v3/objects/products", params={"limit": 2, "properties": "name"})).json()
    assert [r["properties"]["name"] for r in page["results"]] == ["P0", "P1"]
    rest = await client.get("/crm/v3/objects/products", params={"after": page["paging"]["next"]["after"]})
    assert [r["id"] for r in rest.json()["results"]] == [made[2]["id"]] and "paging" not in rest.json()
    assert (await client.delete("/crm/v3/objects/products/999999")).status_code == 204  # as HubSpot
    read_only = await client.post("/crm/v3/objects/products", json={"properties": {"hs_object_id": "1"}})
    assert read_only.status_code == 400 and read_only.json()["errors"][0]["code"] == "READ_ONLY_VALUE"
    unknown_type = await client.get("/crm/v3/objects/widgets/1")
    assert unknown_type.status_code == 400 and unknown_type.json()["category"] == "VALIDATION_ERROR"
    not_json = await client.post("/crm/v3/objects/products/batch/create", content=b"{nope")
    assert not_json.status_code == 400 and not_json.json()["status"] == "error"


async def test_the_token_and_the_secret_never_reach_logs_or_errors(
    start_sandbox: StartSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ValidationError) as invalid:
        SandboxConfig(db_path=Path("x.db"), token=TOKEN, webhook_url="http://127.0.0.1:9/x", drop_rate=2)
    assert TOKEN not in str(invalid.value)
    sandbox = await start_sandbox(
        webhook_url="http://127.0.0.1:9/unreachable",
        webhook_secret=SECRET,
        webhook_max_attempts=2,
        webhook_backoff_s=0,
    )
    assert TOKEN not in repr(sandbox.config) and SECRET not in repr(sandbox.config)
    async with http_client(sandbox) as client:
        contact = (await upsert(client, "contacts", "email", {"a@example.com": {}}))["results"][0]["id"]
        await client.get("/crm/v3/objects/contacts/1", headers={"Authorization": "Bearer nope"})
        assert (await client.delete(f"/crm/v3/objects/contacts/{contact}")).status_code == 204
        await eventually(lambda: sandbox.state.webhooks.stats.failed == 1)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "unreachable" in logged
    assert TOKEN not in logged and SECRET not in logged


async def test_batch_error_fault_fails_inputs_alone_in_hubspots_207_and_applies_nothing_of_them(
    client: httpx.AsyncClient,
) -> None:
    """``batch_error_rate``: every chosen input fails alone, in HubSpot's 207 shape (status,
    results, numErrors, errors with category, message and context ids); the rest is applied."""
    contact = (await upsert(client, "contacts", "email", {"a@example.com": {}}))["results"][0]["id"]
    deals = await post(
        client, "/crm/v3/objects/deals/batch/create", {"inputs": [{"properties": {}}] * 3}, 201
    )
    deal_ids = [r["id"] for r in deals["results"]]
    spec = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]
    links = {"inputs": [{"from": {"id": d}, "to": {"id": contact}, "types": spec} for d in deal_ids]}

    await post(
        client, "/_sandbox/faults", {"batch_error_rate": 1.0, "batch_error_category": "VALIDATION_ERROR"}, 200
    )
    body = await post(client, "/crm/v4/associations/deals/contacts/batch/create", links, 207)
    assert body["status"] == "COMPLETE" and body["results"] == [] and body["numErrors"] == 1
    (error,) = body["errors"]
    assert error["status"] == "error" and error["category"] == "VALIDATION_ERROR" and error["message"]
    assert sorted(error["context"]["ids"]) == sorted(deal_ids)
    body = await post(
        client,
        "/crm/v3/objects/contacts/batch/upsert",
        {"inputs": [{"id": "b@example.com", "idProperty": "email", "properties": {}}]},
        207,
    )
    assert body["errors"][0]["context"]["ids"] == ["b@example.com"]
    # Still refused whole when HubSpot would refuse the batch: the fault never makes it lenient.
    bad = {
        "inputs": [{"id": "c@example.com", "idProperty": "email", "properties": {"no_such_property": "x"}}]
    }
    await post(client, "/crm/v3/objects/contacts/batch/upsert", bad, 400)
    await post(client, "/crm/v4/associations/deals/contacts/batch/archive",
               {"inputs": [{"from": {"id": deal_ids[0]}, "to": [{"id": contact}]}]}, 207)  # fmt: skip

    await post(
        client, "/_sandbox/faults", {"batch_error_rate": 0.5, "batch_error_category": "INTERNAL_ERROR"}, 200
    )
    settings = await post(client, "/_sandbox/faults", {"batch_error_category": "NOPE"}, 400)
    assert "batch_error_category" in settings["message"]
    response = await client.post("/crm/v4/associations/deals/contacts/batch/create", json=links)
    assert response.status_code in (201, 207)
    body = response.json()
    await post(client, "/_sandbox/faults", {"batch_error_rate": 0.0}, 200)
    dump = (await client.get("/_sandbox/dump")).json()
    assert [c["properties"]["email"] for c in dump["contacts"]] == ["a@example.com"], (
        "failed inputs wrote nothing"
    )
    made = {str(r["fromObjectId"]) for r in body["results"]}
    failed = {i for e in body.get("errors", []) for i in e["context"]["ids"]}
    assert made | failed == set(deal_ids) and not made & failed
    held = {a["from_id"] for a in dump["associations"] if a["from_type"] == "deals"}
    assert held == made, "exactly the links the answer lists as made"


async def test_account_details_give_the_time_zone_whose_midnight_resets_the_daily_limit(
    start_sandbox: StartSandbox,
) -> None:
    sandbox = await start_sandbox(time_zone="Europe/Paris")
    async with httpx.AsyncClient(base_url=sandbox.url) as anonymous:
        assert (await anonymous.get("/account-info/v3/details")).status_code == 401
    async with http_client(sandbox) as client:
        response = await client.get("/account-info/v3/details")
    details = response.json()
    assert details["timeZone"] == "Europe/Paris" and details["portalId"] == 62515
    assert details["utcOffsetMilliseconds"] in (3_600_000, 7_200_000)
    assert details["utcOffset"] in ("+01:00", "+02:00")
    assert "X-HubSpot-RateLimit-Daily-Remaining" in response.headers
    with pytest.raises(ValidationError):
        SandboxConfig(db_path=Path("x.db"), token=TOKEN, time_zone="Mars/Olympus")
