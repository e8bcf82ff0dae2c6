"""Logs and metrics without Kafka: the JSON log line, the metric labels that must stay few, the
bridge's request counting, a metrics port in use, and the dashboard page with no deals yet."""

from __future__ import annotations

import json
import logging
import socket
from typing import Any

import httpx
from aiohttp import web
from prometheus_client import REGISTRY

from config import Settings
from config.logs import JsonFormatter, logging_config
from handlers import bridge_metrics
from handlers.dashboard import start_dashboard
from handlers.dashboard_page import render
from handlers.writer_metrics import endpoint, hubspot_answered
from streams import metrics


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("shopsync.bridge", logging.INFO, __file__, 1, message, None, None)


def test_a_json_log_line_merges_a_structured_event_and_keeps_plain_text_as_message() -> None:
    line = json.loads(
        JsonFormatter().format(_record('{"event": "shopify.stored", "topic": "orders/create"}'))
    )
    assert (line["event"], line["topic"], line["level"], line["logger"]) == (
        "shopify.stored", "orders/create", "info", "shopsync.bridge")  # fmt: skip
    assert "message" not in line and line["ts"].endswith("+00:00")
    assert json.loads(JsonFormatter().format(_record("writer ready")))["message"] == "writer ready"
    assert logging_config("info", "text")["formatters"]["default"] == {"format": "%(asctime)s %(levelname)s "
                                                                       "%(name)s %(message)s"}  # fmt: skip


def test_hubspot_endpoints_fold_ids_so_labels_stay_few() -> None:
    assert endpoint("/crm/v3/objects/contacts/123/associations/deals/9?x=1") == (
        "/crm/v3/objects/contacts/{id}/associations/deals/{id}"
    )
    before = REGISTRY.get_sample_value("shopsync_hubspot_rate_limited_total") or 0
    retried = REGISTRY.get_sample_value("shopsync_hubspot_retries_total", {"cause": "503"}) or 0
    hubspot_answered("POST", "/crm/v3/objects/deals/batch/upsert", 429, 0.01)
    hubspot_answered("POST", "/crm/v3/objects/deals/batch/upsert", 503, 0.01)
    assert REGISTRY.get_sample_value("shopsync_hubspot_rate_limited_total") == before + 1
    assert REGISTRY.get_sample_value("shopsync_hubspot_retries_total", {"cause": "503"}) == retried + 1


async def test_the_bridge_middleware_counts_requests_by_route_and_status() -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    app = web.Application(middlewares=[bridge_metrics.middleware])
    app.add_routes([web.get("/healthz", ok), web.get("/metrics", metrics.metrics_page)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]

    def count(route: str, status: str) -> float:
        labels = {"route": route, "status": status}
        return REGISTRY.get_sample_value("shopsync_bridge_requests_total", labels) or 0

    before_ok, before_missing = count("/healthz", "200"), count("other", "404")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            await http.get("/healthz")
            await http.get("/healthz")
            await http.get("/no/such/page")
            text = (await http.get("/metrics")).text
    finally:
        await runner.cleanup()
    assert count("/healthz", "200") == before_ok + 2
    assert count("other", "404") == before_missing + 1
    assert "shopsync_bridge_request_seconds_bucket" in text


async def test_a_metrics_port_in_use_is_skipped_not_fatal() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert await metrics.serve("127.0.0.1", taken.getsockname()[1], "worker") is None
    assert await metrics.serve("127.0.0.1", 0, "worker") is None  # 0: turned off


def test_the_page_without_deals_still_shows_the_summary_and_health() -> None:
    summary = {"contacts": 0, "deals": 0, "deals_by_stage": {}, "products": 0, "variants": 0, "line_items": 0}
    health: dict[str, Any] = dict.fromkeys(
        ("writer_backlog", "timers_pending", "timers_fired", "hubspot_calls", "hubspot_429s")
    )
    health |= {"consumer_lag": {}, "dead_letters": [], "field_problems": [],
               "metrics_reachable": {"worker": False, "writer": True}}  # fmt: skip
    page = render({}, summary, health, 5)
    assert "No deals yet" in page and 'http-equiv="refresh" content="5"' in page
    assert "/metrics not reachable: worker" in page
    assert 'data-json="/api/summary.json" data-path="contacts">0</a>' in page
    assert "<script" not in page and "http://" not in page and "https://" not in page


async def test_a_dashboard_port_in_use_leaves_the_bridge_running_without_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert await start_dashboard(Settings(dashboard_port=port)) is None
    assert await start_dashboard(Settings(dashboard_port=0)) is None


def test_rocksdb_memory_is_read_from_each_tables_open_databases(tmp_path: Any) -> None:
    """The gauge sums RocksDB's own memory over a table's partition databases (real RocksDB
    databases through rocksdict, as faust's store holds them in ``_dbs``); a table on another
    store is skipped."""
    import rocksdict

    class Store:
        def __init__(self, dbs: dict[int, Any]) -> None:
            self._dbs = dbs

    class Table:
        def __init__(self, data: Any) -> None:
            self.data = data

    dbs = {p: rocksdict.Rdict(str(tmp_path / f"db-{p}")) for p in range(2)}
    for p, db in dbs.items():
        for i in range(500):
            db[f"key-{p}-{i}".encode()] = b"x" * 200
    try:
        metrics.refresh_rocksdb({"journeys": Table(Store(dbs)), "elsewhere": Table(object())})
        memtables = REGISTRY.get_sample_value(
            "shopsync_worker_rocksdb_memory_bytes", {"table": "journeys", "part": "memtables"}
        )
        expected = sum(db.property_int_value("rocksdb.cur-size-all-mem-tables") or 0 for db in dbs.values())
        assert memtables == expected and memtables > 2 * 500 * 200
        assert (
            REGISTRY.get_sample_value(
                "shopsync_worker_rocksdb_memory_bytes", {"table": "elsewhere", "part": "memtables"}
            )
            is None
        )
    finally:
        for db in dbs.values():
            db.close()
