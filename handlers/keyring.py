"""The key ring of crypto-shredding (SPEC G1), the shell around ``streams.shredding``: a
process's copy of the data keys on the compacted key topic, and the appends that make and shred
them.

Used by the bridge and the importers (``handlers.sealer.Sealer``: keys made), the worker,
replay and the report (``handlers.sealer.Opener``: keys read) and the redactor
(``handlers.redactor``: keys shredded); step 1 of the README's "Wiring it, in order".

- ``start`` reads the key topic from the beginning to its end offsets, so a process begins with
  every live key (each unwrapped with the key-encryption key; a tombstone removes its key).
- ``key_for(shop, kid)`` returns a live key of that subject, or makes one: 32 random bytes under a
  fresh key ref, appended (acks=all) and acknowledged **before** it is returned, so no record is
  ever sealed with a key the topic does not hold. Two processes meeting a new subject at once
  each make a key under its own ref; neither replaces the other.
- ``ensure(refs)`` is for readers: a record may name a key made by another process moments ago,
  so when a ref is not held the ring reads the topic up to its current end offsets; a ref still
  missing then was tombstoned (or never made), and its fields open as absent.
- ``follow`` keeps reading, so a tombstone written elsewhere removes the key here too, and a
  writer stops sealing with a shredded key (``key_for`` then makes a new one).
- ``shred(records)`` appends tombstones (``streams.shredding.redaction_for``'s) and waits for them.
- An append that leaves the producer broken (an outage longer than its request timeout, then
  ``OutOfOrderSequenceNumber``: ``handlers.producer_health``) retires it; the next append starts a
  fresh one, so a ring never stops making keys after an outage.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping, Set

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from handlers import producer_health as health
from streams.shredding import DATA_KEY_BYTES, NONCE_BYTES, KeyRecord, key_ref, kid_of, unwrap, wrap

VERSION_BYTES = 8


class KeyRing:
    """One process's data keys, backed by the key topic."""

    def __init__(self, bootstrap: str, topic: str, kek: bytes, request_timeout_s: float = 40.0) -> None:
        self.topic = topic
        self._request_timeout_s = request_timeout_s  # aiokafka's default: 40 s
        self._kek = kek
        self._bootstrap = bootstrap
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()  # one producer started at a time
        self._retired: set[asyncio.Future[None]] = set()  # broken producers, closing
        self._parts: list[TopicPartition] = []
        self._keys: dict[str, bytes] = {}  # key ref -> data key
        self._live: dict[str, KeyRecord] = {}  # key ref -> its record (wrapped), for redactions
        self._by_subject: dict[tuple[str, str], str] = {}  # (shop, key id) -> a live key ref
        self._tombstones: dict[str, KeyRecord] = {}  # key ref -> its tombstone read (a redaction)
        self._making: dict[tuple[str, str], asyncio.Future[tuple[str, bytes]]] = {}  # keys on their way
        self.changed = asyncio.Event()  # set whenever a record is applied (tests and followers wait on it)

    @property
    def keys(self) -> Mapping[str, bytes]:
        """Key ref -> data key: what ``streams.shredding.decrypt_customer`` opens with."""
        return self._keys

    @property
    def held(self) -> list[KeyRecord]:
        """The live key records (what ``redaction_for`` picks tombstones from)."""
        return list(self._live.values())

    @property
    def tombstones(self) -> list[KeyRecord]:
        """The tombstones this ring read (``gone``, with each key's shop)."""
        return list(self._tombstones.values())

    @property
    def gone(self) -> Set[str]:
        """Key refs this ring read a tombstone of (while the key topic keeps tombstones): a
        writer that re-seals another reader's values never makes a new key for such a subject."""
        return self._tombstones.keys()

    async def start(self) -> None:
        await self._producer_now()
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False)
        await self._consumer.start()
        await self._consumer._client.force_metadata_update()
        parts = self._consumer.partitions_for_topic(self.topic) or set()
        if not parts:
            await self.stop()
            raise RuntimeError(f"the key topic {self.topic} does not exist")
        self._parts = [TopicPartition(self.topic, p) for p in sorted(parts)]
        # Asked before the assignment, the end offsets wait quietly (aiokafka retries a retriable
        # error) until each partition's leader answers. On a key topic created a moment ago (a
        # deployment's first start) the assignment's own offset reset met NotLeaderForPartition,
        # which aiokafka's fetcher logs as an ERROR before retrying: nothing was lost, but an
        # operator's first start showed errors.
        await self._consumer.end_offsets(self._parts)
        self._consumer.assign(self._parts)
        await self._consumer.seek_to_beginning(*self._parts)
        await self.catch_up()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
        if self._retired:
            await asyncio.wait(set(self._retired), timeout=health.CLOSE_GRACE_S)

    # -- the producer ------------------------------------------------------------------------

    async def _producer_now(self) -> AIOKafkaProducer:
        """The ring's producer, started (one at a time) if there is none or it broke."""
        async with self._starting:
            producer = self._producer
            if producer is not None and health.usable(producer):
                return producer
            if producer is not None:
                self._retire(producer)
            self._producer = await health.started_producer(self._bootstrap, self._request_timeout_s)
            return self._producer

    def _retire(self, producer: AIOKafkaProducer) -> None:
        """Stop using a producer an append left broken (``handlers.producer_health``): its pending
        appends fail now, it is closed in the background, and the next append starts a fresh one.
        Without this, one outage longer than the request timeout left the ring unable to make a
        key again, and a sealing bridge answered 503 to every new customer (session 14)."""
        if self._producer is producer:
            self._producer = None
        health.fail_pending(producer)
        task = asyncio.ensure_future(health.close_retired(producer))
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    async def _append(self, values: Iterable[tuple[bytes, bytes | None]]) -> None:
        """Append (topic key, value) records and wait for Kafka's acknowledgements (acks=all); a
        producer the error leaves broken is retired before the error is raised (the caller's
        retry, Shopify's for the bridge, then meets a fresh one)."""
        producer = await self._producer_now()
        try:
            futures = [await producer.send(self.topic, value, key=key) for key, value in values]
            await asyncio.gather(*futures)
        except Exception as exc:
            if health.breaks(exc, producer):
                self._retire(producer)
            raise

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        record = KeyRecord.from_topic(key or b"", value)
        if record.wrapped is None:
            self._keys.pop(record.ref, None)
            self._live.pop(record.ref, None)
            self._tombstones[record.ref] = record
            subject = (record.shop, kid_of(record.ref))
            if self._by_subject.get(subject) == record.ref:  # another live key of theirs, if any
                del self._by_subject[subject]
                for other in self._live.values():
                    if (other.shop, kid_of(other.ref)) == subject:
                        self._by_subject[subject] = other.ref
                        break
        else:
            self._keys[record.ref] = unwrap(self._kek, record.ref, record.wrapped)
            self._tombstones.pop(record.ref, None)
            self._live[record.ref] = record
            self._by_subject.setdefault((record.shop, kid_of(record.ref)), record.ref)
        self.changed.set()

    async def _read_some(self, timeout_ms: int) -> None:
        assert self._consumer is not None, "start the ring first"
        batch = await self._consumer.getmany(*self._parts, timeout_ms=timeout_ms)
        for messages in batch.values():
            for message in messages:
                self._apply(message.key, message.value)

    async def catch_up(self) -> None:
        """Read the key topic up to its end offsets as of now."""
        assert self._consumer is not None, "start the ring first"
        ends = await self._consumer.end_offsets(self._parts)
        while [tp for tp in self._parts if await self._consumer.position(tp) < ends[tp]]:
            await self._read_some(500)

    async def follow(self) -> None:
        """Keep reading until cancelled (a task beside the service's own work)."""
        while True:
            await self._read_some(1000)

    async def ensure(self, refs: Iterable[str]) -> None:
        """Every ref a batch of records names is held, or known to be gone: read to the end once
        if one is not held."""
        if any(ref not in self._keys for ref in refs):
            await self.catch_up()

    def held_key(self, shop: str, kid: str) -> tuple[str, bytes] | None:
        """A live key of the subject this ring holds now, or None (no I/O: for a caller that made
        its batch's keys first with ``key_for`` and seals synchronously after)."""
        ref = self._by_subject.get((shop, kid))
        if ref is not None and ref in self._keys:
            return ref, self._keys[ref]
        return None

    async def key_for(self, shop: str, kid: str) -> tuple[str, bytes]:
        """A live key of the subject, made (and acknowledged by Kafka) if there is none. Callers
        asking at once for a new subject (a customer's create and first order arrive together)
        share one making, so the process makes one key a subject, not one a caller."""
        held = self.held_key(shop, kid)
        if held is not None:
            return held
        making = self._making.get((shop, kid))
        if making is None:
            making = asyncio.ensure_future(self._make(shop, kid))
            self._making[(shop, kid)] = making
            making.add_done_callback(lambda _: self._making.pop((shop, kid), None))
        return await asyncio.shield(making)  # a caller cancelled (a timeout) leaves it to the others

    async def _make(self, shop: str, kid: str) -> tuple[str, bytes]:
        assert self._consumer is not None, "start the ring first"
        ref, data_key = key_ref(kid, os.urandom(VERSION_BYTES)), os.urandom(DATA_KEY_BYTES)
        record = KeyRecord(shop, ref, wrap(self._kek, ref, data_key, os.urandom(NONCE_BYTES)))
        await self._append([(record.topic_key, record.wrapped)])
        self._apply(record.topic_key, record.wrapped)
        return ref, data_key

    async def shred(self, tombstones: Iterable[KeyRecord]) -> int:
        """Append the tombstones, wait for Kafka's acknowledgements, drop the keys here; the count."""
        assert self._consumer is not None, "start the ring first"
        sent = [record for record in tombstones if record.wrapped is None]
        await self._append([(record.topic_key, None) for record in sent])
        for record in sent:
            self._apply(record.topic_key, None)
        return len(sent)
