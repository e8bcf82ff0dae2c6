"""Whether an idempotent aiokafka producer can still append, and how a broken one is retired.

Shared by the bridge's appender (``handlers.appender``) and the key ring (``handlers.keyring``):
both append with ``acks=all`` and idempotence, and both meet broker outages. An outage longer
than a producer's request timeout expires a batch that already took a sequence number; aiokafka
0.14 then sends the next batch with a later sequence, the broker refuses it and every one after
it (``OutOfOrderSequenceNumber``), and that producer never appends again. Only a fresh producer
(a fresh producer id, sequences from 0) can: so a caller retires the old one on such an error
and starts another (found for the appender in issue 10, then for the key ring in session 14:
a sealing bridge answered 503 to every new customer after one long outage)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    IllegalStateError,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    ProducerFenced,
    UnknownProducerId,
)

PRODUCER_FATAL: tuple[type[BaseException], ...] = (
    OutOfOrderSequenceNumber,  # the broker expects another sequence: every later batch fails alike
    UnknownProducerId,  # the broker forgot the producer id (a new log, or its records expired)
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    ProducerFenced,  # aiokafka's name for InvalidProducerEpoch on a produce response
    ProducerClosed,  # the producer, or its accumulator, was closed
    IllegalStateError,
)
"""Errors after which an idempotent producer never succeeds again: only a fresh producer (a fresh
producer id, sequences from 0) can append. The retriable errors (``error.retriable``: no leader,
not the leader, connection lost, ...) are retried by the producer itself and are not here."""

CLOSE_GRACE_S = 5.0
"""How long a retired producer's ``stop()`` may take (it waits for batches it cannot deliver)."""


async def started_producer(
    bootstrap: str, request_timeout_s: float, start_within_s: float | None = None, **options: Any
) -> AIOKafkaProducer:
    """An idempotent acks=all producer, started (within ``start_within_s`` if given); one whose
    start fails is stopped before the error is raised, so no half-started client is left."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
        request_timeout_ms=int(request_timeout_s * 1000), **options,
    )  # fmt: skip
    try:
        await asyncio.wait_for(producer.start(), start_within_s)
    except BaseException:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), CLOSE_GRACE_S)
        raise
    return producer


def usable(producer: AIOKafkaProducer) -> bool:
    """Whether the producer can still send: started, not closed, its sender task running (when it
    has stopped, aiokafka fails every pending and later send with the sender's error)."""
    sender = getattr(producer, "_sender", None)
    task = getattr(sender, "sender_task", None)
    accumulator = getattr(producer, "_message_accumulator", None)
    return (
        getattr(producer, "_closed", True) is False
        and task is not None
        and not task.done()
        and getattr(accumulator, "_exception", None) is None
    )


def breaks(exc: BaseException, producer: AIOKafkaProducer) -> bool:
    """Whether a failed append leaves the producer unusable (``PRODUCER_FATAL``, an error from
    outside aiokafka's, or a producer whose sender has stopped)."""
    return isinstance(exc, PRODUCER_FATAL) or not isinstance(exc, KafkaError) or not usable(producer)


def fail_pending(producer: AIOKafkaProducer) -> None:
    """Fail every batch the producer holds with ``ProducerClosed``, so the requests awaiting them
    retry on the next producer now. Their futures are marked retrieved: a request that already
    gave up (its budget spent) no longer awaits its future, and asyncio would log each one."""
    with contextlib.suppress(Exception):
        accumulator = producer._message_accumulator
        batches = [b for queue in accumulator._batches.values() for b in queue]
        batches += list(accumulator._pending_batches)
        accumulator.fail_all(ProducerClosed())
        for batch in batches:
            for future in (batch.future, *(f for f, _ in batch._msg_futures)):
                if future.done() and not future.cancelled():
                    future.exception()


async def close_retired(producer: AIOKafkaProducer) -> None:
    """Close a retired producer; if its ``stop()`` does not return in time (it waits for the
    batches it holds), stop its sender and connections directly."""
    try:
        await asyncio.wait_for(producer.stop(), CLOSE_GRACE_S)
    except Exception:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer._sender.close(), CLOSE_GRACE_S)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.client.close(), CLOSE_GRACE_S)
