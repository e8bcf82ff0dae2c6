"""The worker's memory holding a million checkouts: its peak, and whether it stays flat.

One ``shopsync worker`` (RocksDB store, changelogs on) reads a million distinct checkouts
(``checkouts/create``, each with its e-mail, so contacts and journeys both hold a million
entities), then the same million again as ``checkouts/update`` an hour later (new event ids, so
nothing is a duplicate). Its resident memory is read from ``/proc/<pid>/status`` after each pass:
the state lives in RocksDB, so the second pass should not grow it. The checkouts are the sample
store's own (about 2.7 KB each), not enlarged to Shopify's sample size: the bodies are not kept,
and the smaller records spare the shared machine several gigabytes of log.
"""

from __future__ import annotations

from datetime import timedelta

from bench import corpus
from bench.drain import drain, memory_mib
from bench.suite import BenchEnv, Figure, Measured
from bench.workers import application, processes, stage

CHECKOUTS = 1_000_000
QUICK_CHECKOUTS = 500
LIMIT_MIB = 1024
FLAT = 1.10  # after the second pass at most 10% above the first
TOPIC = "checkouts/create"


async def run(env: BenchEnv) -> Measured:
    count = QUICK_CHECKOUTS if env.quick else CHECKOUTS
    events = corpus.sample_events(corpus.TEMPLATE_CUSTOMERS, topics=frozenset({TOPIC}))
    first = corpus.template_of(events, realistic=False)
    second = corpus.template_of([corpus.updated(e, timedelta(hours=1)) for e in events], realistic=False)
    async with stage(env, "worker_rss") as st:
        app_id, topics = await application(st, "rss")
        bootstrap = st.settings.kafka_bootstrap_servers
        with processes(st, app_id, 1) as running:
            pid = running[0].proc.pid
            await corpus.append(st.settings, first.copies(count))
            one = await drain(bootstrap, app_id, st.sources(), topics, count, running)
            after_first, _ = memory_mib(pid)
            await corpus.append(st.settings, second.copies(count))
            two = await drain(bootstrap, app_id, st.sources(), topics, count, running)
            after_second, peak = memory_mib(pid)
    growth = after_second / after_first
    return Measured(
        result=peak, unit="MiB", met=peak < LIMIT_MIB and growth <= FLAT,
        detail=f"{count:,} checkouts: RSS {after_first:,.0f} MiB after the first pass "
        f"({one.rate:,.0f}/s), {after_second:,.0f} MiB after the second ({two.rate:,.0f}/s), "
        f"peak {peak:,.0f} MiB",
        extra={"checkouts": count, "rss_after_first_mib": after_first,
               "rss_after_second_mib": after_second, "peak_mib": peak, "growth": growth},
    )  # fmt: skip


FIGURE = Figure(
    name="worker_rss",
    title="worker RSS holding 1,000,000 checkouts (peak)",
    target=f"< {LIMIT_MIB / 1024:.0f} GiB, flat after the first pass (<= +{FLAT - 1:.0%})",
    baseline="",
    run=run,
)
