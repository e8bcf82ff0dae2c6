"""Writer records/s with the HubSpot sandbox at 190 calls per 10 s.

``shopsync writer`` (its own process) against the sandbox at HubSpot's Professional limit; once it
has set the account up, ``RECORDS`` contact upserts (each a distinct contact, with the properties
the rules write for a real customer) are appended to ``hubspot.commands`` at once, a backlog as
after an outage. The rate is read from the sandbox's creation times (``created_ms``) over the
run's whole 10-second windows (see ``steady_rate``); the whole run's rate, from the first append,
is in the detail. The bound: 190 calls per 10 s, 100 inputs per batch call =
1,900 records/s; no writer can go faster without 429s, and any 429 counts against the figure.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import timedelta

from aiokafka import AIOKafkaProducer

from bench.stack import (
    HUBSPOT_RATE_PER_10S,
    api_calls,
    bench_sandbox,
    contacts_created_ms,
    fresh_settings,
    stop_all,
    wait_for_log,
    work_dir,
)
from bench.suite import BenchEnv, Figure, Measured
from config import Settings
from devtools.localrun import ServiceProcess, delivery_for, schedule, wait_until_written
from devtools.samplestore import generate
from schemas.commands import Upsert, command_key, encode_command
from streams.inprocess import InProcessPipeline
from streams.rules.keys import contact_ref

RECORDS, QUICK_RECORDS = 60_000, 25_000
WINDOW_MS = 10_000  # HubSpot's rolling window
BATCH_INPUTS = 100
BOUND = HUBSPOT_RATE_PER_10S * BATCH_INPUTS / 10  # records/s
TARGET_RATIO = 0.9


def contact_upserts(count: int) -> list[Upsert]:
    """``count`` distinct contacts, each with the properties the rules write for a real customer."""
    pipeline = InProcessPipeline()
    for batch, tick_at in schedule(generate(customers=5, seed=3).events, timedelta(hours=12), timedelta(0)):
        for event in batch:
            pipeline.deliver(delivery_for(event))
        pipeline.tick(tick_at)
    template = next(
        c for c in pipeline.commands if isinstance(c, Upsert) and c.record.object_type == "contacts"
    )
    upserts = []
    for i in range(count):
        email = f"writer.bench.{i}@example.com"
        props = {**template.properties, "email": email}
        if "shopify_customer_id" in props:
            props["shopify_customer_id"] = str(9_000_000_000 + i)
        upserts.append(Upsert(record=contact_ref(email), properties=props))
    return upserts


async def append(settings: Settings, commands: list[Upsert]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        topic = f"{settings.topic_prefix}hubspot.commands"
        sent = [await producer.send(topic, encode_command(c), key=command_key(c).encode()) for c in commands]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def measure(env: BenchEnv) -> Measured:
    work = work_dir(env, "writer")
    records = QUICK_RECORDS if env.quick else RECORDS
    commands = contact_upserts(records)
    async with bench_sandbox(work) as sandbox:
        settings = await fresh_settings(env, "writer", hubspot_base_url=sandbox.url)
        writer = ServiceProcess("writer", settings, work / "writer.log")
        try:
            await wait_for_log(writer, "writer ready", 120)
            calls_before, limited_before = api_calls(sandbox)
            started_ms = time.time() * 1000
            await append(settings, commands)
            await wait_until_written(settings, 600)
            calls, limited = api_calls(sandbox)
        finally:
            stop_all(writer)
        created = [ms for email, ms in contacts_created_ms(sandbox).items() if email.startswith("writer.")]
    took_s = (max(created) - started_ms) / 1000
    rate, overall = steady_rate(created), len(created) / took_s
    ratio = rate / BOUND
    limited -= limited_before
    return Measured(
        result=rate, unit="records/s", baseline=BOUND, baseline_unit="records/s", ratio=ratio,
        met=ratio >= TARGET_RATIO and limited == 0 and len(created) == records,
        detail=f"{len(created):,} of {records:,} contacts in {took_s:.1f} s ({overall:,.0f}/s from the "
        f"first append); {calls - calls_before} calls ({limited} answered 429)",
        extra={"records": len(created), "seconds": took_s, "overall_per_s": overall,
               "calls": calls - calls_before, "rate_limited": limited},
    )  # fmt: skip


def steady_rate(created_ms: list[int]) -> float:
    """Records/s over the whole 10-s windows of the run, counted from the first write. A limit of
    190 calls per *rolling* 10 s lets a pacer spend a window's calls in a burst, then wait, then
    burst again as the first ones leave the window, so a rate over any other span than whole
    windows can be above the bound; over whole windows it cannot (NaN if the run was shorter)."""
    first, last = min(created_ms), max(created_ms)
    windows = (last - first) // WINDOW_MS
    if windows == 0:
        return math.nan
    end = first + windows * WINDOW_MS
    return sum(1 for ms in created_ms if ms < end) / (windows * WINDOW_MS / 1000)


FIGURE = Figure(
    name="writer",
    title="writer records/s, sandbox at 190 calls/10 s",
    target=">= 0.9 of bound, zero 429s",
    baseline="1,900 records/s bound (190 calls/10 s x 100 inputs)",
    run=measure,
)

if __name__ == "__main__":
    from bench.standalone import run_alone

    run_alone(FIGURE)
