"""Throughput of the rules (routing, decide, render, diff) over a generated store, without Kafka.

Baseline, measured in the same run: parsing and re-encoding the same envelopes with orjson and
pydantic alone, which every record pays anyway; the ratio says what the rules add on top.
Run: .venv/bin/python -m bench.bench_rules [--customers 2000]
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

import orjson

from devtools.localrun import delivery_for, schedule
from devtools.samplestore import generate
from schemas.envelope import decode_log_record, encode
from streams.inprocess import InProcessPipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=2000)
    args = parser.parse_args()
    store = generate(customers=args.customers, seed=1)
    plan = schedule(store.events, timedelta(hours=1), timedelta(days=3))
    deliveries = [[delivery_for(e) for e in batch] for batch, _ in plan]
    raws = [encode(d) for batch in deliveries for d in batch]
    count = len(raws)

    start = time.perf_counter()
    for raw in raws:
        record = decode_log_record(raw)
        orjson.dumps(record.model_dump(mode="json"))
    baseline = time.perf_counter() - start

    pipeline = InProcessPipeline()
    start = time.perf_counter()
    for (_, tick_at), batch in zip(plan, deliveries, strict=True):
        for delivery in batch:
            pipeline.deliver(delivery)
        pipeline.tick(tick_at)
    rules = time.perf_counter() - start

    print(f"{count:,} deliveries, {len(plan):,} ticks, {len(pipeline.commands):,} commands")
    print(f"baseline (decode + encode): {count / baseline:10,.0f} deliveries/s")
    print(f"rules (in-process):         {count / rules:10,.0f} deliveries/s")
    print(f"ratio rules/baseline time:  {rules / baseline:10.1f}x")


if __name__ == "__main__":
    main()
