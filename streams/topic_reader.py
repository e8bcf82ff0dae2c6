"""Reading a topic whole: every record from the beginning up to the end offsets seen at the start.

Replay rebuilds from the topics with it, the loss report counts a run's dead letters with it, and
the local-run helpers and tests read what a service wrote with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


async def read_all(bootstrap: str, topic: str, timeout_s: float = 10.0) -> list[Record]:
    """Every record now in ``topic``, from the beginning up to its end offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Record] = []
        deadline = time.monotonic() + timeout_s
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout_s} s")
            batch = await consumer.getmany(*tps, timeout_ms=500)
            for tp, msgs in batch.items():
                out.extend(Record(tp.topic, tp.partition, m.offset, m.key, m.value or b"") for m in msgs)
        return out
    finally:
        await consumer.stop()
