"""The account set-up against an account HubSpot-shaped at the HTTP level (``httpx.MockTransport``):
what it sends to create properties, and which pipeline it settles on for each kind of account."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from config import Settings
from handlers import hubspot_paths as paths
from handlers.account_setup import (
    BUILT_IN,
    CUSTOM_PROPERTIES,
    FIELD_TYPE,
    AccountSetupError,
    ensure_pipeline,
    ensure_properties,
    set_up_account,
)
from handlers.hubspot_api import HubSpotApi
from handlers.hubspot_client import HubSpotClient, RetryPolicy
from handlers.writer import SETUP_RECHECK, Pauses, WriterStats, _set_up
from handlers.writer_time import Backoff, ManualClock
from streams.rules.journeys import STAGES

VALID_FIELD_TYPES = {
    "bool": {"booleancheckbox"},
    "enumeration": {"booleancheckbox", "checkbox", "radio", "select", "calculation_equation"},
    "date": {"date"},
    "datetime": {"date"},
    "string": {"file", "text", "textarea", "calculation_equation", "html", "phonenumber"},
    "number": {"number", "calculation_equation"},
}
"""HubSpot's "Property type and fieldType values" table (developers.hubspot.com, CRM API | Properties)."""

GROUPS = {"contacts": "contactinformation", "deals": "dealinformation", "products": "productinformation",
          "line_items": "lineiteminformation", "companies": "companyinformation"}  # fmt: skip
SALES_STAGES = ["Appointment Scheduled", "Qualified To Buy", "Closed Won", "Closed Lost"]


@dataclass
class FakeAccount:
    """Just enough of a HubSpot account for the set-up: property definitions, deal pipelines, and
    the tier's rule on creating pipelines. Every request is recorded."""

    can_create_pipelines: bool = True
    refusal_status: int = 403
    default_stages: list[str] = field(default_factory=lambda: list(SALES_STAGES))
    properties: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    pipelines: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for object_type, names in BUILT_IN.items():
            self.properties[object_type] = {
                n: {"name": n, "type": "string", "fieldType": "text", "groupName": GROUPS[object_type],
                    "calculated": False, "modificationMetadata": {"readOnlyValue": False}}
                for n in names
            }  # fmt: skip
        self.pipelines.append(self._pipeline("default", "Sales Pipeline", self.default_stages))

    @staticmethod
    def _pipeline(pipeline_id: str, label: str, stages: list[str]) -> dict[str, Any]:
        listed = [{"id": f"{pipeline_id}-{i}", "label": s} for i, s in enumerate(stages)]
        return {"id": pipeline_id, "label": label, "stages": listed}

    def handle(self, request: httpx.Request) -> httpx.Response:
        body: Any = json.loads(request.content) if request.content else None
        path = request.url.path
        self.requests.append((request.method, path, body))
        for object_type in self.properties:
            defs = self.properties[object_type]
            if path == paths.properties(object_type):
                if request.method == "GET":
                    return httpx.Response(200, json={"results": list(defs.values())})
                defs[body["name"]] = body
                return httpx.Response(201, json=body)
            if path == paths.property_batch(object_type, "create"):
                defs.update({b["name"]: b for b in body["inputs"]})
                return httpx.Response(201, json={"status": "COMPLETE", "results": body["inputs"]})
            name = path.rsplit("/", 1)[-1]
            if path == paths.property_named(object_type, name) and request.method == "PATCH":
                defs[name] = {**defs[name], **body}
                return httpx.Response(200, json=defs[name])
        if path == paths.pipelines("deals"):
            if request.method == "GET":
                return httpx.Response(200, json={"results": self.pipelines})
            if not self.can_create_pipelines:
                refusal = {
                    "status": "error",
                    "category": "MISSING_SCOPES",
                    "message": "cannot create pipelines",
                }
                return httpx.Response(self.refusal_status, json=refusal)
            made = self._pipeline(
                str(100 + len(self.pipelines)), body["label"], [s["label"] for s in body["stages"]]
            )
            self.pipelines.append(made)
            return httpx.Response(201, json=made)
        for pipeline in self.pipelines:
            if path == paths.pipeline(pipeline["id"]):
                return httpx.Response(200, json=pipeline)
        if path.startswith(paths.pipelines("deals") + "/"):
            return httpx.Response(404, json={"category": "OBJECT_NOT_FOUND", "message": "no such pipeline"})
        if path == paths.ACCOUNT_DETAILS:
            return httpx.Response(200, json={"timeZone": "Europe/Berlin", "utcOffsetMilliseconds": 3600000})
        return httpx.Response(404, json={"category": "NOT_FOUND", "message": f"unknown path {path}"})

    def client(self) -> HubSpotApi:
        transport = httpx.MockTransport(self.handle)
        return HubSpotApi(HubSpotClient("https://api.hubapi.com", "pat-test", transport=transport,
                                        retry=RetryPolicy(attempts=1)))  # fmt: skip

    def posts(self, path: str) -> list[Any]:
        return [b for m, p, b in self.requests if m == "POST" and p == path]

    def created(self, object_type: str) -> list[dict[str, Any]]:
        """Every property definition created for the type, by batch or one at a time."""
        batches = self.posts(paths.property_batch(object_type, "create"))
        return [b for batch in batches for b in batch["inputs"]] + self.posts(paths.properties(object_type))

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p, _ in self.requests if m != "GET"]


async def test_created_properties_are_what_hubspots_schema_requires() -> None:
    account = FakeAccount()
    client = account.client()
    try:
        created = await ensure_properties(client)
    finally:
        await client.close()
    assert created == sum(len(v) for v in CUSTOM_PROPERTIES.values())
    for object_type in CUSTOM_PROPERTIES:
        assert len(account.posts(paths.property_batch(object_type, "create"))) == 1, "one call a type"
        for body in account.created(object_type):
            assert body["fieldType"] in VALID_FIELD_TYPES[body["type"]], body
            assert body["groupName"] == GROUPS[object_type]
            for i, option in enumerate(body.get("options", [])):
                assert option == {"label": option["label"], "value": option["value"], "displayOrder": i,
                                  "hidden": False}  # fmt: skip
            if body["type"] == "bool":
                assert [o["value"] for o in body["options"]] == ["true", "false"]
    line_items = {b["name"] for b in account.created("line_items")}
    assert "shopify_total_discount" in line_items and "hs_total_discount" not in line_items


def test_every_type_maps_to_a_pair_hubspot_lists() -> None:
    for hubspot_type, field_type in FIELD_TYPE.values():
        assert field_type in VALID_FIELD_TYPES[hubspot_type]


async def test_custom_properties_go_to_the_group_the_account_uses() -> None:
    account = FakeAccount()
    for prop in account.properties["products"].values():
        prop["groupName"] = "product_information"  # an account whose group is named otherwise
    client = account.client()
    try:
        await ensure_properties(client)
    finally:
        await client.close()
    assert {b["groupName"] for b in account.created("products")} == {"product_information"}


async def test_a_property_the_writer_sets_that_hubspot_computes_stops_the_setup_by_name() -> None:
    account = FakeAccount()
    account.properties["line_items"]["price"]["modificationMetadata"] = {"readOnlyValue": True}
    account.properties["deals"]["amount"]["calculated"] = True
    client = account.client()
    with pytest.raises(AccountSetupError) as raised:
        try:
            await ensure_properties(client)
        finally:
            await client.close()
    assert "deals properties amount" in str(raised.value) and "line_items properties price" in str(
        raised.value
    )
    assert not any(m == "POST" for m, _, _ in account.requests), (
        "nothing created in an account it cannot write"
    )


async def test_an_upsert_key_that_exists_without_unique_values_is_reported() -> None:
    account = FakeAccount()
    key = {"name": "shopify_deal_key", "type": "string", "fieldType": "text", "hasUniqueValue": False}
    account.properties["deals"]["shopify_deal_key"] = key
    client = account.client()
    with pytest.raises(AccountSetupError, match="property shopify_deal_key exists without unique values"):
        try:
            await ensure_properties(client)
        finally:
            await client.close()


async def test_on_starter_and_above_the_pipeline_is_created_once_with_the_six_stages() -> None:
    account = FakeAccount()
    client = account.client()
    try:
        first = await set_up_account(client, "Ecommerce Pipeline")
        second = await set_up_account(client, "Ecommerce Pipeline")
    finally:
        await client.close()
    assert first == second and first.pipeline_id != "default"
    assert list(first.stage_ids) == list(STAGES) and first.time_zone == "Europe/Berlin"
    (created,) = account.posts(paths.pipelines("deals"))
    probabilities = [float(s["metadata"]["probability"]) for s in created["stages"]]
    assert all(round(p * 10) == p * 10 and 0 <= p <= 1 for p in probabilities)


@pytest.mark.parametrize("status", [400, 403])
async def test_on_free_the_default_pipeline_is_used_with_the_stages_found_by_label(status: int) -> None:
    stages = ["Appointment Scheduled", *STAGES[::-1], "checkout pending "]
    account = FakeAccount(can_create_pipelines=False, refusal_status=status, default_stages=stages)
    client = account.client()
    try:
        schema = await ensure_pipeline(client, "Ecommerce Pipeline")
    finally:
        await client.close()
    assert schema.pipeline_id == "default"
    assert schema.stage_ids == {s: f"default-{6 - i}" for i, s in enumerate(STAGES)}, "exact labels first"


async def test_on_free_missing_stages_are_named_with_where_to_add_them() -> None:
    account = FakeAccount(can_create_pipelines=False, default_stages=[*SALES_STAGES, "Processed", "Shipped"])
    client = account.client()
    with pytest.raises(AccountSetupError) as raised:
        try:
            await ensure_pipeline(client, "Ecommerce Pipeline")
        finally:
            await client.close()
    message = str(raised.value)
    assert "'Checkout Pending', 'Checkout Abandoned', 'Checkout Completed', 'Cancelled'" in message
    assert "Settings > Objects > Deals > Pipelines" in message and "'Sales Pipeline' (id default)" in message


async def test_a_configured_pipeline_id_is_used_and_nothing_is_created() -> None:
    account = FakeAccount(default_stages=list(STAGES))
    client = account.client()
    try:
        schema = await ensure_pipeline(client, "Ecommerce Pipeline", "default")
        with pytest.raises(
            AccountSetupError, match="SHOPSYNC_HUBSPOT_PIPELINE_ID names the deal pipeline '77'"
        ):
            await ensure_pipeline(client, "Ecommerce Pipeline", "77")
    finally:
        await client.close()
    assert schema.pipeline_id == "default" and set(schema.stage_ids) == set(STAGES)
    assert not account.posts(paths.pipelines("deals"))


async def test_the_writer_reports_missing_stages_then_starts_once_they_are_added(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No crash loop: the writer says what to add and where, waits by its clock, and starts as
    soon as the account has the stages, without a restart."""
    account = FakeAccount(can_create_pipelines=False)
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    stop = asyncio.Event()
    pauses = Pauses(clock, Backoff(), stop, WriterStats())
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:1")
    client = account.client()

    reported = asyncio.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "not ready for the writer" in record.getMessage():
                reported.set()

    async def operator_adds_the_stages() -> None:
        await reported.wait()
        account.pipelines[0]["stages"] += [{"id": f"new-{i}", "label": s} for i, s in enumerate(STAGES)]
        clock.advance(SETUP_RECHECK)

    logging.getLogger("handlers.writer").addHandler(watch := Watch())
    caplog.set_level(logging.ERROR, logger="handlers.writer")
    try:
        helper = asyncio.create_task(operator_adds_the_stages())
        schema = await asyncio.wait_for(_set_up(client, settings, pauses), 10)
        await helper
    finally:
        logging.getLogger("handlers.writer").removeHandler(watch)
        await client.close()
    assert schema is not None and schema.pipeline_id == "default"
    assert schema.stage_ids == {s: f"new-{i}" for i, s in enumerate(STAGES)}
    (logged,) = [r.getMessage() for r in caplog.records if "not ready" in r.getMessage()]
    assert "'Checkout Pending'" in logged and "Settings > Objects > Deals > Pipelines" in logged


async def _set_up_twice(account: FakeAccount) -> tuple[int, list[tuple[str, str]]]:
    """Set the account up, then again; the second run's change count and its requests."""
    client = account.client()
    try:
        await set_up_account(client, "Ecommerce Pipeline")
        account.requests.clear()
        changed = await ensure_properties(client)
        await ensure_pipeline(client, "Ecommerce Pipeline")
    finally:
        await client.close()
    return changed, [(m, p) for m, p, _ in account.requests]


async def test_a_configured_account_is_read_and_nothing_is_written() -> None:
    changed, requests = await _set_up_twice(FakeAccount())
    assert changed == 0
    assert requests == [("GET", paths.properties(t)) for t in CUSTOM_PROPERTIES] + [
        ("GET", paths.pipelines("deals"))
    ], "one read per object type and the pipelines; no write"


async def test_a_property_deleted_in_hubspot_is_created_again_alone() -> None:
    account = FakeAccount()
    client = account.client()
    try:
        await set_up_account(client, "Ecommerce Pipeline")
        del account.properties["deals"]["shopify_abandoned_at"]
        account.requests.clear()
        changed = await ensure_properties(client)
    finally:
        await client.close()
    assert changed == 1
    assert account.writes() == [("POST", paths.property_batch("deals", "create"))]
    (recreated,) = account.created("deals")
    assert recreated["name"] == "shopify_abandoned_at" and recreated["type"] == "datetime"


async def test_an_option_changed_in_hubspot_is_updated_and_an_admins_own_option_kept() -> None:
    account = FakeAccount()
    client = account.client()
    try:
        await set_up_account(client, "Ecommerce Pipeline")
        prop = account.properties["deals"]["shopify_recovered_checkout"]
        prop["options"] = [
            {"label": "Ja", "value": "true", "displayOrder": 0, "hidden": False},  # relabelled
            {"label": "Unknown", "value": "unknown", "displayOrder": 1, "hidden": False},  # an admin's
        ]  # and "false" deleted
        account.requests.clear()
        changed = await ensure_properties(client)
    finally:
        await client.close()
    assert changed == 1
    assert account.writes() == [("PATCH", paths.property_named("deals", "shopify_recovered_checkout"))]
    options = account.properties["deals"]["shopify_recovered_checkout"]["options"]
    assert [(o["label"], o["value"]) for o in options] == [
        ("Yes", "true"),
        ("Unknown", "unknown"),
        ("No", "false"),
    ]


async def test_x4_consent_properties_are_enumerations_with_every_shopify_value_as_an_option() -> None:
    """X4: the seven consent properties, in the contacts' group; each enumeration a ``select`` whose
    options carry label, value, displayOrder and hidden (HubSpot's "Create a property" body), one
    per value Shopify documents, so no value Shopify sends is refused as ``INVALID_OPTION``."""
    from streams.rules.consent import CONSENT_PROPERTIES

    account = FakeAccount()
    client = account.client()
    try:
        await ensure_properties(client)
    finally:
        await client.close()
    created = {b["name"]: b for b in account.created("contacts")}
    for prop in CONSENT_PROPERTIES:
        body = created[prop.name]
        assert body["groupName"] == "contactinformation" and body["label"] == prop.label
        if prop.type == "datetime":
            assert (body["type"], body["fieldType"]) == ("datetime", "date") and "options" not in body
            continue
        assert (body["type"], body["fieldType"]) == ("enumeration", "select")
        assert body["options"] == [
            {"label": label, "value": value, "displayOrder": i, "hidden": False}
            for i, (label, value) in enumerate(prop.options)
        ]
        assert all(o["label"] and o["value"] for o in body["options"])
    states = [o["value"] for o in created["shopify_email_marketing_consent_state"]["options"]]
    assert states == ["subscribed", "not_subscribed", "unsubscribed", "pending", "redacted", "invalid"]
    levels = [o["value"] for o in created["shopify_sms_marketing_opt_in_level"]["options"]]
    assert levels == ["single_opt_in", "confirmed_opt_in", "unknown"]
