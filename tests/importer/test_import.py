"""The initial import against a fake Shopify Admin API over real HTTP, fed from the real fixtures.

The fake serves ../shared/fixtures/shopify/rest records, copied under new ids to fill several
pages, with cursor pagination by Link header, the leaky-bucket call-limit header, a 429 and a
503 on the way; the import appends to the real broker.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from config import Settings
from handlers.importer import RESOURCES, next_link, run_import
from localkafka.broker import free_port
from schemas.envelope import Delivery, decode_log_record
from streams.inprocess import InProcessPipeline
from streams.topic_reader import read_all
from streams.topics import topic_name
from tests.shared_fixtures import rest_records

pytestmark = pytest.mark.kafka
COPIES = {"customers": 7, "orders": 5, "products": 4, "checkouts": 6}
TOKEN = "shpat_test"


def catalogue() -> dict[str, list[dict[str, Any]]]:
    """Each resource's fixture records, copied under fresh ids (and emails, tokens) to fill pages."""
    out: dict[str, list[dict[str, Any]]] = {r: [] for r in RESOURCES}
    for n, (resource, _, record) in enumerate(rest_records()):
        if resource not in out:
            continue
        for i in range(COPIES[resource]):
            item = copy.deepcopy(record)
            item["id"] = int(item.get("id") or 1) * 10_000 + n * 100 + i
            if resource == "customers" and item.get("email"):
                item["email"] = f"copy{i}.{item['email']}"
            if resource == "checkouts":
                item["token"] = f"{item['token']}-{i}"
                item["cart_token"] = f"{item.get('cart_token')}-{i}"
            if resource == "orders":
                item["cart_token"] = f"{item.get('cart_token')}-{i}"
            out[resource].append(item)
    return out


@asynccontextmanager
async def fake_shopify(data: dict[str, list[dict[str, Any]]]) -> AsyncIterator[tuple[str, dict[str, int]]]:
    calls: dict[str, int] = {}

    async def listing(request: web.Request) -> web.Response:
        resource = request.match_info["resource"]
        calls[resource] = calls.get(resource, 0) + 1
        if request.headers.get("X-Shopify-Access-Token") != TOKEN:
            return web.json_response({"errors": "[API] Invalid API key or access token"}, status=401)
        if calls[resource] == 1:
            return web.json_response(
                {"errors": "Exceeded 2 calls per second"}, status=429, headers={"Retry-After": "0.2"}
            )
        if calls[resource] == 3:
            return web.json_response({"errors": "Internal Server Error"}, status=503)
        limit = int(request.query.get("limit", "50"))
        offset = int(request.query.get("page_info", "0"))
        page = data[resource][offset : offset + limit]
        headers = {"X-Shopify-Shop-Api-Call-Limit": "33/40" if calls[resource] == 4 else "3/40"}
        if offset + limit < len(data[resource]):
            base = f"{request.scheme}://{request.host}{request.path}"
            headers["Link"] = f'<{base}?limit={limit}&page_info={offset + limit}>; rel="next"'
        return web.json_response({resource: page}, headers=headers)

    app = web.Application()
    app.router.add_get("/admin/api/{version}/{resource}.json", listing)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", calls
    finally:
        await runner.cleanup()


async def imported(settings: Settings) -> list[Delivery]:
    out = []
    for name in ("shopify.customers", "shopify.orders", "shopify.products", "shopify.checkouts"):
        for r in await read_all(settings.kafka_bootstrap_servers, topic_name(settings, name)):
            record = decode_log_record(r.value)
            assert isinstance(record, Delivery)
            out.append(record)
    return out


def test_next_link_reads_shopifys_link_header() -> None:
    header = (
        '<https://s.myshopify.com/a?page_info=p1>; rel="previous", '
        '<https://s.myshopify.com/a?page_info=p2>; rel="next"'
    )
    assert next_link(header) == "https://s.myshopify.com/a?page_info=p2"
    assert next_link('<https://x/a?page_info=p1>; rel="previous"') is None
    assert next_link(None) is None


async def test_import_pages_through_everything_honouring_limits_and_marks_records_as_import(
    settings: Settings, tmp_path: Path
) -> None:
    data = catalogue()
    async with fake_shopify(data) as (url, calls):
        counts = await run_import(settings, url, TOKEN, tmp_path / "state.json", page_size=3)
    assert counts == {r: len(data[r]) for r in RESOURCES}
    assert all(calls[r] >= 3 for r in RESOURCES), "pagination, a 429 and a 503 were met and retried"
    deliveries = await imported(settings)
    assert len(deliveries) == sum(len(v) for v in data.values())
    assert {d.source for d in deliveries} == {"import"}
    pipeline = InProcessPipeline()
    for d in deliveries:
        pipeline.deliver(d)
    contacts = [s.emitted.properties for s in pipeline.contact_states.values() if s.emitted.exists]
    assert contacts and all(p["shopify_source_drill_down_1"] == "INTEGRATION_SYNC" for p in contacts), "C5"


async def test_an_interrupted_import_resumes_where_it_stopped(settings: Settings, tmp_path: Path) -> None:
    data = catalogue()
    state = tmp_path / "state.json"
    async with fake_shopify(data) as (url, _):
        partial = await run_import(settings, url, TOKEN, state, page_size=3, stop_after_pages=4)
        assert 0 < sum(partial.values()) < sum(len(v) for v in data.values())
        rest = await run_import(settings, url, TOKEN, state, page_size=3)
        again = await run_import(settings, url, TOKEN, state, page_size=3)
    total = {r: partial.get(r, 0) + rest.get(r, 0) for r in RESOURCES}
    assert total == {r: len(data[r]) for r in RESOURCES}, "resumed, not restarted from zero"
    assert again == {}, "a finished import has nothing left to do"
    deliveries = await imported(settings)
    assert len({d.event_id for d in deliveries}) == len(deliveries) == sum(len(v) for v in data.values())


async def test_a_bad_token_stops_with_a_clear_message(settings: Settings, tmp_path: Path) -> None:
    from handlers.importer import ShopifyImportError

    async with fake_shopify(catalogue()) as (url, _):
        with pytest.raises(ShopifyImportError, match="SHOPIFY_ADMIN_TOKEN"):
            await run_import(settings, url, "wrong", tmp_path / "s.json")


async def test_a_record_without_identity_is_dead_lettered_and_reported_not_dropped(
    settings: Settings, tmp_path: Path
) -> None:
    """R2/R7: an order with no id (no key) and a listed item that is not an object cannot be
    appended where they belong; they go to shopify.deadletter with the reason and are counted in
    the report, and everything else is imported."""
    from handlers.loss import LossReport, read_report

    data = catalogue()
    good = len(data["orders"])
    data["orders"][1:1] = [{"email": "no.id@example.com", "total_price": "1.00"}, "not an object"]  # type: ignore[list-item]
    report = LossReport()
    async with fake_shopify(data) as (url, _):
        counts = await run_import(settings, url, TOKEN, tmp_path / "state.json", page_size=3, report=report)
    assert counts["orders"] == good
    assert report.lost == 2 and report.exit_code() != 0
    assert set(report.dead_letters) == {
        ("shopify.deadletter", "import orders: orders/create body has no id or token"),
        ("shopify.deadletter", "import orders: the listed record is not a JSON object"),
    }
    assert (await read_report(settings)).dead_letters == report.dead_letters, "the topic holds them"
    assert "no.id@example.com" not in "\n".join(report.render())
