"""The progress model (``handlers.progress``): counts and instants in, rate, ETA and text out;
and the two displays fed a clock that the test advances (nothing sleeps)."""

from __future__ import annotations

import io
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.progress import (
    LogProgress,
    Sample,
    TerminalProgress,
    Totals,
    bar,
    choose,
    describe,
    duration,
    eta,
    fraction,
    rate,
    terminal_line,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_and_eta_of_a_known_total() -> None:
    first, last = Sample(10.0, 0), Sample(20.0, 5_000)
    assert rate(first, last) == 500.0
    assert eta(first, last, Totals(records=20_000)) == 30.0
    assert fraction(last, Totals(records=20_000)) == 0.25


def test_a_resumed_run_is_paced_by_its_own_records_only() -> None:
    """An import resumed at 60% must not take the earlier run's records as done in this run's time."""
    first, last = Sample(0.0, 60_000), Sample(10.0, 70_000)
    assert rate(first, last) == 1_000.0
    assert eta(first, last, Totals(records=100_000)) == 30.0


def test_without_a_record_total_the_bytes_give_the_fraction_and_eta() -> None:
    first, last = Sample(0.0, 0, 0), Sample(4.0, 100, 1_000)
    assert fraction(last, Totals(bytes=4_000)) == 0.25
    assert eta(first, last, Totals(bytes=4_000)) == 12.0


def test_nothing_is_claimed_before_it_is_known() -> None:
    start = Sample(5.0, 0)
    assert rate(start, start) is None, "no time has passed"
    assert eta(start, Sample(6.0, 10), Totals()) is None, "no total"
    assert eta(start, Sample(6.0, 0), Totals(records=10)) is None, "nothing moved"
    assert fraction(Sample(6.0, 10), Totals()) is None
    assert eta(start, Sample(6.0, 10), Totals(records=10)) == 0.0, "all done"


@given(
    done=st.integers(0, 10**7),
    more=st.integers(1, 10**7),
    total=st.integers(1, 10**8),
    elapsed=st.floats(0.001, 1e5),
)
def test_eta_is_what_is_left_at_the_run_s_rate(done: int, more: int, total: int, elapsed: float) -> None:
    first, last = Sample(0.0, done), Sample(elapsed, done + more)
    left = eta(first, last, Totals(records=total))
    speed = rate(first, last)
    assert left is not None and speed is not None and speed > 0
    assert left == pytest.approx(max(0, total - done - more) / speed)
    share = fraction(last, Totals(records=total))
    assert share is not None and 0.0 <= share <= 1.0


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0:00"), (59.4, "0:59"), (61, "1:01"), (3599, "59:59"), (3723, "1:02:03")]
)
def test_durations_read_as_a_clock(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_the_line_says_records_of_the_total_percent_rate_and_eta() -> None:
    text = describe("import orders", Sample(0.0, 0), Sample(10.0, 61_250), Totals(records=245_000))
    assert text == "import orders  61,250/245,000 records  25%  6,125/s  ETA 0:30"
    nothing = describe("import products", Sample(0.0, 0), Sample(0.0, 0), Totals())
    assert nothing == "import products  0 records"


@given(columns=st.integers(1, 400), done=st.integers(0, 10**6), total=st.integers(1, 10**6))
def test_a_terminal_line_never_wraps(columns: int, done: int, total: int) -> None:
    totals = Totals(records=total)
    line = terminal_line("import customers", Sample(0.0, 0), Sample(3.0, done), totals, columns)
    assert 1 <= len(line) <= max(1, columns - 1)


def test_the_bar_fills_with_the_fraction() -> None:
    assert bar(0.5, 12) == "[#####     ]"
    assert bar(1.0, 6) == "[####]"
    assert bar(None, 20) == ""


def test_the_terminal_display_redraws_one_line_at_most_every_fifth_of_a_second() -> None:
    clock, out = Clock(), io.StringIO()
    shown = TerminalProgress(out, clock, columns=lambda: 80)
    shown.start("import orders", Totals(records=1_000))
    clock.now += 1.0
    shown.update(100)
    clock.now += 0.1
    shown.update(150)  # too soon: not drawn
    clock.now += 0.15
    shown.update(200)
    shown.finish()
    frames = out.getvalue().split("\r")[1:]
    assert len(frames) == 3, frames  # at 1 s, at 1.25 s, and the end
    assert all(f.endswith("\x1b[K") for f in frames[:-1]) and frames[-1].endswith("\x1b[K\n")
    assert "100/1,000 records" in frames[0] and "ETA 0:09" in frames[0]
    assert "200/1,000 records  20%" in frames[-1]
    assert "\n" not in "".join(frames[:-1]), "one line, redrawn in place, until the phase ends"


def test_the_log_display_writes_a_line_every_two_seconds_and_one_at_the_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    shown = LogProgress(clock, logging.getLogger("test.progress"))
    with caplog.at_level(logging.INFO, logger="test.progress"):
        shown.start("replay: fold", Totals(records=500))
        for _ in range(10):
            clock.now += 0.5
            shown.update(50 * (_ + 1))
        shown.finish()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4, lines  # at 0.5 s, 2.5 s, 4.5 s, and the end
    assert lines[-1] == "replay: fold  500/500 records  100%  100/s  ETA 0:00 (done)"


def test_a_new_phase_ends_the_last_one() -> None:
    clock, out = Clock(), io.StringIO()
    shown = TerminalProgress(out, clock)
    shown.start("import products", Totals(records=6))
    shown.update(6)
    shown.start("import customers", Totals(records=10))
    assert out.getvalue().count("\n") == 1 and "import products" in out.getvalue()


def test_a_terminal_gets_the_line_and_anything_else_the_log() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(choose(Tty()), TerminalProgress)
    assert isinstance(choose(io.StringIO()), LogProgress)
