"""Two workers of a new app id started at the same moment both run.

The benchmark saw one of them exit: both had faust create the tables' changelog topics, and the
loser stopped with faust's PartitionsMismatch. The worker now creates them, with its other
topics, before faust starts. The race itself did not reproduce on demand here; the first test
pins the fix, the second the scenario."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from config import Settings
from devtools.localrun import ServiceProcess, append_events, wait_until_worker_idle
from devtools.samplestore import SampleEvent, customer_body
from streams.topics import TABLES, changelog_topic, ensure_topics

pytestmark = pytest.mark.kafka

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def test_two_workers_started_at_once_both_run_and_share_the_work(
    settings: Settings, tmp_path: Path
) -> None:
    events = [
        SampleEvent(
            AT + timedelta(minutes=i),
            "customers/create",
            customer_body(1000 + i, f"c{i}@example.com", "C", str(i), AT),
            event_id=f"e{i}",
        )
        for i in range(200)
    ]
    await ensure_topics(settings)
    await append_events(settings, events)  # a backlog, as when a new application starts on old topics
    workers = [
        ServiceProcess(
            "worker", settings.model_copy(update={"data_dir": tmp_path / f"w{i}"}), tmp_path / f"w{i}.log"
        )
        for i in range(2)
    ]
    try:
        for _ in range(30):
            await asyncio.sleep(0.5)
            assert all(w.alive() for w in workers), [w.log_tail() for w in workers]
        await wait_until_worker_idle(settings, 90, workers[0])
        assert all(w.alive() for w in workers), [w.log_tail() for w in workers]
    finally:
        for worker in workers:
            worker.stop()


async def test_the_worker_creates_its_tables_changelogs_before_faust_does(settings: Settings) -> None:
    await ensure_topics(settings, internal=True)
    names = [changelog_topic(settings, t) for t in TABLES]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    finally:
        await admin.close()
    assert sorted(t["topic"] for t in described if t["error_code"] == 0) == sorted(names)
    assert {len(t["partitions"]) for t in described} == {settings.partitions}
    policies = {
        entry[0]: entry[1] for response in configs for resource in response.resources for entry in resource[4]
    }
    assert policies.get("cleanup.policy") == "compact"
