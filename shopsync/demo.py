"""``shopsync demo``: the README's first command, on local defaults.

Starts (or reuses) Kafka, creates a fresh set of topics, runs the stream worker as its own process,
appends a generated sample store's events, waits until the worker has processed all of them, and
prints the HubSpot commands it produced.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from pathlib import Path

import click
import orjson

from schemas.commands import decode_command
from shopsync.config import Settings
from shopsync.localrun import (
    ServiceProcess,
    append_events,
    kafka_bootstrap,
    read_all,
    unique_suffix,
    wait_until_worker_idle,
)
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
        )
        click.echo(f"Kafka at {bootstrap}; topics prefixed {settings.topic_prefix!r}", err=True)
        asyncio.run(ensure_topics(settings, internal=True))
        worker = ServiceProcess("worker", settings, work / "worker.log")
        try:
            store = generate(customers=customers, seed=seed)
            t0 = time.monotonic()
            count = asyncio.run(append_events(settings, store.ordered()))
            click.echo(f"appended {count} Shopify events from the sample store (seed {seed})", err=True)
            asyncio.run(wait_until_worker_idle(settings, timeout_s, worker))
            elapsed = time.monotonic() - t0
            records = asyncio.run(read_all(bootstrap, topic_name(settings, "hubspot.commands")))
            dead = asyncio.run(read_all(bootstrap, topic_name(settings, "shopify.deadletter")))
        finally:
            worker.stop()
    commands = [decode_command(r.value) for r in records]
    click.echo(f"\nThe worker processed {count} events in {elapsed:.1f} s and produced "
               f"{len(commands)} HubSpot commands ({len(dead)} input records dead-lettered).\n")  # fmt: skip
    by_kind = Counter(f"{c.op} {c.record.object_type}" for c in commands)
    click.echo(f"{'command':30} {'count':>6}")
    for kind, n in sorted(by_kind.items()):
        click.echo(f"{kind:30} {n:>6}")
    click.echo("\nFirst commands:")
    for r in records[:5]:
        click.echo(f"  {r.key.decode() if r.key else ''}")
        click.echo("    " + orjson.dumps(orjson.loads(r.value)).decode()[:300])
    click.echo(f"\nWorker log: {work / 'worker.log'}", err=True)
