"""The faust consumer fixes (streams/faust_fixes.py), on faust's own bookkeeping: never commit past
a record that was not acknowledged, and find the partitions whose records were read but never
handed to an agent. The end-to-end proof is tests/test_worker_chaos.py."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from faust.types import TP
from intervaltree import IntervalTree

from streams import faust_fixes

ORDERS = TP("t.shopify.orders", 0)
IDS = TP("t.hubspot.ids", 0)


@dataclass
class Message:
    """A record in flight, as faust's set of unacknowledged messages holds it."""

    tp: TP
    offset: int


@dataclass
class FakeBookkeeping:
    """The attributes of faust's Consumer that the fixes read (not a Kafka stand-in: the fixes are
    pure functions of this bookkeeping)."""

    _acked: dict[TP, list[int]] = field(default_factory=lambda: defaultdict(list))
    _acked_index: dict[TP, set[int]] = field(default_factory=lambda: defaultdict(set))
    _gap: dict[TP, IntervalTree] = field(default_factory=lambda: defaultdict(IntervalTree))
    _committed_offset: dict[TP, int | None] = field(default_factory=lambda: defaultdict(lambda: None))
    _read_offset: dict[TP, int | None] = field(default_factory=lambda: defaultdict(lambda: None))
    _unacked_messages: list[Any] = field(default_factory=list)
    highwaters: dict[TP, int] = field(default_factory=dict)

    def assignment(self) -> set[TP]:
        return {ORDERS, IDS}

    def highwater(self, tp: TP) -> int:
        return self.highwaters.get(tp, 0)


def test_records_fetched_but_never_read_by_faust_count_as_read(monkeypatch: Any) -> None:
    """faust can skip fetched records without moving its read offset: aiokafka's position tells."""
    book = FakeBookkeeping()
    book._committed_offset[ORDERS] = 3
    book.highwaters[ORDERS] = 6
    monkeypatch.setattr(faust_fixes, "fetch_position", lambda consumer, tp: 6 if tp == ORDERS else -1)
    healer = faust_fixes.StallHealer()
    assert healer.stalled(book) == [] and healer.stalled(book) == [(ORDERS, 3)]


def test_an_agent_with_a_record_in_flight_is_not_judged(monkeypatch: Any) -> None:
    book = FakeBookkeeping()
    book._committed_offset[ORDERS] = 3
    book.highwaters[ORDERS] = 6
    book._unacked_messages.append(Message(TP(ORDERS.topic, 1), 0))  # the agent is busy elsewhere
    monkeypatch.setattr(faust_fixes, "fetch_position", lambda consumer, tp: 6)
    healer = faust_fixes.StallHealer()
    assert healer.stalled(book) == [] and healer.stalled(book) == []


def acked(book: FakeBookkeeping, tp: TP, *offsets: int) -> None:
    book._acked[tp].extend(offsets)
    book._acked_index[tp].update(offsets)


def test_a_missing_head_record_holds_the_commit_back_even_a_single_one() -> None:
    faust_fixes.install(frozenset({IDS.topic}))
    book = FakeBookkeeping()
    book._committed_offset[ORDERS] = 7
    acked(book, ORDERS, 8, 9)  # offset 7 was never acknowledged (faust's own check lets one through)
    assert faust_fixes._new_offset(book, ORDERS) is None
    acked(book, ORDERS, 7)
    assert faust_fixes._new_offset(book, ORDERS) == 10


def test_a_partition_never_committed_must_start_at_its_first_offset() -> None:
    book = FakeBookkeeping()  # committed unknown: faust keeps 0 as None
    acked(book, ORDERS, 4, 5)
    assert faust_fixes._new_offset(book, ORDERS) is None
    acked(book, ORDERS, 0, 1, 2, 3)
    assert faust_fixes._new_offset(book, ORDERS) == 6


def test_a_compacted_topic_keeps_faust_s_own_rule() -> None:
    faust_fixes.install(frozenset({IDS.topic}))
    book = FakeBookkeeping()
    book._committed_offset[IDS] = 7
    acked(book, IDS, 8, 9)  # compaction removed offset 7
    assert faust_fixes._new_offset(book, IDS) == 10


def test_the_healer_finds_a_partition_read_but_never_handled_twice_in_a_row() -> None:
    book = FakeBookkeeping()
    book._committed_offset[ORDERS] = 7
    book._read_offset[ORDERS] = 7  # read, then dropped: nothing in flight, nothing acknowledged
    book.highwaters[ORDERS] = 8
    healer = faust_fixes.StallHealer()
    assert healer.stalled(book) == []  # once may be a record on its way
    assert healer.stalled(book) == [(ORDERS, 7)]


def test_the_healer_leaves_idle_and_busy_partitions_alone() -> None:
    book = FakeBookkeeping()
    book._committed_offset[ORDERS] = 7
    book._read_offset[ORDERS] = 7
    book.highwaters[ORDERS] = 7  # nothing past the committed offset: idle
    healer = faust_fixes.StallHealer()
    assert healer.stalled(book) == [] and healer.stalled(book) == []
    book.highwaters[ORDERS] = 9
    acked(book, ORDERS, 7)  # handled, waiting for the next commit
    assert healer.stalled(book) == [] and healer.stalled(book) == []


def test_later_records_handled_but_never_the_head_is_a_stall_even_while_busy() -> None:
    book = FakeBookkeeping()
    book._committed_offset[ORDERS] = 7
    acked(book, ORDERS, 8, 9)
    book._unacked_messages.append(Message(ORDERS, 10))  # the agent is busy with a later record
    healer = faust_fixes.StallHealer()
    assert healer.stalled(book) == [] and healer.stalled(book) == [(ORDERS, 7)]
    book._unacked_messages[:] = [Message(ORDERS, 7)]  # the head itself in flight: not stalled
    assert healer.stalled(book) == [] and healer.stalled(book) == []


def test_a_gap_on_a_topic_that_is_not_compacted_is_never_counted_as_acknowledged() -> None:
    """A hole in the offsets of a topic read without transactions is records faust did not hand
    on (the two-worker benchmark saw offsets 3-194 of a partition skipped so): committing over it
    would lose them the moment the head record is acknowledged."""
    faust_fixes.install(frozenset({IDS.topic}))
    book = FakeBookkeeping()
    book._committed_offset[ORDERS] = 3
    acked(book, ORDERS, 3, 10, 11)
    book._gap[ORDERS][4:10] = True  # what faust's drain loop records when offset 10 follows 3
    assert faust_fixes._new_offset(book, ORDERS) == 4  # the head, and not one offset past it
    book._committed_offset[ORDERS] = 4
    assert faust_fixes._new_offset(book, ORDERS) is None  # 4-9 were never handled
    acked(book, ORDERS, 4, 5, 6, 7, 8, 9)  # read again and handled
    assert faust_fixes._new_offset(book, ORDERS) == 12


def test_an_offset_acknowledged_twice_does_not_break_the_run() -> None:
    """faust's run of consecutive offsets stops at a repeated one; counted twice, the commit moved
    one offset per commit interval (268 s for 1,000 deliveries)."""
    book = FakeBookkeeping()
    book._committed_offset[ORDERS] = 7
    book._acked[ORDERS].extend([7, 8, 8, 9, 9, 10])
    book._acked_index[ORDERS].update({7, 8, 9, 10})
    assert faust_fixes._new_offset(book, ORDERS) == 11
    assert book._acked[ORDERS] == []


def test_an_idle_agent_s_last_record_in_flight_does_not_hold_a_stall_back_for_ever(monkeypatch: Any) -> None:
    book = FakeBookkeeping()
    book._committed_offset[ORDERS] = 3
    book.highwaters[ORDERS] = 6
    book._unacked_messages.append(Message(TP(ORDERS.topic, 1), 40))  # idle: kept until the next one
    monkeypatch.setattr(faust_fixes, "fetch_position", lambda consumer, tp: 6)
    healer = faust_fixes.StallHealer()
    assert healer.stalled(book) == []  # busy as far as one look can tell
    assert healer.stalled(book) == []  # the same record in flight: idle; the stall is suspected
    assert healer.stalled(book) == [(ORDERS, 3)]


def test_an_agent_whose_records_in_flight_move_is_busy(monkeypatch: Any) -> None:
    book = FakeBookkeeping()
    book._committed_offset[ORDERS] = 3
    book.highwaters[ORDERS] = 6
    monkeypatch.setattr(faust_fixes, "fetch_position", lambda consumer, tp: 6)
    healer = faust_fixes.StallHealer()
    for offset in range(40, 46):
        book._unacked_messages[:] = [Message(TP(ORDERS.topic, 1), offset)]
        assert healer.stalled(book) == []


@dataclass
class Record:
    offset: int


class FakeFetch:
    """The parts of faust's Consumer that ``getmany`` uses: one batch from aiokafka, partitions
    active or paused, and the seeks it asks for."""

    def __init__(self, records: dict[TP, list[Record]], active: set[TP]) -> None:
        self.records = records
        self.active = active
        self.flow_active = True
        self.should_stop = False
        self._buffered_partitions: set[TP] = set()
        self.seeks: list[tuple[TP, int]] = []
        self.app = self
        self.monitor = self
        self.consumer_generation_id = 1
        self.scheduler = self

    async def _wait_next_records(self, timeout: float) -> tuple[dict[TP, list[Record]], set[TP]]:  # noqa: ASYNC109
        return self.records, self.active

    def iterate(self, records: dict[TP, list[Record]]) -> Any:
        for tp, batch in records.items():
            for record in batch:
                yield tp, record
                if record.offset == 1 and tp == ORDERS:
                    self.active.discard(ORDERS)  # paused while the batch is handed on

    def track_tp_end_offset(self, tp: TP, offset: int) -> None: ...

    def highwater(self, tp: TP) -> int:
        return 100

    def _to_message(self, tp: TP, record: Record) -> tuple[TP, int]:
        return tp, record.offset

    def assignment(self) -> set[TP]:
        return {ORDERS, IDS}

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))


async def test_a_record_of_a_paused_partition_is_fetched_again_not_skipped() -> None:
    fetch = FakeFetch({ORDERS: [Record(o) for o in range(5)], IDS: [Record(0), Record(1)]}, {ORDERS, IDS})
    handed = [message async for _, message in faust_fixes._getmany(fetch, 1.0)]
    assert handed == [(ORDERS, 0), (ORDERS, 1), (IDS, 0), (IDS, 1)]
    assert fetch.seeks == [(ORDERS, 2)]  # offsets 2-4 are read again once the partition resumes


async def test_a_rebalance_during_the_batch_leaves_the_positions_to_the_rebalance() -> None:
    fetch = FakeFetch({ORDERS: [Record(o) for o in range(5)]}, {ORDERS})
    handed = []
    async for _, message in faust_fixes._getmany(fetch, 1.0):
        handed.append(message)
        fetch.consumer_generation_id = 2
    assert handed == [(ORDERS, 0)] and fetch.seeks == []  # its seek to the committed offsets re-reads
