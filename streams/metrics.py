"""The stream worker's Prometheus metrics, and the small ``/metrics`` server every service uses.

The faust shell (``streams.app``) calls the recorders below at a few points of its batch loop;
they only count, so they cost a dict lookup and an addition per batch, never a Kafka call. Gauges
that describe the worker's partitions (consumer lag, timers pending) are refreshed by a periodic
task on the worker's own event loop (:func:`refresh`), and ``/metrics`` is served on that loop too
(:func:`serve`), so nothing reads faust's structures from another thread. Every metric is listed,
with its labels, in the README (Operational metrics).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REFRESH_S = 5.0

EVENTS_IN = Counter(
    "shopsync_worker_events_in", "Records the worker's agents took from Kafka, by agent and topic.",
    ["stage", "topic"],
)  # fmt: skip
EVENTS_OUT = Counter(
    "shopsync_worker_events_out", "Records the worker sent and Kafka acknowledged, by topic.", ["topic"]
)
BATCH_SECONDS = Histogram(
    "shopsync_worker_batch_seconds", "Time to handle one batch (decide, send, await acks, store), by agent.",
    ["stage"], buckets=LATENCY_BUCKETS,
)  # fmt: skip
BATCH_EVENTS = Histogram(
    "shopsync_worker_batch_events", "Records per batch, by agent.", ["stage"],
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500),
)  # fmt: skip
DEAD_LETTERS = Counter(
    "shopsync_worker_dead_letters", "Records (or timers) dead-lettered, by reason kind.", ["reason"]
)
FIELD_PROBLEMS = Counter(
    "shopsync_worker_field_problems",
    "Fields synced as absent because they did not fit their type (R1), by Shopify topic and reason.",
    ["shopify_topic", "reason"],
)
SHREDDED_DROPPED = Counter(
    "shopsync_worker_shredded_dropped",
    "Commands and facts not sent because their subject's key is gone (G1: a redacted customer's), by stage.",
    ["stage"],
)
TIMERS_FIRED = Counter(
    "shopsync_worker_timers_fired", "Entity timers a tick fired, by kind (contacts, journeys).", ["kind"]
)
TIMERS_PENDING = Gauge(
    "shopsync_worker_timers_pending", "Timers pending in the partitions this worker owns, by kind.", ["kind"]
)
ROCKSDB_MEMORY = Gauge(
    "shopsync_worker_rocksdb_memory_bytes",
    "RocksDB's own memory over the tables' open databases, by table and part: memtables "
    "(rocksdb.cur-size-all-mem-tables), table readers (index and filter blocks outside the block "
    "cache, rocksdb.estimate-table-readers-mem) and the block cache in use (rocksdb.block-cache-usage).",
    ["table", "part"],
)
ROCKSDB_PROPERTIES = {
    "memtables": "rocksdb.cur-size-all-mem-tables",
    "table_readers": "rocksdb.estimate-table-readers-mem",
    "block_cache": "rocksdb.block-cache-usage",
}
CONSUMER_LAG = Gauge(
    "shopsync_worker_consumer_lag",
    "Records not yet committed by the worker's group on the partitions it owns, by topic.",
    ["topic"],
)


def batch_done(stage: str, events: Sequence[Any], seconds: float) -> None:
    """One batch of an agent is handled (its outputs acknowledged, its states stored)."""
    topics: dict[str, int] = {}
    for event in events:
        topic = event.message.topic
        topics[topic] = topics.get(topic, 0) + 1
    for topic, n in topics.items():
        EVENTS_IN.labels(stage, topic).inc(n)
    BATCH_SECONDS.labels(stage).observe(seconds)
    BATCH_EVENTS.labels(stage).observe(len(events))


def sent(topics: Iterable[str]) -> None:
    """Outputs Kafka acknowledged (one topic name per record)."""
    counts: dict[str, int] = {}
    for topic in topics:
        counts[topic] = counts.get(topic, 0) + 1
    for topic, n in counts.items():
        EVENTS_OUT.labels(topic).inc(n)


def dead_letter(reason_kind: str) -> None:
    DEAD_LETTERS.labels(reason_kind).inc()


def field_problem(shopify_topic: str, reason: str) -> None:
    FIELD_PROBLEMS.labels(shopify_topic, reason).inc()


def shredded_dropped(stage: str, n: int) -> None:
    """G1: outputs a shredded subject's units left out (so every input is accounted for)."""
    if n:
        SHREDDED_DROPPED.labels(stage).inc(n)


def timer_fired(kind: str) -> None:
    TIMERS_FIRED.labels(kind).inc()


def refresh_gauges(pending: dict[str, int], consumer: Any) -> None:
    """Timers pending per kind, and the group's lag per topic on this worker's partitions
    (high watermark minus the committed offset, as faust knows them; no Kafka request)."""
    for kind, n in pending.items():
        TIMERS_PENDING.labels(kind).set(n)
    if consumer is None:
        return
    lag: dict[str, int] = {}
    try:
        committed = getattr(consumer, "_committed_offset", {})
        for tp in consumer.assignment():
            if tp.topic.endswith("-changelog"):  # faust reads the tables' changelogs, never commits them
                continue
            high = consumer.highwater(tp)
            if high is None:
                continue
            done = committed.get(tp) or 0
            lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - done)
    except (AttributeError, RuntimeError, KeyError):  # not started yet, or rebalancing
        return
    for topic, n in lag.items():
        CONSUMER_LAG.labels(topic).set(n)


def refresh_rocksdb(tables: dict[str, Any]) -> None:
    """RocksDB's memory per table (summed over its partitions' databases), read from the open
    databases of faust's RocksDB store (``_dbs``); tables on another store are skipped. Where a
    worker's memory goes beyond Python's heap (``bench/README.md``, ``worker_rss``)."""
    for name, table in tables.items():
        databases = getattr(getattr(table, "data", None), "_dbs", None)
        if not isinstance(databases, dict):
            continue
        totals = dict.fromkeys(ROCKSDB_PROPERTIES, 0)
        for db in list(databases.values()):
            for part, prop in ROCKSDB_PROPERTIES.items():
                try:
                    totals[part] += int(db.property_int_value(prop) or 0)
                except (AttributeError, TypeError, ValueError, RuntimeError):  # closed, or no such property
                    continue
        for part, value in totals.items():
            ROCKSDB_MEMORY.labels(name, part).set(value)


async def metrics_page(request: web.Request) -> web.Response:
    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def serve(host: str, port: int, service: str) -> web.AppRunner | None:
    """Serve ``/metrics`` on this event loop; None (with a warning) when the port is taken: a
    metrics port in use must not stop a worker or a writer from doing its work."""
    if port <= 0:
        return None
    app = web.Application()
    app.add_routes([web.get("/metrics", metrics_page)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        log.warning("%s: cannot serve /metrics on %s:%d (%s); running without it", service, host, port, exc)
        await runner.cleanup()
        return None
    log.info("%s: Prometheus metrics on http://%s:%d/metrics", service, host, port)
    return runner
