"""HubSpot calls per 1,000 deliveries, on a realistic mix.

A generated store (``devtools.samplestore``: customers, products with variants, carts, checkouts
abandoned and recovered, orders paid, fulfilled, cancelled, deleted) is appended to its Shopify
topics window by window (12 simulated hours each, then a tick, so the timers fire: abandonment,
the 48-hour clean-up, the triggers), through ``shopsync worker`` and ``shopsync writer`` (their
own processes) into the HubSpot sandbox. Counted: the API calls the sandbox answered after the
writer had set the account up (custom properties, the pipeline), per 1,000 deliveries. Baseline:
a naive integration's one call per delivery.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from bench.call_log import CallLog
from bench.stack import bench_sandbox, fresh_settings, start_pipeline, stop_all, wait_for_log, work_dir
from bench.suite import BenchEnv, Figure, Measured
from devtools.localrun import play, schedule, wait_until_written
from devtools.samplestore import generate

CUSTOMERS, QUICK_CUSTOMERS = 1000, 100
NAIVE_CALLS_PER_1000 = 1000.0
TARGET = 25.0


async def measure(env: BenchEnv) -> Measured:
    work = work_dir(env, "calls")
    store = generate(customers=QUICK_CUSTOMERS if env.quick else CUSTOMERS, seed=5)
    plan = schedule(store.events, timedelta(hours=12), timedelta(days=3))
    log = CallLog()
    async with bench_sandbox(work, call_log=log) as sandbox:
        settings = await fresh_settings(env, "calls", hubspot_base_url=sandbox.url, tick_interval_s=0)
        worker, writer = start_pipeline(settings, work)
        try:
            await wait_for_log(writer, "writer ready", 120)
            before = Counter(sandbox.state.stats.by_route)
            started = len(log.calls)
            await play(settings, plan, lambda: worker, timeout_s=300)
            await wait_until_written(settings, 300)
            by_route = Counter(sandbox.state.stats.by_route) - before
            limited = sandbox.state.stats.by_status[429]
        finally:
            stop_all(worker, writer)
    deliveries = len(store.events)
    calls = sum(by_route.values())
    per_1000 = calls * 1000 / deliveries
    inputs: Counter[str] = Counter()
    for call in log.calls[started:]:
        inputs[call.path] += call.inputs
    paths = Counter(call.path for call in log.calls[started:])
    top = ", ".join(f"{path} {n} ({inputs[path] / n:.0f} inputs a call)" for path, n in paths.most_common(8))
    return Measured(
        result=per_1000, unit="calls", baseline=NAIVE_CALLS_PER_1000, baseline_unit="calls",
        ratio=per_1000 / NAIVE_CALLS_PER_1000, met=per_1000 <= TARGET,
        detail=f"{calls:,} calls for {deliveries:,} deliveries ({len(store.customers):,} customers, "
        f"{len(plan)} windows); {limited} answered 429; most: {top}",
        extra={"calls": calls, "deliveries": deliveries, "rate_limited": limited},
    )  # fmt: skip


FIGURE = Figure(
    name="calls",
    title="HubSpot calls per 1,000 deliveries, realistic mix",
    target="<= 25",
    baseline="1 call per delivery (a naive integration)",
    run=measure,
)

if __name__ == "__main__":
    from bench.standalone import run_alone

    run_alone(FIGURE)
