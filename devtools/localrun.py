"""Running the pipeline's parts locally: a broker, worker processes, feeding and draining topics.

Shared by the demo, the tests and (later) ``simulate``, so "start a worker", "wait until it has
processed everything" and "read what it wrote" mean the same everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Self

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from config import Settings
from devtools.samplestore import API_VERSION, SHOP_DOMAIN, SampleEvent
from schemas.envelope import Delivery, encode
from streams.topic_reader import read_all
from streams.topics import CONSUMED_TOPICS, INTERNAL_TOPICS, internal_topic, route, topic_name


@contextlib.contextmanager
def kafka_bootstrap(run_dir: Path) -> Iterator[str]:
    """``KAFKA_BOOTSTRAP_SERVERS`` if set; else a local broker started here and stopped after."""
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        yield existing
        return
    from localkafka import start, stop

    info = start(run_dir)
    try:
        yield info.bootstrap
    finally:
        stop(run_dir)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process exactly these settings (secrets included)."""
    return settings.to_env()


class ServiceProcess:
    """A ``shopsync <service>`` child process with its log in a file."""

    def __init__(
        self, service: str, settings: Settings, log_path: Path, extra_env: dict[str, str] | None = None
    ) -> None:
        self.service = service
        self.log_path = log_path
        env = {**os.environ, **settings_env(settings), **(extra_env or {})}
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "shopsync", service],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL: the crash case (nothing flushed, nothing committed on the way out)."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM and wait; SIGKILL if it does not stop in time. Returns the exit code."""
        self.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
        return self.proc.returncode

    def terminate(self) -> None:
        """SIGTERM, without waiting (:func:`stop_together`)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)


def stop_together(*processes: ServiceProcess, timeout_s: float = 20.0) -> None:
    """Stop several services at once: each gets its SIGTERM before any is waited for (a worker
    takes a couple of seconds to leave its group and close its tables; one after the other, the
    demo's worker and writer added their shutdowns up)."""
    for process in processes:
        process.terminate()
    for process in processes:
        process.stop(timeout_s)


def delivery_for(event: SampleEvent, received_at: datetime | None = None) -> Delivery:
    """The envelope the bridge would append for this sample event."""
    return Delivery(
        topic=event.topic, shop_domain=event.shop or SHOP_DOMAIN, webhook_id=f"wh-{event.event_id}",
        event_id=event.event_id, triggered_at=event.at, api_version=API_VERSION,
        received_at=received_at or event.at, source="import" if event.source == "import" else "webhook",
        body=event.body,
    )  # fmt: skip


async def append_events(settings: Settings, events: Iterable[SampleEvent]) -> int:
    """Append sample events to their Shopify topics (acks=all, idempotent); return the count.
    With ``SHOPSYNC_SEAL_PERSONAL_DATA`` each delivery is sealed as the bridge seals it (G1: its
    customer's key made and acknowledged on the key topic first), so a local run or a test with
    the setting feeds the worker what a deployment with it does."""
    from handlers.sealer import sealer_for

    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True, linger_ms=5,
        max_request_size=settings.kafka_message_bytes(),
    )  # fmt: skip
    sealer = sealer_for(settings)
    await producer.start()
    count = 0
    try:
        futures = []
        key_prefix = settings.rule_config().key_prefix  # X3: a second shop's keys
        listed = list(events)
        deliveries = [delivery_for(event) for event in listed]
        if sealer is not None:
            await sealer.prepare(deliveries)
            deliveries = [sealer.seal_held(d) for d in deliveries]
        for event, delivery in zip(listed, deliveries, strict=True):
            name, key = route(event.topic, event.body, key_prefix(event.shop or SHOP_DOMAIN))
            futures.append(await producer.send(topic_name(settings, name), encode(delivery), key=key))
            count += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
        if sealer is not None:
            await sealer.stop()
    return count


async def wait_for_records(bootstrap: str, topic: str, count: int, worker: ServiceProcess) -> list[bytes]:
    """The values in ``topic`` once it holds at least ``count`` records (60 s at most; fails at once
    if the worker process died meanwhile, with its log's tail)."""
    for _ in range(240):
        records = await read_all(bootstrap, topic)
        if len(records) >= count:
            return [r.value for r in records]
        if not worker.alive():
            raise RuntimeError(f"the {worker.service} process exited:\n{worker.log_tail()}")
        await asyncio.sleep(0.25)
    raise TimeoutError(f"{topic} did not get {count} records:\n{worker.log_tail()}")


class LagProbe:
    """One admin client and one consumer for many lag polls (``async with LagProbe(b) as probe``):
    opening both for every poll cost more than the 50 ms between polls, and simulations poll
    before each of their ticks."""

    def __init__(self, bootstrap: str) -> None:
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.partitions: dict[str, list[TopicPartition]] = {}

    async def __aenter__(self) -> Self:
        await self.admin.start()
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def topic_partitions(self, topic: str) -> list[TopicPartition]:
        """The topic's partitions (kept once known; looked up again while a topic has none yet)."""
        if topic not in self.partitions:
            parts = self.consumer.partitions_for_topic(topic)
            if not parts:
                await self.consumer._client.force_metadata_update()
                parts = self.consumer.partitions_for_topic(topic)
            if not parts:
                return []
            self.partitions[topic] = [TopicPartition(topic, p) for p in sorted(parts)]
        return self.partitions[topic]

    async def uncommitted(self, group: str, topics: Sequence[str]) -> dict[TopicPartition, int] | None:
        """Records per partition of ``topics`` that ``group`` has not committed (0 included);
        None while the group's offsets cannot be read yet. The committed offsets are read before
        the end offsets, so a record that a committed one caused (a forward) is counted."""
        try:
            committed = await self.admin.list_consumer_group_offsets(group)
        except KafkaError as exc:
            if getattr(exc, "retriable", False):
                return None  # e.g. the offsets topic is still being created on a new broker
            raise
        tps = [tp for t in topics for tp in await self.topic_partitions(t)]
        ends = await self.consumer.end_offsets(tps)
        out: dict[TopicPartition, int] = {}
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            out[tp] = max(ends[tp] - done, 0)
        return out

    async def lagging(self, group: str, topics: Sequence[str]) -> dict[str, int] | None:
        """The partitions of ``topics`` where ``group`` lags (``topic[partition]`` -> records)."""
        counts = await self.uncommitted(group, topics)
        if counts is None:
            return None
        return {f"{tp.topic}[{tp.partition}]": n for tp, n in counts.items() if n > 0}


async def lagging_partitions(bootstrap: str, group: str, topics: list[str]) -> dict[str, int] | None:
    """:meth:`LagProbe.lagging` once, with clients of its own."""
    async with LagProbe(bootstrap) as probe:
        return await probe.lagging(group, topics)


async def group_lag(bootstrap: str, group: str, topics: list[str]) -> int:
    """Records in ``topics`` that consumer group ``group`` has not committed yet (-1: unknown yet)."""
    lagging = await lagging_partitions(bootstrap, group, topics)
    return -1 if lagging is None else sum(lagging.values())


async def wait_for_zero_lag(
    bootstrap: str, group: str, topics: list[str], timeout_s: float, process: ServiceProcess | None = None,
    probe: LagProbe | None = None,
) -> None:  # fmt: skip
    """Return once ``group`` has committed everything in ``topics`` (raise TimeoutError if not,
    naming the partitions still lagging)."""
    if probe is None:
        async with LagProbe(bootstrap) as own:
            return await wait_for_zero_lag(bootstrap, group, topics, timeout_s, process, own)
    deadline = time.monotonic() + timeout_s
    while True:
        if process is not None and not process.alive():
            raise RuntimeError(f"the {process.service} process exited:\n{process.log_tail()}")
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0) + 30):
                lagging = await probe.lagging(group, topics)
        except TimeoutError:
            raise TimeoutError(
                f"the broker did not answer group {group}'s lag within {timeout_s} s + 30 s"
            ) from None
        if lagging == {}:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"group {group} still lagging after {timeout_s} s: {lagging}")
        await asyncio.sleep(0.05)


def worker_topics(settings: Settings) -> list[str]:
    """Every topic the worker's consumer group reads (for measuring its lag)."""
    return [topic_name(settings, t) for t in CONSUMED_TOPICS] + [
        internal_topic(settings, n) for n in INTERNAL_TOPICS
    ]


async def wait_until_worker_idle(settings: Settings, timeout_s: float, worker: ServiceProcess | None) -> None:
    """Return once the worker has processed everything, including what it forwarded to itself."""
    topics = worker_topics(settings)
    bootstrap = settings.kafka_bootstrap_servers
    deadline = time.monotonic() + timeout_s  # both rounds together: ``timeout_s`` is the whole wait
    async with LagProbe(bootstrap) as probe:
        for _ in range(2):  # routers forward to internal topics: settle, then check again
            left = max(deadline - time.monotonic(), 0.1)
            await wait_for_zero_lag(bootstrap, settings.app_id, topics, left, worker, probe)


async def wait_until_written(settings: Settings, timeout_s: float = 60.0) -> None:
    """Until the writer's group has committed everything on the commands topic (it commits only
    what is written, skipped or dead-lettered, so this means "the writer is idle")."""
    topic = topic_name(settings, "hubspot.commands")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with LagProbe(settings.kafka_bootstrap_servers) as probe:
        while (lagging := await probe.lagging(settings.writer_group(), [topic])) != {}:
            if loop.time() > deadline:
                raise TimeoutError(f"the writer did not catch up: {lagging}")
            await asyncio.sleep(0.05)


def unique_suffix() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S") + f"-{os.getpid()}"


def decode_json(value: bytes) -> object:
    return orjson.loads(value)


def schedule(
    events: Iterable[SampleEvent], step: timedelta, tail: timedelta
) -> list[tuple[list[SampleEvent], datetime]]:
    """Events cut into windows of ``step``, each followed by a tick at the window's end; then ticks
    every ``step`` for ``tail`` more, so the timers due after the last event fire too."""
    ordered = sorted(events, key=lambda e: e.at)
    if not ordered:
        return []
    plan: list[tuple[list[SampleEvent], datetime]] = []
    end = ordered[0].at + step
    batch: list[SampleEvent] = []
    for event in ordered:
        while event.at >= end:
            plan.append((batch, end))
            batch, end = [], end + step
        batch.append(event)
    plan.append((batch, end))
    stop = end + tail
    while end < stop:
        end += step
        plan.append(([], end))
    return [(b, t) for b, t in plan if b or t > ordered[-1].at]


async def play(
    settings: Settings,
    plan: list[tuple[list[SampleEvent], datetime]],
    worker: Callable[[], ServiceProcess],
    timeout_s: float = 90.0,
    on_window: Callable[[int], Awaitable[None]] | None = None,
    tickers: int = 1,
) -> None:
    """Feed a schedule to a running worker: each window's events, then (once the worker is idle,
    so no tick overtakes an event) its tick. ``worker()`` is the current worker process (a test
    may replace it); ``on_window(i)`` runs right after window ``i``'s events are appended, while
    the worker is busy with them (where a test kills it). ``tickers`` > 1 appends every tick that
    many times, as several tickers running at once would."""
    from streams.ticker import append_ticks

    for i, (batch, tick_at) in enumerate(plan):
        if batch:
            await append_events(settings, batch)
        if on_window is not None:
            await on_window(i)
        await wait_until_worker_idle(settings, timeout_s, worker())
        for _ in range(tickers):
            await append_ticks(settings, tick_at)
    await wait_until_worker_idle(settings, timeout_s, worker())
