"""Stream time and timer indexes derived from a table's rows (streams.partition_time): what a worker
knows of a partition after an assignment is exactly what the changelog holds, never what an
earlier owner of the partition remembered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from streams.partition_time import (
    AS_OF,
    DUE_AT,
    PartitionTime,
    clock_key,
    clock_row,
    due_stamp,
    stamped_due,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def due_of(raw: dict[str, Any]) -> datetime | None:
    due = raw.get("due")
    return datetime.fromisoformat(due) if due else None


def row(partition: int, as_of: datetime, due: datetime | None) -> dict[str, Any]:
    return {"partition": partition, AS_OF: as_of.isoformat(), "due": due.isoformat() if due else None}


def test_rebuild_takes_the_newest_instant_of_the_clock_row_and_the_states() -> None:
    time_ = PartitionTime(due_of)
    items = [
        ("a", row(0, T0, T0 + timedelta(minutes=15))),
        ("b", row(0, T0 + timedelta(hours=1), None)),
        (clock_key(0), clock_row(T0 + timedelta(hours=2), 0)),
        (clock_key(1), clock_row(T0 + timedelta(days=9), 1)),  # the memory store: one dict for all
        ("c", row(1, T0 + timedelta(days=3), T0)),  # another partition's row: not ours
    ]
    assert time_.rebuild(0, items) == 1
    assert time_.advance(0, T0) == (T0 + timedelta(hours=2), False)
    assert time_.index(0).pop_due(T0 + timedelta(hours=3)) == ["a"]
    # The same scan derived partition 1 (its rows are in the items): no second scan for it.
    assert time_.ready(1) and len(time_.index(1)) == 1
    assert time_.advance(1, T0) == (T0 + timedelta(days=9), False)


def test_one_scan_derives_every_partition_and_leaves_a_derived_one_alone() -> None:
    """A worker's table spans all its partitions: the first batch of any of them derives them
    all, so a rebalance costs one scan of the table, not one a partition. A partition derived
    already has moved on with its inputs: a later scan never replaces its index."""
    scans = 0

    def scanned(items: list[tuple[str, dict[str, Any]]]) -> Any:
        nonlocal scans
        scans += 1
        yield from items

    time_ = PartitionTime(due_of)
    items = [(f"k{p}", row(p, T0, T0 + timedelta(hours=p))) for p in range(4)]
    assert time_.rebuild(2, scanned(items)) == 1
    assert all(time_.ready(p) for p in range(4)) and scans == 1
    time_.index(3).set("moved", T0)  # partition 3's inputs moved its index since
    assert time_.rebuild(3, scanned(items)) == 2 and scans == 1, "derived: not scanned again"
    assert time_.rebuild(7, scanned(items)) == 0 and time_.index(3).pop_due(T0) == ["moved"]


def test_a_due_stamp_is_read_only_under_the_settings_it_was_made_with() -> None:
    """``due_at`` saves decoding every state at a rebuild; a stamp made under other rule settings
    (a changed delay) or unreadable is not trusted, and the state is decoded instead."""
    due = T0 + timedelta(hours=24)
    assert stamped_due({DUE_AT: due_stamp(due, "fp1")}, "fp1") == (True, due)
    assert stamped_due({DUE_AT: due_stamp(None, "fp1")}, "fp1") == (True, None), "no pending timer"
    assert stamped_due({DUE_AT: due_stamp(due, "fp1")}, "fp2") == (False, None), "other settings"
    for broken in (None, "2026-03-02", ["fp1"], ["fp1", 5], ["fp1", "not a time"], {"fp1": "x"}):
        assert stamped_due({DUE_AT: broken}, "fp1") == (False, None), broken
    assert stamped_due({}, "fp1") == (False, None), "a row written before stamps"


def test_a_partition_without_rows_starts_with_no_clock_and_no_timers() -> None:
    time_ = PartitionTime(due_of)
    assert time_.rebuild(5, []) == 0
    assert time_.advance(5, T0) == (T0, True)
    assert time_.advance(5, T0 - timedelta(seconds=1)) == (T0, False)
    assert time_.advance(5, T0 + timedelta(seconds=1)) == (T0 + timedelta(seconds=1), True)


def test_reset_forgets_what_this_process_remembered() -> None:
    """A partition revoked and assigned back is derived again: a clock this process advanced in
    memory but never stored is not trusted after a rebalance."""
    time_ = PartitionTime(due_of)
    time_.rebuild(0, [("a", row(0, T0, None))])
    time_.advance(0, T0 + timedelta(days=1))
    time_.reset()
    assert not time_.ready(0)
    time_.rebuild(0, [("a", row(0, T0, None))])
    assert time_.advance(0, T0) == (T0, False)


def test_an_unreadable_state_is_left_out_of_the_index_and_does_not_stop_the_others() -> None:
    def strict(raw: dict[str, Any]) -> datetime | None:
        if raw.get("broken"):
            raise ValueError("cannot read")
        return due_of(raw)

    time_ = PartitionTime(strict)
    items = [("bad", {"partition": 0, "broken": True}), ("good", row(0, T0, T0))]
    assert time_.rebuild(0, items) == 1
    assert time_.index(0).pop_due(T0) == ["good"]
