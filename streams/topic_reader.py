"""Reading a topic whole: every record from the beginning up to the end offsets seen at the start.

Replay rebuilds from the topics with it, the loss report counts a run's dead letters with it, and
the local-run helpers and tests read what a service wrote with it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()  # the project writes none; a scan (G1) reads them


async def read_all(
    bootstrap: str, topic: str, timeout_s: float = 10.0, on_batch: Callable[[int], None] | None = None
) -> list[Record]:
    """Every record now in ``topic``, from the beginning up to its end offsets; ``on_batch`` is
    told how many records each fetched batch held (a progress display counts them)."""
    out: list[Record] = []
    async for batch in batches(bootstrap, topic, timeout_s):
        out.extend(batch)
        if on_batch is not None:
            on_batch(len(batch))
    return out


async def batches(bootstrap: str, topic: str, timeout_s: float = 10.0) -> AsyncIterator[list[Record]]:
    """The records now in ``topic``, from the beginning up to its end offsets, a fetched batch at
    a time (a reader that folds them as they come holds none of them: a benchmark's gigabytes)."""
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
        deadline = time.monotonic() + timeout_s
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout_s} s")
            batch = await consumer.getmany(*tps, timeout_ms=500)
            for tp, msgs in batch.items():
                yield [
                    Record(tp.topic, tp.partition, m.offset, m.key, m.value or b"", tuple(m.headers or ()))
                    for m in msgs
                ]
    finally:
        await consumer.stop()


async def offsets_spanned(bootstrap: str, topics: Iterable[str]) -> int:
    """How many offsets the topics span now (end minus beginning, summed over partitions): the
    records a read of them from the beginning will meet, at most (transaction markers and
    compacted-away records take offsets too), so a progress display's total before reading."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # a new consumer knows no topic yet (as read_all)
        tps = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        return sum(ends[tp] - starts[tp] for tp in tps)
    finally:
        await consumer.stop()
