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
    @dataclass
    class Message:
        tp: TP
        offset: int

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
    @dataclass
    class Message:
        tp: TP
        offset: int

    book = FakeBookkeeping()
    book._committed_offset[ORDERS] = 7
    acked(book, ORDERS, 8, 9)
    book._unacked_messages.append(Message(ORDERS, 10))  # the agent is busy with a later record
    healer = faust_fixes.StallHealer()
    assert healer.stalled(book) == [] and healer.stalled(book) == [(ORDERS, 7)]
    book._unacked_messages[:] = [Message(ORDERS, 7)]  # the head itself in flight: not stalled
    assert healer.stalled(book) == [] and healer.stalled(book) == []
