"""A fix to faust-streaming's consumer that the worker cannot do without (R2, R4), and a table
manager that starts without faust's fixed second (:class:`PromptTableManager`).

Found by the chaos test (three workers, SIGKILLs, rebalances): after a rebalance a partition's
records could stay unprocessed for ever, or be skipped for good once later records arrived.

The cause: at the end of every rebalance faust seeks each assigned partition to its committed
offset (``perform_seek`` -> aiokafka's ``seek_to_committed``), and aiokafka only seeks when that
offset is greater than 0. A partition whose group never committed (a new topic, or one whose
first records were never finished) or committed 0 keeps whatever position the fetcher had
reached. If records were fetched before the rebalance but never handled (faust clears the agents'
buffers when partitions are revoked), the fetch position is already past them: they are never
fetched again. Nothing reads them, the lag stays, and as soon as a later record of that partition
is handled and acknowledged, faust commits past the never-handled ones (it commits the run of
consecutive acknowledged offsets), so they are lost without a trace.

The fix seeks those partitions explicitly: to the beginning when nothing was committed (what
``auto_offset_reset="earliest"`` means), to 0 when 0 was. Changelog partitions are left to faust's
recovery, which positions them itself. Installed once per process by :func:`install`.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

from faust.streams import _current_event
from faust.tables import TableManager
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.utils.functional import consecutive_numbers

_installed = False


class PromptTableManager(TableManager):
    """faust's table manager without the second it sleeps before registering the tables.

    faust sleeps so that tables an app defines while it starts are still registered; the
    pipeline defines all of its tables when it is built, before the app starts, and adding one
    later raises. The sleep was a fixed second of every worker's start (the demo's, each restart
    in the fault tests); the worker log showed it between "Waiting for tables to be registered"
    and the first table starting. Set as the app's ``TableManager``."""

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


def _is_stream_topic(topic: str) -> bool:
    return not topic.endswith("-changelog") and "__assignor-__leader" not in topic


async def _seek_to_committed(self: Any) -> Mapping[Any, int]:
    consumer = self._ensure_consumer()

    async def seek() -> Mapping[Any, int]:
        committed: dict[Any, int] = dict(await consumer.seek_to_committed())
        for tp, offset in committed.items():
            if not _is_stream_topic(tp.topic) or (offset is not None and offset > 0):
                continue  # aiokafka positioned it (or faust's recovery will)
            if offset is None:
                # the head is where the partition begins: faust takes it as the committed offset,
                # so the commit check below knows which record must be acknowledged first
                start = (await consumer.beginning_offsets([tp]))[tp]
                consumer.seek(tp, start)
                committed[tp] = start
            else:
                consumer.seek(tp, 0)
        return committed

    return await self.call_thread(seek)  # type: ignore[no-any-return]


def install(compacted_topics: frozenset[str] = frozenset()) -> None:
    """Replace faust's ``seek_to_committed`` and ``_new_offset`` with the fixed versions
    (idempotent); ``compacted_topics`` are the full names of the compacted topics consumed."""
    global _installed, _compacted
    _compacted = _compacted | compacted_topics
    if not _installed:
        AIOKafkaConsumerThread.seek_to_committed = _seek_to_committed  # type: ignore[method-assign]
        Consumer._new_offset = _new_offset  # type: ignore[method-assign]
        Consumer.getmany = _getmany  # type: ignore[method-assign]
        _installed = True


# ---- never move the fetch position past a record that was not handed on ----
#
# faust's ``getmany`` takes a batch of records from aiokafka (which moves the fetch position past
# all of them) and yields them one by one; a record whose partition is not active at that moment
# (paused, or between a rebalance's pause and resume) is skipped, and nothing reads it again. The
# drain loop then sees the partition's next record after a hole, records the hole as a gap (as
# if compaction had removed those offsets), and ``_new_offset`` counted it as acknowledged. Seen
# in the two-worker benchmark: a joining worker read offset 2 of a partition, then 195. The
# commit rule below refused to commit past the unhandled head, so nothing was lost, but the
# partition waited for the stall healer, and the gap's offsets, acknowledged again when the
# records were read again, filled the list of acknowledged offsets with duplicates that broke
# faust's run of consecutive offsets: the commit then moved one offset a second (268 s for 1,000
# deliveries). Three changes: the replacement below skips nothing silently (the first record of
# a partition it does not hand on is where that partition is fetched from again); whatever path
# made a hole, ``_new_offset`` no longer counts a gap as acknowledged on a topic that is not
# compacted; and acknowledged offsets count once.


async def _getmany(self: Any, timeout: float) -> Any:  # noqa: ASYNC109 (faust's signature)
    records, active_partitions = await self._wait_next_records(timeout)
    generation_id = self.app.consumer_generation_id
    if records is None or self.should_stop:
        return
    if not self.flow_active:  # as faust: a rebalance began; its end seeks every partition
        with contextlib.suppress(Exception):
            await self.perform_seek()
        return
    to_message = self._to_message
    held: dict[Any, int] = {}  # partition -> the first offset not handed on
    rebalanced = False
    for tp, record in self.scheduler.iterate(records):
        if not self.flow_active or self.app.consumer_generation_id != generation_id:
            rebalanced = True  # the rebalance's seek to the committed offsets re-reads the rest
            break
        if tp in held:
            continue  # never hand on a later record of a partition whose earlier one was held
        if active_partitions is None or tp in active_partitions or tp in self._buffered_partitions:
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            yield tp, to_message(tp, record)
        else:
            held[tp] = record.offset
    if held and not rebalanced and self.app.consumer_generation_id == generation_id:
        assigned = self.assignment()
        for tp, offset in held.items():
            if tp in assigned and _is_stream_topic(tp.topic):  # changelogs: faust's recovery seeks
                await self.seek(tp, offset)


# ---- never commit past a record that was not acknowledged ----
#
# Records can still be fetched and never handed to an agent: faust's fetch loop gives up a
# message whose delivery a rebalance's flow suspension interrupts, and moves its read offset on
# anyway (seen with several records at once right after a worker's first assignment). faust then
# commits past them as soon as a later record of the partition is acknowledged: its check for a
# missing head (``min(acked) - committed > 1``) lets exactly one missing record through, and is
# skipped when the committed offset is 0 or unknown. The replacement below refuses any commit
# whose first acknowledged offset is not the committed one (the next record to handle), on every
# topic that is not compacted (a compacted topic has holes in its offsets by design, which faust
# fills from what it reads). A partition held back that way, or one whose records were dropped
# with nothing after them, is healed by the worker's stall check (``StallHealer``): it fetches the
# records again from the committed offset.

_compacted: frozenset[str] = frozenset()


def _new_offset(self: Any, tp: Any) -> int | None:
    acked = self._acked[tp]
    if not acked:
        return None
    max_offset = max(acked)
    gaps = self._gap[tp]
    if gaps and tp.topic not in _compacted:
        # the worker reads without transactions (at least once), so on a topic that is not
        # compacted every offset is a record: a "gap" is records faust did not hand on, never
        # offsets to count as done (counted, a handled head would commit past them unhandled)
        gaps.clear()
    if gaps:  # a compacted topic's offsets that compaction removed: count as acked
        candidates = sorted(gaps.overlap(0, max_offset), key=lambda interval: interval.begin)
        if candidates:
            filled: list[int] = []
            for interval in candidates:
                filled.extend(range(interval.begin, interval.end))
            acked.extend(filled)
            gaps.chop(0, max(filled[-1], max_offset + 1))
    acked[:] = sorted(set(acked))  # a gap filled over offsets also acknowledged counts once
    committed = self._committed_offset[tp]  # faust keeps an offset of 0 as None
    if acked[0] > (committed or 0) and tp.topic not in _compacted:
        return None  # the record at `committed` was never acknowledged: never commit past it
    batch = next(consecutive_numbers(acked))
    acked[: len(batch)] = []
    self._acked_index[tp].difference_update(batch)
    return int(batch[-1]) + 1


def fetch_position(consumer: Any, tp: Any) -> int:
    """The next offset aiokafka will fetch for ``tp`` (-1 when unknown). Read across threads
    without a lock: a stale value only delays the verdict by one check."""
    try:
        state = consumer._thread._consumer._subscription.subscription.assignment.state_value(tp)
        return int(state.position) if state is not None and state.has_valid_position else -1
    except (AttributeError, TypeError, AssertionError):
        return -1


class StallHealer:
    """Finds partitions whose records were read but never handed to an agent, and reads them again.

    A partition is stalled when, twice in a row (one check apart), it holds records past its
    committed offset, faust has read at or past that offset, none is in flight, and none is
    acknowledged from the committed offset on. Then nothing will ever move it: the healer seeks it
    back to the committed offset, so the records are fetched and handled again (handling is
    idempotent).
    """

    def __init__(self, is_stream_topic: Any = _is_stream_topic) -> None:
        self._is_stream_topic = is_stream_topic
        self._suspects: dict[Any, tuple[int, int]] = {}
        self._flights: dict[str, frozenset[tuple[int, int]]] = {}

    def stalled(self, consumer: Any) -> list[tuple[Any, int]]:
        """The (partition, offset to read again from) of every partition found stalled twice."""
        in_flight: dict[Any, set[int]] = {}
        for message in list(consumer._unacked_messages):
            in_flight.setdefault(message.tp, set()).add(message.offset)
        # An agent busy with records may be what holds its topic's other partitions back (their
        # records wait in its queue, neither in flight nor acknowledged). Busy means its records
        # in flight changed since the last check: an idle agent keeps its last record in flight
        # until the next one comes, and counting that as busy kept a stalled partition of an
        # idle topic waiting for ever (the two-worker benchmark's 30-50 s stalls).
        flights: dict[str, set[tuple[int, int]]] = {}
        for tp, offsets in in_flight.items():
            flights.setdefault(tp.topic, set()).update((tp.partition, o) for o in offsets)
        frozen = {topic: frozenset(seen) for topic, seen in flights.items()}
        busy = {topic for topic, seen in frozen.items() if self._flights.get(topic) != seen}
        self._flights = frozen
        found: dict[Any, tuple[int, int]] = {}
        heal: list[tuple[Any, int]] = []
        for tp in consumer.assignment():
            if not self._is_stream_topic(tp.topic):
                continue
            head = consumer._committed_offset.get(tp) or 0  # faust keeps an offset of 0 as None
            if head in in_flight.get(tp, ()):
                continue  # the head record is being handled
            acked = consumer._acked.get(tp) or []
            if acked and min(acked) <= head:
                continue  # handled, waiting for the next commit
            if not acked:  # no later record handled either: is there anything to handle?
                read = max(consumer._read_offset.get(tp) or -1, fetch_position(consumer, tp) - 1)
                if tp.topic in busy or read < head or (consumer.highwater(tp) or 0) <= head:
                    continue  # busy elsewhere, nothing fetched past the head, or nothing there
            # later records were handled but never the head, or records were fetched and none
            # handled: either way nothing will bring the head record again
            found[tp] = (head, min(acked) if acked else -1)
            if self._suspects.get(tp) == found[tp]:
                heal.append((tp, head))
        self._suspects = {tp: seen for tp, seen in found.items() if tp not in dict(heal)}
        return heal

    def forget(self) -> None:
        self._suspects.clear()
        self._flights.clear()


def withhold(events: Any) -> None:
    """Never acknowledge these events: a batch that did not finish (its agent was cancelled or
    crashed). ``take_events`` acknowledges a batch's events when its generator is closed, whether
    or not the batch was done; marked this way, faust's bookkeeping never counts them, the commit
    rule above never moves past them, and they leave the in-flight set, so the stall healer (or
    the partition's next owner) reads them again."""
    for event in events:
        message = event.message
        if not message.acked:
            message.acked = True
            event.app.consumer._unacked_messages.discard(message)


@contextlib.contextmanager
def event_context(event: Any) -> Iterator[None]:
    """Make ``event`` faust's current event while tables are read or written for its partition.

    faust's tables find a key's partition (its changelog partition, its RocksDB database) from
    the event the agent's stream is on; a batch taken with ``take_events`` is handled outside
    that iteration, so the shell names the event of the partition it is working on. Only around
    synchronous code: nothing else runs on the loop meanwhile."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
