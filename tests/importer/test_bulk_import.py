"""The bulk import end to end: the local Shopify Admin API (real HTTP, the bulk-operation
lifecycle, Range downloads) into a real broker; killed and resumed, from a downloaded file (an
air gap), and an operation that fails with partial data."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest

from config import Settings
from handlers.bulk_import import BulkImportState, BulkOperationFailedError, import_jsonl, run_bulk_import
from handlers.importer import RESOURCES
from handlers.loss import LossReport
from schemas.envelope import Delivery, decode_log_record
from streams.inprocess import InProcessPipeline
from streams.topic_reader import read_all
from streams.topics import TopicName, topic_name
from tests.importer.bulk_support import TOKEN, export, sandbox

pytestmark = pytest.mark.kafka
CUSTOMERS = 15
TOPICS: dict[str, TopicName] = {
    "customers": "shopify.customers", "orders": "shopify.orders", "products": "shopify.products",
    "checkouts": "shopify.checkouts",
}  # fmt: skip
SHOP_KINDS = {"customers": "customers", "orders": "orders", "products": "products",
              "checkouts": "abandonedCheckouts"}  # fmt: skip


async def imported(settings: Settings, resources: tuple[str, ...] = RESOURCES) -> dict[str, list[Delivery]]:
    out: dict[str, list[Delivery]] = {}
    for resource in resources:
        records = await read_all(settings.kafka_bootstrap_servers, topic_name(settings, TOPICS[resource]))
        found = [decode_log_record(r.value) for r in records]
        out[resource] = [d for d in found if isinstance(d, Delivery)]
    return out


def store_ids(shop: object, resource: str) -> list[str]:
    nodes = shop.shop.nodes(SHOP_KINDS[resource])  # type: ignore[attr-defined]
    return [str(n["id"]).rpartition("/")[2] for n in nodes]


async def test_the_whole_store_is_imported_once_as_import_records(settings: Settings, tmp_path: Path) -> None:
    async with sandbox(tmp_path, customers=CUSTOMERS) as shop:
        counts = await run_bulk_import(settings, shop.url, TOKEN, tmp_path / "state.json", poll_s=0)
        again = await run_bulk_import(settings, shop.url, TOKEN, tmp_path / "state.json", poll_s=0)
        expected = {r: store_ids(shop, r) for r in RESOURCES}
    assert counts == {r: len(expected[r]) for r in RESOURCES} and all(counts.values())
    assert again == {}, "a finished import has nothing left to do"
    deliveries = await imported(settings)
    for resource in RESOURCES:
        ids = [str(d.body["id"]) for d in deliveries[resource]]
        assert sorted(ids) == sorted(expected[resource]), resource
        assert {d.source for d in deliveries[resource]} == {"import"}
    pipeline = InProcessPipeline()
    for resource in RESOURCES:
        for d in deliveries[resource]:
            pipeline.deliver(d)
    contacts = [s.emitted.properties for s in pipeline.contact_states.values() if s.emitted.exists]
    with_email = [d for d in deliveries["customers"] if d.body["email"]]
    assert 0 < len(with_email) < CUSTOMERS, "the sample store has a customer without an email"
    assert len(contacts) == len(with_email), "every customer with an email is a contact"
    assert all(p["shopify_source_drill_down_1"] == "INTEGRATION_SYNC" for p in contacts), "C5"


async def test_killed_twice_mid_download_it_resumes_with_range_and_appends_each_record_once(
    settings: Settings, tmp_path: Path
) -> None:
    state_path = tmp_path / "state.json"
    ranges: list[str] = []
    async with sandbox(tmp_path, customers=CUSTOMERS) as shop:
        original = httpx.AsyncClient.stream

        def spying(self: httpx.AsyncClient, method: str, url: object, **kwargs: object) -> object:
            ranges.append(str((kwargs.get("headers") or {}).get("Range", "")))  # type: ignore[attr-defined]
            return original(self, method, url, **kwargs)  # type: ignore[arg-type]

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(httpx.AsyncClient, "stream", spying)
            first = await run_bulk_import(
                settings, shop.url, TOKEN, state_path, resources=("orders",), poll_s=0, stop_after_lines=7
            )
            cut = BulkImportState.load(state_path).resources["orders"]
            second = await run_bulk_import(
                settings, shop.url, TOKEN, state_path, resources=("orders",), poll_s=0, stop_after_lines=9
            )
            rest = await run_bulk_import(
                settings, shop.url, TOKEN, state_path, resources=("orders",), poll_s=0
            )
        expected = store_ids(shop, "orders")
        whole = await export(shop, "orders")
    assert len(shop.operations.all) == 2, "one import operation (the last is the test's own export)"
    assert 0 < cut.offset < len(whole) and whole[cut.offset - 1 : cut.offset] == b"\n"
    assert b'"__parentId"' not in whole[cut.offset :].split(b"\n")[0], "it stopped at a root's first line"
    assert ranges[0] == "" and ranges[1] == f"bytes={cut.offset}-" and ranges[2].startswith("bytes=")
    assert 0 < first["orders"] < len(expected) and first["orders"] + second["orders"] + rest["orders"] == len(
        expected
    )
    deliveries = (await imported(settings, ("orders",)))["orders"]
    assert sorted(str(d.body["id"]) for d in deliveries) == sorted(expected), "each order once"
    lines = {str(d.body["id"]): len(d.body["line_items"]) for d in deliveries}
    whole_orders = {str(o["id"]).rpartition("/")[2]: len(o["lineItems"]) for o in shop.shop.nodes("orders")}
    assert lines == whole_orders, "no order lost a line item at a cut"


async def test_a_downloaded_file_imports_without_shopify(settings: Settings, tmp_path: Path) -> None:
    async with sandbox(tmp_path, customers=CUSTOMERS) as shop:
        content = await export(shop, "products")
        expected = store_ids(shop, "products")
    file = tmp_path / "products.jsonl"
    file.write_bytes(content)
    count = await import_jsonl(settings, file, "products", "sample.myshopify.com")  # the sandbox is gone
    assert count == len(expected)
    deliveries = (await imported(settings, ("products",)))["products"]
    assert sorted(str(d.body["id"]) for d in deliveries) == sorted(expected)
    assert {d.shop_domain for d in deliveries} == {"sample.myshopify.com"}
    assert all(d.body["variants"] for d in deliveries)


async def test_unreadable_records_are_dead_lettered_and_reported(settings: Settings, tmp_path: Path) -> None:
    lines = [
        {"id": "gid://shopify/Customer/5", "email": "ok@example.com", "updatedAt": "2026-01-01T00:00:00Z"},
        {"id": "gid://shopify/Order/6", "email": "wrong.kind@example.com"},
    ]
    file = tmp_path / "customers.jsonl"
    file.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines) + b"{not json\n")
    report = LossReport()
    count = await import_jsonl(settings, file, "customers", "sample.myshopify.com", report=report)
    assert count == 1 and report.lost == 2
    letters = await read_all(settings.kafka_bootstrap_servers, topic_name(settings, "shopify.deadletter"))
    reasons = sorted(orjson.loads(r.value)["reason"] for r in letters)
    assert reasons[0].startswith("import customers: a customers record the import cannot read")
    assert reasons[1].startswith("import customers: unreadable bulk line")
    assert "wrong.kind@example.com" not in "\n".join(report.render())


async def test_a_failed_operation_is_reported_not_taken_as_complete(
    settings: Settings, tmp_path: Path
) -> None:
    state_path = tmp_path / "state.json"
    async with sandbox(tmp_path, customers=CUSTOMERS) as shop:
        async with httpx.AsyncClient(base_url=shop.url) as http:
            await http.post("/_sandbox/fail-next", json={"errorCode": "TIMEOUT", "afterRoots": 4})
        with pytest.raises(BulkOperationFailedError, match=r"FAILED \(errorCode TIMEOUT\); partial data"):
            await run_bulk_import(settings, shop.url, TOKEN, state_path, resources=("customers",), poll_s=0)
        assert BulkImportState.load(state_path).resources["customers"].operation_id is None
        assert (await imported(settings, ("customers",)))["customers"] == []
        retried = await run_bulk_import(
            settings, shop.url, TOKEN, state_path, resources=("customers",), poll_s=0
        )
    assert retried == {"customers": CUSTOMERS}, "the next run starts a fresh operation"
