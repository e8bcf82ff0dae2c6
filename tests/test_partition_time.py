"""Stream time and timer indexes derived from a table's rows (streams.partition_time): what a worker
knows of a partition after an assignment is exactly what the changelog holds, never what an
earlier owner of the partition remembered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from streams.partition_time import AS_OF, PartitionTime, clock_key, clock_row

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
