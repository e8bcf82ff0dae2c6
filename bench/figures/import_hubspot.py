"""Issue 15's import test end to end: a store through the local Shopify Admin API, Kafka, the
worker, the writer and the HubSpot sandbox at HubSpot's Professional limit, killed twice and
resumed, the account equal to a clean import's.

What runs, against one ``shopify-sandbox`` process (the local Admin API) and, per run, a fresh
HubSpot sandbox (190 calls per rolling 10 s), its own topics, ``shopsync worker`` and ``shopsync
writer`` processes:

1. The exports (the four bulk operations, started and polled until COMPLETED; not judged) and
   their JSONL downloaded raw: the Shopify bound (records/s the local API serves).
2. The clean run: worker and writer started (timed from the writer's ``writer ready``), then
   ``run_bulk_import`` on the completed exports, until the worker has processed every record
   (its re-keyed topics included) and the writer has committed every command: the result is the
   store's records over that time.
3. The HubSpot bound: what the clean account holds, each record once and each link once (HubSpot
   stores a link in both directions; one input of a ``batch/create`` makes both), at 100 inputs
   a call and 190 calls per 10 s: the least time any integration needs to put it there.
4. The resumed run: the same, with ``shopsync import --graphql`` as a child process SIGKILLed at
   30% and 70% of its lines (``bulk_import.killed_and_resumed``) while the worker and writer run;
   its account must equal the clean run's (records with their properties, links by natural keys).

Result: records/s end to end. Baseline: the slower of the two bounds (the store's records over
the longer of the Shopify serve time and the HubSpot time); target >= 0.8 of it (issue 15).
The full size is the issue's (100,000 customers); ``SHOPSYNC_BENCH_IMPORT_CUSTOMERS`` measures a
smaller store (the worker's rate makes the full size take about an hour on two cores).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.figures.bulk_import import (
    CHECKPOINT,
    KILL_AT,
    QUICK_CHECKPOINT,
    exports,
    killed_and_resumed,
    raw_download,
    seeded_state,
    shopify_sandbox,
)
from bench.stack import SANDBOX_TOKEN, bench_sandbox, fresh_settings, start_pipeline, stop_all, wait_for_log
from bench.suite import BenchEnv, Figure, Measured
from config import Settings
from devtools.account import differences, from_dump
from devtools.localrun import ServiceProcess, wait_until_worker_idle, wait_until_written
from handlers.account_fold import Account
from handlers.bulk_import import run_bulk_import
from hubspot_sandbox import Sandbox

CUSTOMERS, QUICK_CUSTOMERS = 100_000, 100
TARGET = 0.8
INPUTS_PER_CALL, CALLS_PER_10S = 100, 190
DRAIN_TIMEOUT_S = 4 * 3600  # a wait fails sooner when the worker stops moving (devtools.localrun)


async def account_of(sandbox: Sandbox) -> Account:
    """The sandbox's account by natural keys, a line item's product by its key (ids differ
    between two sandboxes)."""
    headers = {"Authorization": f"Bearer {SANDBOX_TOKEN}"}
    async with httpx.AsyncClient(base_url=sandbox.url, headers=headers, timeout=600) as http:
        answer = await http.get("/_sandbox/dump")
        answer.raise_for_status()
    dump: dict[str, Any] = orjson.loads(answer.content)
    account = from_dump(dump)
    products = {str(p["id"]): p["properties"].get("shopify_product_key") for p in dump["products"]}
    for props in account.records.values():
        if "hs_product_id" in props:
            props["hs_product_id"] = products.get(str(props["hs_product_id"]), props["hs_product_id"])
    return account


@contextlib.asynccontextmanager
async def pipeline(
    env: BenchEnv, name: str, work: Path
) -> AsyncIterator[tuple[Settings, Sandbox, ServiceProcess]]:
    """A fresh sandbox, topics, worker and writer; yields once the writer has set HubSpot up."""
    async with bench_sandbox(work) as sandbox:
        settings = await fresh_settings(env, name, hubspot_base_url=sandbox.url)
        worker, writer = start_pipeline(settings, work)
        try:
            await wait_for_log(writer, "writer ready", 120)
            yield settings, sandbox, worker
        finally:
            stop_all(worker, writer)


async def drained(settings: Settings, worker: ServiceProcess) -> None:
    """Until the worker has processed everything and the writer has committed every command."""
    await wait_until_worker_idle(settings, DRAIN_TIMEOUT_S, worker)
    await wait_until_written(settings, DRAIN_TIMEOUT_S)


def inputs_held(account: Account) -> tuple[int, int]:
    """(records, links) the account holds: each link once, though it is stored both ways."""
    return len(account.records), len(account.associations) // 2


async def run(env: BenchEnv) -> Measured:
    customers = (
        QUICK_CUSTOMERS if env.quick else int(os.environ.get("SHOPSYNC_BENCH_IMPORT_CUSTOMERS", CUSTOMERS))
    )
    checkpoint = QUICK_CHECKPOINT if env.quick else CHECKPOINT
    work = Path(env.scratch_dir) / "import_hubspot"
    for part in ("clean", "resumed"):
        (work / part).mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(12)
    with shopify_sandbox(customers, token, work / "exports", work / "shopify.log") as url:
        made = await exports(url, token)
        serve_s, lines, _, size = await raw_download(made)
        async with pipeline(env, "import_hubspot_clean", work / "clean") as (settings, sandbox, worker):
            seeded_state(work / "clean-state.json", made)
            t0 = time.monotonic()
            counts = await run_bulk_import(settings, url, token, work / "clean-state.json",
                                           checkpoint_every=checkpoint)  # fmt: skip
            imported_s = time.monotonic() - t0
            await drained(settings, worker)
            clean_s = time.monotonic() - t0
            clean = await account_of(sandbox)
        async with pipeline(env, "import_hubspot_resumed", work / "resumed") as (settings, sandbox, worker):
            t0 = time.monotonic()
            _, killed_at = await killed_and_resumed(
                settings, url, token, work / "resumed-state.json", lines, checkpoint, work
            )
            await drained(settings, worker)
            resumed_s = time.monotonic() - t0
            resumed = await account_of(sandbox)
    problems = differences(clean, resumed)
    if problems:
        raise RuntimeError(
            "the resumed import's account differs from the clean one's: " + "; ".join(problems)
        )
    records = sum(counts.values())
    held_records, held_links = inputs_held(clean)
    hubspot_s = (held_records + held_links) / (INPUTS_PER_CALL * CALLS_PER_10S / 10)
    bound_s = max(serve_s, hubspot_s)
    rate, bound = records / clean_s, records / bound_s
    which = "HubSpot" if hubspot_s >= serve_s else "Shopify serve"
    return Measured(
        result=rate, unit="records/s", baseline=bound, baseline_unit="records/s", ratio=rate / bound,
        met=rate / bound >= TARGET,
        detail=(
            f"{customers:,} customers: {records:,} records from {lines:,} lines ({size / 1e6:,.0f} MB) "
            f"into an account of {held_records:,} records and {held_links:,} links; clean run "
            f"{clean_s:.1f} s (the import itself {imported_s:.1f} s); bounds: HubSpot {hubspot_s:.1f} s "
            f"({INPUTS_PER_CALL} inputs a call, {CALLS_PER_10S} calls/10 s), Shopify serve {serve_s:.1f} s; "
            f"the slower is {which}; killed at {', '.join(f'{k:,}' for k in killed_at)} of {lines:,} "
            f"lines ({len(KILL_AT)} kills), resumed run {resumed_s:.1f} s, its account equals the clean one's"
        ),
        extra={
            "records": records, "clean_s": clean_s, "import_s": imported_s, "hubspot_bound_s": hubspot_s,
            "serve_s": serve_s, "resumed_s": resumed_s, "account_records": held_records,
            "account_links": held_links,
        },
    )  # fmt: skip


FIGURE = Figure(
    name="import_hubspot",
    title=f"import of {CUSTOMERS:,} customers into HubSpot, killed twice",
    target=f">= {TARGET} of the slower bound",
    baseline="the store's records over max(raw JSONL serve, the account's inputs at 190 calls/10 s)",
    run=run,
)

if __name__ == "__main__":
    from bench.standalone import run_alone

    run_alone(FIGURE)
