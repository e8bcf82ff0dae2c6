"""Companies through the bulk import (I1 with X2): a GraphQL Company with its contacts and
locations becomes the webhook bodies Shopify sends for them (``companies/create``, one
``company_locations/create`` a location, one ``company_contacts/create`` a contact), appended
where the webhooks go, and the rules then make one HubSpot company per Shopify company linked to
the contacts' customers, as they do for the webhooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from config import Settings
from handlers.bulk_convert import ConversionError, company_records
from handlers.bulk_import import BulkImportState, run_bulk_import
from handlers.bulk_jsonl import rebuild
from schemas.commands import Associate, Upsert
from schemas.envelope import Delivery, decode_log_record
from schemas.shopify import Company, CompanyContact, CompanyLocation
from shopify_sandbox import b2b
from shopify_sandbox.shop import ShopData
from streams.inprocess import InProcessPipeline
from streams.rules.companies import COMPANY_TO_CONTACT, COMPANY_TO_DEAL
from streams.rules.keys import company_ref
from streams.topic_reader import read_all
from streams.topics import topic_name
from tests.importer.bulk_support import TOKEN, export, numbered, sandbox

CUSTOMERS, COMPANIES = 15, 2


def _store() -> ShopData:
    return ShopData(customers=CUSTOMERS, companies=COMPANIES)


def test_a_company_is_its_webhooks_named_as_shopify_names_them() -> None:
    node = next(iter(_store().nodes("companies")))
    records = company_records(node)
    assert [t for t, _ in records] == ["companies/create"] + ["company_locations/create"] * 2 + [
        "company_contacts/create"
    ] * b2b.CONTACTS_PER_COMPANY
    number = int(node["id"].rpartition("/")[2])
    company = Company.model_validate(records[0][1])
    assert company.company_id() == number and company.name == node["name"]
    for _, body in records[1:3]:
        location = CompanyLocation.model_validate(body)
        assert location.owner_id() == number and location.location_id() is not None
        assert location.billing_address is not None and location.billing_address.address1
    customers = [int(c["customer"]["id"].rpartition("/")[2]) for c in node["contacts"]]
    contacts = [CompanyContact.model_validate(body) for _, body in records[3:]]
    assert [c.customer_id() for c in contacts] == customers
    assert {c.company_id() for c in contacts} == {number}


@pytest.mark.parametrize(
    "broken",
    [
        {"id": "gid://shopify/Customer/1"},  # not a company
        {"locations": [{"id": None}]},  # a location without its id
        {"contacts": [{"id": "gid://shopify/CompanyContact/5", "customer": None}]},  # nobody to join
    ],
)
def test_a_company_that_cannot_be_read_is_refused_whole(broken: dict[str, Any]) -> None:
    node = {**next(iter(_store().nodes("companies"))), **broken}
    with pytest.raises((ConversionError, KeyError)):
        company_records(node)


@pytest.mark.kafka
async def test_imported_companies_link_their_contacts_as_their_webhooks_do(
    settings: Settings, tmp_path: Path
) -> None:
    async with sandbox(tmp_path, customers=CUSTOMERS, companies=COMPANIES) as shop:
        exported = list(rebuild(iter(numbered(await export(shop, "companies")))))
        assert len(exported) == COMPANIES and all(r.record is not None for r in exported)
        counts = await run_bulk_import(
            settings, shop.url, TOKEN, tmp_path / "state.json", resources=("customers", "companies"), poll_s=0
        )
    per_company = 1 + 2 + b2b.CONTACTS_PER_COMPANY
    assert counts == {"customers": CUSTOMERS, "companies": COMPANIES * per_company}
    state = BulkImportState.load(tmp_path / "state.json").resources["companies"]
    assert state.roots == state.roots_done() == COMPANIES, "progress counts companies, not their records"

    found: dict[str, list[Delivery]] = {}
    for name in ("shopify.customers", "shopify.companies"):
        records = await read_all(settings.kafka_bootstrap_servers, topic_name(settings, name))
        found[name] = [
            d for d in map(decode_log_record, (r.value for r in records)) if isinstance(d, Delivery)
        ]
    topics = [d.topic for d in found["shopify.companies"]]
    assert topics.count("companies/create") == COMPANIES
    assert topics.count("company_locations/create") == 2 * COMPANIES
    members = [d for d in found["shopify.customers"] if d.topic == "company_contacts/create"]
    assert len(members) == COMPANIES * b2b.CONTACTS_PER_COMPANY
    assert len({d.event_id for d in found["shopify.companies"] + members}) == COMPANIES * per_company
    assert {d.source for d in found["shopify.companies"] + members} == {"import"}

    pipeline = InProcessPipeline()
    for delivery in found["shopify.customers"] + found["shopify.companies"]:
        pipeline.deliver(delivery)
    assert not pipeline.dead_letters and not pipeline.field_problems
    emails = {
        int(d.body["id"]): d.body["email"]
        for d in found["shopify.customers"]
        if d.topic == "customers/create"
    }
    for root in exported:
        assert root.record is not None
        ref = company_ref(int(root.record["id"].rpartition("/")[2]))
        written: dict[str, Any] = {}
        for command in pipeline.commands:
            if isinstance(command, Upsert) and command.record == ref:
                written |= command.properties
        assert written.get("name") == root.record["name"], written
        assert "Warehouse" in str(written.get("shopify_company_locations"))
        linked = {
            c.to.id_value
            for c in pipeline.commands
            if isinstance(c, Associate) and c.record == ref and c.association_type_id == COMPANY_TO_CONTACT
        }
        customers = [int(c["customer"]["id"].rpartition("/")[2]) for c in root.record["contacts"]]
        wanted = {emails[c].lower() for c in customers if emails[c]}
        assert wanted and linked == wanted, ref


@pytest.mark.kafka
async def test_imported_b2b_orders_name_their_company_and_link_it_to_their_deals(
    settings: Settings, tmp_path: Path
) -> None:
    """A company contact's orders are placed for its company (the sandbox's B2B store): the bulk
    order's ``purchasingEntity`` becomes REST's ``company: {id, location_id}``, and each such
    order's deal is linked to its company (342), every other order to none."""
    resources = ("products", "customers", "orders", "companies")
    async with sandbox(tmp_path, customers=CUSTOMERS, companies=COMPANIES) as shop:
        await run_bulk_import(
            settings, shop.url, TOKEN, tmp_path / "state.json", resources=resources, poll_s=0
        )
        companies = {int(c["id"].rpartition("/")[2]): c for c in shop.shop.nodes("companies")}
    deliveries: list[Delivery] = []
    for name in ("shopify.products", "shopify.customers", "shopify.companies", "shopify.orders"):
        records = await read_all(settings.kafka_bootstrap_servers, topic_name(settings, name))
        deliveries += [
            d for d in map(decode_log_record, (r.value for r in records)) if isinstance(d, Delivery)
        ]
    orders = [d.body for d in deliveries if d.topic == "orders/create"]
    b2b_orders = [o for o in orders if o.get("company")]
    assert b2b_orders and len(b2b_orders) < len(orders), "the store has B2B and direct orders"
    for body in b2b_orders:
        company = companies[body["company"]["id"]]
        buyers = {c["customer"]["id"] for c in company["contacts"]}
        assert f"gid://shopify/Customer/{body['customer']['id']}" in buyers
        first_location = int(company["locations"][0]["id"].rpartition("/")[2])
        assert body["company"]["location_id"] == first_location

    pipeline = InProcessPipeline()
    for delivery in deliveries:
        pipeline.deliver(delivery)
    assert not pipeline.dead_letters and not pipeline.field_problems
    linked = {
        (c.record.id_value, c.to.id_value)
        for c in pipeline.commands
        if isinstance(c, Associate) and c.association_type_id == COMPANY_TO_DEAL
    }
    assert {company for company, _ in linked} == {str(o["company"]["id"]) for o in b2b_orders}
    assert len({deal for _, deal in linked}) == len(b2b_orders)
