"""``shopsync demo``: the README's first command, on local defaults.

Generates a sample store (a few hundred customers, products with variants, orders in every state,
abandoned and recovered checkouts, duplicate and out-of-order deliveries, a HubSpot-side deletion)
as a ``simulate`` scenario over several simulated days, runs the whole pipeline on it (local Kafka,
the bridge, the worker, the writer, the HubSpot sandbox), and prints a summary of the resulting
HubSpot account (SPEC S1: synced contacts, deals by stage, products; triggers fired; records
dead-lettered). ``shopsync demo`` then prints the loss report (``handlers.loss``, R7).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import click
import orjson

from devtools.localrun import kafka_bootstrap
from devtools.samplestore import generate, scenario_lines, several_shops
from devtools.simulate import SIMULATED_SHOP, Live, Result, parse, run
from hubspot_sandbox.tiers import Tier
from streams.rules.keys import CONTACT_SHOPS_PROPERTY, SHOP_PROPERTY, is_variant_key


def summary(account: dict[str, Any], dead_letters: dict[str, int]) -> list[str]:
    """S1 as a readable table: what the integration's summary shows, plus triggers and errors.
    Deals, Orders and Carts each get their rows when the account has any (X1's mode decides which
    it has); the triggers are counted on the deals, else on the orders and carts."""
    deals = account.get("deals") or []
    orders = account.get("orders") or []
    carts = account.get("carts") or []
    # A journey's triggers are on its deal, and on its order or cart too in `deals,orders`: counted once.
    props = [r["properties"] for r in (deals if deals else [*orders, *carts])]

    def count(prop: str, value: str | None = None) -> int:
        return sum(1 for p in props if (p.get(prop) == value if value else p.get(prop)))

    def by_stage(kind: str, records: list[dict[str, Any]]) -> list[tuple[str, int]]:
        stages = sorted(Counter(r.get("stage_label") or "(none)" for r in records).items())
        return [(f"  {kind} in {stage}", n) for stage, n in stages]

    variants = sum(
        1 for p in account["products"] if is_variant_key(p["properties"].get("shopify_product_key") or "")
    )
    rows = [
        ("Contacts synced", len(account["contacts"])),
        *((("Deals synced", len(deals)), *by_stage("deals", deals)) if deals else ()),
        *((("Orders synced (X1)", len(orders)), *by_stage("orders", orders)) if orders else ()),
        *((("Carts synced (X1)", len(carts)),) if carts else ()),
        ("Products synced", len(account["products"]) - variants),
        ("  variants synced as products (P5)", variants),
        ("Line items", len(account["line_items"])),
        ("New-customer triggers (W1)", count("shopify_new_customer_order", "true")),
        ("Abandoned-cart triggers (W2)", count("shopify_abandoned_cart_trigger_at")),
        ("Recovered checkouts", count("shopify_recovered_checkout", "true")),
        *((("Companies synced (X2)", len(account["companies"])),) if account.get("companies") else ()),
        ("Re-engagement triggers (W3)",
         sum(1 for c in account["contacts"] if c["properties"].get("shopify_reengagement_trigger_at"))),
        ("Deals archived (D4, 48 h pending)", account.get("archived", {}).get("deals", 0)),
        *((f"Dead-lettered: {topic}", n) for topic, n in sorted(dead_letters.items())),
    ]  # fmt: skip
    rows += shop_rows(account)
    width = max(len(label) for label, _ in rows)
    return [f"{label:<{width}}  {value:>6}" for label, value in rows]


SHOP_TYPES = ("deals", "orders", "carts", "products", "line_items", "companies")


def shop_rows(account: dict[str, Any]) -> list[tuple[str, int]]:
    """X3: per shop, the records it has and the contacts that list it; none for one shop. A
    record without ``shopify_shop_domain`` is the primary shop's (simulate's own shop)."""
    contacts = [c["properties"].get(CONTACT_SHOPS_PROPERTY) or "" for c in account.get("contacts", [])]
    if not any(contacts):
        return []
    listed = Counter(shop for value in contacts for shop in value.split(";") if shop)
    rows: list[tuple[str, int]] = [("Contacts in more than one shop (X3)", sum(";" in v for v in contacts))]
    for shop in sorted(listed):
        rows.append((f"Shop {shop}: contacts listing it", listed[shop]))
        for otype in SHOP_TYPES:
            records = account.get(otype) or []
            mine = [r for r in records if (r["properties"].get(SHOP_PROPERTY) or SIMULATED_SHOP) == shop]
            if records:
                rows.append((f"  {otype.replace('_', ' ')}", len(mine)))
    return rows


def run_demo(
    customers: int, seed: int, timeout_s: float, keep: bool = False, tier: Tier = "professional",
    commerce_objects: str = "deals", shops: int = 1,
) -> Result:  # fmt: skip
    """Generate the store, run it, print the summary; the caller reports loss (R7) and exits.

    ``keep``: once the summary and the loss report are printed, keep the pipeline and its
    dashboard up, print the dashboard's address, and return when interrupted (Ctrl-C)."""
    # aiokafka warns about retried sends while brand-new topics elect leaders; harmless, and noise here.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="shopsync-demo-"))
    # X3: several shops are generated from the same sample data (same ids and emails in each)
    store = several_shops(shops, customers, seed) if shops > 1 else generate(customers=customers, seed=seed)
    lines = scenario_lines(store, seed=seed, delete_in_hubspot=1)
    path = work / "scenario.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(line, default=str) for line in lines))
    click.echo(f"sample store: {shops} shop(s) of {customers} customers, {len(store.events)} Shopify "
               f"events; scenario of "
               f"{len(lines)} lines (duplicates, out-of-order deliveries, clock ticks 12 simulated "
               f"hours apart, a deletion in HubSpot): {path}; HubSpot sandbox tier: {tier}; "
               f"commerce objects: {commerce_objects}",
               err=True)  # fmt: skip
    started = time.monotonic()
    out = work / "account.json"

    def show(account: dict[str, Any], dead_letters: dict[str, int]) -> None:
        out.write_bytes(orjson.dumps(account, option=orjson.OPT_INDENT_2))
        click.echo(f"\nThe whole pipeline ran the scenario in {time.monotonic() - started:.0f} s. "
                   f"The HubSpot account (the sandbox's dump) is in {out}.\n")  # fmt: skip
        for row in summary(account, dead_letters):
            click.echo(row)

    kept: list[Live] = []

    async def stay(live: Live) -> None:
        kept.append(live)
        show(live.account, _dead_letters(live))
        for line in live.report.render():
            click.echo(line, err=True)
        click.echo(f"\nDashboard: {live.dashboard_url}  (Ctrl-C stops everything)")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # then every service stops as after a run
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    with kafka_bootstrap(Path(".local/demo-kafka")) as bootstrap:
        click.echo(
            f"Kafka at {bootstrap}; starting the bridge, worker, writer and HubSpot sandbox ...", err=True
        )
        result = asyncio.run(
            run(
                parse(path),
                bootstrap,
                work,
                timeout_s,
                live=stay if keep else None,
                tier=tier,
                commerce_objects=commerce_objects,
            )
        )
    if not kept:
        show(result.account, result.dead_letters)
    return result


def _dead_letters(live: Live) -> dict[str, int]:
    return {
        name: sum(n for (where, _), n in live.report.dead_letters.items() if where == name)
        for name in ("shopify.deadletter", "hubspot.commands.dlq")
    }
