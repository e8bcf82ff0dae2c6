"""``scripts/demo`` after install: wall time of ``shopsync demo`` with 200 customers.

``scripts/demo`` is ``scripts/setup`` (the install: skipped here, it is done) and then
``shopsync demo``, which is timed as a process of its own, as a user runs it: it generates the
store, starts the bridge, worker, writer and sandbox, plays the scenario (deliveries, duplicates,
clock ticks, a deletion in HubSpot) and prints the account's summary. It is given the run's
broker (``KAFKA_BOOTSTRAP_SERVERS``), so the broker's own start (about 2 s) is not in the figure.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from bench.suite import BenchEnv, Figure, Measured

CUSTOMERS, QUICK_CUSTOMERS = 200, 20
TARGET_S = 15.0


async def measure(env: BenchEnv) -> Measured:
    customers = QUICK_CUSTOMERS if env.quick else CUSTOMERS
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shopsync", "demo", "--customers", str(customers),
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": env.bootstrap},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    took = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"shopsync demo exited {process.returncode}:\n{err.decode()[-2000:]}")
    contacts = next((line for line in out.decode().splitlines() if line.startswith("Contacts synced")), "")
    return Measured(
        result=took, unit="s", met=took <= TARGET_S,
        detail=f"{customers} customers; {' '.join(contacts.split())}",
        extra={"customers": customers},
    )  # fmt: skip


FIGURE = Figure(
    name="demo",
    title="scripts/demo after install, 200 customers (wall time)",
    target="<= 15 s",
    baseline="none (a target)",
    run=measure,
)

if __name__ == "__main__":
    from bench.standalone import run_alone

    run_alone(FIGURE)
