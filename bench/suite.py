"""The benchmark suite's contract: what one figure is and what measuring it returns.

Every figure of ``shopsync bench`` is one module in ``bench/figures/`` exposing ``FIGURE``; the
runner (``bench.runner``) measures them in turn against one shared local broker (and, where a
figure needs it, its own HubSpot sandbox) and prints one table. A figure measures its baseline in
the same run, on the same records, so the ratio means something on any machine.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

Unit = Literal["deliveries/s", "records/s", "inputs/s", "s", "ms", "calls", "MiB", "x"]


@dataclass(frozen=True)
class BenchEnv:
    """What every figure gets: the broker, the run's scale, a scratch folder; and what the figures
    before it in this run measured (``earlier``, by name: the replay figure's baseline is the
    worker figure's result)."""

    bootstrap: str
    quick: bool  # CI's smoke run: small inputs, same code paths; the targets are not judged
    scratch_dir: str
    kafka_version: str
    earlier: Mapping[str, Measured] = field(default_factory=dict)


@dataclass(frozen=True)
class Measured:
    """One figure's result. ``ratio`` is result/baseline unless the figure defines it otherwise
    (e.g. two workers over one); ``met`` is whether the target holds; ``detail`` is one line of
    what else was seen (counts, p50/p99, what limited it)."""

    result: float
    unit: Unit
    met: bool
    baseline: float | None = None
    baseline_unit: Unit | None = None
    ratio: float | None = None
    detail: str = ""
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Figure:
    """``name`` is short and stable (the ``--only`` filter and the JSON key); ``title`` is the
    table's wording; ``target`` says the goal in words (e.g. ">= 10,000 deliveries/s and >= 0.4")."""

    name: str
    title: str
    target: str
    baseline: str
    run: Callable[[BenchEnv], Awaitable[Measured]]
