"""Tiers, limits and pipelines as HubSpot documents them: each refused request gets HubSpot's
status and category (sources in hubspot_sandbox/RULES.md)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from hubspot_sandbox.tiers import TIER_LIMITS, TIERS
from tests.sandbox.conftest import StartSandbox
from tests.sandbox.support import http_client, post

DEFAULT_STAGES = [
    ("appointmentscheduled", "Appointment Scheduled", "0.2", "false"),
    ("qualifiedtobuy", "Qualified To Buy", "0.4", "false"),
    ("presentationscheduled", "Presentation Scheduled", "0.6", "false"),
    ("decisionmakerboughtin", "Decision Maker Bought-In", "0.8", "false"),
    ("contractsent", "Contract Sent", "0.9", "false"),
    ("closedwon", "Closed Won", "1.0", "true"),
    ("closedlost", "Closed Lost", "0.0", "true"),
]


def pipeline(*probabilities: Any, label: str = "Ecommerce", **metadata: Any) -> dict[str, Any]:
    stages = [
        {"label": f"Stage {i}", "displayOrder": i, "metadata": {"probability": p, **metadata}}
        for i, p in enumerate(probabilities)
    ]
    return {"label": label, "displayOrder": 1, "stages": stages}


@pytest.mark.parametrize("tier", TIERS)
async def test_each_tier_has_hubspots_private_app_limits(start_sandbox: StartSandbox, tier: str) -> None:
    sandbox = await start_sandbox(tier=tier)
    async with http_client(sandbox) as client:
        response = await client.get("/crm/v3/pipelines/deals")
    limits = TIER_LIMITS[tier]  # type: ignore[index]
    assert response.headers["X-HubSpot-RateLimit-Max"] == str(limits.per_10s)
    assert response.headers["X-HubSpot-RateLimit-Daily"] == str(limits.daily)
    expected = {"free": (100, 250_000), "starter": (100, 250_000), "professional": (190, 625_000)}
    assert (limits.per_10s, limits.daily) == expected.get(tier, (190, 1_000_000))


async def test_explicit_limits_override_the_tier(start_sandbox: StartSandbox) -> None:
    sandbox = await start_sandbox(tier="free", rate_limit_per_10s=7, rate_limit_daily=9)
    async with http_client(sandbox) as client:
        response = await client.get("/crm/v3/pipelines/deals")
    assert response.headers["X-HubSpot-RateLimit-Max"] == "7"
    assert response.headers["X-HubSpot-RateLimit-Daily"] == "9"


async def test_a_free_account_has_the_default_pipeline_and_cannot_create_one(
    start_sandbox: StartSandbox,
) -> None:
    sandbox = await start_sandbox(tier="free")
    async with http_client(sandbox) as client:
        [default] = (await client.get("/crm/v3/pipelines/deals")).json()["results"]
        assert (default["id"], default["label"]) == ("default", "Sales Pipeline")
        stages = [
            (s["id"], s["label"], s["metadata"]["probability"], s["metadata"]["isClosed"])
            for s in default["stages"]
        ]
        assert stages == DEFAULT_STAGES
        body = await post(client, "/crm/v3/pipelines/deals", pipeline("0.1", "1.0"), 400)
        assert body["category"] == "VALIDATION_ERROR" and "Starter" in body["message"]
        assert len((await client.get("/crm/v3/pipelines/deals")).json()["results"]) == 1
        deal = {
            "inputs": [{"properties": {"dealname": "d", "pipeline": "default", "dealstage": "closedwon"}}]
        }
        await post(client, "/crm/v3/objects/deals/batch/create", deal, 201)


async def test_a_free_account_adds_stages_to_its_default_pipeline(start_sandbox: StartSandbox) -> None:
    """Every tier edits its pipelines' stages (only more pipelines need Starter): the stages
    endpoint takes a stage with the same rules as a new pipeline's stages."""
    sandbox = await start_sandbox(tier="free")
    async with http_client(sandbox) as client:
        stages = "/crm/v3/pipelines/deals/default/stages"
        added = await post(
            client, stages, {"label": "Checkout Abandoned", "metadata": {"probability": "0.1"}}, 201
        )
        assert added["metadata"] == {"isClosed": "false", "probability": "0.1"}
        assert added["displayOrder"] == len(DEFAULT_STAGES)
        [default] = (await client.get("/crm/v3/pipelines/deals")).json()["results"]
        assert default["stages"][-1]["id"] == added["id"]
        twice = await post(
            client, stages, {"label": "Checkout Abandoned", "metadata": {"probability": "0.1"}}, 400
        )
        assert twice["category"] == "VALIDATION_ERROR"
        odd = await post(client, stages, {"label": "Odd", "metadata": {"probability": "0.15"}}, 400)
        assert "increments of 0.1" in odd["message"]
        await post(
            client,
            "/crm/v3/pipelines/deals/nope/stages",
            {"label": "X", "metadata": {"probability": "0.1"}},
            404,
        )


@pytest.mark.parametrize("tier", ["starter", "professional", "enterprise"])
async def test_paid_tiers_create_pipelines(start_sandbox: StartSandbox, tier: str) -> None:
    sandbox = await start_sandbox(tier=tier)
    async with http_client(sandbox) as client:
        await post(client, "/crm/v3/pipelines/deals", pipeline("0.1", "1.0"), 201)


@pytest.mark.parametrize("probability", ["0.15", 0.25, "1.1", "-0.1", "half"])
async def test_deal_stage_probabilities_are_tenths_between_0_and_1(
    client: httpx.AsyncClient, probability: Any
) -> None:
    body = await post(client, "/crm/v3/pipelines/deals", pipeline("0.2", probability), 400)
    assert body["category"] == "VALIDATION_ERROR" and "increments of 0.1" in body["message"]


async def test_stages_at_0_and_1_are_the_closed_ones(client: httpx.AsyncClient) -> None:
    created = await post(client, "/crm/v3/pipelines/deals", pipeline("0.0", 0.5, "0.9", 1, "1.0"), 201)
    closed = [(s["metadata"]["probability"], s["metadata"]["isClosed"]) for s in created["stages"]]
    assert closed == [("0.0", "true"), ("0.5", "false"), ("0.9", "false"), ("1", "true"), ("1.0", "true")]


@pytest.mark.parametrize(("probability", "is_closed"), [("0.5", "true"), ("1.0", "false"), ("0.0", False)])
async def test_a_stage_marked_closed_against_its_probability_is_refused(
    client: httpx.AsyncClient, probability: str, is_closed: Any
) -> None:
    body = await post(client, "/crm/v3/pipelines/deals", pipeline(probability, isClosed=is_closed), 400)
    assert body["category"] == "VALIDATION_ERROR" and "isClosed" in body["message"]


async def test_stage_labels_are_unique_in_a_pipeline(client: httpx.AsyncClient) -> None:
    twice = pipeline("0.1", "0.2")
    twice["stages"][1]["label"] = twice["stages"][0]["label"]
    body = await post(client, "/crm/v3/pipelines/deals", twice, 400)
    assert body["category"] == "VALIDATION_ERROR"


SEARCH = "/crm/v3/objects/contacts/search"


async def test_search_answers_without_rate_limit_headers(client: httpx.AsyncClient) -> None:
    searched = await client.post(SEARCH, json={"filterGroups": []})
    assert searched.status_code == 200
    assert not [h for h in searched.headers if h.lower().startswith("x-hubspot-ratelimit")]
    assert "X-HubSpot-RateLimit-Max" in (await client.get("/crm/v3/pipelines/deals")).headers


async def test_search_takes_five_requests_a_second_per_account(start_sandbox: StartSandbox) -> None:
    clock = [100.0]
    sandbox = await start_sandbox(monotonic=lambda: clock[0])
    async with http_client(sandbox) as client:
        for _ in range(5):
            assert (await client.post(SEARCH, json={})).status_code == 200
        refused = await client.post(SEARCH, json={})
        assert refused.status_code == 429
        assert refused.json()["errorType"] == "RATE_LIMIT" and refused.headers["Retry-After"] == "1"
        assert (await client.get("/crm/v3/pipelines/deals")).status_code == 200  # other calls go on
        clock[0] += 1.0
        assert (await client.post(SEARCH, json={})).status_code == 200
