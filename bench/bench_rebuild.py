"""The timer index's rebuild after a rebalance: the cost per stored row of deriving a timed
table's clocks and timer indexes (``streams.partition_time.PartitionTime.rebuild``).

The rows are the sample store's states (its events through the in-process engine), spread over
four partitions and JSON-decoded per item as the table's store yields them. Baseline, measured in
the same run: the rebuild as it was before ``due_at`` (session 14), one scan of the table per
partition, every row of that partition validated into its state to ask for its next due time.
Run: .venv/bin/python -m bench.bench_rebuild [--deliveries 12000] [--partitions 4]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from bench import corpus
from schemas.envelope import Delivery, decode_log_record
from streams.entities import CONTACTS, JOURNEYS, ROWS
from streams.inprocess import InProcessPipeline
from streams.partition_time import AS_OF, DUE_AT, PartitionTime, due_stamp, stamped_due
from streams.processor import Kind

STREAM_TIME = "2026-03-02T09:00:00+00:00"


def states_of(deliveries: int) -> InProcessPipeline:
    pipeline = InProcessPipeline()
    for _topic, _key, value in corpus.for_deliveries(deliveries).copies(deliveries):
        record = decode_log_record(value)
        if isinstance(record, Delivery):
            pipeline.deliver(record)
    return pipeline


def best_of(runs: int, call: Callable[[], None]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


def measure(pipeline: InProcessPipeline, kind: Kind, partitions: int) -> str:
    config = pipeline.config
    fingerprint = config.fingerprint()
    assert kind.next_due is not None
    next_due = kind.next_due
    rows_of = ROWS[kind.name]
    states = list(pipeline.stores[kind.name].states.items())

    def stored(stamped: bool) -> list[tuple[str, bytes]]:
        out = []
        for i, (key, state) in enumerate(states):
            row = rows_of.to_row(state)
            row["partition"], row[AS_OF] = i % partitions, STREAM_TIME
            if stamped:
                row[DUE_AT] = due_stamp(next_due(state, config), fingerprint)
            out.append((key, orjson.dumps(row)))
        return out

    def items(rows: list[tuple[str, bytes]]) -> Iterator[tuple[str, Any]]:
        return ((key, orjson.loads(value)) for key, value in rows)

    def decoded(raw: dict[str, Any]) -> Any:
        return next_due(rows_of.from_row(raw), config)

    def from_stamp(raw: dict[str, Any]) -> Any:
        ok, due = stamped_due(raw, fingerprint)
        return due if ok else decoded(raw)

    plain, stamped = stored(False), stored(True)

    def before() -> None:  # a scan a partition, every row of it validated
        for partition in range(partitions):
            index: dict[str, Any] = {}
            for key, raw in items(plain):
                if raw.get("partition") == partition:
                    index[key] = decoded(raw)

    def after() -> None:
        PartitionTime(from_stamp).rebuild(0, items(stamped))

    old, new = best_of(3, before), best_of(3, after)
    n = len(states)
    size = sum(len(v) for _, v in stamped) / max(1, n)
    return (
        f"{kind.name:9} {n:7,} rows, {size / 1000:.1f} KB each: before {1e6 * old / n:6.1f} µs a row, "
        f"after {1e6 * new / n:6.1f} µs a row, {old / new:.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--deliveries", type=int, default=12_000)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    pipeline = states_of(args.deliveries)
    for kind in (JOURNEYS, CONTACTS):
        print(measure(pipeline, kind, args.partitions))


if __name__ == "__main__":
    main()
