"""The writer's durable map from a record's natural key to its HubSpot id.

Kept in the compacted topic ``hubspot.ids`` (key: the record key, value: the id; a tombstone when
the record is archived), so a restarted or rebuilt writer knows every id without asking HubSpot,
and associations can be made as soon as both ends exist. Loading reads the topic to its end once
at start.
"""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition


class IdMap:
    """Natural key (``RecordRef.key``) -> HubSpot id, backed by a compacted topic."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self._ids: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def get(self, key: str) -> str | None:
        return self._ids.get(key)

    async def put(self, key: str, hubspot_id: str) -> None:
        if self._ids.get(key) == hubspot_id:
            return
        self._ids[key] = hubspot_id
        await self._producer.send(self._topic, hubspot_id.encode(), key=key.encode())

    async def forget(self, key: str) -> None:
        if self._ids.pop(key, None) is not None:
            await self._producer.send(self._topic, None, key=key.encode())

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
                        if m.key is None:
                            continue
                        if m.value is None:
                            self._ids.pop(m.key.decode(), None)
                        else:
                            self._ids[m.key.decode()] = m.value.decode()
                for tp in list(remaining):
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
        finally:
            await consumer.stop()
        return len(self._ids)
