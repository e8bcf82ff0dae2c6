"""Webhook-to-HubSpot write latency at 200 deliveries/s steady, the sandbox at 190 calls/10 s.

The whole live pipeline, each part as in production: ``shopsync bridge``, ``worker`` (live ticks
every second) and ``writer`` as processes, the HubSpot sandbox at HubSpot's Professional limit.
Once a first delivery has gone all the way through (every part warm), the load generator (its own
process) sends a generated store's deliveries, signed, at a steady 200/s whatever the answers
(Shopify does not wait for us), for ``SECONDS`` seconds: customers, carts, checkouts, orders in
the store's own order. The store's clock starts now, so its checkouts are not long abandoned.

Measured per ``customers/create`` delivery with an email, from the moment its POST was sent to
the moment the sandbox created that contact (the sandbox's own ``created_ms``, read from its
SQLite file after the run: exact to the millisecond and free while the run goes on). Only those
deliveries have a write that is theirs alone; the others (updates of records made earlier) load
the pipeline all the same. A contact never written counts as a miss, not as a latency.

Where the time went is read from Kafka after the run, as cheaply: the first ``hubspot.commands``
record upserting each contact carries the time the worker produced it, which splits each latency
into the bridge and worker's part (POST to command) and the writer's (command to HubSpot).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.loadgen import Request, percentile, write_requests
from bench.stack import (
    api_calls,
    bench_sandbox,
    bridge_url,
    contacts_created_ms,
    fresh_settings,
    run_loadgen,
    shopify_headers,
    start_bridge,
    start_pipeline,
    stop_all,
    warm_up,
    work_dir,
)
from bench.suite import BenchEnv, Figure, Measured
from config import Settings
from devtools.localrun import wait_until_worker_idle, wait_until_written
from devtools.samplestore import generate
from schemas.commands import Upsert, decode_command
from streams.rules.keys import normalize_email
from streams.topics import topic_name

RATE = 200
SECONDS, QUICK_SECONDS = 60, 5
TARGET_P50_S, TARGET_P99_S = 1.0, 3.0


def store_requests(count: int) -> tuple[list[Request], dict[str, str]]:
    """``count`` deliveries of a store whose clock starts now, and the normalised email of each
    ``customers/create`` among them (by request id)."""
    store = generate(customers=count // 5 + 1, seed=23, start=datetime.now(UTC))
    requests: list[Request] = []
    emails: dict[str, str] = {}
    for event in store.ordered()[:count]:
        body = orjson.dumps(event.body)
        headers = shopify_headers(body, event.topic, event.event_id, event.at.isoformat())
        requests.append(Request(event.event_id, "POST", "/webhooks/shopify", headers, body))
        email = normalize_email(event.body.get("email"))
        if event.topic == "customers/create" and email:
            emails[event.event_id] = email
    return requests, emails


@dataclass
class Latencies:
    """Seconds per measured delivery: in all, to its command (bridge and worker), then to HubSpot."""

    total: list[float] = field(default_factory=list)
    to_command: list[float] = field(default_factory=list)
    to_hubspot: list[float] = field(default_factory=list)
    missing: int = 0


def latencies(
    sent_path: Path, emails: dict[str, str], created: dict[str, int], commanded: dict[str, int]
) -> Latencies:
    """Each measured POST's latency (and its split); a contact never written is ``missing``."""
    out = Latencies()
    for line in sent_path.read_bytes().splitlines():
        sent = orjson.loads(line)
        email = emails.get(sent["id"])
        if email is None:
            continue
        if email not in created:
            out.missing += 1
            continue
        out.total.append((created[email] - sent["sent_ms"]) / 1000)
        if email in commanded:
            out.to_command.append((commanded[email] - sent["sent_ms"]) / 1000)
            out.to_hubspot.append((created[email] - commanded[email]) / 1000)
    return out


async def first_upserts_ms(settings: Settings) -> dict[str, int]:
    """When the worker produced the first command upserting each contact (the record's timestamp)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    first: dict[str, int] = {}
    try:
        topic = topic_name(settings, "hubspot.commands")
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for messages in (await consumer.getmany(*tps, timeout_ms=1000)).values():
                for m in messages:
                    command = decode_command(m.value or b"")
                    if isinstance(command, Upsert) and command.record.object_type == "contacts":
                        first.setdefault(command.record.id_value, m.timestamp)
    finally:
        await consumer.stop()
    return first


async def measure(env: BenchEnv) -> Measured:
    work = work_dir(env, "latency")
    seconds = QUICK_SECONDS if env.quick else SECONDS
    requests, emails = store_requests(RATE * seconds)
    load, sent = work / "load.jsonl", work / "sent.jsonl"
    write_requests(load, requests)
    async with bench_sandbox(work) as sandbox:
        settings = await fresh_settings(env, "latency", hubspot_base_url=sandbox.url)
        bridge = await start_bridge(settings, work)
        worker, writer = start_pipeline(settings, work)
        try:
            await warm_up(settings, sandbox, worker)
            calls_before, limited_before = api_calls(sandbox)
            summary = await run_loadgen(
                "--url", bridge_url(settings), "--requests", str(load), "--rate", str(RATE),
                "--out", str(sent),
            )  # fmt: skip
            await wait_until_worker_idle(settings, 300, worker)
            await wait_until_written(settings, 300)
            calls, limited = api_calls(sandbox)
        finally:
            stop_all(bridge, worker, writer)
        seen = latencies(sent, emails, contacts_created_ms(sandbox), await first_upserts_ms(settings))
    found, missing = seen.total, seen.missing
    p50, p99 = percentile(found, 50), percentile(found, 99)
    split = {
        f"{part}_p{q}_s": percentile(getattr(seen, part), q)
        for part in ("to_command", "to_hubspot")
        for q in (50, 99)
    }
    refused = summary["answered"] - summary["ok"] + summary["failures"]
    return Measured(
        result=p99, unit="s", met=p50 < TARGET_P50_S and p99 < TARGET_P99_S and missing == 0 and refused == 0,
        detail=f"p50 {p50:.2f} s, p99 {p99:.2f} s, max {max(found, default=0):.2f} s over {len(found):,} "
        f"new contacts; {len(requests):,} deliveries at {summary['ok_per_s']:.0f}/s for {seconds} s "
        f"({refused} refused, {missing} never written); {calls - calls_before} HubSpot calls, "
        f"{limited - limited_before} answered 429; POST to command p50/p99 {split['to_command_p50_s']:.2f}/"
        f"{split['to_command_p99_s']:.2f} s, command to HubSpot {split['to_hubspot_p50_s']:.2f}/"
        f"{split['to_hubspot_p99_s']:.2f} s",
        extra={"p50_s": p50, "p99_s": p99, "measured": len(found), "missing": missing, "refused": refused,
               "hubspot_calls": calls - calls_before, "rate_limited": limited - limited_before,
               "bridge_p99_ms": summary["p99_ms"], **split},
    )  # fmt: skip


FIGURE = Figure(
    name="latency",
    title="webhook to HubSpot write latency, 200 deliveries/s, sandbox at 190 calls/10 s (p99)",
    target="p50 < 1 s, p99 < 3 s",
    baseline="none (a target)",
    run=measure,
)

if __name__ == "__main__":
    from bench.standalone import run_alone

    run_alone(FIGURE)
