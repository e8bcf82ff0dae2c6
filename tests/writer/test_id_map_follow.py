"""The id map follows ``hubspot.ids`` while a writer runs: it learns the ids another writer of its
group writes (so a link whose end another writer wrote needs no look-up in HubSpot), tombstones
and ``gone:`` markers included, against the real broker."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from aiokafka import AIOKafkaProducer

from config import Settings
from handlers.id_map import IdMap
from streams.topics import ensure_topics, topic_name
from tests.writer.test_writer_faults import until

pytestmark = pytest.mark.kafka


async def test_a_following_map_learns_what_another_writer_writes(settings: Settings) -> None:
    await ensure_topics(settings)
    topic = topic_name(settings, "hubspot.ids")
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        other = IdMap(producer, topic)
        await other.put("deals:shopify_deal_key:order:1", "101")
        assert not await other.settle(10)
        mine = IdMap(producer, topic)
        assert await mine.load(settings.kafka_bootstrap_servers) == 1
        following = asyncio.create_task(mine.follow(settings.kafka_bootstrap_servers))
        try:
            await other.put("contacts:email:a@example.com", "7")
            await other.put("deals:shopify_deal_key:order:2", "102")
            await other.forget("deals:shopify_deal_key:order:1")
            assert not await other.settle(10)
            await other.gone("contacts:email:a@example.com")
            assert not await other.settle(10)
            await until(
                lambda: mine.gone_id("contacts:email:a@example.com") is not None,
                what="the follower to catch up",
            )
            assert mine.get("deals:shopify_deal_key:order:2") == "102"
            assert mine.get("deals:shopify_deal_key:order:1") is None, "the tombstone is learnt"
            assert mine.get("contacts:email:a@example.com") is None
            assert mine.gone_id("contacts:email:a@example.com") == "7"
        finally:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
    finally:
        await producer.stop()
