"""Ordinary GraphQL requests: the token, the versions, the schema's refusals, pagination."""

from __future__ import annotations

from pathlib import Path

import httpx

from shopify_sandbox import rules
from shopify_sandbox.config import FIXTURES
from tests.shopify_sandbox.conftest import TOKEN, Admin, StartSandbox

CUSTOMERS = "{ customers(first: 5) { nodes { id email } } }"


async def test_no_token_and_a_wrong_token_get_401(admin: Admin) -> None:
    for headers in ({}, {"X-Shopify-Access-Token": "shpat_other"}):
        response = await admin.http.post(
            "/admin/api/2026-04/graphql.json", json={"query": CUSTOMERS}, headers=headers
        )
        assert response.status_code == 401
        assert response.json() == {
            "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
        }


async def test_an_old_version_falls_forward_and_an_unreleased_one_is_404(admin: Admin) -> None:
    """Shopify answers a no longer supported version in its oldest supported one and says so in
    ``X-Shopify-API-Version``; a version that is not (yet) one is not found."""
    for asked, status, answered in (
        ("2019-04", 200, "2025-10"),
        ("2026-04", 200, "2026-04"),
        ("2031-01", 404, None),
        ("latest", 404, None),
    ):
        response = await admin.http.post(
            f"/admin/api/{asked}/graphql.json",
            json={"query": CUSTOMERS},
            headers={"X-Shopify-Access-Token": TOKEN},
        )
        assert response.status_code == status, asked
        assert response.headers.get("X-Shopify-API-Version") == answered, asked
        if status == 200:
            assert response.json()["data"]["customers"]["nodes"], asked


async def test_an_unknown_field_is_a_validation_error_in_shopifys_shape(admin: Admin) -> None:
    body = await admin.post("{ customers(first: 1) { nodes { id favouriteColour } } }")
    assert "data" not in body
    [error] = body["errors"]
    assert error["message"] == "Field 'favouriteColour' doesn't exist on type 'Customer'"
    assert error["extensions"] == {
        "code": "undefinedField",
        "typeName": "Customer",
        "fieldName": "favouriteColour",
    }
    assert error["locations"] == [{"line": 1, "column": 36}]


async def test_order_tokens_exist_from_2026_07_only(admin: Admin) -> None:
    query = "{ orders(first: 3) { nodes { id cartToken checkoutToken } } }"
    body = await admin.post(query, version="2026-04")
    assert [e["extensions"]["fieldName"] for e in body["errors"]] == ["cartToken", "checkoutToken"]
    orders = (await admin.data(query, version="2026-07"))["orders"]["nodes"]
    assert orders and all(len(o["cartToken"]) == 32 and len(o["checkoutToken"]) == 32 for o in orders)


async def test_customers_carry_consent_addresses_tags_and_their_orders(admin: Admin) -> None:
    query = """{ customers(first: 20) { nodes {
        id email tags createdAt updatedAt numberOfOrders
        emailMarketingConsent { marketingState marketingOptInLevel }
        smsMarketingConsent { marketingState }
        defaultAddress { city country } addresses { id }
        orders(first: 5) { nodes {
            id displayFinancialStatus totalPriceSet { shopMoney { amount currencyCode } } } }
    } } }"""
    customers = (await admin.data(query))["customers"]["nodes"]
    assert len(customers) == 20
    assert all(c["id"].startswith("gid://shopify/Customer/") for c in customers)
    assert all(c["createdAt"].endswith("Z") for c in customers)
    assert {c["emailMarketingConsent"]["marketingState"] for c in customers if c["email"]} <= {
        "SUBSCRIBED",
        "NOT_SUBSCRIBED",
    }
    assert all(int(c["numberOfOrders"]) == len(c["orders"]["nodes"]) for c in customers)
    assert any(c["orders"]["nodes"] for c in customers)


async def test_abandoned_checkouts_are_the_uncompleted_ones_with_contact_details(admin: Admin) -> None:
    query = """{ abandonedCheckouts(first: 50) { nodes {
        id abandonedCheckoutUrl completedAt customer { id email }
        lineItems(first: 5) { nodes { quantity variant { id price } } } } } }"""
    checkouts = (await admin.data(query))["abandonedCheckouts"]["nodes"]
    assert checkouts
    assert all(c["completedAt"] is None and c["customer"]["email"] for c in checkouts)
    assert all(c["abandonedCheckoutUrl"].endswith("/recover") for c in checkouts)
    assert all(li["variant"]["price"] for c in checkouts for li in c["lineItems"]["nodes"])
    body = await admin.post("{ abandonedCheckouts(first: 1) { nodes { email } } }")
    assert body["errors"][0]["extensions"]["code"] == "undefinedField"


async def test_pages_chain_by_cursor_to_the_whole_list(admin: Admin) -> None:
    every = (await admin.data("{ products(first: 250) { nodes { id } } }"))["products"]["nodes"]
    seen: list[str] = []
    after = None
    while True:
        page = (
            await admin.data(
                "query($after: String) { products(first: 2, after: $after) {"
                " edges { node { id } } pageInfo { hasNextPage endCursor } } }",
                after=after,
            )
        )["products"]
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [p["id"] for p in every] and len(seen) == 6


async def test_a_connection_needs_first_or_last_and_at_most_250(admin: Admin) -> None:
    missing = await admin.post("{ products { nodes { id } } }")
    assert missing["errors"][0]["message"] == "you must provide one of first or last"
    too_many = await admin.post("{ products(first: 251) { nodes { id } } }")
    assert "250" in too_many["errors"][0]["message"]


async def test_repeat_orders_add_later_purchases_to_the_same_customers(start_sandbox: StartSandbox) -> None:
    query = "{ customers(first: 30) { nodes { id numberOfOrders orders(first: 10) { nodes { id } } } } }"
    counts = []
    for repeat in (0, 2):
        sandbox = await start_sandbox(customers=30, repeat_orders=repeat)
        async with httpx.AsyncClient(base_url=sandbox.url) as http:
            customers = (await Admin(sandbox, http).data(query))["customers"]["nodes"]
        counts.append({c["id"]: int(c["numberOfOrders"]) for c in customers})
    once, thrice = counts
    assert once.keys() == thrice.keys()
    assert all(thrice[c] == once[c] + 2 for c in once if once[c])  # a deleted first order stays deleted
    assert sum(thrice.values()) > 2 * sum(once.values())


async def test_lookups_by_gid(admin: Admin) -> None:
    first = (await admin.data("{ orders(first: 1) { nodes { id name } } }"))["orders"]["nodes"][0]
    found = await admin.data(
        "query($id: ID!) { order(id: $id) { name } node(id: $id) { id ... on Order { name } } }",
        id=first["id"],
    )
    assert found == {"order": {"name": first["name"]}, "node": {"id": first["id"], "name": first["name"]}}


async def test_fixtures_are_served_beside_the_sample_store(start_sandbox: StartSandbox) -> None:
    sandbox = await start_sandbox(fixtures_dir=FIXTURES, customers=0)
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        admin = Admin(sandbox, http)
        orders = await admin.data(
            "{ orders(first: 10) { nodes { id email lineItems(first: 5) { nodes { sku } } } } }"
        )
    assert [o["id"] for o in orders["orders"]["nodes"]] == ["gid://shopify/Order/450789469"]


def test_rules_md_holds_the_rules_table() -> None:
    text = (Path(rules.__file__).parent / "RULES.md").read_text()
    assert rules.markdown_table() in text
    assert all(r.sources for r in rules.RULES)


def test_the_command_line_starts_it_and_prints_its_url() -> None:
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-c", "from shopsync.cli import main; main()", "shopify-sandbox"]
    process = subprocess.Popen(
        [*command, "--port", "0", "--customers", "5", "--token", TOKEN],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        answer = httpx.post(
            f"{url}/admin/api/2026-04/graphql.json",
            json={"query": CUSTOMERS},
            headers={"X-Shopify-Access-Token": TOKEN},
        )
        assert len(answer.json()["data"]["customers"]["nodes"]) == 5
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0
