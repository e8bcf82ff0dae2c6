"""One ``shopsync worker`` process through Kafka: RocksDB store, changelogs on, a realistic mix.

The records are appended first; then a bare aiokafka consume-and-forward (acks=all) reads them,
then the worker does, each timed from when it is working until its group has committed
everything (the worker's own re-keyed topics included), so start-up and the group join are not
in either rate.
"""

from __future__ import annotations

from bench import corpus
from bench.suite import BenchEnv, Figure, Measured
from bench.traffic import bare_same_traffic, traffic_of
from bench.workers import bare_forward, run_workers, stage, workers_app

DELIVERIES = 100_000
QUICK_DELIVERIES = 1_000
TARGET_RATE = 10_000
TARGET_RATIO = 0.4


def deliveries(env: BenchEnv) -> int:
    return QUICK_DELIVERIES if env.quick else DELIVERIES


async def run(env: BenchEnv) -> Measured:
    count = deliveries(env)
    records = corpus.for_deliveries(count)
    async with stage(env, "worker") as st:
        await corpus.append(st.settings, records.copies(count))
        bare = await bare_forward(st, count)
        worker = await run_workers(st, count)
        traffic = await traffic_of(st, st.settings.topic_prefix + workers_app(1))
        same = await bare_same_traffic(st, traffic, count)
    ratio = worker.rate / bare.rate
    return Measured(
        result=worker.rate, unit="deliveries/s", baseline=bare.rate, baseline_unit="deliveries/s",
        ratio=ratio, met=worker.rate >= TARGET_RATE and ratio >= TARGET_RATIO,
        detail=f"{count:,} deliveries of {records.value_bytes / len(records) / 1024:.1f} KB on average; "
        f"worker {worker.seconds:.1f} s after a {worker.startup_s:.1f} s start-up; the worker's "
        f"traffic was {traffic.per_delivery(count)}: bare aiokafka moving the same records "
        f"{same.rate:,.0f} deliveries/s (worker at {worker.rate / same.rate:.2f} of it)",
        extra={"deliveries": count, "worker_s": worker.seconds, "worker_startup_s": worker.startup_s,
               "bare_forward_s": bare.seconds, "reads_per_delivery": traffic.reads / count,
               "writes_per_delivery": traffic.writes / count, "same_traffic_rate": same.rate,
               "same_traffic_s": same.seconds},
    )  # fmt: skip


FIGURE = Figure(
    name="worker",
    title="one worker through Kafka, RocksDB, changelogs on",
    target=f">= {TARGET_RATE:,} deliveries/s and >= {TARGET_RATIO} of baseline",
    baseline="bare aiokafka consume + forward, acks=all",
    run=run,
)
