"""X1 end to end: a generated store's commands in ``orders`` mode, through the writer, over real HTTP
into the HubSpot sandbox (which knows Orders, Carts, the order pipeline and their association
types), read from a real Kafka commands topic. What the sandbox then holds is what the commands
describe: Orders in the order pipeline's stages, Carts, each with its contact, its own line items
(pointed at their products) and a recovered cart's order."""

from __future__ import annotations

from collections import Counter

import pytest

from config import Settings
from config.rules import RuleConfig
from hubspot_sandbox import Sandbox
from schemas.commands import AnyCommand, Upsert
from tests.writer.conftest import admin, store_commands, write_all

pytestmark = pytest.mark.kafka
ORDERS = RuleConfig(commerce_objects="orders")


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
    commands = store_commands(customers=12, seed=3, config=ORDERS)
    assert not [c for c in commands if c.record.object_type == "deals"]
    stats = await write_all(settings, commands)
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
