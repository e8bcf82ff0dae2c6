"""The bridge's Kafka appender: an acknowledged append within Shopify's budget, or a clear failure (R3).

Why it is more than ``send_and_wait``: an idempotent producer can break for good. Measured: Kafka
stopped and started with deliveries in flight left the bridge's producer answering every later
append to ``shopify.orders`` with ``OutOfOrderSequenceNumber`` (its sequence numbers no longer
matched the broker's), for minutes, until the bridge was restarted, while ``/readyz`` said ready.
Shopify deletes a subscription after 8 failures in a row, so the bridge must heal itself.

So:

- **One producer, rebuilt when it is unusable.** An append that fails with an error that leaves
  an idempotent producer broken (``PRODUCER_FATAL``: a sequence or epoch the broker refuses, a
  producer id the broker forgot, a closed producer), any error once the producer's sender task
  has stopped (aiokafka then re-raises the sender's error on every send), or an error from
  outside aiokafka's error types retires that producer: its pending batches are failed at once
  (so requests waiting on them move to the new producer instead of waiting out their budget) and
  it is closed in the background, bounded by ``CLOSE_GRACE_S`` (a broken producer's ``stop()``
  can wait forever for batches it cannot deliver). Only one new producer starts at a time: the
  start is one shared task, and every request that needs a producer meanwhile waits on that same
  task with its own deadline, so a request that gives up never cancels the start the others
  wait for.
- **Retry within the budget.** Every append has ``SHOPSYNC_BRIDGE_APPEND_TIMEOUT_S`` in all
  (3 s by default; Shopify allows 5 s for the whole answer), spent on starting a producer,
  rebuilding it and retrying the append, with a short back-off between tries. The caller answers
  503 only when the budget ran out or Kafka refused the record; 200 only after Kafka's
  acknowledgement (acks=all). A try that timed out may still be appended later by the producer
  that held it: that is a duplicate, which the worker drops by its event id, never a loss.
- **A stalled producer is rebuilt too.** A producer that raises nothing but never acknowledges
  (appends to a topic time out for ``STALL_AFTER_S`` with no acknowledgement of that topic)
  while a fresh metadata probe shows the topic writable is retired like a broken one.
- **Readiness is a real probe** (``ready``): the producer is usable, and a fresh metadata request
  for every topic the bridge writes (``BRIDGE_TOPICS``, never auto-creating one) shows each
  partition with a live leader that the producer can connect to. This is chosen over a probe
  append: an append to a dedicated probe topic proves only that topic's leader, and probe
  records in the bridge's own topics would pollute the source of truth that replay rebuilds
  from. Its limit: a partition under ``min.insync.replicas`` has a leader but refuses acks=all
  appends; such appends answer 503 (Shopify retries) while ``/readyz`` still says ready. The
  answer is cached for ``READY_CACHE_S`` and concurrent checks share one probe, so a load
  balancer polling often costs Kafka one metadata request per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.cluster import ClusterMetadata
from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.structs import TopicPartition

from config import Settings
from handlers.producer_health import (
    CLOSE_GRACE_S,
    breaks,
    close_retired,
    fail_pending,
    started_producer,
    usable,
)
from streams.topics import SHOPIFY_RESOURCE_TOPICS, TopicName, topic_name

log = logging.getLogger("shopsync.bridge")
T = TypeVar("T")

BRIDGE_TOPICS: tuple[TopicName, ...] = (
    *SHOPIFY_RESOURCE_TOPICS.values(),
    "shopify.parking",
    "shopify.compliance",
    "hubspot.events",
)
"""Every topic the bridge appends to: readiness probes them all."""

SIZE_ERRORS = (MessageSizeTooLargeError, RecordTooLargeError)
"""Kafka refused the record itself: no retry or rebuild can help (the bridge answers 413)."""

READY_CACHE_S = 1.5
RETRY_BACKOFF_S = 0.1
STALL_AFTER_S = 10.0


def _event(kind: str, **fields: Any) -> None:
    log.info(orjson.dumps({"event": kind, **fields}).decode())


class KafkaAppender:
    """An idempotent acks=all producer that starts when first needed (Kafka may be down when the
    bridge starts) and is replaced whenever it becomes unusable (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = [topic_name(settings, name) for name in BRIDGE_TOPICS]
        self.rebuilds = 0  # producers retired so far (in the rebuild log line)
        self._producer: AIOKafkaProducer | None = None
        self._starting: asyncio.Task[AIOKafkaProducer] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._acked_at: dict[str, float] = {}  # topic -> last acknowledgement (loop time)
        self._started_at = 0.0
        self._stall_checked = 0.0
        self._ready: bool | None = None
        self._ready_checked = 0.0
        self._probing: asyncio.Task[bool] | None = None

    # -- producers -------------------------------------------------------------------------

    def _loop_time(self) -> float:
        return asyncio.get_running_loop().time()

    def _spawn(self, coro: Awaitable[T]) -> asyncio.Task[T]:
        """A background task kept referenced until done, its exception always retrieved."""

        async def run() -> T:
            return await coro

        task = asyncio.ensure_future(run())
        self._background.add(task)

        def done(t: asyncio.Task[T]) -> None:
            self._background.discard(t)
            if not t.cancelled():
                t.exception()

        task.add_done_callback(done)
        return task

    async def _start(self) -> AIOKafkaProducer:
        budget = self.settings.bridge_append_timeout_s
        try:
            producer = await started_producer(
                self.settings.kafka_bootstrap_servers, budget, max(5.0, budget),
                max_request_size=self.settings.kafka_message_bytes(),
            )  # fmt: skip
        finally:
            self._starting = None
        self._producer = producer
        self._started_at = self._loop_time()
        self._acked_at.clear()
        return producer

    async def _producer_before(self, deadline: float, retry: bool = True) -> AIOKafkaProducer:
        """The usable producer, started (once, shared) if there is none; raises ``TimeoutError``
        at the deadline, or the start's error when no time is left to try again (at once if not
        ``retry``: readiness answers at once that Kafka is down)."""
        while True:
            producer = self._producer
            if producer is not None:
                if usable(producer):
                    return producer
                self.retire(producer, "the producer's sender stopped")
            if self._starting is None:
                self._starting = self._spawn(self._start())
            remaining = deadline - self._loop_time()
            if remaining <= 0:
                raise TimeoutError("no Kafka producer within the append budget")
            try:
                return await asyncio.wait_for(asyncio.shield(self._starting), remaining)
            except TimeoutError:
                raise
            except Exception:
                if not retry or self._loop_time() + RETRY_BACKOFF_S >= deadline:
                    raise
                await asyncio.sleep(RETRY_BACKOFF_S)

    def retire(self, producer: AIOKafkaProducer, reason: str) -> None:
        """Stop using ``producer``: fail its pending batches now (their requests retry on the next
        producer) and close it in the background. Idempotent: only the first caller retires it."""
        if self._producer is not producer:
            return
        self._producer = None
        self.rebuilds += 1
        _event("bridge.producer_rebuilt", reason=reason, rebuilds=self.rebuilds)
        fail_pending(producer)
        self._spawn(close_retired(producer))

    # -- appends ---------------------------------------------------------------------------

    async def append(self, name: TopicName, key: bytes, value: bytes) -> None:
        """Append and return once Kafka acknowledged it (acks=all); retry, rebuilding the producer
        if it broke, until the append budget is spent. Raises the last error (``TimeoutError``
        at the deadline; ``SIZE_ERRORS`` at once)."""
        topic = topic_name(self.settings, name)
        deadline = self._loop_time() + self.settings.bridge_append_timeout_s
        while True:
            producer = await self._producer_before(deadline)
            remaining = max(0.001, deadline - self._loop_time())
            try:
                await asyncio.wait_for(producer.send_and_wait(topic, value, key=key), remaining)
            except SIZE_ERRORS:
                raise
            except TimeoutError:
                self._maybe_stalled(producer, topic)
                raise
            except Exception as exc:
                if breaks(exc, producer):
                    self.retire(producer, type(exc).__name__)
                if self._loop_time() + RETRY_BACKOFF_S >= deadline:
                    raise
                await asyncio.sleep(RETRY_BACKOFF_S)
                continue
            self._acked_at[topic] = self._loop_time()
            return

    def _maybe_stalled(self, producer: AIOKafkaProducer, topic: str) -> None:
        """An append timed out: if ``topic`` has had no acknowledgement from this producer for
        ``STALL_AFTER_S`` and Kafka says it is writable, the producer is stuck: retire it."""
        now = self._loop_time()
        since = max(self._acked_at.get(topic, 0.0), self._started_at, self._stall_checked)
        if now - since < STALL_AFTER_S or self._producer is not producer:
            return

        async def check() -> None:
            problem = await self._unwritable(producer, now + self.settings.bridge_append_timeout_s)
            if problem is None and self._acked_at.get(topic, 0.0) < now:
                self.retire(producer, f"appends to {topic} stalled while Kafka answers")

        self._stall_checked = now  # at most one check per stall interval
        self._spawn(check())

    # -- readiness -------------------------------------------------------------------------

    async def ready(self) -> bool:
        """Whether an append to every topic the bridge writes can succeed now (cached briefly)."""
        if self._ready is not None and self._loop_time() - self._ready_checked < READY_CACHE_S:
            return self._ready
        if self._probing is None:
            self._probing = self._spawn(self._probe())
        return await asyncio.shield(self._probing)

    async def _probe(self) -> bool:
        deadline = self._loop_time() + self.settings.bridge_append_timeout_s
        try:
            producer = await self._producer_before(deadline, retry=False)
            problem = await self._unwritable(producer, deadline)
            if problem is None and not usable(producer):
                problem = "the producer stopped"
        except Exception as exc:
            problem = f"Kafka does not answer ({type(exc).__name__})"
        finally:
            self._probing = None
        ready = problem is None
        if ready != self._ready:
            _event("bridge.ready" if ready else "bridge.not_ready", reason=problem)
        self._ready, self._ready_checked = ready, self._loop_time()
        return ready

    async def _unwritable(self, producer: AIOKafkaProducer, deadline: float) -> str | None:
        """Why an append to one of the bridge's topics would fail now, or None: a fresh metadata
        request (no topic auto-created) must show every partition with a leader among the live
        brokers, and the producer must reach each leader. Raises if Kafka does not answer."""
        client = producer.client
        node = client.get_random_node()
        if node is None:
            return "no broker known"
        request = MetadataRequest(list(self.topics), allow_auto_topic_creation=False)
        remaining = max(0.001, deadline - self._loop_time())
        response = await asyncio.wait_for(client.send(node, request), remaining)
        cluster = ClusterMetadata()
        cluster.update_metadata(response)
        brokers = {broker.nodeId for broker in cluster.brokers()}
        leaders: set[int] = set()
        for topic in self.topics:
            partitions = cluster.partitions_for_topic(topic)
            if not partitions:
                return f"topic {topic} does not exist"
            for partition in sorted(partitions):
                leader = cluster.leader_for_partition(TopicPartition(topic, partition))
                if leader is None or leader not in brokers:
                    return f"{topic}[{partition}] has no leader"
                leaders.add(leader)
        for leader in sorted(leaders):
            remaining = max(0.001, deadline - self._loop_time())
            if not await asyncio.wait_for(client.ready(leader), remaining):
                return f"broker {leader} (a leader) does not answer"
        return None

    async def close(self) -> None:
        """Stop the producer and let retired ones finish closing (each bounded by ``CLOSE_GRACE_S``)."""
        if self._starting is not None:
            self._starting.cancel()
            with contextlib.suppress(BaseException):
                await self._starting
        producer, self._producer = self._producer, None
        if producer is not None:
            await close_retired(producer)
        if self._background:
            _, pending = await asyncio.wait(set(self._background), timeout=CLOSE_GRACE_S)
            for task in pending:
                task.cancel()
