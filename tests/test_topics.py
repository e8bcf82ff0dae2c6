"""Topics are declared once and created idempotently on the real broker."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from config import Settings
from streams.topics import TOPICS, UnroutableError, ensure_topics, route, topic_name

pytestmark = pytest.mark.kafka


async def test_creating_topics_twice_changes_nothing(settings: Settings) -> None:
    first = await ensure_topics(settings)
    assert all(first.values()), "a fresh prefix: every topic is created"
    second = await ensure_topics(settings)
    assert not any(second.values()), "the second run creates nothing"

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics([topic_name(settings, t.name) for t in TOPICS])
        partitions = {d["topic"]: len(d["partitions"]) for d in described}
        assert partitions == {
            topic_name(settings, t.name): t.partitions or settings.partitions for t in TOPICS
        }
        resources = [ConfigResource(ConfigResourceType.TOPIC, topic_name(settings, t.name)) for t in TOPICS]
        responses = await admin.describe_configs(resources)
        configs: dict[str, dict[str, str]] = {}
        for response in responses:
            for resource in response.resources:
                name, entries = resource[3], resource[4]
                configs[name] = {e[0]: e[1] for e in entries}
    finally:
        await admin.close()
    for t in TOPICS:
        cfg = configs[topic_name(settings, t.name)]
        assert cfg["cleanup.policy"] == ("compact" if t.compacted else "delete"), t.name
        assert cfg["retention.ms"] == str(t.retention_ms), t.name


async def test_concurrent_creators_do_not_fail(settings: Settings) -> None:
    """Two services starting at once both ensure the topics; each topic is created exactly once."""
    first, second = await asyncio.gather(ensure_topics(settings), ensure_topics(settings))
    for name in first:
        assert first[name] != second[name], f"{name}: created by both or by neither"
    assert not any((await ensure_topics(settings)).values())


def test_routing_keys_each_resource_by_its_identity() -> None:
    assert route("orders/create", {"id": 7}) == ("shopify.orders", b"7")
    assert route("checkouts/update", {"token": "tok", "id": 1}) == ("shopify.checkouts", b"tok")
    assert route("carts/create", {"id": "c1", "token": "c1"}) == ("shopify.carts", b"c1")
    assert route("checkouts/delete", {"id": 3}) == ("shopify.checkouts", b"3")
    with pytest.raises(UnroutableError, match="unsupported"):
        route("shop/redact", {"id": 1})
    with pytest.raises(UnroutableError, match="no id"):
        route("orders/create", {})
