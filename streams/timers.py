"""The per-partition timer index: which entities have a timer due at a given stream time.

Timers themselves are state (each entity's state says when its next timer is due, and firing is a
pure function of state and time), so they survive restarts and rebalances with the tables. This
index only makes "what is due now" cheap: a min-heap of (due, key) with lazy deletion, so a tick
with a million pending timers and none due looks at one heap entry, and firing costs O(due log n).
It is rebuilt from the table after a partition is assigned, so it never needs persisting.

Stale heap entries (a key whose due time moved) are dropped once they pass an eighth of the live
ones, in place. Measured with ``python -m bench.bench_timers --memory`` (a million keys, then each
moved once, as the worker's second pass over a million checkouts moves them): with as many stale as
live allowed the index grew from 129 to 230 MiB; with a quarter, rebuilt as a new list, it stayed
at +21 MiB but peaked at +83 MiB while the new list and the old one were both alive (the worker's
peak); an eighth, filtered in place, keeps +10 MiB and no peak above it, for a compaction every
n/8 updates (O(n) each, so O(8) amortised per update).
"""

from __future__ import annotations

import heapq
from datetime import datetime


class TimerIndex:
    """Due times of the entities of one partition; at most one pending due time per key."""

    def __init__(self, slack: int = 1024) -> None:
        """``slack``: stale entries always allowed (tests make it 0 to compact often)."""
        self._heap: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}
        self._slack = slack

    def __len__(self) -> int:
        return len(self._due)

    def set(self, key: str, due: datetime | None) -> None:
        """Record ``key``'s next due time (None: it has no pending timer)."""
        if due is None:
            self._due.pop(key, None)
        else:
            stamp = due.timestamp()
            if self._due.get(key) == stamp:
                return
            self._due[key] = stamp
            heapq.heappush(self._heap, (stamp, key))
        if len(self._heap) > self._bound():
            self._compact()

    def _bound(self) -> int:
        """Heap entries allowed: the live ones, an eighth more stale, and the slack."""
        return len(self._due) + len(self._due) // 8 + self._slack

    def next_due(self) -> float | None:
        """The earliest pending due time (epoch seconds), or None."""
        while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: datetime) -> list[str]:
        """Keys whose timer is due at ``now``, earliest first; they leave the index (the caller
        fires them and sets their next due time, if any)."""
        limit = now.timestamp()
        keys: list[str] = []
        while self._heap and self._heap[0][0] <= limit:
            stamp, key = heapq.heappop(self._heap)
            if self._due.get(key) == stamp:
                del self._due[key]
                keys.append(key)
        return keys

    def _compact(self) -> None:
        """Keep the live entries in the same list: no second list of n tuples alive beside the
        first (that doubled the index's memory for a moment at every compaction). A key moved
        away and back to one time has two live-looking entries; if such twins keep the heap above
        its bound, it is rebuilt from the due times instead, so compaction never repeats at once."""
        heap, due, kept = self._heap, self._due, 0
        for entry in heap:
            if due.get(entry[1]) == entry[0]:
                heap[kept] = entry
                kept += 1
        del heap[kept:]
        if kept > len(due) + len(due) // 16:
            heap[:] = [(stamp, key) for key, stamp in due.items()]
        heapq.heapify(heap)
