"""What keeps the sandbox's calls flat as an account grows, checked without timing anything.

A call stays flat when every statement it runs finds its rows by an index. SQLite plans without
statistics here (no ANALYZE), assuming every table is big, so the plans read on a small account
are the plans of a 1,000,000-record one: a query that scans (``SCAN objects``, or walks all
objects of a type through ``objects_by_type``) fails the test however small the data. The
timings themselves are a benchmark figure (``bench/figures/sandbox.py``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import orjson

from hubspot_sandbox import Sandbox, bulk
from hubspot_sandbox.catalog import ASSOCIATION_TYPES
from hubspot_sandbox.db import connect
from hubspot_sandbox.timestamps import now_ms
from tests.sandbox.conftest import StartSandbox
from tests.sandbox.support import http_client, post, text_property

# The account's settings: a few rows each, whatever the number of records.
SMALL_TABLES = {"meta", "property_defs", "property_groups", "pipelines", "stages", "association_labels"}
DEFINED = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]


def seed(sandbox: Sandbox, contacts: int, deals: int) -> tuple[list[int], list[int]]:
    """Contacts ``seed.N@example.com`` and deals ``shopify_deal_key`` seed-N, each deal linked to
    the contact of its number, written through the store in bulk."""

    def fill(conn: sqlite3.Connection) -> tuple[list[int], list[int]]:
        now = now_ms()
        people = ({"email": f"seed.{i}@example.com", "firstname": f"F{i}"} for i in range(contacts))
        contact_ids = bulk.add_records(conn, "contacts", people, now)
        orders = (
            {
                "shopify_deal_key": f"seed-{i}",
                "dealname": f"Order {i}",
                "dealstage": "closedwon",
                "pipeline": "default",
            }
            for i in range(deals)
        )
        deal_ids = bulk.add_records(conn, "deals", orders, now)
        bulk.add_links(
            conn, ASSOCIATION_TYPES[("deals", "contacts")], list(zip(deal_ids, contact_ids, strict=False))
        )
        return contact_ids, deal_ids

    return sandbox.state.store.run(fill)


async def unique_deal_key(client: httpx.AsyncClient) -> None:
    body = text_property("shopify_deal_key", "dealinformation", hasUniqueValue=True)
    await post(client, "/crm/v3/properties/deals", body, 201)


def whole_table_work(plan: list[str]) -> list[str]:
    """The plan's steps that read a table of records whole (``SCAN t``, by name or alias), or
    every record of a type (``objects_by_type`` without a rowid)."""
    return [
        step
        for step in plan
        if (step.startswith("SCAN ") and step.split()[1] not in SMALL_TABLES | {"CONSTANT"})
        or ("objects_by_type" in step and "rowid" not in step)
    ]


async def hot_calls(client: httpx.AsyncClient, contact_ids: list[int], deal_ids: list[int]) -> None:
    """What a writer does all day: upserts of new and existing contacts and deals, line items from
    a product, links (with the one-deal rule), reads by id and email, an update, an archive."""
    contacts = "/crm/v3/objects/contacts"
    new = [
        {"id": f"new.{i}@example.com", "idProperty": "email", "properties": {"firstname": "N"}}
        for i in range(3)
    ]
    old = [
        {"id": f"SEED.{i}@example.com", "idProperty": "email", "properties": {"firstname": "G"}}
        for i in range(3)
    ]
    made = await post(client, f"{contacts}/batch/upsert", {"inputs": new + old}, 200)
    deal_inputs = [
        {"id": key, "idProperty": "shopify_deal_key", "properties": {"dealstage": "closedlost"}}
        for key in ("seed-1", "seed-2", "new-1")
    ]
    deals = await post(client, "/crm/v3/objects/deals/batch/upsert", {"inputs": deal_inputs}, 200)
    product = await post(
        client, "/crm/v3/objects/products", {"properties": {"name": "Mug", "price": "9"}}, 201
    )
    item = {"properties": {"hs_product_id": product["id"], "quantity": "2"}}
    items = await post(client, "/crm/v3/objects/line_items/batch/create", {"inputs": [item, item]}, 201)
    new_contact, new_deal = made["results"][0]["id"], deals["results"][2]["id"]
    links = [{"from": {"id": new_deal}, "to": {"id": new_contact}, "types": DEFINED}]
    await post(client, "/crm/v4/associations/deals/contacts/batch/create", {"inputs": links}, 201)
    to_deal = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 20}]
    first, second = (r["id"] for r in items["results"])
    one_deal = [{"from": {"id": first}, "to": {"id": str(deal_ids[0])}, "types": to_deal}]
    await post(client, "/crm/v4/associations/line_items/deals/batch/create", {"inputs": one_deal}, 201)
    one_deal[0]["to"] = {"id": str(deal_ids[1])}
    await post(client, "/crm/v4/associations/line_items/deals/batch/create", {"inputs": one_deal}, 207)
    default = [{"from": {"id": second}, "to": {"id": str(deal_ids[2])}}]
    await post(
        client, "/crm/v4/associations/line_items/deals/batch/associate/default", {"inputs": default}, 200
    )
    read = {"idProperty": "email", "inputs": [{"id": "seed.7@example.com"}], "properties": ["email"]}
    await post(client, f"{contacts}/batch/read", read, 200)
    await post(client, f"{contacts}/batch/read", {"inputs": [{"id": str(contact_ids[5])}]}, 200)
    update = {"inputs": [{"id": str(contact_ids[6]), "properties": {"lastname": "L"}}]}
    await post(client, f"{contacts}/batch/update", update, 200)
    assert (await client.get(f"{contacts}/{contact_ids[8]}")).status_code == 200
    assert (await client.get(f"/crm/v4/objects/deals/{deal_ids[3]}/associations/contacts")).status_code == 200
    search = {
        "filterGroups": [
            {"filters": [{"propertyName": "email", "operator": "EQ", "value": "seed.9@example.com"}]}
        ]
    }
    assert (await post(client, f"{contacts}/search", search, 200))["total"] == 1
    await post(client, f"{contacts}/batch/archive", {"inputs": [{"id": str(contact_ids[4])}]}, 204)
    assert (
        await client.post(f"{contacts}/gdpr-delete", json={"objectId": str(contact_ids[3])})
    ).status_code == 204


async def test_every_statement_of_the_hot_calls_finds_its_rows_by_an_index(
    start_sandbox: StartSandbox,
) -> None:
    sandbox = await start_sandbox()
    store = sandbox.state.store
    async with http_client(sandbox) as client:
        await unique_deal_key(client)
        contact_ids, deal_ids = seed(sandbox, 50, 20)
        statements: list[str] = []
        store.run(lambda conn: conn.set_trace_callback(statements.append))
        try:
            await hot_calls(client, contact_ids, deal_ids)
        finally:
            store.run(lambda conn: conn.set_trace_callback(None))
    queries = {
        s
        for s in statements
        if s.lstrip().split(" ", 1)[0].upper() in ("SELECT", "UPDATE", "DELETE", "INSERT")
    }
    assert len(queries) > 20, "the trace should hold every statement of the calls"

    def plans(conn: sqlite3.Connection) -> dict[str, list[str]]:
        return {q: [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {q}")] for q in sorted(queries)}

    scanning = {sql: plan for sql, plan in store.run(plans).items() if whole_table_work(plan)}
    assert scanning == {}


def test_the_plan_check_catches_a_scan(tmp_path: Path) -> None:
    """The rule the test above applies: a lookup by a value not in the unique index walks the table."""
    conn = connect(tmp_path / "plans.db")
    scan = "SELECT p.object_id FROM prop_values p WHERE p.name = 'firstname' AND p.norm = 'x'"
    by_type = "SELECT o.id FROM objects o WHERE o.type = 'contacts' AND o.archived_ms IS NULL"
    by_unique = "SELECT object_id FROM prop_values WHERE name = 'email' AND uniq = 1 AND norm = 'x'"

    def plan(sql: str) -> list[str]:
        return [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]

    assert whole_table_work(plan(scan)) and whole_table_work(plan(by_type))
    assert whole_table_work(plan(by_unique)) == []


async def dump_of(client: httpx.AsyncClient) -> Any:
    return (await client.get("/_sandbox/dump")).json()


async def test_the_dump_streams_one_snapshot_while_calls_write(start_sandbox: StartSandbox) -> None:
    """Writes are answered while a dump is being read (it reads on its own connection, in a
    thread), and the dump is the account as it was when it began: the new contact is not in it."""
    sandbox = await start_sandbox()
    seed(sandbox, 40_000, 10)
    async with http_client(sandbox) as client:
        inputs = [{"id": "during@example.com", "idProperty": "email", "properties": {"firstname": "D"}}]
        async with client.stream("GET", "/_sandbox/dump") as streamed:
            assert streamed.status_code == 200
            chunks = streamed.aiter_raw()
            head = await anext(chunks)
            assert head.startswith(b'{"contacts":[')
            await post(client, "/crm/v3/objects/contacts/batch/upsert", {"inputs": inputs}, 200)
            body = head + b"".join([chunk async for chunk in chunks])
        during = orjson.loads(body)
        emails = {c["properties"]["email"] for c in during["contacts"]}
        assert len(emails) == 40_000 and "during@example.com" not in emails
        assert len(during["associations"]) == 20 and during["archived"]["contacts"] == 0
        after = {c["properties"]["email"] for c in (await dump_of(client))["contacts"]}
        assert after == emails | {"during@example.com"}


async def test_bulk_records_are_the_api_s_own(start_sandbox: StartSandbox) -> None:
    """Seeded records are found by their unique values, refuse a clash, and dump like API ones."""
    sandbox = await start_sandbox()
    async with http_client(sandbox) as client:
        await unique_deal_key(client)
        contact_ids, deal_ids = seed(sandbox, 3, 3)
        again = [{"id": "Seed.1@Example.com", "idProperty": "email", "properties": {"firstname": "F1"}}]
        answer = await post(client, "/crm/v3/objects/contacts/batch/upsert", {"inputs": again}, 200)
        assert answer["results"][0]["id"] == str(contact_ids[1]) and answer["results"][0]["new"] is False
        clash = {"inputs": [{"properties": {"shopify_deal_key": "SEED-2"}}]}
        refused = await post(client, "/crm/v3/objects/deals/batch/create", clash, 409)
        assert refused["message"].endswith(f"Existing ID: {deal_ids[2]}")
        dump = await dump_of(client)
    assert [c["id"] for c in dump["contacts"]] == [str(i) for i in contact_ids]
    assert dump["contacts"][0]["properties"] == {"email": "seed.0@example.com", "firstname": "F0"}
    assert dump["deals"][0]["stage_label"] == "Closed Won"
    assert {(a["from_id"], a["to_id"]) for a in dump["associations"] if a["from_type"] == "deals"} == {
        (str(d), str(c)) for d, c in zip(deal_ids, contact_ids, strict=True)
    }


def test_a_file_from_before_the_unique_index_is_migrated(tmp_path: Path) -> None:
    """A file written when every value was indexed (``prop_values_lookup``, no ``uniq``) opens with
    its unique values flagged (email; hasUniqueValue properties), so they are still found."""
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE objects (id INTEGER PRIMARY KEY, type TEXT NOT NULL, created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL, archived_ms INTEGER);
        CREATE TABLE prop_values (object_id INTEGER NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
            norm TEXT NOT NULL, PRIMARY KEY (object_id, name)) WITHOUT ROWID;
        CREATE INDEX prop_values_lookup ON prop_values (name, norm);
        CREATE TABLE property_defs (object_type TEXT NOT NULL, name TEXT NOT NULL, definition TEXT NOT NULL,
            PRIMARY KEY (object_type, name));
        INSERT INTO property_defs VALUES ('deals', 'key', '{"hasUniqueValue": true}');
        INSERT INTO property_defs VALUES ('deals', 'note', '{"hasUniqueValue": false}');
        INSERT INTO objects VALUES (1001, 'contacts', 0, 0, NULL), (1002, 'deals', 0, 0, NULL);
        INSERT INTO prop_values VALUES (1001, 'email', 'a@example.com', 'a@example.com'),
            (1001, 'firstname', 'A', 'a'), (1002, 'key', 'K', 'k'), (1002, 'note', 'N', 'n');
        """
    )
    old.close()
    conn = connect(path)
    flagged = conn.execute("SELECT object_id, name FROM prop_values WHERE uniq = 1 ORDER BY name").fetchall()
    indexes = {row[1] for row in conn.execute("PRAGMA index_list(prop_values)")}
    assert [tuple(row) for row in flagged] == [(1001, "email"), (1002, "key")]
    assert "prop_values_lookup" not in indexes and "prop_values_unique" in indexes


async def test_a_unique_property_made_again_under_an_old_name_finds_the_values_kept(
    start_sandbox: StartSandbox,
) -> None:
    """Values stay stored when a property is archived; made again as a unique property, the name
    finds them (they are put in the unique-value index), so an upsert updates, a create clashes."""
    sandbox = await start_sandbox()
    async with http_client(sandbox) as client:
        await post(client, "/crm/v3/properties/deals", text_property("code", "dealinformation"), 201)
        made = await post(client, "/crm/v3/objects/deals", {"properties": {"code": "A1"}}, 201)
        assert (await client.delete("/crm/v3/properties/deals/code")).status_code == 204
        unique = text_property("code", "dealinformation", hasUniqueValue=True)
        await post(client, "/crm/v3/properties/deals", unique, 201)
        again = [{"id": "A1", "idProperty": "code", "properties": {"dealname": "Found"}}]
        answer = await post(client, "/crm/v3/objects/deals/batch/upsert", {"inputs": again}, 200)
        assert answer["results"][0]["id"] == made["id"] and answer["results"][0]["new"] is False
        clash = {"inputs": [{"properties": {"code": "a1"}}]}
        assert (await post(client, "/crm/v3/objects/deals/batch/create", clash, 409))["message"].endswith(
            f"Existing ID: {made['id']}"
        )
