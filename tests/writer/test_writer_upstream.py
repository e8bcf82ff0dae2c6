"""The worker's progress as the writer reads it (``handlers.writer_upstream``), on the real broker:
a group with a backlog on one of the worker's topics is not settled, and is once it commits past
it; a group that never committed (no worker: a replay's writer) settles at once."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from config import Settings
from handlers import writer_upstream
from handlers.writer_upstream import WorkerProgress, caught_up, worker_topics
from streams.topics import ensure_topics, topic_name

pytestmark = pytest.mark.kafka


def test_caught_up_counts_a_partition_without_commits_as_offset_zero() -> None:
    tp, other = TopicPartition("t", 0), TopicPartition("t", 1)
    assert caught_up({tp: 5}, {tp: 5, other: 0})
    assert not caught_up({tp: 5}, {tp: 5, other: 1}), "a record never committed past is still to do"
    assert not caught_up({tp: 4}, {tp: 5})


async def commit(settings: Settings, offsets: dict[TopicPartition, int]) -> None:
    """Commit ``offsets`` for the worker's group, as its worker would."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, group_id=settings.app_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
    finally:
        await consumer.stop()


async def append_one(settings: Settings, topic: str) -> None:
    """One record on partition 0 of ``topic``: the worker's input, not handled yet."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"{}", key=b"1", partition=0)
    finally:
        await producer.stop()


async def until(condition: object, timeout_s: float = 30.0) -> None:
    assert callable(condition)
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 (the progress task polls the broker)
            await asyncio.sleep(0.05)


async def test_a_backlog_keeps_the_worker_unsettled_until_its_group_commits_past_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_upstream, "PROBE_EVERY_S", 0.05)
    await ensure_topics(settings, internal=True)
    customers = topic_name(settings, "shopify.customers")
    assert customers in worker_topics(settings)
    await append_one(settings, customers)
    first = TopicPartition(customers, 0)
    await commit(settings, {first: 0})  # the worker ran, and has not handled the record yet

    progress = WorkerProgress(settings)
    progress.start()
    try:
        await asyncio.sleep(0.5)  # ten probes
        assert progress.settled_at == float("-inf"), "a record of the worker's input is not handled"
        before = time.monotonic()
        await commit(settings, {first: 1})
        await until(lambda: progress.settled_at >= before)
    finally:
        await progress.stop()


async def test_a_group_that_never_committed_has_no_worker_and_settles_at_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_upstream, "PROBE_EVERY_S", 0.05)
    await ensure_topics(settings, internal=True)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic_name(settings, "shopify.orders"), b"{}", key=b"1")
    finally:
        await producer.stop()
    progress = WorkerProgress(settings)
    progress.start()
    try:
        started = time.monotonic()
        await until(lambda: progress.settled_at >= started)
    finally:
        await progress.stop()


async def test_a_worker_that_joined_but_never_committed_is_not_taken_for_no_worker(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh deployment's worker joins its group and recovers its tables before its first
    commit: it has handled nothing yet. Taken for "no worker", the writer settled at once and the
    first links counted their wait on the wall clock (found in review)."""
    monkeypatch.setattr(writer_upstream, "PROBE_EVERY_S", 0.05)
    await ensure_topics(settings, internal=True)
    customers = topic_name(settings, "shopify.customers")
    await append_one(settings, customers)
    worker = AIOKafkaConsumer(
        customers, bootstrap_servers=settings.kafka_bootstrap_servers, group_id=settings.app_id,
        enable_auto_commit=False, auto_offset_reset="earliest",
    )  # fmt: skip
    await worker.start()
    progress = WorkerProgress(settings)
    try:
        async with asyncio.timeout(30):
            while not worker.assignment():  # joined: the group has a member, and no commit
                await worker.getmany(timeout_ms=200)
        progress.start()
        await asyncio.sleep(0.5)  # ten probes
        assert progress.settled_at == float("-inf"), "a worker that handled nothing is not settled"
        before = time.monotonic()
        await worker.commit({TopicPartition(customers, p): OffsetAndMetadata(1 if p == 0 else 0, "")
                             for p in worker.partitions_for_topic(customers) or ()})  # fmt: skip
        await until(lambda: progress.settled_at >= before)
    finally:
        await progress.stop()
        await worker.stop()
