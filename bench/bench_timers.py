"""Timer index: the cost of a tick with N pending timers and none due, and of firing K due.

Baseline, measured in the same run: the naive alternative, a scan of every pending timer per tick.
Run: .venv/bin/python -m bench.bench_timers [--pending 1000000]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from streams.timers import TimerIndex

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def build(pending: int, rng: random.Random) -> tuple[TimerIndex, dict[str, float]]:
    index = TimerIndex()
    dues: dict[str, float] = {}
    for i in range(pending):
        due = T0 + timedelta(seconds=rng.randint(3600, 90 * 86400))
        index.set(f"key-{i}", due)
        dues[f"key-{i}"] = due.timestamp()
    return index, dues


def per_call(fn: Callable[[], object], repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pending", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=1_000)
    args = parser.parse_args()
    rng = random.Random(1)
    t = time.perf_counter()
    index, dues = build(args.pending, rng)
    print(f"built an index of {len(index):,} pending timers in {time.perf_counter() - t:.2f} s")

    now = T0  # nothing is due yet
    tick = per_call(lambda: index.pop_due(now), 20_000)
    limit = now.timestamp()
    scan = per_call(lambda: [k for k, d in dues.items() if d <= limit], 3)
    print(f"tick, none due:        {tick * 1e6:9.2f} µs   (budget: well under 1,000 µs)")
    print(f"baseline, full scan:   {scan * 1e6:9.2f} µs")
    print(f"ratio baseline/index:  {scan / tick:9.0f}x")

    # Firing is O(due): make K and 10K timers due and time popping them.
    for k in (args.due, 10 * args.due):
        fresh, _ = build(args.pending, random.Random(2))
        due_at = T0 + timedelta(seconds=30)
        for i in range(k):
            fresh.set(f"due-{i}", T0 + timedelta(seconds=i % 30))
        start = time.perf_counter()
        fired = fresh.pop_due(due_at)
        took = time.perf_counter() - start
        assert len(fired) == k
        print(
            f"fire {k:>7,} due of {args.pending + k:,}: {took * 1e3:8.2f} ms  ({took / k * 1e6:.2f} µs each)"
        )


if __name__ == "__main__":
    main()
