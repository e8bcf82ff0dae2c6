"""X2 and X4 through ``simulate``: bridge, worker, writer and the HubSpot sandbox on a real broker.

- A B2B store (X2), in deals and in orders mode: a company with two locations, a company contact
  who never orders, and a B2B order placed by the other contact for the second location, all in
  Shopify's documented payload shapes (global ids; the company contact carries no email). The
  account ends with one company, linked to both contacts and to the deal or the Order.
- Consent changes (X4): a customer's email and SMS consent move (subscribed, unsubscribed, ...)
  and the contact's properties follow; by default no subscription status exists in HubSpot
  afterwards, and with ``SHOPSYNC_SYNC_EMAIL_SUBSCRIPTION`` set the email change reaches it.
Nothing is lost in any of them (R7).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools.samplestore import customer_body
from devtools.simulate import Result, parse, run
from hubspot_sandbox.subscriptions import DEFINITIONS
from tests.rules.test_companies import SAMPLE_COMPANY_GID, sample_company, sample_location
from tests.rules.test_company_members import contact_body
from tests.rules.test_consent import email_consent, sms_consent
from tests.rules.test_journeys import EMAIL, T0, order_at
from tests.simulate.test_simulate import write

pytestmark = pytest.mark.kafka
COMPANY = 408372092144951419
HEAD_OFFICE, DEPOT = 8101, 8102
READER_ID, READER = 5002, "reader@acme.test"
MINUTE = timedelta(minutes=1)


def line(at: Any, topic: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"at": at.isoformat(), "shopify": topic, "body": body}


def location(location_id: int, name: str, minutes: int) -> dict[str, Any]:
    body = sample_location(T0 + minutes * MINUTE)
    body["admin_graphql_api_id"] = f"gid://shopify/CompanyLocation/{location_id}"
    body["name"], body["created_at"] = name, (T0 + minutes * MINUTE).isoformat()
    return body


def b2b_lines() -> list[dict[str, Any]]:
    reader = customer_body(READER_ID, READER, "Rea", "Der", T0)
    contact = contact_body(T0 + 4 * MINUTE, customer_id=READER_ID)
    contact["company"]["admin_graphql_api_id"] = SAMPLE_COMPANY_GID
    order = order_at(T0 + 6 * MINUTE)
    order["company"] = {"id": COMPANY, "location_id": DEPOT}
    return [
        line(T0, "companies/create", sample_company(T0)),
        line(T0 + MINUTE, "company_locations/create", location(HEAD_OFFICE, "Head office", 1)),
        line(T0 + 2 * MINUTE, "company_locations/create", location(DEPOT, "Depot", 2)),
        line(T0 + 3 * MINUTE, "customers/create", reader),
        line(T0 + 4 * MINUTE, "company_contacts/create", contact),  # the reader never orders
        line(T0 + 6 * MINUTE, "orders/create", order),
    ]


def links(result: Result) -> set[tuple[str, str, int]]:
    """The company's associations, the other end named by its unique property."""
    account = result.account
    names = {str(r["id"]): ("contacts", r["properties"]["email"]) for r in account["contacts"]}
    names |= {str(r["id"]): ("deals", r["properties"]["shopify_deal_key"]) for r in account["deals"]}
    names |= {str(r["id"]): ("orders", r["properties"]["hs_external_order_id"]) for r in account["orders"]}
    (company,) = account["companies"]
    return {(*names[str(a["to_id"])], int(a["type_id"])) for a in account["associations"]
            if str(a["from_id"]) == str(company["id"]) and str(a["to_id"]) in names}  # fmt: skip


@pytest.mark.parametrize("mode", ["deals", "orders"])
async def test_x2_a_b2b_store_through_simulate_ends_linked_in_hubspot(
    kafka_bootstrap: str, tmp_path: Path, mode: str
) -> None:
    result = await run(parse(write(tmp_path, list(b2b_lines()))), kafka_bootstrap, tmp_path, 120,
                       commerce_objects=mode)  # fmt: skip
    assert result.report.lost == 0 and not any(result.dead_letters.values()), result.report
    (company,) = result.account["companies"]
    props = company["properties"]
    assert props["shopify_company_id"] == str(COMPANY) and props["name"] == "Example Company"
    assert props["shopify_company_locations"] == f"Head office ({HEAD_OFFICE}); Depot ({DEPOT})"
    assert props["city"] == "Montreal"  # the earliest location's billing address
    held = links(result)
    assert {("contacts", EMAIL, 280), ("contacts", READER, 280)} <= held
    if mode == "deals":
        assert [k for k, _, t in held if k == "deals" and t == 342] == ["deals"] and not result.account[
            "orders"
        ]
    else:
        assert [k for k, _, t in held if k == "orders" and t == 510] == ["orders"] and not result.account[
            "deals"
        ]


CONSENTER = "consent@example.test"
STATES = [("subscribed", "subscribed"), ("unsubscribed", "subscribed"), ("not_subscribed", "unsubscribed"),
          ("unsubscribed", "pending")]  # fmt: skip
"""The customer's (email, SMS) consent, a day apart."""


def consent_lines() -> list[dict[str, Any]]:
    lines = []
    for day, (email_state, sms_state) in enumerate(STATES):
        at = T0 + timedelta(days=day)
        body = customer_body(6001, CONSENTER, "Con", "Sent", T0, updated_at=at, phone="+15415550111")
        body["email_marketing_consent"] = email_consent(email_state, at)
        body["sms_marketing_consent"] = sms_consent(sms_state, at)
        lines.append(line(at, "customers/create" if day == 0 else "customers/update", body))
    return lines


@pytest.mark.parametrize("subscription", ["", "Marketing Information"])
async def test_x4_consent_changes_through_simulate_and_subscriptions_only_when_set(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, subscription: str
) -> None:
    monkeypatch.setenv("SHOPSYNC_SYNC_EMAIL_SUBSCRIPTION", subscription)
    monkeypatch.setenv("SHOPSYNC_EMAIL_LEGAL_BASIS", "CONSENT_WITH_NOTICE")
    result = await run(parse(write(tmp_path, list[object](consent_lines()))), kafka_bootstrap, tmp_path, 120)
    assert result.report.lost == 0 and not any(result.dead_letters.values()), result.report
    (contact,) = [c for c in result.account["contacts"] if c["properties"]["email"] == CONSENTER]
    props = contact["properties"]
    assert props["shopify_email_marketing_consent_state"] == "unsubscribed"
    assert props["shopify_sms_marketing_consent_state"] == "pending"
    assert props["shopify_email_marketing_consent_updated_at"] == (T0 + timedelta(days=3)).strftime(
        "%Y-%m-%dT%H:%M:%S.000Z"
    )
    statuses = [(s["email"], s["subscriptionId"], s["status"]) for s in result.account["subscriptions"]]
    if not subscription:  # the default: nothing in HubSpot's subscription statuses changed
        assert statuses == []
    else:  # subscribed, then unsubscribed (the SMS channel never reaches HubSpot)
        assert statuses == [(CONSENTER, int(DEFINITIONS[0]["id"]), "UNSUBSCRIBED")]
