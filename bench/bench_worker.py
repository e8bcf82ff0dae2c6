"""End-to-end throughput of the stream worker through a real broker.

Appends a generated store's deliveries to fresh Shopify topics, starts ``shopsync worker`` and times
it until its consumer group has committed everything (its own re-keyed topics included).
Baseline, measured in the same run on the same records: a bare aiokafka loop that reads the same
topics and forwards every record once to a scratch topic with acks=all (what any worker must at
least do). Uses KAFKA_BOOTSTRAP_SERVERS, else starts a local broker.

Run: .venv/bin/python -m bench.bench_worker [--customers 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from config import Settings
from devtools.localrun import (
    ServiceProcess,
    append_events,
    kafka_bootstrap,
    unique_suffix,
    wait_until_worker_idle,
)
from devtools.samplestore import generate
from streams.topics import CONSUMED_TOPICS, ensure_topics, topic_name


async def baseline(settings: Settings, count: int) -> float:
    """Seconds for a bare consume-and-forward of ``count`` records."""
    scratch = f"{settings.topic_prefix}bench.scratch"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    await admin.create_topics([NewTopic(scratch, settings.partitions, 1)])
    await admin.close()
    consumer = AIOKafkaConsumer(
        *[topic_name(settings, t) for t in CONSUMED_TOPICS],
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"bench-baseline-{unique_suffix()}",
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", linger_ms=5)
    await consumer.start()
    await producer.start()
    started = time.perf_counter()
    seen = 0
    try:
        while seen < count:
            batch = await consumer.getmany(timeout_ms=1000)
            for messages in batch.values():
                for m in messages:
                    await producer.send(scratch, m.value, key=m.key)
                    seen += 1
            await producer.flush()
            await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()
    return time.perf_counter() - started


async def measure(bootstrap: str, customers: int, work: Path) -> None:
    suffix = unique_suffix()
    settings = Settings(
        kafka_bootstrap_servers=bootstrap, topic_prefix=f"bench-{suffix}.", app_id=f"bench-{suffix}",
        data_dir=work / "worker", tick_interval_s=0, session_timeout_s=6.0,
    )  # fmt: skip
    await ensure_topics(settings, internal=True)
    store = generate(customers=customers, seed=1)
    count = await append_events(settings, store.ordered())
    base = await baseline(settings, count)
    worker = ServiceProcess("worker", settings, work / "worker.log")
    try:
        started = time.perf_counter()
        await wait_until_worker_idle(settings, 600, worker)
        took = time.perf_counter() - started
    finally:
        worker.stop()
    print(f"{count:,} deliveries ({customers:,} customers)")
    print(f"baseline (consume + forward, acks=all): {count / base:9,.0f} deliveries/s")
    print(f"stream worker (start-up included):      {count / took:9,.0f} deliveries/s  ({took:.1f} s)")
    print(f"ratio worker/baseline time:             {took / base:9.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="shopsync-bench-"))
    with kafka_bootstrap(work / "kafka") as bootstrap:
        asyncio.run(measure(bootstrap, args.customers, work))


if __name__ == "__main__":
    main()
