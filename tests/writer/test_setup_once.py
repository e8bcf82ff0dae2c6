"""Set-up once, against the sandbox over HTTP: a configured account is verified in at most three
calls from the remembered set-up, a changed definition or pipeline sets it up in full, and a write
HubSpot refuses for a property deleted after the set-up is repaired (``handlers.setup_once``,
``handlers.schema_drift``). The memory is an in-process stand-in for ``hubspot.setup`` here;
``test_writer_setup.py`` runs the same through Kafka and the writer."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from handlers import account_setup
from handlers import hubspot_paths as paths
from handlers.account_setup import PropertyDef
from handlers.hubspot_api import HubSpotApi, RecordInput
from handlers.hubspot_client import HubSpotClient, HubSpotError
from handlers.schema_drift import drifted
from handlers.setup_cache import SetupCache, SetupRecord
from handlers.setup_once import MANAGED_PROPERTIES, AccountDriftError, SetupOnce
from hubspot_sandbox import Sandbox
from streams.rules.journeys import STAGES
from tests.writer.conftest import TOKEN, admin

LABEL = "Ecommerce Pipeline"


class MemoryCache(SetupCache):
    """``hubspot.setup`` as a dict: what the set-up remembers, without Kafka."""

    def __init__(self) -> None:
        super().__init__("unused:9092", "hubspot.setup", lambda: None)
        self.records: dict[str, SetupRecord] = {}

    async def load(self, key: str) -> SetupRecord | None:
        return self.records.get(key)

    async def save(self, key: str, record: SetupRecord) -> bool:
        self.records[key] = record
        return True


@pytest.fixture
async def api(sandbox: Sandbox) -> AsyncIterator[HubSpotApi]:
    client = HubSpotApi(HubSpotClient(sandbox.url, TOKEN))
    try:
        yield client
    finally:
        await client.close()


async def calls(sandbox: Sandbox) -> Counter[str]:
    return Counter((await admin(sandbox, "GET", "/_sandbox/stats"))["requests"])


async def started(sandbox: Sandbox, api: HubSpotApi, cache: SetupCache, label: str = LABEL) -> Counter[str]:
    """The calls one writer start's set-up makes."""
    before = await calls(sandbox)
    await SetupOnce(api, sandbox.url, label, cache=cache).start()
    return await calls(sandbox) - before


def writes(made: Counter[str]) -> Counter[str]:
    return Counter({route: n for route, n in made.items() if not route.startswith("GET ")})


async def test_a_configured_account_is_verified_in_at_most_three_calls(
    sandbox: Sandbox, api: HubSpotApi
) -> None:
    cache = MemoryCache()
    first = await started(sandbox, api, cache)
    assert writes(first)["POST /crm/v3/properties/{object_type}/batch/create"] == 5, "one batch a type"
    assert first.total() <= 13, first  # five property lists and creates (X2's companies), pipelines, details
    second = await started(sandbox, api, cache)
    assert second.total() <= 3 and not writes(second), second
    assert second == Counter(
        {"GET /account-info/v3/details": 1, "GET /crm/v3/pipelines/{object_type}/{pipeline_id}": 1}
    )


async def test_without_a_cache_a_configured_account_is_read_and_not_written(
    sandbox: Sandbox, api: HubSpotApi
) -> None:
    await SetupOnce(api, sandbox.url, LABEL).start()
    before = await calls(sandbox)
    schema = await SetupOnce(api, sandbox.url, LABEL).start()
    made = await calls(sandbox) - before
    assert not writes(made) and made.total() == 7, made
    assert list(schema.stage_ids) == list(STAGES)


async def test_new_definitions_in_the_code_set_the_account_up_in_full(
    sandbox: Sandbox, api: HubSpotApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = MemoryCache()
    await started(sandbox, api, cache)
    grown = {**account_setup.CUSTOM_PROPERTIES}
    grown["deals"] = [*grown["deals"], PropertyDef("shopify_gift_order", "Shopify gift order", "bool")]
    monkeypatch.setattr(account_setup, "CUSTOM_PROPERTIES", grown)
    monkeypatch.setattr("handlers.setup_once.CUSTOM_PROPERTIES", grown)
    made = await started(sandbox, api, cache)
    assert writes(made) == Counter({"POST /crm/v3/properties/{object_type}/batch/create": 1}), made
    status, definition = await api.client.call("GET", paths.property_named("deals", "shopify_gift_order"))
    assert status == 200 and definition["type"] == "bool"
    assert (await started(sandbox, api, cache)).total() <= 3, "remembered under the new fingerprint"


async def test_a_remembered_pipeline_whose_stages_changed_is_set_up_in_full(
    sandbox: Sandbox, api: HubSpotApi
) -> None:
    cache = MemoryCache()
    await started(sandbox, api, cache)
    (key,) = cache.records
    remembered = cache.records[key]
    cache.records[key] = SetupRecord(remembered.fingerprint, remembered.pipeline_id, {"Shipped": "gone-1"})
    made = await started(sandbox, api, cache)
    assert made["GET /crm/v3/properties/{object_type}"] == 5 and not writes(made), made
    assert cache.records[key] == remembered, "the set-up is remembered anew, as HubSpot has it"


async def test_another_pipeline_setting_is_another_fingerprint(sandbox: Sandbox, api: HubSpotApi) -> None:
    cache = MemoryCache()
    await started(sandbox, api, cache)
    made = await started(sandbox, api, cache, label="Webshop")
    assert made["POST /crm/v3/pipelines/{object_type}"] == 1, made


async def upsert_refusal(api: HubSpotApi, properties: dict[str, str]) -> dict[str, Any]:
    inputs = [RecordInput("a@example.com", "email", {"email": "a@example.com", **properties})]
    with pytest.raises(HubSpotError) as refused:
        await api.upsert("contacts", inputs, create=True)
    assert refused.value.status == 400
    return refused.value.body


async def test_the_sandbox_refuses_a_write_naming_a_deleted_property_as_hubspot_does(
    sandbox: Sandbox, api: HubSpotApi
) -> None:
    await SetupOnce(api, sandbox.url, LABEL).start()
    status, _ = await api.client.call("DELETE", paths.property_named("contacts", "shopify_customer_id"))
    assert status == 204
    body = await upsert_refusal(api, {"shopify_customer_id": "7"})
    assert body["category"] == "VALIDATION_ERROR"
    assert body["message"].startswith("Property values were not valid: ")
    assert (
        '"error": "PROPERTY_DOESNT_EXIST"' in body["message"]
        and '"name": "shopify_customer_id"' in body["message"]
    )
    assert drifted(body, MANAGED_PROPERTIES) == ["shopify_customer_id"]


async def test_a_property_deleted_after_the_set_up_is_repaired_on_the_refused_write(
    sandbox: Sandbox, api: HubSpotApi
) -> None:
    setup = SetupOnce(api, sandbox.url, LABEL, cache=MemoryCache())
    await setup.start()
    await api.client.call("DELETE", paths.property_named("contacts", "shopify_customer_id"))
    refusal = await upsert_refusal(api, {"shopify_customer_id": "7"})
    before = await calls(sandbox)
    schema = await setup.repair(refusal)
    made = await calls(sandbox) - before
    assert schema is not None and list(schema.stage_ids) == list(STAGES)
    assert writes(made) == Counter({"POST /crm/v3/properties/{object_type}/batch/create": 1}), made
    again = RecordInput("a@example.com", "email", {"email": "a@example.com", "shopify_customer_id": "7"})
    status, _ = await api.upsert("contacts", [again], create=True)
    assert status == 200


async def test_a_refusal_of_a_records_own_values_is_not_drift(sandbox: Sandbox, api: HubSpotApi) -> None:
    setup = SetupOnce(api, sandbox.url, LABEL, cache=MemoryCache())
    await setup.start()
    not_ours = await upsert_refusal(api, {"favourite_colour": "red"})
    bad_value = await upsert_refusal(api, {"shopify_first_purchase_at": "yesterday"})
    before = await calls(sandbox)
    assert await setup.repair(not_ours) is None and await setup.repair(bad_value) is None
    assert (await calls(sandbox) - before).total() == 0, "no set-up for what it cannot repair"


async def test_a_stage_the_writer_cannot_recreate_is_drift_it_cannot_repair(
    sandbox: Sandbox, api: HubSpotApi
) -> None:
    """A refused stage id where the set-up finds the stages missing: the round waits (like an
    outage) with what to change, instead of dead-lettering the deals."""
    setup = SetupOnce(api, sandbox.url, LABEL, pipeline_id="default", cache=MemoryCache())
    with pytest.raises(account_setup.AccountSetupError):
        await setup.start()  # the default pipeline lacks the stages
    refusal = {
        "status": "error", "category": "VALIDATION_ERROR",
        "message": 'Property values were not valid: [{"isValid":false,"message":"x was not one of the '
        'allowed options","error":"INVALID_OPTION","name":"dealstage"}]',
    }  # fmt: skip
    with pytest.raises(AccountDriftError, match="lacks the stages"):
        await setup.repair(refusal)


def test_drift_is_read_from_either_form_of_hubspots_answer() -> None:
    legacy = {
        "category": "VALIDATION_ERROR",
        "message": 'Property values were not valid: [{"isValid":false,"message":"Property '
        '\\"shopify_deal_key\\" does not exist","error":"PROPERTY_DOESNT_EXIST","name":"shopify_deal_key"}]',
    }  # fmt: skip
    structured = {
        "category": "VALIDATION_ERROR",
        "message": "Property values were not valid",
        "errors": [{"code": "INVALID_OPTION", "context": {"propertyName": ["pipeline"]}},
                   {"code": "PROPERTY_DOESNT_EXIST", "context": {"propertyName": ["hs_unknown"]}}],
    }  # fmt: skip
    assert drifted(legacy, MANAGED_PROPERTIES) == ["shopify_deal_key"]
    assert drifted(structured, MANAGED_PROPERTIES) == ["pipeline"], "hs_unknown is not the set-up's"
    assert drifted({"message": "Property values were not valid: [oops"}, MANAGED_PROPERTIES) == []


def test_a_remembered_set_up_of_another_format_is_ignored() -> None:
    record = SetupRecord("f", "12", {"Shipped": "3"})
    assert SetupRecord.decode(record.encode()) == record
    assert SetupRecord.decode(b'{"format": 0, "fingerprint": "f"}') is None
    assert SetupRecord.decode(b"not json") is None


async def test_the_remembered_set_up_is_keyed_by_the_api_and_the_portal(
    sandbox: Sandbox, api: HubSpotApi
) -> None:
    cache = MemoryCache()
    await SetupOnce(api, sandbox.url, LABEL, cache=cache).start()
    portal = (await api.account_details()).body["portalId"]
    assert list(cache.records) == [f"{sandbox.url}|{portal}"]
    other = SetupOnce(api, "https://api.hubapi.com", LABEL, cache=cache)
    await other.start()
    assert len(cache.records) == 2, "the same portal id at another API is another account"


@pytest.mark.parametrize(("mode", "verify_calls"), [("orders", 2), ("deals,orders", 3)])
async def test_x1_a_configured_account_is_verified_from_the_memory_in_every_mode(
    sandbox: Sandbox, api: HubSpotApi, mode: str, verify_calls: int
) -> None:
    """Orders modes remember the order pipeline, its stages and the association types too: a
    restart reads the details and each written pipeline, nothing else; a renamed order stage sets
    the account up in full again."""
    cache = MemoryCache()
    commerce = account_setup.CommerceSetup(objects=mode)

    async def start() -> tuple[Counter[str], account_setup.AccountSchema]:
        before = await calls(sandbox)
        schema = await SetupOnce(api, sandbox.url, LABEL, cache=cache, commerce=commerce).start()
        return await calls(sandbox) - before, schema

    first, full = await start()
    assert first.total() > verify_calls
    second, schema = await start()
    assert second.total() == verify_calls and not writes(second), second
    assert (schema.order_pipeline_id, schema.order_stage_ids, schema.association_types) == (
        full.order_pipeline_id, full.order_stage_ids, full.association_types,
    )  # fmt: skip
    assert (schema.pipeline_id, schema.stage_ids) == (full.pipeline_id, full.stage_ids)
    (record,) = cache.records.values()
    cache.records = {k: SetupRecord(record.fingerprint, record.pipeline_id, record.stage_ids,
                                    record.order_pipeline_id, {**record.order_stage_ids, "Shipped": "gone"},
                                    record.association_types) for k in cache.records}  # fmt: skip
    third, _ = await start()
    assert third.total() > verify_calls, "a changed order stage: the full set-up again"


def test_the_memory_reads_back_what_it_wrote_in_every_mode() -> None:
    record = SetupRecord("f", "p", {"Processed": "1"}, "op", {"Shipped": "s"}, {"orders|contacts": 507})
    assert SetupRecord.decode(record.encode()) == record
    legacy = b'{"format": 1, "fingerprint": "f", "pipeline_id": "p", "stage_ids": {}}'
    assert SetupRecord.decode(legacy) == SetupRecord("f", "p", {}), "a record from before X1 still reads"
