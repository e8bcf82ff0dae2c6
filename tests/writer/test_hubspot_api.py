"""The typed HubSpot API and its transport, at the HTTP level (``httpx.MockTransport``): the path and
body each call sends, and what the transport does with each kind of answer (retries, waits,
errors), without a server. The paths are spelled out here on purpose: they pin what
``handlers.hubspot_paths`` builds to HubSpot's documented v3/v4 paths (a move to date-based
versions changes that module and these expectations)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from handlers.hubspot_api import MAX_INPUTS, HubSpotApi, LinkInput, RecordInput
from handlers.hubspot_client import (
    DailyLimitError,
    HubSpotAccessError,
    HubSpotClient,
    HubSpotError,
    HubSpotUnavailableError,
    RatePacer,
    RetryPolicy,
)

NO_WAIT = RetryPolicy(attempts=3, base_delay_s=0.0, max_delay_s=0.0)


class Recorder:
    """Answers from a script (the last answer repeats) and keeps every request."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[str, str, Any, httpx.Headers]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, request.url.path, body, request.headers))
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def api(self, retry: RetryPolicy = NO_WAIT, pacer: RatePacer | None = None) -> HubSpotApi:
        transport = httpx.MockTransport(self)
        return HubSpotApi(HubSpotClient("https://api.hubapi.com", "pat-secret-token", transport=transport,
                                        retry=retry, pacer=pacer))  # fmt: skip


OK = httpx.Response(200, json={"status": "COMPLETE", "results": []})


@pytest.mark.parametrize(("create", "operation"), [(True, "upsert"), (False, "update")])
async def test_upserts_go_by_unique_property_to_upsert_or_update(create: bool, operation: str) -> None:
    http = Recorder(OK)
    api = http.api()
    try:
        inputs = [RecordInput("order:1", "shopify_deal_key", {"dealname": "Order 1"})]
        answer = await api.upsert("deals", inputs, create=create)
    finally:
        await api.close()
    assert answer.status == 200 and not answer.failed
    ((method, path, body, headers),) = http.requests
    assert (method, path) == ("POST", f"/crm/v3/objects/deals/batch/{operation}")
    assert body == {"inputs": [{"id": "order:1", "idProperty": "shopify_deal_key",
                                "properties": {"dealname": "Order 1"}}]}  # fmt: skip
    assert headers["authorization"] == "Bearer pat-secret-token"


async def test_reads_and_archives_send_hubspots_shapes() -> None:
    http = Recorder(OK, httpx.Response(204))
    api = http.api()
    try:
        await api.read("contacts", "email", ["a@example.com"])
        archived = await api.archive("contacts", ["101", "102"])
    finally:
        await api.close()
    (_, read_path, read_body, _), (_, archive_path, archive_body, _) = http.requests
    assert read_path == "/crm/v3/objects/contacts/batch/read"
    assert read_body == {"inputs": [{"id": "a@example.com"}], "idProperty": "email", "properties": ["email"]}
    assert archive_path == "/crm/v3/objects/contacts/batch/archive"
    assert archive_body == {"inputs": [{"id": "101"}, {"id": "102"}]}
    assert archived.status == 204 and archived.body == {} and archived.results() == []


async def test_associations_are_v4_hubspot_defined_links() -> None:
    http = Recorder(OK)
    api = http.api()
    try:
        await api.link("deals", "contacts", [LinkInput("7", "9", 3)])
        await api.unlink("deals", "contacts", [LinkInput("7", "9", 3)])
    finally:
        await api.close()
    (_, create_path, create_body, _), (_, archive_path, archive_body, _) = http.requests
    assert create_path == "/crm/v4/associations/deals/contacts/batch/create"
    assert create_body == {"inputs": [{"from": {"id": "7"}, "to": {"id": "9"}, "types": [
        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]}]}  # fmt: skip
    assert archive_path == "/crm/v4/associations/deals/contacts/batch/archive"
    assert archive_body == {"inputs": [{"from": {"id": "7"}, "to": [{"id": "9"}]}]}


async def test_a_batch_takes_one_to_a_hundred_inputs() -> None:
    http = Recorder(OK)
    api = http.api()
    try:
        with pytest.raises(ValueError, match="1 to 100"):
            await api.archive("deals", [str(i) for i in range(MAX_INPUTS + 1)])
        with pytest.raises(ValueError):
            await api.read("deals", "shopify_deal_key", [])
    finally:
        await api.close()
    assert http.requests == [], "nothing sent"


async def test_server_errors_and_timeouts_are_retried_then_answered() -> None:
    calls = 0

    def flaky(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectTimeout("slow", request=request)
        return httpx.Response(503) if calls == 2 else OK

    client = HubSpotClient("https://api.hubapi.com", "t", transport=httpx.MockTransport(flaky), retry=NO_WAIT)
    api = HubSpotApi(client)
    try:
        answer = await api.read("deals", "shopify_deal_key", ["order:1"])
    finally:
        await api.close()
    assert answer.status == 200 and calls == 3
    assert (api.stats.requests, api.stats.retries, api.stats.server_errors) == (3, 2, 1)


async def test_every_retry_spent_is_unavailable_not_an_error_of_the_request() -> None:
    http = Recorder(httpx.Response(502))
    api = http.api()
    try:
        with pytest.raises(HubSpotUnavailableError, match="failed after 3 attempts"):
            await api.read("deals", "shopify_deal_key", ["order:1"])
    finally:
        await api.close()
    assert len(http.requests) == 3


async def test_a_ten_secondly_429_is_waited_out_and_the_daily_one_stops() -> None:
    limited = httpx.Response(429, headers={"Retry-After": "0"}, json={"policyName": "TEN_SECONDLY_ROLLING"})
    http = Recorder(limited, OK)
    api = http.api()
    try:
        assert (await api.read("deals", "shopify_deal_key", ["order:1"])).status == 200
        assert api.stats.rate_limited == 1 and api.stats.retries == 0, "a 429 is no failed attempt"
        daily = httpx.Response(429, json={"policyName": "DAILY"},
                               headers={"X-HubSpot-RateLimit-Daily": "250000",
                                        "X-HubSpot-RateLimit-Daily-Remaining": "0"})  # fmt: skip
        http.answers = [daily]
        with pytest.raises(DailyLimitError) as raised:
            await api.read("deals", "shopify_deal_key", ["order:1"])
    finally:
        await api.close()
    assert (raised.value.daily, raised.value.remaining) == (250000, 0)


async def test_permanent_refusals_raise_with_hubspots_answer_and_404_409_are_answers() -> None:
    refused = httpx.Response(
        400, json={"category": "VALIDATION_ERROR", "message": "Property values were not valid"}
    )
    http = Recorder(refused, httpx.Response(404, json={"category": "OBJECT_NOT_FOUND"}), httpx.Response(401))
    api = http.api()
    try:
        with pytest.raises(HubSpotError) as raised:
            await api.upsert("deals", [RecordInput("order:1", "shopify_deal_key", {})], create=True)
        assert raised.value.status == 400 and raised.value.body["category"] == "VALIDATION_ERROR"
        assert (await api.pipeline("nope")).status == 404
        with pytest.raises(HubSpotAccessError) as access:
            await api.pipelines()
    finally:
        await api.close()
    assert "pat-secret-token" not in str(access.value) and "check HUBSPOT_TOKEN" in str(access.value)
    assert len(http.requests) == 3, "none of them retried"


async def test_the_pacer_learns_the_accounts_limit_from_hubspots_headers() -> None:
    headers = {"X-HubSpot-RateLimit-Max": "190", "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
               "X-HubSpot-RateLimit-Remaining": "150"}  # fmt: skip
    pacer = RatePacer(limit=100, interval_s=10.0)
    http = Recorder(httpx.Response(200, json={"results": []}, headers=headers))
    api = http.api(pacer=pacer)
    try:
        await api.pipelines()
    finally:
        await api.close()
    assert (pacer.limit, pacer.interval_s, pacer.paused_until) == (190, 10.0, 0.0)


async def test_the_pacer_admits_within_the_in_flight_limit_and_counts_a_call_to_its_answer() -> None:
    """HubSpot counts a request when it arrives, somewhere between admission and answer: the
    pacer counts it until a whole interval after the answer, so queueing never makes it generous."""
    now = [0.0]
    pacer = RatePacer(limit=3, interval_s=10.0, margin=1.0, max_in_flight=2, clock=lambda: now[0])
    await pacer.acquire()
    await pacer.acquire()
    third = asyncio.create_task(pacer.acquire())
    await asyncio.sleep(0)
    assert not third.done(), "two in flight is the limit"
    now[0] = 5.0
    pacer.release()  # answered at 5 s: counts until 15 s
    await asyncio.wait_for(third, 1)
    fourth = asyncio.create_task(pacer.acquire())
    await asyncio.sleep(0)
    assert not fourth.done(), "three in the window: one answered, two in flight"
    now[0] = 14.0
    pacer.release()
    await asyncio.sleep(0)
    assert not fourth.done(), "the call answered at 5 s still counts at 14 s"
    now[0] = 15.5
    pacer.release()
    await asyncio.wait_for(fourth, 1)
    assert pacer.in_flight == 1
