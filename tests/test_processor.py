"""The processor core (``streams.processor.step``): batches change nothing but the cost.

The faust engine runs a batch of a partition's inputs through one step and writes each changed
state once; the in-process engine runs every input on its own. Both must end with the same
commands, forwards and states, whatever the batch boundaries: that is what lets the worker batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.rules import RuleConfig
from devtools.localrun import delivery_for, schedule
from devtools.samplestore import generate
from schemas.envelope import Tick
from streams import inprocess
from streams.entities import CONTACTS, JOURNEYS
from streams.inprocess import InProcessPipeline
from streams.partition_time import PartitionTime
from streams.processor import Forward, Kind, MemoryStore, Outcome, StepResult, step

CONFIG = RuleConfig()
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def recorded_inputs(customers: int, seed: int) -> dict[str, list[tuple[str, Any]]]:
    """The (key, input) sequence each timed kind was given in an in-process run of a store."""
    seen: dict[str, list[tuple[str, Any]]] = {CONTACTS.name: [], JOURNEYS.name: []}
    real_step = step

    def recording(kind: Kind, *args: Any, **kwargs: Any) -> StepResult:
        if kind.name in seen:
            seen[kind.name].extend(args[2])
        return real_step(kind, *args, **kwargs)

    pipeline = InProcessPipeline()
    store = generate(customers=customers, seed=seed)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(inprocess, "step", recording)
        for batch, tick_at in schedule(store.events, timedelta(hours=6), timedelta(days=40)):
            for event in batch:
                pipeline.deliver(delivery_for(event))
            pipeline.tick(tick_at)
    return seen


RECORDED = recorded_inputs(customers=12, seed=7)


def run(kind: Kind, inputs: list[tuple[str, Any]], cuts: list[int]) -> tuple[list[Any], dict[str, Any]]:
    """Commands and final states of ``inputs`` through ``kind``, in batches of the given sizes."""
    store = MemoryStore()
    time = PartitionTime(lambda row: None)
    time.rebuild(0, ())
    commands: list[Any] = []
    position = 0
    sizes = iter(cuts)
    while position < len(inputs):
        size = max(1, next(sizes, len(inputs)))
        result = step(kind, CONFIG, store, inputs[position : position + size], time.clock(0))
        assert not result.rejected
        store.save((key, state) for key, (state, _) in result.states().items())
        commands += result.commands()
        position += size
    return commands, store.states


@pytest.mark.parametrize("kind", [CONTACTS, JOURNEYS], ids=lambda k: k.name)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(min_value=1, max_value=60), max_size=40))
def test_batch_boundaries_change_nothing(kind: Kind, cuts: list[int]) -> None:
    inputs = RECORDED[kind.name]
    assert len(inputs) > 50 and any(isinstance(r, Tick) for _, r in inputs)
    one_by_one = run(kind, inputs, [1] * len(inputs))
    assert run(kind, inputs, cuts) == one_by_one
    assert one_by_one[0], "the store's inputs make commands"


# ---- a toy kind: the core's bookkeeping on its own ----


@dataclass(frozen=True)
class Count:
    n: int = 0
    due: datetime | None = None


@dataclass(frozen=True)
class Add:
    amount: int
    at: datetime
    boom: bool = False
    remind_in: timedelta | None = None


def _decide(state: Count, record: Add, now: datetime, config: RuleConfig) -> Outcome:
    if record.boom:
        raise ValueError("no such amount")
    if record.amount == 0:
        return Outcome(state)  # nothing changes: nothing to write
    due = now + record.remind_in if record.remind_in else state.due
    return Outcome(Count(state.n + record.amount, due), forwards=[Forward("elsewhere", "k", record)])


def _tick(state: Count, now: datetime, config: RuleConfig) -> Outcome:
    if state.n < 0:
        raise RuntimeError("broken state")
    return Outcome(Count(state.n, None), forwards=[Forward("reminders", str(state.n), None, b"due")])


TOY = Kind(
    name="toy", new=lambda key: Count(), decide=_decide, instant=lambda r: r.at,
    on_tick=_tick, next_due=lambda state, config: state.due,
)  # fmt: skip


@dataclass
class CountingStore(MemoryStore):
    loads: dict[str, int] = field(default_factory=dict)

    def load(self, key: str) -> Any | None:
        self.loads[key] = self.loads.get(key, 0) + 1
        return super().load(key)


def clock() -> Any:
    time = PartitionTime(lambda row: None)
    time.rebuild(0, ())
    return time.clock(0)


def test_a_failing_input_is_rejected_alone_and_leaves_its_key_as_it_was() -> None:
    store = CountingStore()
    inputs = [
        ("a", Add(1, T0)),
        ("a", Add(5, T0, boom=True)),
        ("b", Add(2, T0)),
        ("a", Add(10, T0)),
    ]
    result = step(TOY, CONFIG, store, inputs, clock())
    rejected = [(r.position, r.reason) for r in result.rejected]
    assert rejected == [(1, "the record does not fit: no such amount")]
    assert {k: s.n for k, (s, _) in result.states().items()} == {"a": 11, "b": 2}
    assert store.loads == {"a": 1, "b": 1}, "a key is loaded once per batch"


def test_an_unchanged_state_is_not_written() -> None:
    store = MemoryStore({"a": Count(3)})
    result = step(TOY, CONFIG, store, [("a", Add(0, T0))], clock())
    assert result.states() == {} and not result.rejected


def test_a_tick_fires_what_is_due_and_a_failing_timer_is_rejected_with_its_key() -> None:
    store = MemoryStore({"bad": Count(-1, T0)})
    time = clock()
    time.index.set("bad", T0)
    inputs: list[tuple[str, Any]] = [
        ("a", Add(1, T0, remind_in=timedelta(hours=1))),
        ("b", Add(2, T0, remind_in=timedelta(hours=3))),
        ("tick", Tick(at=T0 + timedelta(hours=2))),
    ]
    result = step(TOY, CONFIG, store, inputs, time)
    assert [(r.position, r.key) for r in result.rejected] == [(2, "bad")]
    assert "broken state" in result.rejected[0].reason
    fired = [f for f in result.forwards() if f.target == "reminders"]
    assert [f.key for f in fired] == ["1"], "a is due, b is not yet"
    states = result.states()
    assert states["a"][0] == Count(1, None) and states["a"][1] == T0 + timedelta(hours=2)
    assert states["b"][0].due == T0 + timedelta(hours=3)
    assert result.now == T0 + timedelta(hours=2) and result.clock_moved
    assert time.index.next_due() == (T0 + timedelta(hours=3)).timestamp()
