"""The timer index against a plain dict of due times: same answers after any sequence of
updates, removals and pops, compactions included (its heap keeps stale entries for a while)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.timers import TimerIndex

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
KEYS = st.sampled_from([f"k{i}" for i in range(12)])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), KEYS, st.integers(0, 50)),
        st.tuples(st.just("clear"), KEYS, st.just(0)),
        st.tuples(st.just("pop"), st.just(""), st.integers(0, 50)),
    ),
    max_size=300,
)


def at(minute: int) -> datetime:
    return EPOCH + timedelta(minutes=minute)


@settings(max_examples=200, deadline=None)
@given(OPS, st.sampled_from([0, 3, 1024]))
def test_the_index_answers_like_a_dict_of_due_times(ops: list[tuple[str, str, int]], slack: int) -> None:
    """With no slack every few updates compact the heap (twins of a key moved away and back
    included); with the default slack these small runs never do."""
    index, model = TimerIndex(slack), dict[str, float]()
    for op, key, minute in ops:
        if op == "set":
            index.set(key, at(minute))
            model[key] = at(minute).timestamp()
        elif op == "clear":
            index.set(key, None)
            model.pop(key, None)
        else:
            limit = at(minute).timestamp()
            due = sorted((stamp, k) for k, stamp in model.items() if stamp <= limit)
            assert index.pop_due(at(minute)) == [k for _, k in due]
            for _, k in due:
                del model[k]
        assert len(index) == len(model)
        assert index.next_due() == (min(model.values()) if model else None)
        assert len(index._heap) <= len(model) + len(model) // 8 + slack + 1


def test_stale_entries_are_compacted_away_in_place() -> None:
    """A key updated many times leaves at most an eighth more heap entries than keys (plus the
    slack): the second pass over a million checkouts must not double the index. Compaction
    filters the same list, so no second list of every entry is ever alive beside it."""
    index = TimerIndex()
    heap = index._heap
    largest = 0
    for round_ in range(5):
        for i in range(4000):
            index.set(f"k{i}", at(round_ * 10_000 + i))
            largest = max(largest, len(index._heap))
    assert len(index) == 4000
    assert largest <= 4000 + 4000 // 8 + 1024 + 1
    assert index._heap is heap
