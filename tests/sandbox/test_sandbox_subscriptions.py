"""X4: the sandbox's communication preferences API: HubSpot's shapes, answers and refusals
(``hubspot_sandbox/subscriptions.py``, rules ``subscription-*`` in RULES.md)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from hubspot_sandbox.subscriptions import DEFINITIONS
from tests.sandbox.conftest import StartSandbox
from tests.sandbox.support import http_client, post

BASE = "/communication-preferences/2026-03"
MARKETING = int(DEFINITIONS[0]["id"])
ADDRESS = "reader@example.test"


def status(state: str, address: str = ADDRESS, **extra: Any) -> dict[str, Any]:
    return {"subscriberIdString": address, "channel": "EMAIL", "statusState": state,
            "subscriptionId": MARKETING, **extra}  # fmt: skip


async def write(client: httpx.AsyncClient, *inputs: dict[str, Any], code: int = 200) -> Any:
    return await post(client, f"{BASE}/statuses/batch/write", {"inputs": list(inputs)}, code)


async def statuses(client: httpx.AsyncClient, address: str = ADDRESS) -> dict[int, str]:
    body = await post(client, f"{BASE}/statuses/batch/read?channel=EMAIL", {"inputs": [address]}, 200)
    (result,) = body["results"]
    return {s["subscriptionId"]: s["status"] for s in result["statuses"]}


async def test_x4_definitions_list_the_accounts_subscription_types(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{BASE}/definitions")
    assert response.status_code == 200
    names = {d["name"]: d["id"] for d in response.json()["results"]}
    assert names == {"Marketing Information": str(MARKETING), "One to One": DEFINITIONS[1]["id"]}


async def test_x4_a_status_is_set_read_back_and_an_unchanged_one_says_so(client: httpx.AsyncClient) -> None:
    assert await statuses(client) == {MARKETING: "NOT_SPECIFIED", int(DEFINITIONS[1]["id"]): "NOT_SPECIFIED"}
    first = await write(
        client, status("SUBSCRIBED", legalBasis="CONSENT_WITH_NOTICE", legalBasisExplanation="x")
    )
    assert first["status"] == "COMPLETE"
    (result,) = first["results"]
    assert (result["status"], result["setStatusSuccessReason"]) == ("SUBSCRIBED", "REQUESTED_CHANGE_OCCURRED")
    assert result["legalBasis"] == "CONSENT_WITH_NOTICE"
    again = await write(client, status("SUBSCRIBED"))
    assert again["results"][0]["setStatusSuccessReason"] == "NO_STATUS_CHANGE"
    assert (await statuses(client))[MARKETING] == "SUBSCRIBED"


async def test_x4_the_current_api_resubscribes_an_address_that_opted_out(client: httpx.AsyncClient) -> None:
    """What v4 and the date-based versions document (and v3's subscribe refused): a writer must
    read the status first if it is never to resubscribe anyone."""
    await write(client, status("UNSUBSCRIBED"))
    back = await write(client, status("SUBSCRIBED"))
    assert back["results"][0]["setStatusSuccessReason"] == "RESUBSCRIBE_OCCURRED"
    other = "other@example.test"
    out = await post(client, f"{BASE}/statuses/{other}/unsubscribe-all?channel=EMAIL", None, 200)
    assert {r["setStatusSuccessReason"] for r in out["results"]} == {"UNSUBSCRIBE_FROM_ALL_OCCURRED"}
    wide = await post(client, f"{BASE}/statuses/batch/unsubscribe-all/read?channel=EMAIL",
                      {"inputs": [other, ADDRESS]}, 200)  # fmt: skip
    found = {r["subscriberIdString"]: r["wideStatuses"] for r in wide["results"]}
    assert [w["wideStatusType"] for w in found[other]] == ["PORTAL_WIDE"] and found[ADDRESS] == []
    assert set((await statuses(client, other)).values()) == {"UNSUBSCRIBED"}


@pytest.mark.parametrize(
    "change",
    [
        {"channel": "SMS"},
        {"statusState": "OPTED_IN"},
        {"subscriptionId": 1},  # not a type of the account
        {"subscriptionId": str(MARKETING)},  # an integer, not its text
        {"legalBasis": "BECAUSE"},
        {"subscriberIdString": "not an address"},
    ],
)
async def test_x4_a_malformed_status_change_is_refused_whole(
    client: httpx.AsyncClient, change: dict[str, Any]
) -> None:
    good = status("UNSUBSCRIBED", "first@example.test")
    body = await write(client, good, {**status("UNSUBSCRIBED"), **change}, code=400)
    assert body["category"] == "VALIDATION_ERROR"
    assert (await statuses(client, "first@example.test"))[MARKETING] == "NOT_SPECIFIED"  # nothing applied


async def test_x4_batches_take_1_to_100_inputs_and_reads_need_the_email_channel(
    client: httpx.AsyncClient,
) -> None:
    await write(client, code=400)
    await write(client, *[status("UNSUBSCRIBED", f"a{i}@example.test") for i in range(101)], code=400)
    await post(client, f"{BASE}/statuses/batch/read", {"inputs": [ADDRESS]}, 400)
    await post(client, f"{BASE}/statuses/batch/read?channel=SMS", {"inputs": [ADDRESS]}, 400)
    await post(client, f"{BASE}/statuses/{ADDRESS}/unsubscribe-all", None, 400)


async def test_x4_a_gdpr_account_refuses_a_change_without_a_legal_basis(start_sandbox: StartSandbox) -> None:
    sandbox = await start_sandbox(gdpr_enabled=True)
    async with http_client(sandbox) as client:
        assert (await write(client, status("UNSUBSCRIBED"), code=400))["category"] == "VALIDATION_ERROR"
        one = await post(
            client, f"{BASE}/statuses/{ADDRESS}", {**status("UNSUBSCRIBED"), "legalBasis": "NON_GDPR"}, 200
        )
        assert one["results"][0]["status"] == "UNSUBSCRIBED"


async def test_x4_the_api_needs_the_token_like_every_other(start_sandbox: StartSandbox) -> None:
    sandbox = await start_sandbox()
    async with httpx.AsyncClient(base_url=sandbox.url) as anonymous:
        response = await anonymous.get(f"{BASE}/definitions")
    assert response.status_code == 401
