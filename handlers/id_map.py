"""The writer's durable map from a record's natural key to its HubSpot id.

Kept in the compacted topic ``hubspot.ids``, so a restarted or rebuilt writer knows every id
without asking HubSpot, and associations can be made as soon as both ends exist. Loading reads the
topic to its end once at start; ``follow`` then keeps reading it, so a writer learns the ids the
other writers of its group write (a link whose end another writer wrote is made without asking
HubSpot, whichever partition each command came from). Values:

- ``<id>``: the record's HubSpot id;
- a tombstone: the product archived the record itself;
- ``gone:<id>`` (contacts only): HubSpot says the contact no longer exists (deleted in HubSpot).
  The id stays in the topic, so that after compaction the worker can still join a HubSpot
  deletion with this contact's email (C4, ``streams.deletions.contact_id_mapping``); the writer
  treats the id as unknown (it never writes to it and looks the email up again if asked).

Nothing is remembered before Kafka acknowledged it: ``put`` and ``forget`` stage their change and
send it; ``settle`` (once per round, before the writer commits) waits for the acknowledgements and
keeps what Kafka acknowledged; ``abandon`` drops what a round that is undone staged. A change Kafka
did not acknowledge is therefore made again when the round is read again.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from streams.deletions import GONE_PREFIX

CONTACT_KEY_PREFIX = "contacts:"

_Change = tuple[str, str | None, str | None]
"""(key, live id or None, gone id or None): what the key maps to once the change is acknowledged."""


class RecordSender(Protocol):
    """What sends a record to Kafka: ``AIOKafkaProducer.send`` (a future of the acknowledgement);
    tests pass one of their own."""

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> asyncio.Future[Any]: ...


class IdMap:
    """Natural key (``RecordRef.key``) -> HubSpot id, backed by a compacted topic."""

    def __init__(self, producer: RecordSender | AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self._ids: dict[str, str] = {}
        self._gone: dict[str, str] = {}
        self._staged: dict[str, tuple[str | None, str | None]] = {}
        self._sent: list[tuple[_Change, asyncio.Future[Any] | BaseException]] = []
        self._loaded: dict[TopicPartition, int] = {}  # where ``load`` stopped reading, per partition

    def use(self, producer: RecordSender | AIOKafkaProducer) -> None:
        """Send with this producer from now on (the writer replaced its own)."""
        self._producer = producer

    def __len__(self) -> int:
        return len(self._ids)

    def live(self) -> dict[str, str]:
        """Every live natural key and its HubSpot id, as read (a copy)."""
        return dict(self._ids)

    def get(self, key: str) -> str | None:
        """The live HubSpot id of ``key`` (this round's changes included), else None."""
        if key in self._staged:
            return self._staged[key][0]
        return self._ids.get(key)

    def gone_id(self, key: str) -> str | None:
        """The id HubSpot said it no longer holds for this contact key, if any."""
        if key in self._staged:
            return self._staged[key][1]
        return self._gone.get(key)

    async def put(self, key: str, hubspot_id: str) -> None:
        if self.get(key) == hubspot_id:
            return
        await self._send((key, hubspot_id, None), hubspot_id.encode())

    async def forget(self, key: str) -> None:
        """The product archived the record: a tombstone."""
        if self.get(key) is not None or self.gone_id(key) is not None:
            await self._send((key, None, None), None)

    async def gone(self, key: str) -> None:
        """HubSpot says the record no longer exists. A contact keeps its id as ``gone:<id>`` (the
        worker joins HubSpot's deletions by it, C4); any other record gets a tombstone."""
        known = self.get(key)
        if known is None:
            return
        if key.startswith(CONTACT_KEY_PREFIX):
            await self._send((key, None, known), f"{GONE_PREFIX}{known}".encode())
        else:
            await self._send((key, None, None), None)

    async def _send(self, change: _Change, value: bytes | None) -> None:
        key, live, gone = change
        self._staged[key] = (live, gone)
        try:
            future = await self._producer.send(self._topic, value, key=key.encode())
        except KafkaError as exc:  # not even queued (no metadata, too large, ...): the round fails
            self._sent.append((change, exc))
            return
        self._sent.append((change, future))

    async def settle(self, timeout_s: float) -> list[BaseException]:
        """Wait (at most ``timeout_s``) for every change sent since the last settle; remember
        those Kafka acknowledged, in the order sent; return the failures (empty: all durable)."""
        sent, self._sent, self._staged = self._sent, [], {}
        waiting = [f for _, f in sent if isinstance(f, asyncio.Future)]
        if waiting:  # asyncio.wait, not wait_for: the producer's futures must not be cancelled
            await asyncio.wait(waiting, timeout=timeout_s)
        failures: list[BaseException] = []
        for (key, live, gone), future in sent:
            failure = future if isinstance(future, BaseException) else delivery_failure(future, timeout_s)
            if failure is not None:
                failures.append(failure)
            else:
                self._apply(key, live, gone)
        return failures

    def abandon(self) -> None:
        """Forget what this round staged (it is undone; whatever Kafka acknowledges is harmless,
        the round writes it again)."""
        for _, future in self._sent:
            if isinstance(future, asyncio.Future):
                future.add_done_callback(_retrieve)
        self._sent, self._staged = [], {}

    def _apply(self, key: str, live: str | None, gone: str | None) -> None:
        self._ids.pop(key, None)
        self._gone.pop(key, None)
        if live is not None:
            self._ids[key] = live
        if gone is not None:
            self._gone[key] = gone

    async def load(self, bootstrap: str) -> int:
        """Read the whole topic (last value per key wins; tombstones remove); return the size."""
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(self._topic)
            if not partitions:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(self._topic) or set()
            tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
            if not tps:
                return 0
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            remaining = {tp for tp in tps if ends[tp] > 0}
            while remaining:
                batch = await consumer.getmany(*remaining, timeout_ms=500)
                for messages in batch.values():
                    for m in messages:
                        self._learn(m.key, m.value)
                for tp in list(remaining):
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
            self._loaded = {tp: await consumer.position(tp) for tp in tps}
        finally:
            await consumer.stop()
        return len(self._ids)

    async def follow(self, bootstrap: str) -> None:
        """Read the topic on from where ``load`` stopped, until cancelled: what this writer sent
        comes back as it was staged (no change), what another writer sent is learnt. A key this
        writer has staged in the round in flight keeps its staged value (``get`` prefers it)."""
        if not self._loaded:
            return
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(list(self._loaded))
            for tp, offset in self._loaded.items():
                consumer.seek(tp, offset)
            while True:
                batch = await consumer.getmany(timeout_ms=1000)
                for messages in batch.values():
                    for m in messages:
                        self._learn(m.key, m.value)
        finally:
            await consumer.stop()

    def _learn(self, raw_key: bytes | None, value: bytes | None) -> None:
        if raw_key is None:
            return
        key = raw_key.decode()
        if value is None:
            self._apply(key, None, None)
        elif value.startswith(GONE_PREFIX.encode()):
            self._apply(key, None, value[len(GONE_PREFIX) :].decode())
        else:
            self._apply(key, value.decode(), None)


def delivery_failure(future: asyncio.Future[Any], timeout_s: float) -> BaseException | None:
    """Why a send's future (waited for ``timeout_s``) did not end acknowledged; None if it did."""
    if not future.done():
        future.add_done_callback(_retrieve)
        return TimeoutError(f"no acknowledgement within {timeout_s:.0f} s")
    if future.cancelled():
        return asyncio.CancelledError()
    return future.exception()


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio does not warn about it
