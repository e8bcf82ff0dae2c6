"""The backlog-drain figures: ``shopsync writer`` through a backlog of real order traffic, the
sandbox at one tier's rate limit.

What is counted is *inputs*: records written (contacts, products, deals, line items, archives)
and associations made, by the same batch calls, 100 inputs a call, against the same rate limit, so
the bound is the tier's calls per 10 s x 100 inputs. The result is the inputs HubSpot applied:
the inputs of every write call the sandbox answered 2xx (``bench.call_log``), so a call carrying
fewer than 100, a look-up, a retry or a call that is not a write scores below the bound. Every
upsert of the backlog is a change of its record (a later stage of a deal, a contact's new totals;
the backlog is ten days of a store, a record's changes lie days apart in it): a writer sends each
change it has not coalesced with a later one in the same round, as HubSpot's workflows and
history see each stage. The detail also gives each distinct item once, when it first landed
(records: the sandbox's ``created_ms``; links: when an association answer first listed them),
and how many inputs were sent per distinct item: a writer could score higher on that only by
holding back changes until the whole backlog is read.

The result is taken over the whole 10-s windows of the run from the first write
(``bench.figures.writer.steady_rate``): the limit is a *rolling* 10 s, so a pacer may spend a
window's calls in a burst at the start and any shorter or misaligned span can read above the
bound; whole windows from the first write cannot. The backlog is appended only once the writer's
set-up calls have left the rolling window, so the drain starts with the whole budget. The rate
from the first append to the last write, tail included, is in the detail. A run that leaves any
record or link of the backlog missing, or any 429, does not meet the target, whatever its rate.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from bench.backlog import Checked, Expected, check, expected, order_backlog
from bench.call_log import CallLog, CallSummary, first_linked_ms, summarize
from bench.figures.writer import WINDOW_MS, steady_rate
from bench.stack import (
    association_rows,
    bench_sandbox,
    fresh_settings,
    records_by_key,
    stop_all,
    wait_for_log,
    work_dir,
)
from bench.suite import BenchEnv, Figure, Measured
from config import Settings
from devtools.localrun import ServiceProcess, wait_until_written
from hubspot_sandbox.tiers import Tier
from schemas.commands import AnyCommand, command_key, encode_command

BATCH_INPUTS = 100
TARGET_RATIO = 0.9
SLOWEST_INPUTS_PER_S = 50  # the wait for the writer gives up below this (a stuck writer fails)


@dataclass(frozen=True)
class DrainSpec:
    """One tier's figure. The store sizes are chosen so the drain takes ~45 s at the bound (full)
    and a few seconds (quick): ``customers`` buyers make about 0.6 orders and 6.7 inputs each."""

    name: str
    tier: Tier
    per_10s: int
    customers: int
    quick_customers: int

    @property
    def bound(self) -> float:
        """Inputs/s: the tier's calls per 10 s, 100 inputs each."""
        return self.per_10s * BATCH_INPUTS / 10


def encoded(commands: list[AnyCommand]) -> list[tuple[bytes, bytes]]:
    return [(command_key(c).encode(), encode_command(c)) for c in commands]


async def append(settings: Settings, records: list[tuple[bytes, bytes]]) -> None:
    """Every command onto ``hubspot.commands`` at once (encoded beforehand, so the append is quick)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        topic = f"{settings.topic_prefix}hubspot.commands"
        sent = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def budget_clear(log: CallLog) -> None:
    """Until the last call so far (the writer's set-up) has left the rolling 10-s window."""
    if log.calls:
        wait_s = (log.calls[-1].at_ms + WINDOW_MS) / 1000 - time.time()
        if wait_s > 0:
            await asyncio.sleep(wait_s)


@dataclass(frozen=True)
class Drain:
    """One drain's observations; all times epoch ms."""

    want: Expected
    checked: Checked
    calls: CallSummary
    applied_ms: list[int]  # one entry per input of each write call answered 2xx, when it was answered
    appended_ms: float
    done_ms: float  # the writer's group had committed everything


def rate_of(times_ms: list[int]) -> tuple[float, int]:
    """(inputs/s, whole windows): over the whole 10-s windows from the first write; a run shorter
    than one window (a quick run) falls back to first-to-last write, which a burst can lift above
    the bound, so it is only a smoke figure."""
    if not times_ms:
        return 0.0, 0
    rate = steady_rate(times_ms)
    windows = (max(times_ms) - min(times_ms)) // WINDOW_MS
    if math.isnan(rate):
        span_s = max((max(times_ms) - min(times_ms)) / 1000, 0.001)
        return len(times_ms) / span_s, 0
    return rate, windows


def measured(spec: DrainSpec, drain: Drain) -> Measured:
    times = drain.checked.times_ms
    distinct_rate, _ = rate_of(times)
    rate, windows = rate_of(drain.applied_ms)
    last_ms = max(times) if times else drain.done_ms
    took_s = (last_ms - drain.appended_ms) / 1000
    overall = len(times) / took_s if took_s > 0 else 0.0
    ratio = rate / spec.bound
    want, calls = drain.want, drain.calls
    skipped = (
        f"; {drain.checked.never_created:,} archived records never created"
        if drain.checked.never_created
        else ""
    )
    span = f"{windows} whole 10-s window(s)" if windows else "shorter than one window: first to last write"
    records = len(want.live) + len(want.archived)
    detail = (
        f"{len(drain.applied_ms):,} inputs applied over {span}; distinct items {distinct_rate:,.0f}/s "
        f"({distinct_rate / spec.bound:.2f} of the bound), "
        f"{len(drain.applied_ms) / max(1, len(times)):.2f} inputs sent per distinct item; "
        f"{len(times):,} inputs landed, of {want.items:,} in the backlog ({records:,} records, "
        f"{len(want.links):,} links; {want.commands:,} commands{skipped}); "
        f"{took_s:.1f} s from the first append to the last write ({overall:,.0f} inputs/s whole run), "
        f"committed {(drain.done_ms - drain.appended_ms) / 1000:.1f} s after it; {calls.describe()}; "
        f"{drain.checked.describe()}"
    )
    if drain.checked.links_timed_by_create:
        detail += f" ({drain.checked.links_timed_by_create:,} links made inside a create, timed by it)"
    return Measured(
        result=rate, unit="inputs/s", baseline=spec.bound, baseline_unit="inputs/s", ratio=ratio,
        met=ratio >= TARGET_RATIO and calls.rate_limited == 0 and drain.checked.complete,
        detail=detail,
        extra={
            "inputs": want.items, "landed": len(times), "applied": len(drain.applied_ms),
            "distinct_per_s": distinct_rate, "commands": want.commands, "seconds": took_s,
            "overall_per_s": overall, "windows": windows, "calls": calls.calls,
            "data_calls": calls.data_calls,
            "inputs_per_data_call": calls.inputs_per_data_call, "lookups": calls.lookups,
            "rate_limited": calls.rate_limited, "missing_records": drain.checked.missing_records,
            "missing_links": drain.checked.missing_links, "not_archived": drain.checked.not_archived,
        },
    )  # fmt: skip


async def drain(env: BenchEnv, spec: DrainSpec) -> Drain:
    work = work_dir(env, spec.name)
    commands = order_backlog(spec.quick_customers if env.quick else spec.customers)
    want, records = expected(commands), encoded(commands)
    log = CallLog()
    async with bench_sandbox(work, tier=spec.tier, rate_limit_per_10s=spec.per_10s, call_log=log) as sandbox:
        settings = await fresh_settings(
            env, spec.name, hubspot_base_url=sandbox.url, hubspot_rate_limit_per_10s=spec.per_10s
        )
        writer = ServiceProcess("writer", settings, work / "writer.log")
        try:
            await wait_for_log(writer, "writer ready", 120)
            await budget_clear(log)
            appended_ms = time.time() * 1000
            await append(settings, records)
            await wait_until_written(settings, 120 + want.items / SLOWEST_INPUTS_PER_S)
            done_ms = time.time() * 1000
        finally:
            stop_all(writer)
        checked = check(want, records_by_key(sandbox), association_rows(sandbox),
                        first_linked_ms(log.since(appended_ms)))  # fmt: skip
    calls = log.since(appended_ms)
    applied = [c.at_ms for c in calls if c.is_data and c.ok for _ in range(c.inputs)]
    return Drain(want, checked, summarize(calls), applied, appended_ms, done_ms)


def drain_figure(spec: DrainSpec, title: str) -> Figure:
    """The figure of one tier: its baseline is the bound, measured nowhere (no writer can beat it)."""

    async def run(env: BenchEnv) -> Measured:
        return measured(spec, await drain(env, spec))

    return Figure(
        name=spec.name, title=title, target=">= 0.9 of bound, zero 429s, nothing missing",
        baseline=f"the bound: {spec.per_10s} calls/10 s x 100 inputs", run=run,
    )  # fmt: skip
