"""X2 end to end: a B2B order, its company and the company's location, through the in-process
pipeline (the real routing and rules), then the commands through the writer over real HTTP into
the HubSpot sandbox, read from a real Kafka commands topic. The company arrives last, after the
order already made it: the sandbox must then hold one company, keyed by the Shopify company id,
filled in by its webhooks, associated with the order's contact and with its deal (deals mode) or
its Order (orders mode) by HubSpot's own association types."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretBytes

from config import Settings
from config.rules import RuleConfig
from hubspot_sandbox import Sandbox
from schemas.commands import Associate
from streams.inprocess import InProcessPipeline
from tests.rules.test_companies import COMPANY_ID, company_body, location_body
from tests.rules.test_company_members import EMAIL, contact_body, customer_body
from tests.rules.test_journeys import T0, delivery, order_at
from tests.writer.conftest import admin, write_all

pytestmark = pytest.mark.kafka


def b2b_commands(config: RuleConfig) -> list[Any]:
    pipeline = InProcessPipeline(config=config)
    order = order_at(T0)
    order["company"] = {"id": COMPANY_ID, "location_id": 8101}
    pipeline.deliver(delivery("orders/create", order, T0))
    later = T0 + timedelta(minutes=5)
    pipeline.deliver(delivery("companies/create", company_body(later), later))
    pipeline.deliver(delivery("company_locations/create", location_body(later), later))
    assert not pipeline.dead_letters and not pipeline.field_problems
    return pipeline.commands


def pairs(dump: dict[str, Any]) -> Counter[tuple[str, str, int]]:
    ids = {str(r["id"]): t for t in ("companies", "contacts", "deals", "orders") for r in dump[t]}
    return Counter(
        (ids[str(a["from_id"])], ids[str(a["to_id"])], int(a["type_id"]))
        for a in dump["associations"]
        if str(a["from_id"]) in ids and str(a["to_id"]) in ids
    )


def the_company(dump: dict[str, Any]) -> dict[str, Any]:
    (company,) = dump["companies"]
    props = company["properties"]
    assert props["shopify_company_id"] == str(COMPANY_ID)
    assert props["name"] == "Acme Wholesale" and props["city"] == "Springfield"
    assert props["shopify_company_locations"] == "Head office (8101)"
    return dict(props)


@pytest.mark.parametrize("mode", ["deals", "orders"])
async def test_x2_a_b2b_order_and_its_company_land_as_one_linked_company(
    writer_settings: Settings, sandbox: Sandbox, mode: str
) -> None:
    settings = writer_settings.model_copy(update={"commerce_objects": mode})
    stats = await write_all(settings, b2b_commands(RuleConfig(commerce_objects=mode)))
    assert stats.dead_lettered == 0
    dump = await admin(sandbox, "GET", "/_sandbox/dump")
    the_company(dump)
    links = pairs(dump)
    assert links[("companies", "contacts", 280)] == 1
    if mode == "deals":
        assert links[("companies", "deals", 342)] == 1 and not dump["orders"]
    else:
        assert links[("companies", "orders", 510)] == 1 and not dump["deals"]


@pytest.mark.parametrize("redactable", [False, True])
async def test_x2_a_company_contact_who_never_ordered_lands_linked_to_the_company(
    writer_settings: Settings, sandbox: Sandbox, redactable: bool
) -> None:
    """``company_contacts/create`` (Shopify's payload: global ids, no email) before its customer:
    the sandbox ends with the customer's contact, the company and one link between them (280, and
    HubSpot's reverse 279). With ``SHOPSYNC_REDACTABLE`` (G1) the company's link names the contact
    by its pseudonym alone, and comes first in the commands topic: the writer links it once the
    contact's own upsert has put its id in the id map."""
    config = (
        RuleConfig(contact_pseudonym_key=SecretBytes(b"companies-sandbox")) if redactable else RuleConfig()
    )
    pipeline = InProcessPipeline(config=config)
    pipeline.deliver(delivery("company_contacts/create", contact_body(T0), T0))
    later = T0 + timedelta(minutes=1)
    pipeline.deliver(delivery("customers/create", customer_body(later), later))
    pipeline.deliver(delivery("companies/create", company_body(later), later))
    assert not pipeline.dead_letters and not pipeline.field_problems
    commands = pipeline.commands
    if redactable:
        links = [c for c in commands if isinstance(c, Associate) and c.to.object_type == "contacts"]
        assert links and all(c.to.by_pseudonym_only for c in links)
        commands = [*links, *(c for c in commands if c not in links)]
    stats = await write_all(writer_settings, commands)
    assert stats.dead_lettered == 0
    dump = await admin(sandbox, "GET", "/_sandbox/dump")
    (contact,) = dump["contacts"]
    assert contact["properties"]["email"] == EMAIL
    (company,) = dump["companies"]
    assert company["properties"]["name"] == "Acme Wholesale"
    assert pairs(dump) == Counter({("companies", "contacts", 280): 1, ("contacts", "companies", 279): 1})
