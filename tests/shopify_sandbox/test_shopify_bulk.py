"""Bulk operations: what bulkOperationRunQuery refuses, the lifecycle to COMPLETED, FAILED (with
partial data) and CANCELED, the JSONL and its download with HTTP Range."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from tests.shopify_sandbox.conftest import Admin, StartSandbox

RUN = """mutation($q: String!) { bulkOperationRunQuery(query: $q) {
    bulkOperation { id status } userErrors { code field message } } }"""
POLL = """{ currentBulkOperation { id status errorCode objectCount rootObjectCount fileSize url
    partialDataUrl completedAt } }"""
ORDERS = """{ orders { edges { node { id name displayFinancialStatus customer { id email }
    lineItems { edges { node { id sku quantity variant { id } } } } } } } }"""


async def run(admin: Admin, query: str, version: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = (await admin.data(RUN, version, q=query))["bulkOperationRunQuery"]
    return payload


async def finish(admin: Admin, version: str | None = None) -> dict[str, Any]:
    """Poll until the operation stops moving (each poll is one step of its life)."""
    seen = []
    for _ in range(100):
        seen.append((await admin.data(POLL, version))["currentBulkOperation"])
        if seen[-1]["status"] in ("COMPLETED", "FAILED", "CANCELED"):
            return {**seen[-1], "statuses": [s["status"] for s in seen]}
    raise AssertionError(seen)


async def lines(admin: Admin, url: str) -> list[dict[str, Any]]:
    response = await admin.http.get(url)  # a signed storage URL: no Shopify token
    assert response.status_code == 200
    return [orjson.loads(line) for line in response.content.splitlines()]


@pytest.mark.parametrize(
    ("query", "wording"),
    [
        ("{ shop { name } }", "Field 'shop' doesn't exist on type 'QueryRoot'"),
        (
            "{ customers { edges { node { id shoeSize } } } }",
            "Field 'shoeSize' doesn't exist on type 'Customer'",
        ),
        ('{ customer(id: "gid://shopify/Customer/1") { id email } }', "at least one connection"),
        ('{ node(id: "gid://shopify/Customer/1") { id } }', "top level `node` or `nodes`"),
        ("{ customers { edges { node { id } } } orders { edges { node { id } } } }", "exactly one top level"),
        (
            "{ customers { edges { node { id orders { edges { node { id"
            " lineItems { edges { node { id } } } } } } } } } }",
            "nested more than 2 levels",
        ),
        (
            "{ customers { edges { node { id addressesV2 { nodes { id } } orders { nodes { id } }"
            " o2: orders { nodes { id } } o3: orders { nodes { id } } o4: orders { nodes { id } } } } } }",
            "more than 5 connections",
        ),
        (
            'mutation { bulkOperationCancel(id: "gid://shopify/BulkOperation/1")'
            " { userErrors { message } } }",
            "query",
        ),
    ],
)
async def test_refused_bulk_queries_are_invalid_user_errors(admin: Admin, query: str, wording: str) -> None:
    payload = await run(admin, query)
    assert payload["bulkOperation"] is None
    [error] = payload["userErrors"]
    assert error["code"] == "INVALID" and error["field"] == ["query"]
    assert wording in error["message"]
    assert admin.sandbox.operations.all == []


async def test_five_connections_two_deep_are_accepted(admin: Admin) -> None:
    query = (
        "{ customers { edges { node { id addressesV2 { nodes { id } } orders { nodes { id } }"
        " o2: orders { nodes { id } } o3: orders { nodes { id } } } } } }"
    )
    assert (await run(admin, query))["userErrors"] == []


async def test_before_2026_01_one_operation_at_a_time(admin: Admin) -> None:
    first = await run(admin, ORDERS, "2025-10")
    assert first["userErrors"] == []
    second = await run(admin, ORDERS, "2025-10")
    assert second["bulkOperation"] is None
    assert second["userErrors"][0]["code"] == "OPERATION_IN_PROGRESS"
    await finish(admin, "2025-10")
    assert (await run(admin, ORDERS, "2025-10"))["userErrors"] == []


async def test_from_2026_01_five_operations_at_a_time(admin: Admin) -> None:
    for _ in range(5):
        assert (await run(admin, ORDERS, "2026-01"))["userErrors"] == []
    sixth = await run(admin, ORDERS, "2026-01")
    assert sixth["bulkOperation"] is None and sixth["userErrors"][0]["code"] == "LIMIT_REACHED"


async def test_an_export_runs_created_running_completed_and_serves_jsonl(admin: Admin) -> None:
    started = await run(admin, ORDERS)
    assert started["bulkOperation"]["status"] == "CREATED"
    done = await finish(admin)
    assert done["statuses"] == ["RUNNING", "COMPLETED"]
    assert done["id"] == started["bulkOperation"]["id"] and done["completedAt"].endswith("Z")
    records = await lines(admin, done["url"])
    orders = [r for r in records if "__parentId" not in r]
    items = [r for r in records if "__parentId" in r]
    assert int(done["objectCount"]) == len(records) and int(done["rootObjectCount"]) == len(orders)
    assert int(done["fileSize"]) == len((await admin.http.get(done["url"])).content)
    assert items and all("lineItems" not in o for o in orders)
    positions = {r["id"]: i for i, r in enumerate(records)}
    assert all(positions[item["__parentId"]] < positions[item["id"]] for item in items)  # parents first
    assert all(item["id"].startswith("gid://shopify/LineItem/") for item in items)
    assert all(o["customer"]["id"].startswith("gid://shopify/Customer/") for o in orders)
    graphql = (await admin.data("{ orders(first: 250) { nodes { id } } }"))["orders"]["nodes"]
    assert [o["id"] for o in orders] == [o["id"] for o in graphql]


async def test_an_operation_is_polled_by_id_node_and_the_list(admin: Admin) -> None:
    op_id = (await run(admin, ORDERS, "2026-01"))["bulkOperation"]["id"]
    by_node = await admin.data(
        "query($id: ID!) { node(id: $id) { ... on BulkOperation { status } } }", id=op_id
    )
    assert by_node == {"node": {"status": "RUNNING"}}
    by_id = await admin.data("query($id: ID!) { bulkOperation(id: $id) { status url } }", "2026-01", id=op_id)
    assert by_id["bulkOperation"]["status"] == "COMPLETED" and by_id["bulkOperation"]["url"]
    second = (await run(admin, ORDERS, "2026-01"))["bulkOperation"]["id"]
    listed = await admin.data("{ bulkOperations(first: 5) { nodes { id } } }", "2026-01")
    assert [n["id"] for n in listed["bulkOperations"]["nodes"]] == [second, op_id]  # newest first
    old = await admin.post("query($id: ID!) { bulkOperation(id: $id) { status } }", "2025-10", id=op_id)
    assert old["errors"][0]["extensions"]["code"] == "undefinedField"


async def test_a_failure_leaves_partial_data(admin: Admin) -> None:
    response = await admin.http.post("/_sandbox/fail-next", json={"errorCode": "TIMEOUT", "afterRoots": 3})
    assert response.status_code == 200
    await run(admin, ORDERS)
    failed = await finish(admin)
    assert failed["statuses"] == ["RUNNING", "FAILED"]
    assert failed["errorCode"] == "TIMEOUT" and failed["url"] is None and failed["partialDataUrl"]
    records = await lines(admin, failed["partialDataUrl"])
    assert len([r for r in records if "__parentId" not in r]) == 3 == int(failed["rootObjectCount"])
    await run(admin, ORDERS)  # only the next operation fails
    assert (await finish(admin))["status"] == "COMPLETED"


async def test_cancel_moves_through_canceling_and_refuses_a_finished_operation(admin: Admin) -> None:
    op_id = (await run(admin, ORDERS))["bulkOperation"]["id"]
    cancel = """mutation($id: ID!) { bulkOperationCancel(id: $id) {
        bulkOperation { status } userErrors { message } } }"""
    cancelling = (await admin.data(cancel, id=op_id))["bulkOperationCancel"]
    assert cancelling == {"bulkOperation": {"status": "CANCELING"}, "userErrors": []}
    done = await finish(admin)
    assert done["statuses"] == ["CANCELED"] and done["url"] is None
    again = (await admin.data(cancel, id=op_id))["bulkOperationCancel"]
    assert again["userErrors"] == [{"message": "A bulk operation cannot be canceled when it is canceled"}]


async def test_the_download_resumes_with_a_range_request(admin: Admin) -> None:
    await run(admin, ORDERS)
    url = (await finish(admin))["url"]
    whole = (await admin.http.get(url)).content
    cut = len(whole) // 3
    head = (await admin.http.get(url, headers={"Range": f"bytes=0-{cut - 1}"})).content
    rest = await admin.http.get(url, headers={"Range": f"bytes={cut}-"})
    assert rest.status_code == 206
    assert rest.headers["Content-Range"] == f"bytes {cut}-{len(whole) - 1}/{len(whole)}"
    assert head + rest.content == whole


async def test_nested_objects_stay_inline_and_connections_become_lines(start_sandbox: StartSandbox) -> None:
    sandbox = await start_sandbox(customers=12)
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        admin = Admin(sandbox, http)
        query = (
            """{ products { edges { node { id title variants { edges { node { id sku price } } } } } } }"""
        )
        await run(admin, query)
        records = await lines(admin, (await finish(admin))["url"])
    products = [r for r in records if "__parentId" not in r]
    variants = [r for r in records if "__parentId" in r]
    assert len(products) == 6 and {v["__parentId"] for v in variants} == {p["id"] for p in products}
    assert all(set(v) == {"id", "sku", "price", "__parentId"} for v in variants)
