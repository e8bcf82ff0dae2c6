"""Timer index: the cost of a tick with N pending timers and none due, and of firing K due; with
``--memory``, what the index holds after N keys are set and after each is moved once (the worker's
second pass over a million checkouts), and its peak while they move.

Baselines, measured in the same run: for time, the naive alternative, a scan of every pending
timer per tick; for memory, a plain dict of the due times (what any index must hold at least).
Run: .venv/bin/python -m bench.bench_timers [--pending 1000000] [--memory]
"""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc
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
    parser.add_argument("--memory", action="store_true", help="measure memory, not time")
    args = parser.parse_args()
    if args.memory:
        memory(args.pending)
        return
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


def _mib(start: int) -> tuple[float, float]:
    current, peak = tracemalloc.get_traced_memory()
    return (current - start) / 2**20, (peak - start) / 2**20


def memory(pending: int) -> None:
    """The index's memory over two passes of ``pending`` keys, against a dict of the same due
    times. The keys exist before measuring (the worker holds them anyway, in its states)."""
    keys = [f"checkouts:{i:024d}-0123456789" for i in range(pending)]
    first = [(T0 + timedelta(seconds=3600 + i * 7 % 86400)).timestamp() for i in range(pending)]
    moved = [T0 + timedelta(seconds=7200 + i * 7 % 86400) for i in range(pending)]
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    plain = dict(zip(keys, first, strict=True))
    baseline, _ = _mib(start)
    del plain
    start = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    index = TimerIndex()
    for key, stamp in zip(keys, first, strict=True):
        index.set(key, datetime.fromtimestamp(stamp, UTC))
    after_first, _ = _mib(start)
    tracemalloc.reset_peak()
    for key, due in zip(keys, moved, strict=True):
        index.set(key, due)
    after_second, peak = _mib(start)
    tracemalloc.stop()
    print(f"{pending:,} keys; baseline, a dict of due times: {baseline:7.1f} MiB")
    print(f"index after the first pass:  {after_first:7.1f} MiB  ({after_first / baseline:.2f}x)")
    growth = after_second / after_first - 1
    print(f"index after the second pass: {after_second:7.1f} MiB  ({after_second / baseline:.2f}x, "
          f"{growth:+.1%}), peak {peak:.1f} MiB ({peak / baseline:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
