"""The Kafka traffic a worker run caused, and a bare aiokafka pass that moves the same traffic.

The worker figure's baseline (read each delivery, forward it once) is the least any worker does,
but a worker does more than one read and one write per delivery: it re-keys deliveries through
its internal topics (read again), writes HubSpot commands, and writes its tables' changelogs.
This module counts what one worker run read and wrote, topic by topic, and times a bare
consume-and-produce loop that reads the same records and writes the same records (the worker's
own outputs, loaded beforehand, written to scratch topics with acks=all), in the worker's rhythm:
a batch read, its share of the writes sent and awaited, offsets committed. That loop has no
rules, no faust and no state store: what the worker costs beyond it is the engine and the rules;
what it costs itself is the topology (how many records a delivery becomes).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.drain import Drained, create_topic
from bench.workers import Stage
from streams.topics import INTERNAL_TOPICS, TopicName, internal_topic, topic_name

WRITTEN: tuple[TopicName, ...] = (
    "hubspot.commands",
    "hubspot.commands.dlq",
    "shopify.deadletter",
    "shopify.field-problems",
)


@dataclass(frozen=True)
class Traffic:
    """What one worker run moved: the topics it read (with how many records), and every record
    it wrote, by topic, in log order per partition."""

    read: dict[str, int]
    written: dict[str, list[tuple[bytes | None, bytes]]]

    @property
    def reads(self) -> int:
        return sum(self.read.values())

    @property
    def writes(self) -> int:
        return sum(len(records) for records in self.written.values())

    def per_delivery(self, deliveries: int) -> str:
        return f"{self.reads / deliveries:.2f} reads and {self.writes / deliveries:.2f} writes a delivery"


async def _records(
    consumer: AIOKafkaConsumer, topics: list[str]
) -> dict[str, list[tuple[bytes | None, bytes]]]:
    """Every record of ``topics``, by topic, in log order per partition: all of their partitions
    assigned and read together (one topic at a time cost a second or two each in fetch
    start-up, 53 of the worker figure's 73 s at 1,000 deliveries)."""
    metadata = await consumer._client.fetch_all_metadata()  # the partitions of topics not subscribed
    parts = [
        TopicPartition(t, p)
        for t in dict.fromkeys(topics)
        for p in sorted(metadata.partitions_for_topic(t) or ())
    ]
    out: dict[str, list[tuple[bytes | None, bytes]]] = {t: [] for t in topics}
    if not parts:
        return out
    ends = await consumer.end_offsets(parts)
    consumer.assign(parts)
    await consumer.seek_to_beginning(*parts)
    while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
        batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
        for tp, messages in batch.items():
            out[tp.topic] += [(m.key, m.value or b"") for m in messages if m.offset < ends[tp]]
    return out


async def traffic_of(stage: Stage, app_id: str) -> Traffic:
    """Count what the application ``app_id`` read and load what it wrote (after its run)."""
    settings = stage.for_app(app_id)
    internal = [internal_topic(settings, name) for name in INTERNAL_TOPICS]
    size = settings.kafka_message_bytes()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False,
        max_partition_fetch_bytes=size, fetch_max_bytes=size,
    )  # fmt: skip
    await consumer.start()
    try:
        topics = await consumer.topics()
        changelogs = sorted(t for t in topics if t.startswith(f"{app_id}-") and t.endswith("-changelog"))
        written_topics = [*internal, *(topic_name(settings, t) for t in WRITTEN), *changelogs]
        records = await _records(consumer, [*written_topics, *stage.sources()])
        written = {t: records[t] for t in written_topics}
        read = {t: len(records[t]) for t in [*stage.sources(), *internal]}
    finally:
        await consumer.stop()
    return Traffic(read, {t: records for t, records in written.items() if records})


async def bare_same_traffic(stage: Stage, traffic: Traffic, deliveries: int) -> Drained:
    """Time a bare loop that reads ``traffic.read`` and writes ``traffic.written`` (to scratch
    topics): per batch read, the same share of the writes, sent and awaited, then a commit."""
    settings = stage.settings
    bootstrap = settings.kafka_bootstrap_servers
    size = settings.kafka_message_bytes()
    scratch = {t: f"{settings.topic_prefix}bench.same-traffic.{i}" for i, t in enumerate(traffic.written)}
    for name in scratch.values():
        await create_topic(bootstrap, name, settings.partitions)
    pending = [(scratch[t], key, value) for t, records in traffic.written.items() for key, value in records]
    # Interleave the topics' records (the worker writes commands, forwards and changelogs together).
    pending.sort(key=lambda record: hash(record[2]))
    consumer = AIOKafkaConsumer(
        *traffic.read, bootstrap_servers=bootstrap, group_id=f"{settings.topic_prefix}same-traffic",
        auto_offset_reset="earliest", enable_auto_commit=False,
        max_partition_fetch_bytes=size, fetch_max_bytes=size,
    )  # fmt: skip
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024,
        max_request_size=size,
    )  # fmt: skip
    await consumer.start()
    await producer.start()
    started = time.monotonic()
    first_at: float | None = None
    reads, sent = 0, 0
    writes_per_read = len(pending) / max(traffic.reads, 1)
    try:
        while reads < traffic.reads:
            batch = await consumer.getmany(timeout_ms=1000, max_records=500)
            got = sum(len(messages) for messages in batch.values())
            if got and first_at is None:
                first_at = time.monotonic()
            reads += got
            share = round(reads * writes_per_read)
            upto = len(pending) if reads >= traffic.reads else min(len(pending), share)
            futures = [await producer.send(topic, value, key=key) for topic, key, value in pending[sent:upto]]
            sent = upto
            if futures:
                await asyncio.gather(*futures)
            if got:
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()
    return Drained.since(deliveries, started, first_at)
