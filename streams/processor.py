"""The one processor core: a batch of one partition's inputs against a state store, in order.

Every stage of the worker is a :class:`Kind`: the routers (state: what the orders router
remembers of an order id, nothing for the others), the HubSpot-id join, products, contacts and
journeys. Each kind says how to start a state, how to decide an input (``decide(state, input,
now, config) -> Outcome``), and, if it holds timers, how a tick fires them and when the next one
is due. :func:`step` runs a batch of inputs of one partition through a kind and returns what the
batch did; it never talks to Kafka, faust or a clock. The engines are thin adapters over it:

- the faust shell (``streams.app``) takes events in batches, decodes each value once, runs
  :func:`step` per partition, sends every output and awaits the acknowledgements once per batch,
  then writes each changed state once (the commit order is written down in ``streams.app``);
- the in-process pipeline (``streams.inprocess``: property tests, replay, import, simulate, the
  rules benchmark) runs :func:`step` on every input and hands forwards on at once.

So the load-decide-store-index sequence, the poison policy (what becomes a dead letter and with
which reason) and stream time exist once. Infrastructure stays out of the rules: a partition is
the store's and the clock's business, never a rule's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from config.rules import RuleConfig
from schemas.commands import AnyCommand
from schemas.envelope import Tick
from streams.timers import TimerIndex

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""The ``now`` of kinds whose inputs carry no time (routers): their rules never read it."""


class PoisonError(ValueError):
    """An input that cannot be processed; it is dead-lettered with this reason."""


class UnreadableStateError(PoisonError):
    """A stored state that no longer reads (the input for it, or its timer, is dead-lettered)."""


@dataclass(frozen=True)
class Forward:
    """An input for another kind (re-keyed), e.g. a delivery for a contact, a fact for a journey.

    ``record`` is the decoded input (what the in-process engine hands on) and ``raw`` its bytes
    (what the faust engine sends); a producer fills what it has, each engine derives the other
    only when it needs it, so a router forwards the bytes that came without re-encoding them."""

    target: str
    key: str
    record: Any | None = None
    raw: bytes | None = None


@dataclass(frozen=True)
class Outcome:
    """What deciding one input did: the new state (the very object passed in when nothing
    changed, so nothing is written), the HubSpot commands, the forwards."""

    state: Any
    commands: Sequence[AnyCommand] = ()
    forwards: Sequence[Forward] = ()


@dataclass(frozen=True)
class Kind:
    """One stage's rules, as the engines see them."""

    name: str
    new: Callable[[str], Any]
    decide: Callable[[Any, Any, datetime, RuleConfig], Outcome]
    instant: Callable[[Any], datetime | None]
    """The instant an input happened at, by its own data (None: it carries no time)."""
    on_tick: Callable[[Any, datetime, RuleConfig], Outcome] | None = None
    next_due: Callable[[Any, RuleConfig], datetime | None] | None = None

    @property
    def timed(self) -> bool:
        return self.on_tick is not None


class StateStore(Protocol):
    """Where a kind's states live for one partition (a faust table, a dict)."""

    def load(self, key: str) -> Any | None:
        """The stored state of ``key``, or None; raises ``UnreadableStateError``."""


class Clock(Protocol):
    """A partition's stream time and timer index (``streams.partition_time``)."""

    def advance(self, at: datetime) -> tuple[datetime, bool]: ...

    @property
    def index(self) -> TimerIndex: ...


@dataclass
class Unit:
    """What one input (or one timer a tick fired) did to one key."""

    position: int  # the input's index in the batch
    key: str
    state: Any
    commands: Sequence[AnyCommand]
    forwards: Sequence[Forward]
    changed: bool
    decided_at: datetime | None = None  # the stream time it was decided at (timed kinds)


@dataclass(frozen=True)
class Rejected:
    """An input (or, for a tick, one key's timer) that ends as a dead letter with its reason."""

    position: int
    reason: str
    key: str | None = None  # set for a timer: the entity whose timer could not fire


@dataclass
class StepResult:
    """What a batch did, in input order (the engine sends it all, then writes :meth:`states`)."""

    units: list[Unit] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    now: datetime | None = None  # the partition's stream time after the batch (timed kinds)
    clock_moved: bool = False

    def states(self) -> dict[str, tuple[Any, datetime | None]]:
        """The newest changed state of each key and the stream time it was decided at: what the
        engine writes, once per key per batch."""
        out: dict[str, tuple[Any, datetime | None]] = {}
        for unit in self.units:
            if unit.changed:
                out[unit.key] = (unit.state, unit.decided_at)
        return out

    def commands(self) -> list[AnyCommand]:
        return [c for unit in self.units for c in unit.commands]

    def forwards(self) -> list[Forward]:
        return [f for unit in self.units for f in unit.forwards]


def poison_reason(exc: Exception, what: str) -> str:
    """The dead letter's reason for an input whose rule raised: the one poison policy."""
    if isinstance(exc, PoisonError):
        return str(exc)
    if isinstance(exc, ValidationError | ValueError):
        return f"{what}: {exc}"
    return f"{type(exc).__name__} while handling the record: {exc}"


def step(
    kind: Kind,
    config: RuleConfig,
    store: StateStore,
    inputs: Sequence[tuple[str, Any]],
    clock: Clock | None = None,
    what: Callable[[Any], str] = lambda record: "the record does not fit",
) -> StepResult:
    """Run ``inputs`` ((key, input) in log order, one partition) through ``kind``.

    Each input is decided at its own instant (the re-keyed topics interleave several routers, so
    which record reached a partition first is timing, not data); a tick fires, at the partition's
    stream time, every timer due by then. States stay decoded in memory for the batch: a key
    read twice is loaded once. An input whose rule raises is rejected (its key's state is as it
    was before it) and the batch goes on; ``what`` names an input for the rejection's reason."""
    result = StepResult()
    cache: dict[str, Any] = {}
    missing = object()

    def load(key: str) -> Any:
        state = cache.get(key, missing)
        if state is missing:
            state = store.load(key)
            cache[key] = state
        return state

    def apply(
        position: int, key: str, before: Any, outcome: Outcome, now: datetime | None, fired: bool
    ) -> None:
        changed = outcome.state is not before
        cache[key] = outcome.state
        result.units.append(
            Unit(position, key, outcome.state, outcome.commands, outcome.forwards, changed, now)
        )
        if clock is not None and kind.next_due is not None and (changed or fired):
            clock.index.set(key, kind.next_due(outcome.state, config))  # a fired timer left the index

    for position, (key, record) in enumerate(inputs):
        at = kind.instant(record)
        now = at
        if clock is not None and at is not None:
            now, moved = clock.advance(at)
            result.now = now
            result.clock_moved |= moved
        if isinstance(record, Tick):
            if clock is not None and kind.on_tick is not None and now is not None:
                _fire(kind, config, clock, now, position, load, apply, result)
            continue
        try:
            state = load(key)
            before = state
            if state is None:
                state = kind.new(key)
            outcome = kind.decide(state, record, at if at is not None else EPOCH, config)
        except Exception as exc:  # a bug or a record no rule foresaw: never skip it silently
            result.rejected.append(Rejected(position, poison_reason(exc, what(record))))
            continue
        apply(position, key, before, outcome, now, False)
    return result


def _fire(
    kind: Kind,
    config: RuleConfig,
    clock: Clock,
    now: datetime,
    position: int,
    load: Callable[[str], Any],
    apply: Callable[[int, str, Any, Outcome, datetime | None, bool], None],
    result: StepResult,
) -> None:
    assert kind.on_tick is not None
    for key in clock.index.pop_due(now):
        try:
            state = load(key)
            if state is None:
                continue
            outcome = kind.on_tick(state, now, config)
        except Exception as exc:
            reason = f"a {kind.name} timer could not fire: {type(exc).__name__}: {exc}"
            result.rejected.append(Rejected(position, reason, key=key))
            continue
        apply(position, key, state, outcome, now, True)


@dataclass
class MemoryStore:
    """A kind's states in a dict (the in-process engine; tests)."""

    states: dict[str, Any] = field(default_factory=dict)

    def load(self, key: str) -> Any | None:
        return self.states.get(key)

    def save(self, written: Iterable[tuple[str, Any]]) -> None:
        for key, state in written:
            self.states[key] = state
