"""Appending ticks from outside the worker: `shopsync tick` (simulations, tests, operators).

A tick says "the stream time of this partition has reached ``at``". Appending one tick to every
partition of the timer topics advances the whole worker's clock, so a simulation moves 48 hours
forward by appending a single tick, and the timers that fall due fire in seconds.
"""

from __future__ import annotations

from datetime import datetime

from aiokafka import AIOKafkaProducer

from config import Settings
from schemas.envelope import Tick, encode
from streams.topics import TIMER_TOPICS, internal_topic


async def append_ticks(settings: Settings, at: datetime) -> int:
    """Append ``Tick(at)`` to every partition of the worker's timer topics; return how many."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True
    )
    await producer.start()
    sent = 0
    try:
        value = encode(Tick(at=at))
        for name in TIMER_TOPICS:
            topic = internal_topic(settings, name)
            partitions = await producer.partitions_for(topic)
            for partition in sorted(partitions):
                await producer.send_and_wait(topic, value, key=b"tick", partition=partition)
                sent += 1
    finally:
        await producer.stop()
    return sent
