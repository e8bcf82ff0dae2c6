"""``shopsync bench``: find the figures, measure them in a fixed order on one broker, print one table.

Every module of ``bench/figures/`` exposing ``FIGURE`` is a figure. They run one after another
(never two at once: each wants the machine), each in an event loop of its own, against one local
Kafka broker started for the run (or ``KAFKA_BOOTSTRAP_SERVERS``). A figure that raises is shown
as failed, with its error, and makes the run exit non-zero; a missed target is shown as missed and
fails the run only with ``strict``. In a quick run (CI's smoke run: small inputs, the same code
paths) the targets are shown but not judged.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import pkgutil
import platform
import shutil
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import orjson

import bench.figures
from bench.suite import BenchEnv, Figure, Measured

ORDER = (
    "rules", "worker", "two_workers", "latency", "calls", "writer", "backlog", "backlog_free", "setup",
    "sandbox", "bridge", "replay", "worker_rss", "demo",
)  # fmt: skip
"""The issue's order; figures not named here run after these, by name."""

EXIT_FAILED = 1  # a figure raised (or, with --strict, missed its target)


@dataclass(frozen=True)
class Outcome:
    """What became of one figure: measured, or failed with ``error``."""

    name: str
    figure: Figure | None
    measured: Measured | None = None
    error: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class Machine:
    cores: int
    python: str
    kafka: str
    platform: str
    load_at_start: str

    def header(self) -> str:
        return (f"machine: {self.cores} cores, Python {self.python}, Kafka {self.kafka}, {self.platform}; "
                f"load average at start {self.load_at_start}")  # fmt: skip


def machine(kafka_version: str) -> Machine:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return Machine(os.cpu_count() or 1, platform.python_version(), kafka_version, platform.platform(), load)


def discover(package: Any = bench.figures) -> tuple[list[Figure], list[Outcome]]:
    """Every ``FIGURE`` in the package's modules, in :data:`ORDER`; and the modules that could not
    be imported or expose no figure, as failed outcomes (so a broken module shows in the table)."""
    figures: list[Figure] = []
    broken: list[Outcome] = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            figure = module.FIGURE
            if not isinstance(figure, Figure):
                raise TypeError(f"FIGURE is a {type(figure).__name__}, not a bench.suite.Figure")
        except Exception as exc:
            broken.append(Outcome(info.name, None, error=f"{type(exc).__name__}: {exc}"))
            continue
        figures.append(figure)

    def rank(figure: Figure) -> tuple[int, str]:
        return (ORDER.index(figure.name) if figure.name in ORDER else len(ORDER), figure.name)

    return sorted(figures, key=rank), broken


def select(figures: list[Figure], only: Sequence[str]) -> list[Figure]:
    """The figures named in ``only`` (all when empty); an unknown name is an error."""
    if not only:
        return figures
    known = {f.name for f in figures}
    unknown = [n for n in only if n not in known]
    if unknown:
        raise ValueError(f"unknown figure(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [f for f in figures if f.name in only]


async def _awaited(awaitable: Awaitable[Measured]) -> Measured:
    return await awaitable


def measure(figure: Figure, env: BenchEnv) -> Outcome:
    """Run one figure in a fresh event loop; an exception becomes a failed outcome."""
    started = time.monotonic()
    try:
        measured = asyncio.run(_awaited(figure.run(env)))
    except Exception as exc:
        trace = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return Outcome(figure.name, figure, error=trace, seconds=time.monotonic() - started)
    return Outcome(figure.name, figure, measured, seconds=time.monotonic() - started)


def number(value: float, unit: str | None) -> str:
    """A result as the table shows it: thousands separated, a sensible precision per unit."""
    if unit == "x":
        return f"{value:.2f}x"
    if unit in ("s", "ms") and value < 10:
        return f"{value:.2f} {unit}"
    text = f"{value:,.0f}"
    return f"{text} {unit}" if unit else text


def verdict(outcome: Outcome, quick: bool) -> str:
    if outcome.error is not None:
        return "FAILED"
    assert outcome.measured is not None
    if quick:
        return "not judged"
    return "yes" if outcome.measured.met else "MISSED"


def rows(outcomes: Sequence[Outcome], quick: bool) -> list[list[str]]:
    out = [["figure", "result", "baseline (same run)", "ratio", "target", "met?"]]
    for o in outcomes:
        title = o.figure.title if o.figure is not None else o.name
        target = o.figure.target if o.figure is not None else ""
        m = o.measured
        if m is None:
            out.append([title, "failed", "", "", target, verdict(o, quick)])
            continue
        base = number(m.baseline, m.baseline_unit) if m.baseline is not None else ""
        if base and o.figure is not None:
            base = f"{base} ({o.figure.baseline})"
        elif o.figure is not None and o.figure.baseline:
            base = o.figure.baseline
        ratio = f"{m.ratio:.2f}" if m.ratio is not None else ""
        out.append([title, number(m.result, m.unit), base, ratio, target, verdict(o, quick)])
    return out


def render(outcomes: Sequence[Outcome], mach: Machine, quick: bool) -> list[str]:
    """The header, one Markdown table (it reads as well in a terminal as in the README), and a
    note per figure: its detail line, or its error."""
    table = rows(outcomes, quick)
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    mode = "quick run (small inputs; targets shown, not judged)" if quick else "full run"
    lines = [mach.header(), mode, "", line(table[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += [line(r) for r in table[1:]]
    notes = []
    for o in outcomes:
        if o.error is not None:
            notes.append(f"- {o.name}: failed after {o.seconds:.0f} s: {o.error}")
        elif o.measured is not None and o.measured.detail:
            notes.append(f"- {o.name} ({o.seconds:.0f} s): {o.measured.detail}")
    return [*lines, "", *notes] if notes else lines


def as_json(outcomes: Sequence[Outcome], mach: Machine, quick: bool) -> bytes:
    figures: dict[str, Any] = {}
    for o in outcomes:
        figures[o.name] = {
            "title": o.figure.title if o.figure else o.name,
            "target": o.figure.target if o.figure else None,
            "baseline": o.figure.baseline if o.figure else None,
            "measured": asdict(o.measured) if o.measured else None,
            "error": o.error,
            "seconds": round(o.seconds, 2),
        }
    return orjson.dumps(
        {"machine": asdict(mach), "quick": quick, "figures": figures}, option=orjson.OPT_INDENT_2
    )


def exit_code(outcomes: Sequence[Outcome], quick: bool, strict: bool) -> int:
    if any(o.error is not None for o in outcomes):
        return EXIT_FAILED
    if strict and not quick and any(o.measured is not None and not o.measured.met for o in outcomes):
        return EXIT_FAILED
    return 0


@contextlib.contextmanager
def broker(run_dir: Path) -> Iterator[tuple[str, str]]:
    """(bootstrap, Kafka version): ``KAFKA_BOOTSTRAP_SERVERS`` if set, else a local broker
    started here and stopped after."""
    from localkafka import start, stop

    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        yield existing, known_version(existing)
        return
    info = start(run_dir)
    try:
        yield info.bootstrap, info.kafka_version
    finally:
        stop(run_dir)


def known_version(bootstrap: str) -> str:
    """The version of a broker someone else started, if it is one of ``shopsync kafka start``'s
    in the usual folders (the broker does not say its version over the protocol)."""
    from localkafka import status
    from localkafka.broker import default_run_dir

    for run_dir in (default_run_dir(), Path(".local/test-kafka")):
        info = status(run_dir)
        if info is not None and info.bootstrap == bootstrap:
            return info.kafka_version
    return "unknown (KAFKA_BOOTSTRAP_SERVERS)"


def run_suite(
    quick: bool, only: Sequence[str] = (), json_path: Path | None = None, strict: bool = False,
    echo: Callable[[str], None] = print, progress: Callable[[str], None] = print,
) -> int:  # fmt: skip
    """Measure the figures and print the table (``echo``; what is being measured goes to
    ``progress``); return the exit code. The scratch folder is removed unless a figure failed."""
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # sends retried to brand-new topics: noise
    figures, broken = discover()
    chosen = select(figures, only)
    if only:
        broken = [b for b in broken if b.name in only]
    scratch = Path(tempfile.mkdtemp(prefix="shopsync-bench-"))
    outcomes: list[Outcome] = list(broken)
    with broker(scratch / "kafka") as (bootstrap, kafka_version):
        mach = machine(kafka_version)
        progress(mach.header())
        env = BenchEnv(bootstrap, quick, str(scratch), kafka_version)
        for figure in chosen:
            progress(f"measuring {figure.name}: {figure.title} ...")
            outcome = measure(figure, env)
            outcomes.append(outcome)
            if outcome.measured is not None:
                env = replace(env, earlier={**env.earlier, figure.name: outcome.measured})
            progress(f"  {outcome.name}: {rows([outcome], quick)[1][1]} in {outcome.seconds:.0f} s")
    for text in render(outcomes, mach, quick):
        echo(text)
    if json_path is not None:
        json_path.write_bytes(as_json(outcomes, mach, quick))
        progress(f"written to {json_path}")
    if any(o.error is not None for o in outcomes):
        progress(f"scratch folder kept (worker logs): {scratch}")
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    return exit_code(outcomes, quick, strict)
