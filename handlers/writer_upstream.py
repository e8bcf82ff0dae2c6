"""How far the stream worker has got: the writer's proof that an association's missing end is not
still on its way from the worker.

A link whose end the writer does not know waits for it (``SHOPSYNC_WRITER_LINK_WAIT_S``), then is
dead-lettered. A wall-clock wait alone lost links under a backlog: importing 100,000 customers,
the worker's contacts stage ran more than two minutes behind its journeys stage, and 926 deal to
contact associations were dead-lettered while their contacts' upserts were still in the worker's
input (every one of those contacts was in HubSpot when the import ended). So the wait for a
missing end now counts from the moment the worker is known to have handled every record that
existed when the link was first seen: the end's upsert, if it is coming at all, was derived from
such a record, and is on ``hubspot.commands`` once the worker committed past it (it acknowledges
its outputs before it commits).

:class:`WorkerProgress` keeps that moment (``settled_at``, on the monotonic clock): it notes the
time, takes the end offsets of every topic the worker's group consumes (the Shopify topics, the
id map it joins, its own re-keyed topics), and waits until the group's committed offsets reach
them; ``PASSES`` times over, so the records a pass's records forwarded to the worker's own topics
(a router's re-keyed delivery, a fact for another entity) are covered by the next pass. Then the
noted time is settled and it starts again. It only reads offsets (two requests a probe).

A group that never committed and has no members has no worker (a replay's writer, whose topics
no worker reads): that settles at once, and the link wait is the wall-clock one. A group with
members that has not committed yet is a worker starting (a fresh deployment's first minutes,
its tables recovering): it has handled nothing, so it settles only once it commits past the
ends (taken as no worker, it settled at once, and the links its first batches made counted
their wait on the wall clock while the worker was still far behind). What it does not prove: that the
writers have read the end's command (a writer backlog of more than the link wait still
dead-letters); and while a worker that did commit is down it does not settle, so the writer's cap
(``writer_runner.LINK_WAIT_CAP`` link waits) dead-letters then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from config import Settings
from streams.topics import CONSUMED_TOPICS, INTERNAL_TOPICS, internal_topic, topic_name

log = logging.getLogger("shopsync.writer")

PASSES = 3
"""Router to entity to a forwarded fact's entity: the longest chain of the worker's own topics."""
PROBE_EVERY_S = 2.0


def worker_topics(settings: Settings) -> list[str]:
    """Every topic the worker's consumer group reads."""
    return [topic_name(settings, t) for t in CONSUMED_TOPICS] + [
        internal_topic(settings, n) for n in INTERNAL_TOPICS
    ]


def caught_up(committed: dict[TopicPartition, int], target: dict[TopicPartition, int]) -> bool:
    """Whether the group's committed offsets reach ``target`` on every partition (no commit: 0,
    so an empty partition is caught up and one holding records is not)."""
    return all(committed.get(tp, 0) >= end for tp, end in target.items())


class WorkerProgress:
    """``settled_at``: a monotonic time before which every record of the worker's topics has been
    handled by the worker (-inf until the first proof)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self._bootstrap = settings.kafka_bootstrap_servers
        self._group = settings.app_id
        self._topics = worker_topics(settings)
        self._clock = clock
        self.settled_at = float("-inf")
        self._seen_commits = False  # once the group committed (or had members), an empty answer is no proof
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, KafkaError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self._probe_forever()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never the writer's failure: it keeps its wall-clock wait
                log.warning("the worker's progress could not be read (%s); trying again", type(exc).__name__)
                await asyncio.sleep(PROBE_EVERY_S)

    async def _probe_forever(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False)
        try:
            await admin.start()
            await consumer.start()
            while True:
                noted = self._clock()
                passed = 0
                while passed < PASSES:
                    passed += await self._reached(admin, await self._ends(consumer))
                self.settled_at = noted
                await asyncio.sleep(PROBE_EVERY_S)
        finally:  # either may not have started
            with contextlib.suppress(Exception):
                await consumer.stop()
            with contextlib.suppress(Exception):
                await admin.close()

    async def _ends(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
        """The end offsets of every partition of the worker's topics (a topic not created yet
        holds nothing on its way). Metadata is asked for on every pass: the probe's consumer lives
        as long as the writer, and a partition added since its last refresh (aiokafka's own comes
        every five minutes) would hide an end still on its way, letting a link be given up early."""
        await consumer._client.force_metadata_update()
        parts = []
        for topic in self._topics:
            parts += [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(parts)
        return ends

    async def _reached(self, admin: AIOKafkaAdminClient, target: dict[TopicPartition, int]) -> int:
        """1 once the group's commits reach ``target`` (polled every ``PROBE_EVERY_S``)."""
        committed = await self._committed(admin)
        if not committed and not self._seen_commits:
            self._seen_commits = await self._has_members(admin)  # a worker that has not committed yet
        # A group that never committed and has no members has no worker (a replay's). Once it had
        # either, an empty answer is the broker's (a coordinator loading after a restart: aiokafka
        # does not raise its error), or a worker's that has handled nothing yet, and proves nothing.
        while (committed or self._seen_commits) and not caught_up(committed, target):
            await asyncio.sleep(PROBE_EVERY_S)
            committed = await self._committed(admin)
        return 1

    async def _has_members(self, admin: AIOKafkaAdminClient) -> bool:
        """Whether the worker's group has members now (DescribeGroups: a group no process joined
        reads as ``Dead`` with none; one whose members all left as ``Empty``)."""
        for response in await admin.describe_consumer_groups([self._group]):
            for entry in response.groups:
                _error, group_id, state, *rest = entry
                members = rest[2] if len(rest) > 2 else []
                if group_id == self._group and (members or state not in ("Dead", "Empty")):
                    return True
        return False

    async def _committed(self, admin: AIOKafkaAdminClient) -> dict[TopicPartition, int]:
        offsets = await admin.list_consumer_group_offsets(self._group)
        committed = {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
        self._seen_commits |= bool(committed)
        return committed
