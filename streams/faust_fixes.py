"""A fix to faust-streaming's consumer that the worker cannot do without (R2, R4).

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
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.utils.functional import consecutive_numbers

_installed = False


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
        _installed = True


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
    if gaps:  # offsets faust knows are missing (compaction, transaction markers): count as acked
        candidates = sorted(gaps.overlap(0, max_offset), key=lambda interval: interval.begin)
        if candidates:
            filled: list[int] = []
            for interval in candidates:
                filled.extend(range(interval.begin, interval.end))
            acked.extend(filled)
            gaps.chop(0, max(filled[-1], max_offset + 1))
    acked.sort()
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

    def stalled(self, consumer: Any) -> list[tuple[Any, int]]:
        """The (partition, offset to read again from) of every partition found stalled twice."""
        in_flight: dict[Any, set[int]] = {}
        for message in list(consumer._unacked_messages):
            in_flight.setdefault(message.tp, set()).add(message.offset)
        # an agent with a record in flight may be what holds its topic's other partitions back
        busy = {tp.topic for tp in in_flight}
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
