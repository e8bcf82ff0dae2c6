"""Progress of a long run (the import, replay): a pure model and two thin displays.

The model takes counts and instants as data (``Sample``: when, how many records, how many bytes)
and returns the rate, the fraction done, the ETA and the text to show, so every number a user
reads is unit-tested without a clock or a terminal. The rate is this run's own (the records since
the run's first sample over the time since then): a resumed import's ETA is not flattered by the
records an earlier run appended.

The displays only decide where the text goes: ``TerminalProgress`` redraws one line on a
terminal (carriage return, at most a few times a second), ``LogProgress`` writes a log line every
few seconds (what a pipe, a file or a container's log wants). ``choose`` picks one by isatty.
Neither sleeps: they are fed samples and read the clock they are given.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TextIO

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    """What was done by ``at`` (seconds on any monotonic clock)."""

    at: float
    records: int
    bytes: int = 0


@dataclass(frozen=True)
class Totals:
    """What there is to do, when known: records (a bulk operation's ``rootObjectCount``, a
    replay's records read) or bytes (a downloaded file's size); ``None`` when unknown."""

    records: int | None = None
    bytes: int | None = None


def rate(first: Sample, last: Sample) -> float | None:
    """Records a second between two samples; ``None`` before any time has passed."""
    elapsed = last.at - first.at
    return (last.records - first.records) / elapsed if elapsed > 0 else None


def fraction(last: Sample, totals: Totals) -> float | None:
    """How much is done, in [0, 1], by records when their total is known, else by bytes."""
    if totals.records:
        return min(1.0, last.records / totals.records)
    if totals.bytes:
        return min(1.0, last.bytes / totals.bytes)
    return None


def eta(first: Sample, last: Sample, totals: Totals) -> float | None:
    """Seconds left at this run's pace; ``None`` when the total is unknown or nothing moved yet.

    By records when their total is known; by bytes otherwise (an air-gapped file of unknown
    record count still has a size)."""
    elapsed = last.at - first.at
    if elapsed <= 0:
        return None
    if totals.records:
        done, left = last.records - first.records, max(0, totals.records - last.records)
    elif totals.bytes:
        done, left = last.bytes - first.bytes, max(0, totals.bytes - last.bytes)
    else:
        return None
    if left == 0:
        return 0.0
    return left * elapsed / done if done > 0 else None


def duration(seconds: float) -> str:
    """``m:ss`` under an hour, ``h:mm:ss`` above (how a progress bar says it)."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def describe(label: str, first: Sample, last: Sample, totals: Totals) -> str:
    """One line: label, records (of the total), percent, rate, ETA; only what is known."""
    parts = [label]
    if totals.records:
        parts.append(f"{last.records:,}/{totals.records:,} records")
    else:
        parts.append(f"{last.records:,} records")
    done = fraction(last, totals)
    if done is not None:
        parts.append(f"{100 * done:.0f}%")
    speed = rate(first, last)
    if speed is not None:
        parts.append(f"{speed:,.0f}/s")
    left = eta(first, last, totals)
    if left is not None:
        parts.append(f"ETA {duration(left)}")
    return "  ".join(parts)


def bar(done: float | None, width: int) -> str:
    """``[#####     ]`` for a known fraction; empty when the total is unknown."""
    if done is None or width < 3:
        return ""
    inner = width - 2
    filled = min(inner, int(done * inner))
    return "[" + "#" * filled + " " * (inner - filled) + "]"


def terminal_line(label: str, first: Sample, last: Sample, totals: Totals, columns: int) -> str:
    """The terminal's line: a bar sized to what is left of ``columns``, then the description,
    cut to fit (a line longer than the terminal wraps, and a carriage return then redraws only
    its last part)."""
    text = describe(label, first, last, totals)
    room = columns - len(text) - 2
    drawn = bar(fraction(last, totals), min(30, room)) if room >= 10 else ""
    line = f"{drawn} {text}" if drawn else text
    return line[: max(1, columns - 1)]


class Progress(Protocol):
    """Where a run reports how far it is: ``start`` a phase (a resource, a replay stage), then
    ``update`` as it goes, ``finish`` at its end."""

    def start(self, label: str, totals: Totals, records: int = 0, bytes_: int = 0) -> None: ...

    def update(self, records: int, bytes_: int = 0) -> None: ...

    def finish(self) -> None: ...


@dataclass
class _Phase:
    label: str
    totals: Totals
    first: Sample
    last: Sample


class _Display:
    """What both displays share: the current phase and its samples, read off ``clock``."""

    every_s = 2.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.phase: _Phase | None = None
        self._shown = float("-inf")

    def start(self, label: str, totals: Totals, records: int = 0, bytes_: int = 0) -> None:
        if self.phase is not None:
            self.finish()
        first = Sample(self.clock(), records, bytes_)
        self.phase = _Phase(label, totals, first, first)
        self._shown = float("-inf")

    def update(self, records: int, bytes_: int = 0) -> None:
        if self.phase is None:
            return
        self.phase.last = Sample(self.clock(), records, bytes_)
        if self.phase.last.at - self._shown >= self.every_s:
            self._shown = self.phase.last.at
            self.show(self.phase, final=False)

    def finish(self) -> None:
        if self.phase is not None:
            self.phase.last = Sample(self.clock(), self.phase.last.records, self.phase.last.bytes)
            self.show(self.phase, final=True)
            self.phase = None

    def show(self, phase: _Phase, final: bool) -> None:
        raise NotImplementedError


class LogProgress(_Display):
    """A log line every ``every_s`` seconds and one at the end of each phase (not a terminal:
    a pipe, a file, a container's log)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, logger: logging.Logger = log) -> None:
        super().__init__(clock)
        self.logger = logger

    def show(self, phase: _Phase, final: bool) -> None:
        text = describe(phase.label, phase.first, phase.last, phase.totals)
        self.logger.info("%s%s", text, " (done)" if final else "")


class TerminalProgress(_Display):
    """One line on a terminal, redrawn in place (``\\r`` and erase to the end of the line) at
    most ``every_s`` apart; a finished phase keeps its last line and moves to the next."""

    every_s = 0.2

    def __init__(
        self,
        stream: TextIO,
        clock: Callable[[], float] = time.monotonic,
        columns: Callable[[], int] = lambda: 100,
    ) -> None:
        super().__init__(clock)
        self.stream = stream
        self.columns = columns

    def show(self, phase: _Phase, final: bool) -> None:
        line = terminal_line(phase.label, phase.first, phase.last, phase.totals, self.columns())
        self.stream.write("\r" + line + "\x1b[K" + ("\n" if final else ""))
        self.stream.flush()


class NoProgress:
    """Says nothing (tests, and callers that print their own summary)."""

    def start(self, label: str, totals: Totals, records: int = 0, bytes_: int = 0) -> None:
        pass

    def update(self, records: int, bytes_: int = 0) -> None:
        pass

    def finish(self) -> None:
        pass


def choose(stream: TextIO | None = None) -> Progress:
    """A redrawn line when ``stream`` (stderr) is a terminal, log lines otherwise."""
    out = stream if stream is not None else sys.stderr
    if out.isatty():
        return TerminalProgress(out, columns=lambda: shutil.get_terminal_size().columns)
    return LogProgress()
