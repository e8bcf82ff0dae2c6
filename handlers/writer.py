"""The HubSpot writer's consume/commit loop: ``hubspot.commands`` in, rounds of HubSpot calls out,
offsets committed after.

Each round takes the commands that arrive within a batch window and hands them to the plan
runner (``handlers.writer_runner``), which applies them to HubSpot. Offsets are committed only
once every command up to them is applied, skipped or dead-lettered (its dead letter and the
round's id-map records acknowledged by Kafka, else the round is undone like an outage), and only
for partitions the writer is assigned (a rebalance waits for the round in flight, then drops what
was held for the revoked partitions), so a SIGKILL at any point loses nothing, and since every
write is an upsert by a unique key, re-applying a round after a crash changes nothing in HubSpot.
When HubSpot cannot be used at all the round is undone, the consumer seeks back to the round's
first offsets, and the writer waits (``handlers.writer_pauses``) and reads the round again, for as
long as it takes.

G1 (``SHOPSYNC_SEAL_PERSONAL_DATA``): the writer holds a key ring (``handlers.sealer.Opener``),
read to its end at start. Before a round's records are decoded it reads the key topic to its end
(one catch-up: the refs they name are then held, or known to be shredded), then opens each just
before its decode (``handlers.writer_sealed``); a
command whose key is gone is counted and committed, never sent. A key topic that cannot be read
undoes the round like a Kafka outage: nothing is decoded without its keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from config import Settings
from config.kafka import KAFKA_FRAMING_BYTES
from handlers import writer_metrics
from handlers.account_setup import AccountSchema, AccountSetupError, CommerceSetup
from handlers.hubspot_api import HubSpotApi
from handlers.hubspot_client import (
    DailyLimitError,
    HubSpotClient,
    HubSpotUnavailableError,
    RatePacer,
    RetryPolicy,
)
from handlers.id_map import IdMap
from handlers.sealer import Opener, opener_for
from handlers.setup_cache import SetupCache
from handlers.setup_once import SetupOnce
from handlers.writer_letters import KafkaDeadLetters
from handlers.writer_linger import Linger
from handlers.writer_pauses import SETUP_RECHECK, Pauses
from handlers.writer_plan import Position
from handlers.writer_runner import KafkaDeliveryError, PlanRunner, WriterStats
from handlers.writer_sealed import read_commands
from handlers.writer_time import Backoff, Clock
from handlers.writer_upstream import WorkerProgress
from streams.topics import ensure_topics, topic_name

__all__ = ["SETUP_RECHECK", "Pauses", "WriterStats", "run_writer"]

log = logging.getLogger(__name__)
MAX_HELD_COMMANDS = 10_000
"""Commands held for a retry beyond which the writer reads no new ones until some are done: its
memory stays bounded whatever HubSpot fails on."""
KEY_CATCH_UP_S = 30.0
"""G1: the longest a round waits for the key ring to catch up on the key topic; past it the round
is undone and the writer pauses as for a Kafka outage (reading the round again later)."""
KEY_START_S = 600.0
"""G1: the longest the writer's start waits for its first read of the whole key topic (a million
keys is ~150 MB); past it the writer exits with the reason, and the service restarts."""


@dataclass
class _Output:
    """The writer's Kafka producer, shared by the id map and the dead-letter port, and how to make
    a new one: an idempotent producer whose batch was refused answers ``OutOfOrderSequenceNumber``
    for that partition ever after, so after a failed delivery it is replaced."""

    producer: AIOKafkaProducer
    factory: Callable[[], AIOKafkaProducer]
    ids: IdMap
    letters: KafkaDeadLetters

    async def renew(self) -> None:
        """Replace the producer; if Kafka cannot be reached for a new one, the old one stays and
        the next round tries again."""
        fresh = self.factory()
        try:
            await fresh.start()
        except KafkaError as exc:
            log.warning("could not start a new Kafka producer (%s); keeping the old one", type(exc).__name__)
            with contextlib.suppress(Exception):
                await fresh.stop()
            return
        old, self.producer = self.producer, fresh
        self.ids.use(fresh)
        self.letters.producer = fresh
        with contextlib.suppress(Exception):  # its unacknowledged records are sent again anyway
            await asyncio.wait_for(old.stop(), 10)
        log.info("the writer's Kafka producer was replaced after a failed delivery")


async def run_writer(
    settings: Settings,
    stop: asyncio.Event | None = None,
    *,
    clock: Clock | None = None,
    backoff: Backoff | None = None,
    stats: WriterStats | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> WriterStats:
    """Run until ``stop`` is set (or SIGTERM/SIGINT); return the counters.

    ``clock`` measures the writer's pauses (the daily limit, outages, an account not ready) and
    ``backoff`` spaces the retries of rounds that met an outage and of inputs HubSpot failed on
    their own; tests pass their own. The plan runner spaces its held retries by the real clock
    (its own unit tests give it a ``ManualClock``). ``stats``, when given, is the object the
    writer counts into, so a test can watch it while the writer runs. ``transport`` carries the
    HubSpot requests (httpx's own by default; a contract test records them).
    """
    stop = stop or asyncio.Event()
    clock = clock or Clock()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await ensure_topics(settings)
    api = HubSpotApi(
        HubSpotClient(
            settings.hubspot_base_url,
            settings.hubspot_token.get_secret_value(),
            timeout_s=settings.hubspot_timeout_s,
            pacer=RatePacer(
                limit=settings.hubspot_rate_limit_per_10s,
                interval_s=10.0,
                max_in_flight=settings.hubspot_max_in_flight,
            ),
            retry=RetryPolicy(attempts=settings.writer_retry_attempts),
            transport=transport,
        )
    )

    def new_producer() -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True,
            linger_ms=5, max_request_size=settings.kafka_message_bytes(),  # R6: the size every topic takes
        )  # fmt: skip

    producer = new_producer()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.writer_group(),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=int(settings.session_timeout_s * 1000),
        heartbeat_interval_ms=int(settings.session_timeout_s * 1000 / 5),
    )
    stats = stats if stats is not None else WriterStats()
    backoff = backoff or Backoff()
    pauses = Pauses(clock, backoff, stop, stats)
    await producer.start()
    ids = IdMap(producer, topic_name(settings, "hubspot.ids"))
    output = _Output(
        producer, new_producer, ids, KafkaDeadLetters(producer, topic_name(settings, "hubspot.commands.dlq"))
    )
    # G1: None with sealing off (commands are read as they always were). The key topic is read to
    # its end before every round, not once a second as the worker does: HubSpot is where nothing
    # can be shredded afterwards, so a command read after its key's tombstone was acknowledged is
    # never sent (one ListOffsets request a round; the key records only when some came).
    opener = opener_for(settings, refresh_s=0.0)
    try:
        cache = SetupCache(
            settings.kafka_bootstrap_servers, topic_name(settings, "hubspot.setup"), lambda: output.producer
        )
        setup = SetupOnce(
            api,
            settings.hubspot_base_url,
            settings.pipeline_label,
            settings.hubspot_pipeline_id,
            cache,
            _commerce(settings),
        )
        schema = await _set_up(api, settings, pauses, setup)
        if schema is None:
            return stats
        known = await ids.load(settings.kafka_bootstrap_servers)
        if opener is not None:  # G1: read the key topic to its end before the first round
            try:
                await asyncio.wait_for(opener.ensure([]), KEY_START_S)
            except TimeoutError as exc:  # not a silent hang at start: exit, the service restarts
                raise KeyTopicError(f"the key topic was not read to its end in {KEY_START_S:.0f} s") from exc
        following = asyncio.create_task(ids.follow(settings.kafka_bootstrap_servers))
        following.add_done_callback(_stopped_following)
        log.info("writer ready: %d known HubSpot ids, pipeline %s", known, schema.pipeline_id)
        progress = WorkerProgress(settings)  # on the runner's clock: the real one
        runner = PlanRunner(
            api, ids, schema, output.letters, link_wait_s=settings.writer_link_wait_s,
            upstream=lambda: progress.settled_at,
            letter_limit_bytes=settings.max_record_bytes - KAFKA_FRAMING_BYTES, stats=stats,
            retry_backoff=backoff, repair=setup.repair,
            linger=Linger(settings.writer_linger_ms / 1000, settings.writer_batch_window_ms / 1000),
            keys=opener.keys if opener is not None else None,
        )  # fmt: skip
        books = _Books(topic_name(settings, "hubspot.commands"))
        consumer.subscribe([books.topic], listener=_Rebalance(runner, consumer, books))
        await consumer.start()
        progress.start()
        try:
            await _consume(runner, settings, consumer, pauses, books, output, opener)
        finally:
            await progress.stop()
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError, KafkaError):
                await following
            await consumer.stop()
        return runner.stats
    finally:
        if opener is not None:
            await opener.stop()
        await output.producer.stop()
        await api.close()


def _stopped_following(task: asyncio.Task[None]) -> None:
    """Say so if the id map stopped following its topic: the writer still works (it asks HubSpot
    for an end it does not know), only with more calls."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("the id map stopped following hubspot.ids (%s)", type(task.exception()).__name__)


def _commerce(settings: Settings) -> CommerceSetup:
    """X1: what the set-up makes for Orders and Carts, from the settings."""
    return CommerceSetup(settings.commerce_objects, settings.order_pipeline_label)


async def _set_up(
    api: HubSpotApi, settings: Settings, pauses: Pauses, setup: SetupOnce | None = None
) -> AccountSchema | None:
    """The account set-up (``handlers.setup_once``: verified from the cache when the account is
    configured, else in full), waiting out an outage or the daily limit like any round, and
    looking again every ``SETUP_RECHECK`` while the account is not ready. ``setup`` None: one
    without a cache."""
    setup = setup or SetupOnce(
        api, settings.hubspot_base_url, settings.pipeline_label, settings.hubspot_pipeline_id,
        commerce=_commerce(settings),
    )  # fmt: skip
    while not pauses.stop.is_set():
        try:
            schema = await setup.start()
        except AccountSetupError as exc:  # an operator has to act: say what, and look again later
            await pauses.misconfigured(exc)
            continue
        except DailyLimitError as exc:
            await pauses.daily(exc, None, None)
            continue
        except HubSpotUnavailableError as exc:
            await pauses.outage(exc, None, 0)
            continue
        pauses.recovered()
        return schema
    return None


@dataclass
class _Books:
    """The consumer loop's per-partition bookkeeping of ``hubspot.commands``, shared with the
    rebalance listener. ``lock`` is held for a whole round (apply, then commit) and by the listener,
    so a rebalance never interleaves with a round. ``epoch`` counts revocations: a round whose
    commands were fetched in an earlier epoch is dropped unapplied. ``reseek``: partitions to seek to
    their committed offset (their fetched commands were dropped, or kept through a revocation)."""

    topic: str
    consumed: dict[int, int] = field(default_factory=dict)  # next offset read, per partition
    committed: dict[int, int] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    epoch: int = 0
    reseek: set[TopicPartition] = field(default_factory=set)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """On a revocation: wait for the round in flight (it commits what it finished), commit what is
    done while the partitions are still ours, then drop everything held, waiting and read: from the
    committed offsets on, the partitions' next owner (perhaps this writer again) reads it anew.

    aiokafka rebalances eagerly (every rebalance revokes every partition), so the writer then holds
    nothing; should a revocation ever leave partitions assigned, they are sought back to their
    committed offsets too, since what was dropped may include their commands."""

    def __init__(self, writer: PlanRunner, consumer: AIOKafkaConsumer, books: _Books) -> None:
        self.writer, self.consumer, self.books = writer, consumer, books

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if not revoked:
            return
        books = self.books
        async with books.lock:
            await _commit(self.consumer, books, self.writer.held_positions())
            dropped = self.writer.held_count()
            self.writer.drop_all()
            books.consumed.clear()
            books.committed.clear()
            books.reseek |= self.consumer.assignment() - set(revoked)
            books.epoch += 1
        log.info(
            "partitions %s revoked: %d held commands dropped, read again from the committed offsets",
            sorted(tp.partition for tp in revoked), dropped,
        )  # fmt: skip

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions %s assigned", sorted(tp.partition for tp in assigned))


async def _consume(
    writer: PlanRunner,
    settings: Settings,
    consumer: AIOKafkaConsumer,
    pauses: Pauses,
    books: _Books,
    output: _Output,
    opener: Opener | None = None,
) -> None:
    stop = pauses.stop
    window_s = settings.writer_batch_window_ms / 1000
    idle_s = settings.writer_idle_close_ms / 1000
    while not stop.is_set():
        if books.reseek:
            async with books.lock:
                await _seek_to_committed(consumer, books)
        epoch = books.epoch
        fetched: list[tuple[bytes, Position]] = []
        done: dict[int, int] = {}
        first: dict[TopicPartition, int] = {}  # where to seek back to if the round is undone
        if writer.held_count() >= MAX_HELD_COMMANDS:
            consumer.pause(*consumer.assignment())  # memory stays bounded: finish what is held first
        else:
            consumer.resume(*consumer.assignment())
        # When nothing comes: a round for what is held, if anything (soon: it may be carried only).
        deadline = time.monotonic() + (idle_s if writer.pending() else window_s)
        first_at = last_at = 0.0
        while len(fetched) < settings.writer_max_batch:
            close_at = min(first_at + window_s, last_at + idle_s) if first_at else deadline
            now = time.monotonic()
            if now >= close_at:
                break
            batch = await consumer.getmany(
                timeout_ms=max(1, int((close_at - now) * 1000)),
                max_records=settings.writer_max_batch - len(fetched),
            )
            if batch:
                last_at = time.monotonic()
                first_at = first_at or last_at
            for tp, messages in batch.items():
                for m in messages:
                    first.setdefault(tp, m.offset)
                    done[tp.partition] = m.offset + 1
                    fetched.append((m.value or b"", Position(tp.partition, m.offset)))
            if not batch and not first_at and not writer.pending():
                break
        if not fetched and not writer.pending() and not done and books.committed == books.consumed:
            continue
        if opener is not None and (fetched or writer.pending()):
            try:  # G1: every key ref the round names held, or known to be shredded; one catch-up
                # bounded: a key topic whose leader is unreachable gives empty fetches, not an
                # error, and an unbounded catch-up hung the round silently (found in review)
                await asyncio.wait_for(opener.ensure(raw for raw, _ in fetched), KEY_CATCH_UP_S)
            except (TimeoutError, KafkaError, OSError, RuntimeError) as exc:
                async with books.lock:  # as a failed apply: never rewind past a rebalance's commit
                    if books.epoch != epoch:
                        books.reseek |= set(first)
                    else:
                        _rewind(consumer, first)
                await pauses.outage(KeyTopicError(f"the key topic could not be read ({type(exc).__name__})"),
                                    consumer, writer.held_count() + len(fetched))  # fmt: skip
                continue
            writer.keys = opener.keys  # the ring's live keys: the round's letters are sealed with them
        read = read_commands(fetched, opener.keys if opener is not None else None, writer.nonces)
        items = read.items
        failure: Exception | None = None
        async with books.lock:
            if books.epoch != epoch:  # fetched before a rebalance: dropped, read again from the commit
                books.reseek |= set(first)
                continue
            started = time.monotonic()
            try:
                await writer.apply(items, read.letters, read.redacted)
            except (HubSpotUnavailableError, KafkaDeliveryError) as exc:
                _rewind(consumer, first)
                failure = exc
                if isinstance(exc, KafkaDeliveryError):
                    await output.renew()
            else:
                books.consumed.update(done)
                await _commit(consumer, books, writer.held_positions())
                seconds = time.monotonic() - started
                if read.redacted:  # a count only: no key, no value
                    log.info("%d commands not sent: their subjects were redacted (G1)", len(read.redacted))
                writer_metrics.round_done(len(items) + len(read.redacted), seconds, consumer, books.consumed)
        if isinstance(failure, DailyLimitError):
            await pauses.daily(failure, consumer, writer.schema)
        elif failure is not None:
            await pauses.outage(failure, consumer, writer.held_count() + len(items))
        else:
            pauses.recovered()


class KeyTopicError(KafkaDeliveryError):
    """G1: the key topic could not be read to the round's key refs: the round is undone and read
    again after a pause, like a round whose records Kafka did not acknowledge."""


async def _commit(consumer: AIOKafkaConsumer, books: _Books, held: list[Position]) -> None:
    """Commit, per partition assigned to this writer, everything read except from the earliest
    command still held. A commit the group refuses (it is rebalancing) is left for the next owner:
    what it did not cover is read and applied again, harmlessly."""
    earliest_held: dict[int, int] = {}
    for pos in held:
        earliest_held[pos.partition] = min(pos.offset, earliest_held.get(pos.partition, pos.offset))
    assigned = {tp.partition for tp in consumer.assignment() if tp.topic == books.topic}
    targets = {
        p: min(offset, earliest_held.get(p, offset)) for p, offset in books.consumed.items() if p in assigned
    }
    changed = {p: o for p, o in targets.items() if books.committed.get(p) != o}
    if not changed:
        return
    try:
        await consumer.commit(
            {TopicPartition(books.topic, p): OffsetAndMetadata(o, "") for p, o in changed.items()}
        )
    except (CommitFailedError, IllegalStateError, KafkaError) as exc:
        log.warning("commit refused (%s): the uncommitted commands will be read again", type(exc).__name__)
        return
    books.committed.update(changed)


async def _seek_to_committed(consumer: AIOKafkaConsumer, books: _Books) -> None:
    """Seek ``books.reseek`` (those still assigned) to their committed offsets, or the beginning."""
    wanted, books.reseek = books.reseek & consumer.assignment(), set()
    for tp in sorted(wanted):
        offset = await consumer.committed(tp)
        if offset is None or offset < 0:
            await consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, offset)


def _rewind(consumer: AIOKafkaConsumer, first: dict[TopicPartition, int]) -> None:
    """Seek back to the round's first offsets, so an undone round is read and applied again."""
    assigned = consumer.assignment()
    for tp, offset in first.items():
        if tp in assigned:
            consumer.seek(tp, offset)
