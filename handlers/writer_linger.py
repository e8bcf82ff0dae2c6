"""When a round sends a part-filled batch and when it carries it to the next round (pure, no I/O).

HubSpot's rate limit counts calls, not inputs, so a call with 7 inputs costs what one with 100
does. Under load a round's records of one kind (say, deals to upsert) fill some whole 100-input
calls and leave a remainder; sending the remainder now spends a call on a few inputs that the
next round would have filled up. So, as a Kafka producer's ``linger.ms`` does, the remainder is
carried to the next round, but only while two things hold:

- the writer is *under load*: at least a whole batch of inputs (of any kind) arrived within the
  last ``linger_s``. At a low rate nothing is carried, and a command is written in the round it
  arrived (small batches, low latency). Under load every kind is carried, the rarer ones too: a
  kind with a few inputs a round (archives, update-only contacts) otherwise costs a call every
  round, and those calls are most of what a busy store spends;
- the remainder's oldest command will still be younger than ``linger_s`` at the next round
  (``round_s`` away at most): no command waits longer for the sake of a fuller call.

Carried commands are held like any other (their partitions' commits wait for them), so a crash or
a rebalance reads them again; nothing about them is lost.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


@dataclass
class Linger:
    """Per kind of input (``group``: object type and operation), how many arrived lately; per
    input (``key``), when its oldest unwritten command arrived."""

    linger_s: float = 1.0
    round_s: float = 0.0  # the most until the next round: what is carried goes then, at the latest
    batch: int = 100
    _since: dict[str, float] = field(default_factory=dict)
    _recent: dict[Hashable, deque[tuple[float, int]]] = field(default_factory=dict)

    def split(
        self, group: Hashable, entries: list[T], key_of: Callable[[T], str], now: float
    ) -> tuple[list[T], list[T]]:
        """The entries to send this round and those to carry to the next, oldest sent first. An
        entry not seen before arrived ``now``; one carried before keeps its time."""
        since = {id(e): self._since.get(key_of(e), now) for e in entries}
        recent = self._recent.setdefault(group, deque())
        recent.append((now, sum(1 for e in entries if key_of(e) not in self._since)))
        while recent and recent[0][0] <= now - self.linger_s:
            recent.popleft()
        for e in entries:
            self._since.pop(key_of(e), None)
        remainder = len(entries) % self.batch
        if remainder == 0 or self._arrived_lately(now) < self.batch:
            return entries, []
        ordered = sorted(entries, key=lambda e: since[id(e)])
        send, carry = ordered[: len(ordered) - remainder], ordered[len(ordered) - remainder :]
        if now - since[id(carry[0])] + self.round_s >= self.linger_s:  # next round would be too late
            return ordered, []
        for e in carry:
            self._since[key_of(e)] = since[id(e)]
        return send, carry

    def _arrived_lately(self, now: float) -> int:
        """Inputs of every kind that arrived within the last ``linger_s``."""
        return sum(n for recent in self._recent.values() for at, n in recent if at > now - self.linger_s)

    def forget(self) -> None:
        """Everything carried was dropped (a rebalance): it arrives anew."""
        self._since.clear()
