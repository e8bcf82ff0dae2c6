"""Stream time and timer indexes per partition, derived from the changelogged table (SPEC R4).

A partition's "now" is the newest instant its log has shown (a delivery's ``received_at``, a
tick's ``at``). The rules decide with it, so after a crash, a restart or a rebalance it must be
exactly what an undisturbed worker would have: a worker that resumed with a fresh clock from the
committed offset would decide some records with an older "now" than the first run did (records of
the re-keyed topics do not arrive sorted by time), and fire or miss timers differently.

So the clock is state, kept where the entity states are kept, and written in the same changelog:

- every entity state written carries ``as_of``, the stream time it was decided at;
- an input that writes no entity state (a tick that fires nothing, a duplicate) writes the
  partition's clock row (:func:`clock_key`) instead, when it moved the clock.

After an assignment the clock of a partition is the newest of its clock row and its states'
``as_of``, and its timer index holds every state's next due time: both come from one scan of the
table (:meth:`PartitionTime.rebuild`), which derives every partition the table's rows name at
once (a worker's table spans all its partitions: one scan each was a scan per partition). Each
state written also carries ``due_at``, its next due time with the fingerprint of the rule
settings it was worked out under (:func:`due_stamp`), so a scan reads due times without decoding
(or, G1, opening) a single state; a row without one, or stamped under other settings, is
decoded as before. On revoke and on assignment everything in memory is
dropped, so a partition that comes back is derived again from what its changelog holds, never
from what this process remembered of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from streams.timers import TimerIndex

CLOCK_PREFIX = "\x00clock:"
"""The reserved keys of the partitions' clock rows in an entity table (no entity key starts with
NUL: contact keys are normalised emails, journey keys are Shopify tokens and ids)."""


def clock_key(partition: int) -> str:
    """The clock row's key, one per partition: RocksDB keeps a database per partition, but the
    memory store is one dict for all of them, and one shared key would let partitions overwrite
    each other's clocks."""
    return f"{CLOCK_PREFIX}{partition}"


AS_OF = "as_of"
"""The field of a stored entity state that says at which stream time it was decided."""

DUE_AT = "due_at"
"""The field of a stored timed state that says when its next timer is due: ``[fingerprint, due]``
(:func:`due_stamp`)."""


def due_stamp(due: datetime | None, fingerprint: str) -> list[str | None]:
    """A state's ``due_at``: its next due time (None: no pending timer) and the fingerprint of the
    rule settings it was worked out under (a changed delay makes every stamp stale)."""
    return [fingerprint, due.isoformat() if due is not None else None]


def stamped_due(raw: dict[str, Any], fingerprint: str) -> tuple[bool, datetime | None]:
    """(True, the due time) when the row's stamp was made under ``fingerprint``; (False, None)
    when it has none or another (the caller decodes the state instead)."""
    stamp = raw.get(DUE_AT)
    if not isinstance(stamp, list) or len(stamp) != 2 or stamp[0] != fingerprint:
        return False, None
    due = stamp[1]
    if due is None:
        return True, None
    if not isinstance(due, str):
        return False, None
    try:
        return True, datetime.fromisoformat(due)
    except ValueError:
        return False, None


def clock_row(at: datetime, partition: int) -> dict[str, Any]:
    return {"at": at.isoformat(), "partition": partition}


def _instant(raw: object) -> datetime | None:
    return datetime.fromisoformat(raw) if isinstance(raw, str) else None


class PartitionTime:
    """The clocks and timer indexes of one table's partitions, as far as this worker owns them.

    ``due_of`` turns a stored state (the table's raw value) into its next due time. Nothing here
    talks to Kafka: the faust shell calls :meth:`rebuild` with the table's items when a partition
    is first used after an assignment, and :meth:`reset` on every rebalance.
    """

    def __init__(self, due_of: Callable[[dict[str, Any]], datetime | None]) -> None:
        self._due_of = due_of
        self._clocks: dict[int, datetime] = {}
        self._indexes: dict[int, TimerIndex] = {}

    def ready(self, partition: int) -> bool:
        return partition in self._indexes

    def reset(self) -> None:
        """Forget everything (a rebalance): the next use rebuilds from the table."""
        self._clocks.clear()
        self._indexes.clear()

    def pending(self) -> int:
        """Timers pending in the partitions known here (the worker's metrics)."""
        return sum(len(index) for index in self._indexes.values())

    def rebuild(self, partition: int, items: Iterable[tuple[Any, Any]]) -> int:
        """Derive the clock and index of ``partition`` and of every other partition the table's
        items name (a table's items span every partition this worker holds: one scan for all of
        them) not derived yet; return ``partition``'s pending timers.

        A partition already derived is left as it is: its index moved with its inputs since. A
        state that cannot be read is left out of the index; the shell dead-letters it when an
        input for it arrives.
        """
        if partition in self._indexes:
            return len(self._indexes[partition])
        indexes: dict[int, TimerIndex] = {partition: TimerIndex()}
        clocks: dict[int, datetime] = {}
        for key, raw in items:
            if not isinstance(raw, dict):
                continue
            part = raw.get("partition")
            if not isinstance(part, int) or part in self._indexes:
                continue
            index = indexes.get(part)
            if index is None:
                index = indexes[part] = TimerIndex()
            is_clock = isinstance(key, str) and key.startswith(CLOCK_PREFIX)
            at = _instant(raw.get("at") if is_clock else raw.get(AS_OF))
            if at is not None and (part not in clocks or at > clocks[part]):
                clocks[part] = at
            if is_clock:
                continue
            try:
                index.set(str(key), self._due_of(raw))
            except (ValueError, TypeError, OverflowError):
                continue
        self._indexes.update(indexes)
        self._clocks.update(clocks)
        return len(indexes[partition])

    def index(self, partition: int) -> TimerIndex:
        return self._indexes[partition]

    def advance(self, partition: int, at: datetime) -> tuple[datetime, bool]:
        """The partition's stream time after seeing ``at`` (never backwards), and whether it moved."""
        current = self._clocks.get(partition)
        if current is not None and at <= current:
            return current, False
        self._clocks[partition] = at
        return at, True

    def clock(self, partition: int) -> PartitionClock:
        """``partition``'s clock and index as the processor core takes them."""
        return PartitionClock(self, partition)


class PartitionClock:
    """One partition of a :class:`PartitionTime` (``streams.processor.Clock``)."""

    def __init__(self, time: PartitionTime, partition: int) -> None:
        self._time, self._partition = time, partition

    def advance(self, at: datetime) -> tuple[datetime, bool]:
        return self._time.advance(self._partition, at)

    @property
    def index(self) -> TimerIndex:
        return self._time.index(self._partition)
