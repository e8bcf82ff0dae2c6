"""The stream worker on the real broker: a whole store, time advanced by appended ticks, the
15-minute, 24-hour and 48-hour rules firing in seconds; then the same with a SIGKILL mid-way.

The expected account comes from the in-process pipeline fed the same schedule; the rules
themselves are proven in tests/rules and tests/test_pipeline_properties.py. What this proves is
that the deployed shape (routers, re-keyed topics, tables, timer indexes, ticks through Kafka,
a worker restarted from its changelogs) gives the same result, loses nothing and fires no trigger
twice.
"""

from __future__ import annotations

import signal
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest

from config import Settings
from devtools.account import differences
from devtools.localrun import ServiceProcess, delivery_for, play, schedule
from devtools.samplestore import SampleEvent, generate
from handlers.account_fold import fold
from handlers.sealer import opener_for
from schemas.commands import AnyCommand, Upsert, decode_command
from schemas.sealing import COMMAND, Shredded, open_derived
from streams.inprocess import InProcessPipeline
from streams.topic_reader import read_all
from streams.topics import ensure_topics, topic_name

pytestmark = pytest.mark.kafka

STEP = timedelta(hours=12)
TAIL = timedelta(days=3)
TRIGGERS = (
    "shopify_abandoned_cart_trigger_at",
    "shopify_reengagement_trigger_at",
    "shopify_first_purchase_at",
)


def expected(plan: list[tuple[list[SampleEvent], datetime]]) -> list[AnyCommand]:
    pipeline = InProcessPipeline()
    for batch, tick_at in plan:
        for event in batch:
            pipeline.deliver(delivery_for(event))
        pipeline.tick(tick_at)
    return pipeline.commands


async def produced(settings: Settings) -> list[AnyCommand]:
    """The commands the worker wrote, in each partition's order; opened with the key topic's keys
    when the worker sealed them (G1: ``SHOPSYNC_SEAL_PERSONAL_DATA``)."""
    records = await read_all(settings.kafka_bootstrap_servers, topic_name(settings, "hubspot.commands"))
    opener = opener_for(settings, refresh_s=0.0)
    if opener is None:
        return [decode_command(r.value) for r in records]
    try:
        await opener.ensure(r.value for r in records if r.value)
        keys = dict(opener.keys)
    finally:
        await opener.stop()
    commands = []
    for r in records:
        opened = open_derived(orjson.loads(r.value), keys, COMMAND)
        assert not isinstance(opened, Shredded), "no subject was redacted: every key is held"
        commands.append(decode_command(orjson.dumps(opened)))
    return commands


def trigger_values(commands: list[AnyCommand]) -> dict[tuple[str, str], set[str]]:
    values: dict[tuple[str, str], set[str]] = defaultdict(set)
    for c in commands:
        if isinstance(c, Upsert):
            for name in TRIGGERS:
                if c.properties.get(name):
                    values[(c.record.id_value, name)].add(str(c.properties[name]))
    return values


def scenario_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"tick_interval_s": 0.0})


async def test_a_store_through_the_worker_gives_the_expected_account(
    settings: Settings, tmp_path: Path
) -> None:
    settings = scenario_settings(settings)
    store = generate(customers=12, seed=5)
    plan = schedule(store.events, STEP, TAIL)
    await ensure_topics(settings, internal=True)
    worker = ServiceProcess("worker", settings, tmp_path / "worker.log")
    try:
        await play(settings, plan, lambda: worker)
        commands = await produced(settings)
    finally:
        worker.stop()
    want = fold(expected(plan))
    got = fold(commands)
    assert got == want, worker.log_tail()
    # The scenario covers what the rules issue names: every stage, every timer, every order fate.
    deals = got.of("deals")
    stages = {p.get("dealstage") for p in deals.values()}
    assert {"Checkout Abandoned", "Processed", "Shipped", "Cancelled"} <= stages
    assert any(p.get("shopify_abandoned_at") for p in deals.values()), "15-minute abandonment"
    assert any(p.get("shopify_abandoned_cart_trigger_at") for p in deals.values()), "24-hour W2"
    assert any(k == "deals" for k, _ in got.archived), "48-hour D4 archived a never-promoted deal"
    assert any(p.get("shopify_recovered_checkout") == "true" for p in deals.values()), "recovered"
    assert any(
        p.get("shopify_cancelled_at") and p.get("shopify_cancel_reason") is None for p in deals.values()
    ), "an order deleted in Shopify (D5)"
    with_contact = {a[0][1] for a in got.associations if a[0][0] == "deals" and a[1][0] == "contacts"}
    assert set(deals) - with_contact, "an order without an email: a deal with no contact (D7)"
    assert got.of("products") and got.of("line_items")
    assert all(len(v) == 1 for v in trigger_values(commands).values())


async def test_killed_restarted_and_rebalanced_workers_lose_nothing_and_fire_no_trigger_twice(
    settings: Settings, tmp_path: Path
) -> None:
    """SIGKILL mid-window, restart from the changelogs, then a second worker joins (a rebalance
    moves partitions and their timers); two tickers run all along. The account is the expected
    one, and every trigger property was only ever written with one value."""
    settings = scenario_settings(settings)
    store = generate(customers=12, seed=8)
    plan = schedule(store.events, STEP, TAIL)
    await ensure_topics(settings, internal=True)

    def start(n: int) -> ServiceProcess:
        own = settings.model_copy(update={"data_dir": tmp_path / f"worker-{n}"})
        return ServiceProcess("worker", own, tmp_path / f"worker-{n}.log")

    workers = [start(1)]
    kill_at, join_at = len(plan) // 3, (2 * len(plan)) // 3

    async def disturb(i: int) -> None:
        if i == kill_at:
            workers[0].proc.send_signal(signal.SIGKILL)
            workers[0].proc.wait()
            workers.append(start(2))
        elif i == join_at:
            workers.append(start(3))

    try:
        await play(settings, plan, lambda: workers[-1], on_window=disturb, tickers=2)
        commands = await produced(settings)
    finally:
        for worker in workers:
            worker.stop()
    assert len(workers) == 3
    assert workers[0].proc.returncode == -signal.SIGKILL
    want = fold(expected(plan))
    got = fold(commands)
    assert got == want, differences(want, got)
    repeated = {k: v for k, v in trigger_values(commands).items() if len(v) > 1}
    assert not repeated, f"a trigger was written with two different values: {repeated}"
