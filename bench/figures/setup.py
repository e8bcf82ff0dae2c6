"""Set-up calls at writer start on a configured account.

``shopsync writer`` (its own process) starts on a fresh sandbox: it sets the account up in full
(every custom property, the deal pipeline) and remembers the outcome in ``hubspot.setup``; it is
stopped, then started again on the same topics. Counted: the HubSpot calls the sandbox answered
from each start until the writer logged that it is ready. The result is the second start's
count (the account is configured); the baseline is the first, full set-up's, in the same run.
"""

from __future__ import annotations

from bench.stack import api_calls, bench_sandbox, fresh_settings, stop_all, wait_for_log, work_dir
from bench.suite import BenchEnv, Figure, Measured
from devtools.localrun import ServiceProcess

TARGET = 3


async def measure(env: BenchEnv) -> Measured:
    work = work_dir(env, "setup")
    async with bench_sandbox(work) as sandbox:
        settings = await fresh_settings(env, "setup", hubspot_base_url=sandbox.url)
        counts: list[int] = []
        for start in ("first", "second"):
            before, _ = api_calls(sandbox)
            writer = ServiceProcess("writer", settings, work / f"writer-{start}.log")
            try:
                await wait_for_log(writer, "writer ready", 120)
                after, limited = api_calls(sandbox)
            finally:
                stop_all(writer)
            counts.append(after - before)
        routes = ", ".join(f"{route} {n}" for route, n in sorted(sandbox.state.stats.by_route.items()))
    full, configured = counts
    return Measured(
        result=configured, unit="calls", baseline=full, baseline_unit="calls",
        ratio=configured / full if full else None, met=configured <= TARGET,
        detail=f"first start {full} calls (full set-up), second start {configured}; {limited} answered 429; "
        f"both starts: {routes}",
        extra={"first_start_calls": full, "second_start_calls": configured},
    )  # fmt: skip


FIGURE = Figure(
    name="setup",
    title="set-up calls at writer start on a configured account",
    target="<= 3",
    baseline="the first start's full set-up, same run",
    run=measure,
)

if __name__ == "__main__":
    from bench.standalone import run_alone

    run_alone(FIGURE)
