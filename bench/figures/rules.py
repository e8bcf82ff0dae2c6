"""The rules in-process (routing, decide, render, diff, timers), without Kafka, on a realistic mix.

The store is the sample store's, its orders and checkouts enlarged to the size of Shopify's own
sample webhooks (``bench.corpus``), delivered in time order with a tick every simulated hour (so
timers fire as they would live). The rules get each delivery as its envelope (decoded, as the
worker's router hands it on); the baseline, measured in the same run on the same records, is what
every record costs anyway: decoding its envelope from bytes and encoding it back with orjson. A
harder reference, bare ``orjson.loads`` + ``orjson.dumps`` of the same bytes, is in the extras.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import orjson

from bench.corpus import enlarged
from bench.suite import BenchEnv, Figure, Measured
from devtools.localrun import delivery_for, schedule
from devtools.samplestore import generate
from schemas.envelope import Delivery, decode_log_record, encode
from streams.inprocess import InProcessPipeline
from streams.runtime import tune_gc

CUSTOMERS = 2_000  # 10,257 deliveries
QUICK_CUSTOMERS = 200
TARGET_RATIO = 0.5


def windows(customers: int) -> list[tuple[list[Delivery], datetime]]:
    """The store's deliveries (enlarged) cut into simulated hours, each followed by its tick."""
    events = list(enlarged(generate(customers=customers, seed=1).events))
    plan = schedule(events, timedelta(hours=1), timedelta(days=3))
    return [([delivery_for(e) for e in batch], tick_at) for batch, tick_at in plan]


def measure(customers: int) -> Measured:
    """Time the rules and the baseline on the same records (importable: ``bench.bench_rules``)."""
    plan = windows(customers)
    raws = [encode(d) for batch, _ in plan for d in batch]
    count = len(raws)
    tune_gc()  # the garbage collector set as the worker and replay set it, for both sides

    started = time.perf_counter()
    for raw in raws:
        orjson.dumps(decode_log_record(raw).model_dump(mode="json"))
    baseline = count / (time.perf_counter() - started)

    started = time.perf_counter()
    for raw in raws:
        orjson.dumps(orjson.loads(raw))
    bare = count / (time.perf_counter() - started)

    pipeline = InProcessPipeline()
    started = time.perf_counter()
    for batch, tick_at in plan:
        for delivery in batch:
            pipeline.deliver(delivery)
        pipeline.tick(tick_at)
    rules = count / (time.perf_counter() - started)
    ratio = rules / baseline
    return Measured(
        result=rules, unit="deliveries/s", baseline=baseline, baseline_unit="deliveries/s", ratio=ratio,
        met=ratio >= TARGET_RATIO,
        detail=f"{count:,} deliveries ({sum(map(len, raws)) / count / 1024:.1f} KB on average), "
        f"{len(plan):,} ticks, {len(pipeline.commands):,} commands; bare orjson loads + dumps "
        f"{bare:,.0f}/s",
        extra={"deliveries": count, "ticks": len(plan), "commands": len(pipeline.commands),
               "orjson_loads_dumps_per_s": bare},
    )  # fmt: skip


async def run(env: BenchEnv) -> Measured:
    return measure(QUICK_CUSTOMERS if env.quick else CUSTOMERS)


FIGURE = Figure(
    name="rules",
    title="rules in-process, realistic mix (orders are KBs of JSON)",
    target=f">= {TARGET_RATIO} of baseline",
    baseline="envelope decode + orjson encode",
    run=run,
)
