"""The linger rule for part-filled calls: carried only under load, never longer than the linger."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.writer_linger import Linger


def key(entry: str) -> str:
    return entry


def test_at_a_low_rate_everything_goes_in_the_round_it_arrived() -> None:
    linger = Linger(linger_s=1.0)
    for t in range(10):
        send, carry = linger.split("deals", [f"d{t}"], key, float(t) / 10)
        assert (send, carry) == ([f"d{t}"], [])


def test_under_load_the_remainder_waits_for_the_next_round_and_fills_it() -> None:
    linger = Linger(linger_s=1.0)
    first = [f"a{n}" for n in range(130)]
    send, carry = linger.split("deals", first, key, 0.0)
    assert send == first[:100] and carry == first[100:], "the oldest 100 go, 30 are carried"
    second = carry + [f"b{n}" for n in range(70)]
    send, carry = linger.split("deals", second, key, 0.3)
    assert send == second and carry == [], "the carried 30 and 70 new ones: one full call"


def test_nothing_waits_longer_than_the_linger() -> None:
    linger = Linger(linger_s=1.0)
    _, carry = linger.split("deals", [f"a{n}" for n in range(150)], key, 0.0)
    send, carry = linger.split("deals", carry + [f"b{n}" for n in range(120)], key, 0.5)
    assert send[0] == "a100" and carry[0] == "b50", "the oldest go first"
    _, carry = linger.split("deals", carry, key, 1.0)
    assert carry, "0.5 s old, and 120 came within the last second: still under load"
    send, carry = linger.split("deals", carry, key, 1.5)
    assert carry == [] and send[0] == "b50", "the oldest carried one reached the linger: all go"


def test_under_load_a_rare_kind_is_carried_too() -> None:
    """Archives trickle in a few a round; while deals pour in, they wait for a fuller call too."""
    linger = Linger(linger_s=1.0)
    linger.split("deals", [f"d{n}" for n in range(300)], key, 0.0)
    send, carry = linger.split("archives", ["a1", "a2"], key, 0.1)
    assert (send, carry) == ([], ["a1", "a2"])
    send, carry = linger.split("archives", ["a1", "a2", "a3"], key, 1.0)
    assert send == ["a1", "a2", "a3"] and carry == [], "the linger is over: they go"


def test_a_carried_entry_goes_at_the_last_round_that_keeps_it_within_the_linger() -> None:
    linger = Linger(linger_s=1.0, round_s=0.3)
    _, carry = linger.split("deals", [f"d{n}" for n in range(150)], key, 0.0)
    assert len(carry) == 50
    _, carry = linger.split("deals", carry, key, 0.6)
    assert len(carry) == 50, "0.6 s old: the next round comes by 0.9 s, within the linger"
    send, carry = linger.split("deals", carry, key, 0.75)
    assert len(send) == 50 and carry == [], "0.75 s old: the next round (by 1.05 s) would be too late"


def test_a_zero_linger_never_carries() -> None:
    linger = Linger(linger_s=0.0)
    send, carry = linger.split("deals", [f"a{n}" for n in range(250)], key, 0.0)
    assert len(send) == 250 and carry == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=260), min_size=1, max_size=30))
def test_every_entry_is_sent_once_within_the_linger_plus_a_round(arrivals: list[int]) -> None:
    """Rounds every 0.25 s, any number of new entries each: every entry is sent exactly once, at
    most one round after its linger is over, and a round's calls are full unless nothing is carried."""
    linger, step = Linger(linger_s=1.0), 0.25
    carried: list[str] = []
    arrived: dict[str, float] = {}
    sent: dict[str, float] = {}
    rounds = [*arrivals, *([0] * 8)]  # then quiet rounds: whatever is carried must go
    for r, count in enumerate(rounds):
        now = r * step
        new = [f"{r}:{n}" for n in range(count)]
        arrived.update((e, now) for e in new)
        send, carried = linger.split("g", carried + new, key, now)
        assert not (set(send) & set(sent)), "sent once"
        sent.update((e, now) for e in send)
        if carried:
            assert len(send) % 100 == 0, "only whole calls go while a remainder is carried"
    assert not carried and set(sent) == set(arrived)
    assert all(sent[e] - arrived[e] <= 1.0 + step for e in arrived)
