"""Running ``shopsync worker`` processes over a backlog, and the bare consume-and-forward they are
compared with: what the worker, two-worker, replay and memory figures share.

Each figure gets topics of its own (a fresh prefix) and each worker run a fresh application id,
so two runs over the same records each read them from the beginning into tables and re-keyed
topics of their own. Workers run as ``shopsync worker`` child processes with the RocksDB store
and changelogs on (the production configuration), live ticks off.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.drain import POLL_S, Drained, LagProbe, create_topic, delete_topics, drain
from bench.suite import BenchEnv
from config import Settings
from config.privacy import G1_OFF
from devtools.localrun import ServiceProcess, unique_suffix
from streams.topics import CONSUMED_TOPICS, ensure_topics, internal_topic, topic_name
from streams.topics import INTERNAL_TOPICS as INTERNAL

SOURCES = [*CONSUMED_TOPICS]


@dataclass(frozen=True)
class Stage:
    """A figure's own topics on the shared broker, and where its workers keep their files."""

    settings: Settings
    work: Path

    def sources(self) -> list[str]:
        return [topic_name(self.settings, t) for t in SOURCES]

    def for_app(self, app_id: str, process: int = 0) -> Settings:
        return self.settings.model_copy(
            update={"app_id": app_id, "data_dir": self.work / app_id / f"worker-{process}"}
        )


@contextlib.asynccontextmanager
async def stage(env: BenchEnv, figure: str) -> AsyncIterator[Stage]:
    """Fresh topics for ``figure`` (deleted afterwards, with the changelogs of its workers)."""
    suffix = unique_suffix().replace("-", "")
    prefix = f"bench-{figure.replace('_', '-')}-{suffix}."
    settings = Settings(
        kafka_bootstrap_servers=env.bootstrap, topic_prefix=prefix, app_id=f"{prefix}app",
        data_dir=Path(env.scratch_dir) / figure, tick_interval_s=0, session_timeout_s=6.0,
        log_level="warning", **G1_OFF,
    )  # fmt: skip
    # G1's settings off: the figures as issue 11 defines them, comparable run to run; what the
    # default (sealed) worker costs more is measured beside them (bench/README.md, G1).
    await ensure_topics(settings)
    try:
        yield Stage(settings, Path(env.scratch_dir) / figure)
    finally:
        await delete_topics(env.bootstrap, (prefix,))


@contextlib.contextmanager
def processes(stage: Stage, app_id: str, count: int, first: int = 0) -> Iterator[list[ServiceProcess]]:
    """``count`` worker processes of one application (one consumer group), stopped afterwards
    (``first``: the number of the first, for its data folder and log)."""
    started = []
    try:
        for i in range(first, first + count):
            settings = stage.for_app(app_id, i)
            started.append(ServiceProcess("worker", settings, stage.work / app_id / f"worker-{i}.log"))
        yield started
    finally:
        for process in started:
            process.stop()


async def application(stage: Stage, name: str) -> tuple[str, list[str]]:
    """A fresh application id in the stage, its re-keyed topics created, and every topic its
    group reads (to time it by)."""
    app_id = f"{stage.settings.topic_prefix}{name}"
    settings = stage.for_app(app_id)
    await ensure_topics(settings, internal=True)
    return app_id, stage.sources() + [internal_topic(settings, n) for n in INTERNAL]


def workers_app(count: int) -> str:
    """The application name :func:`run_workers` gives ``count`` workers (in the stage's prefix)."""
    return f"workers{count}"


async def run_workers(stage: Stage, backlog: int, count: int = 1) -> Drained:
    """Time ``count`` fresh worker processes, started together, through the ``backlog`` in the
    stage's topics; the time is taken from when all of them have joined. (They used to race to
    create the changelog topics, and one exited; the worker now creates them before faust.)"""
    app_id, topics = await application(stage, workers_app(count))
    bootstrap = stage.settings.kafka_bootstrap_servers
    with processes(stage, app_id, count) as running:
        return await drain(bootstrap, app_id, stage.sources(), topics, backlog, running)


async def joined(bootstrap: str, group: str, running: list[ServiceProcess], timeout_s: float = 120.0) -> None:
    """Until ``group`` is stable with the ``running`` processes as its members."""
    deadline = time.monotonic() + timeout_s
    async with LagProbe(bootstrap) as probe:
        while await probe.members(group) < len(running):
            for process in running:
                if not process.alive():
                    raise RuntimeError(f"the {process.service} process exited:\n{process.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{group} did not become stable with {len(running)} members")
            await asyncio.sleep(POLL_S)


async def bare_forward(stage: Stage, backlog: int) -> Drained:
    """The least any worker must do: read the same records and forward each once (acks=all)."""
    settings = stage.settings
    scratch = f"{settings.topic_prefix}bench.scratch"
    await create_topic(settings.kafka_bootstrap_servers, scratch, settings.partitions)
    consumer = AIOKafkaConsumer(
        *stage.sources(), bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"{settings.topic_prefix}bare-forward", auto_offset_reset="earliest",
        max_partition_fetch_bytes=settings.kafka_message_bytes(),
        fetch_max_bytes=settings.kafka_message_bytes(),
    )  # fmt: skip
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", linger_ms=5,
        max_request_size=settings.kafka_message_bytes(),
    )  # fmt: skip
    await consumer.start()
    await producer.start()
    started = time.monotonic()
    first_at: float | None = None
    seen = 0
    try:
        while seen < backlog:
            batch = await consumer.getmany(timeout_ms=1000, max_records=1000)
            got = sum(len(messages) for messages in batch.values())
            if got and first_at is None:
                first_at = time.monotonic()
            for messages in batch.values():
                for m in messages:
                    await producer.send(scratch, m.value, key=m.key)
            seen += got
            await producer.flush()
            await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()
    return Drained.since(seen, started, first_at)
