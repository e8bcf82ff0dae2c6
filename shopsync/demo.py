"""``shopsync demo``: the README's first command, on local defaults.

Starts (or reuses) Kafka, creates a fresh set of topics, runs the stream worker as its own process,
feeds it a generated sample store's events with the clock advanced by ticks (12 simulated hours
apart, so the 15-minute, 24-hour and 48-hour rules fire in seconds), and prints the HubSpot
commands it produced and what HubSpot would hold once they are written.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import click

from schemas.commands import decode_command
from shopsync.account import fold
from shopsync.config import Settings
from shopsync.localrun import ServiceProcess, kafka_bootstrap, play, read_all, schedule, unique_suffix
from shopsync.samplestore import generate
from streams.topics import ensure_topics, topic_name


def run_demo(customers: int, seed: int, timeout_s: float) -> None:
    work = Path(tempfile.mkdtemp(prefix="shopsync-demo-"))
    with kafka_bootstrap(Path(".local/demo-kafka")) as bootstrap:
        suffix = unique_suffix()
        settings = Settings(
            kafka_bootstrap_servers=bootstrap,
            topic_prefix=f"demo-{suffix}.",
            app_id=f"shopsync-demo-{suffix}",
            data_dir=work / "worker",
            session_timeout_s=6.0,
            tick_interval_s=0,  # the demo's clock is the sample store's: ticks come from the feed
        )
        click.echo(f"Kafka at {bootstrap}; topics prefixed {settings.topic_prefix!r}", err=True)
        asyncio.run(ensure_topics(settings, internal=True))
        worker = ServiceProcess("worker", settings, work / "worker.log")
        try:
            store = generate(customers=customers, seed=seed)
            plan = schedule(store.events, timedelta(hours=12), timedelta(days=3))
            t0 = time.monotonic()
            click.echo(
                f"feeding {len(store.events)} Shopify events of the sample store (seed {seed}) and "
                f"{len(plan)} clock ticks, 12 simulated hours apart ...",
                err=True,
            )
            asyncio.run(play(settings, plan, lambda: worker, timeout_s=timeout_s))
            elapsed = time.monotonic() - t0
            records = asyncio.run(read_all(bootstrap, topic_name(settings, "hubspot.commands")))
            dead = asyncio.run(read_all(bootstrap, topic_name(settings, "shopify.deadletter")))
        finally:
            worker.stop()
    commands = [decode_command(r.value) for r in records]
    account = fold(commands)
    click.echo(
        f"\nThe worker processed {len(store.events)} events in {elapsed:.1f} s and produced "
        f"{len(commands)} HubSpot commands ({len(dead)} input records dead-lettered).\n"
    )
    click.echo(f"{'command':30} {'count':>6}")
    for kind, n in sorted(Counter(f"{c.op} {c.record.object_type}" for c in commands).items()):
        click.echo(f"{kind:30} {n:>6}")
    deals = account.of("deals")
    click.echo("\nWhat HubSpot would hold once the writer has sent them:")
    click.echo(f"  contacts {len(account.of('contacts'))}, deals {len(deals)}, products "
               f"{len(account.of('products'))}, line items {len(account.of('line_items'))}")  # fmt: skip
    for stage, n in sorted(Counter(str(p.get("dealstage")) for p in deals.values()).items()):
        click.echo(f"  deals in {stage:20} {n:>4}")
    fired = {
        "abandoned cart (W2)": sum(1 for p in deals.values() if p.get("shopify_abandoned_cart_trigger_at")),
        "new customer (W1)": sum(1 for p in deals.values() if p.get("shopify_new_customer_order") == "true"),
        "recovered checkouts": sum(
            1 for p in deals.values() if p.get("shopify_recovered_checkout") == "true"
        ),
    }
    for name, n in fired.items():
        click.echo(f"  {name:28} {n:>4}")
    click.echo(f"  deals archived (D4, 48 h)    {sum(1 for k, _ in account.archived if k == 'deals'):>4}")
    click.echo(f"\nWorker log: {work / 'worker.log'}", err=True)
