"""Replay of a million deliveries: ``shopsync replay`` from the topics, timed end to end.

What a user runs to rebuild HubSpot from the log (``handlers/replay.py``): read every Shopify
topic from the beginning, fold the records through the rules in one deterministic order, and
append the commands that make HubSpot hold the result to ``hubspot.commands``. It runs as its own
``shopsync replay`` process, so its peak memory is its own (read from the kernel when it exits);
the process gets an address-space limit so that a replay that cannot hold the log in memory fails
with a MemoryError here instead of pushing the machine into swap or the OOM killer.

Baseline: the worker figure's result in this run (a replay should be at least as fast as the
live path it replaces); measured here if the worker figure was not run.
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench import corpus
from bench.figures import worker as worker_figure
from bench.suite import BenchEnv, Figure, Measured
from bench.workers import stage
from config import Settings

DELIVERIES = 1_000_000
QUICK_DELIVERIES = 1_000
TARGET_RATIO = 1.0
MEMORY_LIMIT_BYTES = 12 * 1024**3


def available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return MEMORY_LIMIT_BYTES


def replay_process(settings: Settings, log_path: Path, limit: int) -> tuple[float, float, int]:
    """Run ``shopsync replay``; return (seconds, peak RSS in MiB, exit code)."""

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {**os.environ, **settings.to_env()}
    started = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shopsync", "replay", "--allow-loss"], env=env, stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=limit_memory,
        )  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return time.monotonic() - started, usage.ru_maxrss / 1024, proc.returncode


async def run(env: BenchEnv) -> Measured:
    count = QUICK_DELIVERIES if env.quick else DELIVERIES
    records = corpus.for_deliveries(count)
    limit = min(MEMORY_LIMIT_BYTES, available_bytes() // 2)
    async with stage(env, "replay") as st:
        await corpus.append(st.settings, records.copies(count))
        log_path = Path(env.scratch_dir) / "replay.log"
        took, peak_mib, code = await asyncio.to_thread(replay_process, st.settings, log_path, limit)
    if code != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-12:])
        raise RuntimeError(
            f"shopsync replay exited {code} after {took:.0f} s on {count:,} deliveries (peak RSS "
            f"{peak_mib:,.0f} MiB, limit {limit / 1024**3:.1f} GiB):\n{tail}"
        )
    rate = count / took
    worker = env.earlier.get("worker") or await worker_figure.run(env)
    ratio = rate / worker.result
    return Measured(
        result=rate, unit="deliveries/s", baseline=worker.result, baseline_unit="deliveries/s",
        ratio=ratio, met=ratio >= TARGET_RATIO,
        detail=f"{count:,} deliveries in {took:.1f} s (process start-up included), peak RSS "
        f"{peak_mib:,.0f} MiB",
        extra={"deliveries": count, "seconds": took, "peak_rss_mib": peak_mib},
    )  # fmt: skip


FIGURE = Figure(
    name="replay",
    title=f"replay of {DELIVERIES:,} deliveries",
    target=f">= {TARGET_RATIO:.1f}x the worker figure",
    baseline="the worker figure",
    run=run,
)
