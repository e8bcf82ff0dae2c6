"""X3 through `simulate`: two shops in one scenario, into one HubSpot sandbox account.

The two shops are seeded from the same sample data (the same ids, tokens, emails and event ids),
so anything keyed without its shop would merge. The account must hold every record of both
shops, the ones the rules describe; one contact per email listing both shops; each line item
pointing at its own shop's product.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from config.rules import RuleConfig
from devtools.localrun import delivery_for, schedule
from devtools.samplestore import generate, scenario_lines, several_shops, shop_domain
from devtools.simulate import SIMULATED_SHOP, parse, run
from handlers.account_fold import fold
from streams.inprocess import InProcessPipeline
from streams.rules.keys import COMMERCE_UNIQUE_PROPERTY, CONTACT_SHOPS_PROPERTY, SHOP_PROPERTY
from tests.writer.conftest import agrees, held

pytestmark = pytest.mark.kafka
OTHER = str(shop_domain(2))
MODE = "deals,orders"


async def test_x3_two_shops_in_one_scenario_end_with_every_record_and_nothing_merged(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    store = several_shops(2, customers=6, seed=4)
    path = tmp_path / "scenario.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(line, default=str) for line in scenario_lines(store)))
    result = await run(parse(path), kafka_bootstrap, tmp_path, 180, commerce_objects=MODE)
    assert result.report.lost == 0
    # what the rules say, with the scenario's own shop as the primary one (simulate's choice)
    pipeline = InProcessPipeline(config=RuleConfig(primary_shop=SIMULATED_SHOP, commerce_objects=MODE))
    for batch, tick_at in schedule(store.events, timedelta(hours=12), timedelta(days=3)):
        for event in batch:
            delivery = delivery_for(event)
            pipeline.deliver(delivery.model_copy(update={"shop_domain": event.shop or SIMULATED_SHOP}))
        pipeline.tick(tick_at)
    want = fold(pipeline.commands)
    legacy = fold([c for c in pipeline.commands if not _commerce(c)])
    account = result.account
    problems = agrees(legacy, held(account))
    assert not problems, problems[:10]
    single = generate(customers=6, seed=4)
    emails = {c["email"] for c in single.customers if c["email"]}
    contacts = {c["properties"]["email"]: c["properties"] for c in account["contacts"]}
    assert set(contacts) == emails, "one contact per email across both shops"
    assert {p[CONTACT_SHOPS_PROPERTY] for p in contacts.values()} == {
        ";".join(sorted((SIMULATED_SHOP, OTHER)))
    }
    for kind, unique in {"deals": "shopify_deal_key", **COMMERCE_UNIQUE_PROPERTY}.items():
        have = {r["properties"][unique]: r["properties"] for r in account[kind]}
        assert set(have) == set(want.of(kind)) and have, kind
        mine = {k for k in have if k.startswith(f"{OTHER}/")}
        assert mine and {k.removeprefix(f"{OTHER}/") for k in mine} == set(have) - mine, kind
        assert all(have[k][SHOP_PROPERTY] == OTHER for k in mine) and all(have[k]["hs_source_store"] == OTHER
                   for k in mine if kind != "deals")  # fmt: skip
    products = {str(p["id"]): p["properties"] for p in account["products"]}
    assert len(products) == 2 * len({r["properties"]["shopify_product_key"] for r in account["products"]
                                     if r["properties"].get(SHOP_PROPERTY) == SIMULATED_SHOP})  # fmt: skip
    for line in account["line_items"]:
        product = products[str(line["properties"]["hs_product_id"])]
        assert product.get(SHOP_PROPERTY) == line["properties"].get(SHOP_PROPERTY), "its own shop's product"


def _commerce(command: object) -> bool:
    ends = [getattr(command, "record", None), getattr(command, "to", None)]
    return any(ref is not None and ref.object_type in COMMERCE_UNIQUE_PROPERTY for ref in ends)
