"""The bulk import end to end: the local Shopify Admin API (real HTTP, the bulk-operation
lifecycle, Range downloads) into a real broker; killed and resumed, from a downloaded file (an
air gap), and an operation that fails with partial data."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from aiokafka import AIOKafkaProducer

from config import Settings
from handlers import bulk_import, graphql_cost
from handlers.bulk_import import (
    AdminGraphQL,
    Appender,
    BulkImportState,
    BulkOperationFailedError,
    BulkResourceState,
    download,
    import_jsonl,
    run_bulk_import,
)
from handlers.importer import RESOURCES, ShopifyImportError
from handlers.loss import LossReport
from schemas.envelope import Delivery, decode_log_record
from shopify_sandbox import ShopifySandboxConfig, running_shopify_sandbox
from shopify_sandbox.cost import Plan
from streams.inprocess import InProcessPipeline
from streams.topic_reader import read_all
from streams.topics import TopicName, ensure_topics, topic_name
from tests.importer.bulk_support import TOKEN, SharedClock, export, sandbox, serving
from tests.recorded_progress import RecordedProgress

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


@asynccontextmanager
async def cutting_storage(content: bytes, cut_at: int) -> AsyncIterator[tuple[str, list[str]]]:
    """Serves ``content`` as Cloud Storage does (Range honoured), but drops the first download's
    connection after ``cut_at`` bytes, mid-line."""
    ranges: list[str] = []

    async def get(request: web.Request) -> web.StreamResponse:
        ranges.append(request.headers.get("Range", ""))
        if len(ranges) == 1:
            response = web.StreamResponse(headers={"Content-Length": str(len(content))})
            await response.prepare(request)
            await response.write(content[:cut_at])
            assert request.transport is not None
            request.transport.close()  # the connection drops part way
            return response
        start = int(ranges[-1].removeprefix("bytes=").rstrip("-"))
        headers = {"Content-Range": f"bytes {start}-{len(content) - 1}/{len(content)}"}
        return web.Response(body=content[start:], status=206, headers=headers)

    app = web.Application()
    app.router.add_get("/export.jsonl", get)
    async with serving(app) as base:
        yield f"{base}/export.jsonl", ranges


async def test_a_dropped_download_resumes_by_range_in_one_run(settings: Settings, tmp_path: Path) -> None:
    async with sandbox(tmp_path, customers=CUSTOMERS) as shop:
        content = await export(shop, "orders")
        expected = store_ids(shop, "orders")
    cut_at = content.index(b"\n", len(content) // 2) - 5  # inside a line, past some whole orders
    state = BulkResourceState()
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        appender = Appender(settings, producer, "orders", "s.myshopify.com", "2026-07", state, LossReport(),
                            lambda: None)  # fmt: skip
        async with cutting_storage(content, cut_at) as (url, ranges), httpx.AsyncClient() as http:
            await download(http, url, appender, None)
    finally:
        await producer.stop()
    assert ranges[0] == "" and len(ranges) == 2 and ranges[1].startswith("bytes=")
    resumed_at = int(ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= cut_at and content[resumed_at - 1 : resumed_at] == b"\n"
    assert state.offset == len(content) and state.count == len(expected)
    deliveries = (await imported(settings, ("orders",)))["orders"]
    assert sorted(str(d.body["id"]) for d in deliveries) == sorted(expected), "each order once"


async def test_throttled_calls_are_waited_out_by_the_restore_rate(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bucket is the app's on the store: another client of the same app empties it now and
    then (every third query here), so the pacing falls short and Shopify answers THROTTLED; each
    is waited out by the restore rate (on a clock shared with the sandbox: nothing sleeps)."""
    clock = SharedClock()
    waits: list[float] = []
    real_wait = graphql_cost.throttled_wait

    def counted(body: dict[str, Any]) -> float:
        waits.append(real_wait(body))
        return waits[-1]

    monkeypatch.setattr(bulk_import, "throttled_wait", counted)
    monkeypatch.setattr(bulk_import, "AdminGraphQL", partial(AdminGraphQL, clock=clock, sleep=clock.sleep))
    config = ShopifySandboxConfig(token=TOKEN, customers=CUSTOMERS, data_dir=tmp_path / "exports",
                                  plan=Plan(maximum=12.0, restore_rate=400.0))  # fmt: skip
    async with running_shopify_sandbox(config, monotonic=clock) as shop:
        take, queries = shop.bucket.take, itertools.count()

        def shared(cost: int) -> bool:
            if next(queries) % 3 == 0:
                shop.bucket.refill()
                shop.bucket.available = 0.0  # another client of the app spent it all
            return take(cost)

        monkeypatch.setattr(shop.bucket, "take", shared)
        counts = await run_bulk_import(settings, shop.url, TOKEN, tmp_path / "state.json", poll_s=0)
    assert counts["customers"] == CUSTOMERS and all(counts.values())
    assert waits and all(0 < w < 1 for w in waits), "THROTTLED answers met, each waited out briefly"
    assert clock.now > 1000.0, "the waits passed on the shared clock"


async def test_an_expired_download_url_stops_with_what_to_do(settings: Settings, tmp_path: Path) -> None:
    state_path = tmp_path / "state.json"
    async with sandbox(tmp_path, customers=CUSTOMERS) as shop:
        state = BulkImportState(state_path)
        state.resources["customers"] = BulkResourceState(
            "gid://shopify/BulkOperation/9", f"{shop.url}/_sandbox/bulk/9.jsonl"
        )
        state.save()
        with pytest.raises(ShopifyImportError, match=r"answered 404 \(expired\?\); remove 'customers'"):
            await run_bulk_import(settings, shop.url, TOKEN, state_path, resources=("customers",), poll_s=0)
    assert shop.operations.all == [], "no fresh export was started behind the operator's back"


async def test_progress_knows_each_export_s_total_before_its_download_and_resumes_from_the_state(
    settings: Settings, tmp_path: Path
) -> None:
    """The completed operation's rootObjectCount is the total; a resumed run starts its count at
    what the state holds, so its rate and ETA are its own."""
    state_path = tmp_path / "state.json"
    async with sandbox(tmp_path, customers=CUSTOMERS) as shop:
        first = RecordedProgress()
        await run_bulk_import(settings, shop.url, TOKEN, state_path, poll_s=0, stop_after_lines=7,
                              resources=("customers",), progress=first)  # fmt: skip
        second = RecordedProgress()
        await run_bulk_import(settings, shop.url, TOKEN, state_path, poll_s=0, progress=second)
    interrupted = first.by_label()["import customers"]
    assert interrupted.totals.records == CUSTOMERS and interrupted.first == 0 and interrupted.finished
    resumed = second.by_label()
    assert [p.label for p in second.phases] == [f"import {r}" for r in RESOURCES]
    assert resumed["import customers"].first == interrupted.updates[-1] > 0
    assert resumed["import customers"].updates[-1] == CUSTOMERS
    for phase in second.phases:
        assert phase.finished and phase.totals.records == phase.updates[-1], phase
        assert phase.totals.bytes is not None and phase.totals.bytes > 0
    saved = BulkImportState.load(state_path).resources["orders"]
    assert saved.roots == resumed["import orders"].totals.records


async def test_an_air_gapped_file_is_paced_by_its_size(settings: Settings, tmp_path: Path) -> None:
    async with sandbox(tmp_path, customers=CUSTOMERS) as shop:
        content = await export(shop, "customers")
    path = tmp_path / "customers.jsonl"
    path.write_bytes(content)
    shown = RecordedProgress()
    count = await import_jsonl(settings, path, "customers", "s.myshopify.com", progress=shown)
    (phase,) = shown.phases
    assert phase.totals.bytes == len(content) and phase.totals.records is None
    assert phase.updates[-1] == count == CUSTOMERS and phase.finished
