"""X1 end to end: a generated store's commands in ``orders`` mode, through the writer, over real HTTP
into the HubSpot sandbox (which knows Orders, Carts, the order pipeline and their association
types), read from a real Kafka commands topic. What the sandbox then holds is what the commands
describe: Orders in the order pipeline's stages, Carts, each with its contact, its own line items
(pointed at their products) and a recovered cart's order."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest

from config import Settings
from config.rules import RuleConfig
from devtools.localrun import delivery_for, schedule, wait_until_written
from devtools.samplestore import generate
from handlers.writer import run_writer
from hubspot_sandbox import Sandbox
from schemas.commands import AnyCommand, Upsert
from streams.inprocess import InProcessPipeline
from streams.topics import ensure_topics
from tests.writer.conftest import admin, append_commands

pytestmark = pytest.mark.kafka
ORDERS = RuleConfig(commerce_objects="orders")


def orders_commands() -> list[AnyCommand]:
    pipeline = InProcessPipeline(config=ORDERS)
    store = generate(customers=12, seed=3)
    for batch, tick_at in schedule(store.events, timedelta(hours=12), timedelta(days=3)):
        for event in batch:
            pipeline.deliver(delivery_for(event))
        pipeline.tick(tick_at)
    return pipeline.commands


def last_values(commands: list[AnyCommand], object_type: str, prop: str) -> dict[str, str | None]:
    """The value the commands leave for ``prop`` on each record of a type (by its natural key)."""
    out: dict[str, str | None] = {}
    for c in commands:
        if isinstance(c, Upsert) and c.record.object_type == object_type and prop in c.properties:
            out[c.record.id_value] = c.properties[prop]
    return out


async def test_x1_orders_mode_writes_orders_and_carts_into_the_sandbox(
    writer_settings: Settings, sandbox: Sandbox
) -> None:
    settings = writer_settings.model_copy(update={"commerce_objects": "orders"})
    commands = orders_commands()
    assert not [c for c in commands if c.record.object_type == "deals"]
    await ensure_topics(settings)
    await append_commands(settings, commands)
    stop = asyncio.Event()
    task = asyncio.create_task(run_writer(settings, stop))
    try:
        await wait_until_written(settings)
    finally:
        stop.set()
        stats = await asyncio.wait_for(task, 30)
    assert stats.dead_lettered == 0
    dump = await admin(sandbox, "GET", "/_sandbox/dump")
    assert not dump["deals"], "orders mode writes no deal"
    orders = {o["properties"]["shopify_order_key"]: o for o in dump["orders"]}
    carts = {c["properties"]["shopify_cart_key"]: c for c in dump["carts"]}
    stages = last_values(commands, "orders", "hs_pipeline_stage")
    assert set(orders) == set(stages) and carts
    assert {k: o["stage_label"] for k, o in orders.items()} == stages, "stages written by label, read back"
    assert {o["pipeline_label"] for o in orders.values()} == {"Order Pipeline"}
    for key, order in orders.items():
        props = order["properties"]
        assert props["hs_source_store"] and props["hs_external_order_id"] and props["hs_currency_code"]
        assert props["hs_total_price"] == last_values(commands, "orders", "hs_total_price")[key]
    ids = {str(r["id"]): (t, r) for t in ("orders", "carts", "contacts", "line_items") for r in dump[t]}
    pairs = Counter(
        (ids[str(a["from_id"])][0], ids[str(a["to_id"])][0])
        for a in dump["associations"]
        if str(a["from_id"]) in ids and str(a["to_id"]) in ids
    )
    assert pairs[("orders", "contacts")] and pairs[("carts", "contacts")]
    assert pairs[("line_items", "orders")] and pairs[("line_items", "carts")]
    recovered = [c for c in carts.values() if c["properties"].get("hs_external_status") == "recovered"]
    assert recovered and pairs[("carts", "orders")] == len(recovered), "each recovered cart names its order"
    line_items = [r for t, r in ids.values() if t == "line_items"]
    assert line_items and all(li["properties"].get("hs_product_id") for li in line_items)
