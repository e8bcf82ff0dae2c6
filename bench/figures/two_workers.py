"""Two worker processes against one, on the same records: does a second core pay?

Both runs read the same topics from the beginning, each under a fresh application id; the two
processes share the 4 partitions of every topic (2 each). Each rate is timed from when the group
is stable with all its members and committing, so the join and rebalance are left out.
"""

from __future__ import annotations

from bench import corpus
from bench.figures.worker import deliveries
from bench.suite import BenchEnv, Figure, Measured
from bench.workers import run_workers, stage

TARGET_SPEEDUP = 1.6


async def run(env: BenchEnv) -> Measured:
    count = deliveries(env)
    async with stage(env, "two_workers") as st:
        await corpus.append(st.settings, corpus.for_deliveries(count).copies(count))
        one = await run_workers(st, count, 1)
        two = await run_workers(st, count, 2)
    speedup = two.rate / one.rate
    return Measured(
        result=two.rate, unit="deliveries/s", baseline=one.rate, baseline_unit="deliveries/s",
        ratio=speedup, met=speedup >= TARGET_SPEEDUP,
        detail=f"{count:,} deliveries, {st.settings.partitions} partitions a topic; one worker "
        f"{one.seconds:.1f} s, two {two.seconds:.1f} s",
        extra={"deliveries": count, "one_s": one.seconds, "two_s": two.seconds},
    )  # fmt: skip


FIGURE = Figure(
    name="two_workers",
    title="two workers vs one (partitions spread)",
    target=f">= {TARGET_SPEEDUP}x",
    baseline="one worker, same records",
    run=run,
)
