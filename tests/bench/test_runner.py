"""The benchmark runner's own logic: finding figures, ordering, the table, the JSON, exit codes.

No broker here: figures are stand-ins; the real figures run in CI's ``shopsync bench --quick``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import orjson
import pytest

from bench.runner import Machine, Outcome, as_json, discover, exit_code, measure, render, select
from bench.suite import BenchEnv, Figure, Measured

MACHINE = Machine(2, "3.11.7", "4.3.1", "Linux-test", "0.10, 0.20, 0.30")
ENV = BenchEnv("127.0.0.1:9", quick=False, scratch_dir="/tmp", kafka_version="4.3.1")


async def _fast(env: BenchEnv) -> Measured:
    return Measured(12_345.6, "deliveries/s", met=True, baseline=20_000.0, baseline_unit="deliveries/s",
                    ratio=0.617, detail="10 deliveries")  # fmt: skip


async def _slow(env: BenchEnv) -> Measured:
    return Measured(512.0, "MiB", met=False, detail="peak")


async def _boom(env: BenchEnv) -> Measured:
    raise RuntimeError("the worker process exited")


FAST = Figure("worker", "one worker", ">= 10,000 deliveries/s", "bare forward", _fast)
SLOW = Figure("worker_rss", "worker RSS", "< 1 GiB", "", _slow)
BOOM = Figure("replay", "replay", ">= 1.0x", "the worker figure", _boom)


def _package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, modules: dict[str, str]) -> object:
    root = tmp_path / "fakefigures"
    root.mkdir()
    (root / "__init__.py").write_text("")
    for name, text in modules.items():
        (root / f"{name}.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("fakefigures", None)
    return importlib.import_module("fakefigures")


FIGURE_MODULE = """
from bench.suite import Figure, Measured
async def run(env):
    return Measured(1.0, "s", met=True)
FIGURE = Figure({name!r}, "t", "target", "base", run)
"""


def test_discovery_orders_figures_as_the_issue_and_reports_broken_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = _package(tmp_path, monkeypatch, {
        "zeta": FIGURE_MODULE.format(name="zeta"), "replay": FIGURE_MODULE.format(name="replay"),
        "rules": FIGURE_MODULE.format(name="rules"), "broken": "raise ImportError('no such thing')",
        "nofigure": "X = 1", "_helpers": "raise AssertionError('private modules are not figures')",
    })  # fmt: skip
    figures, broken = discover(package)
    assert [f.name for f in figures] == ["rules", "replay", "zeta"]
    assert sorted(b.name for b in broken) == ["broken", "nofigure"]
    assert all(b.error for b in broken)


def test_the_real_figures_are_found() -> None:
    figures, broken = discover()
    names = [f.name for f in figures]
    assert broken == []
    for name in ("rules", "worker", "two_workers", "replay", "worker_rss"):
        assert name in names
    assert names.index("rules") < names.index("worker") < names.index("replay") < names.index("worker_rss")


def test_only_selects_by_name_and_rejects_unknown_names() -> None:
    assert select([FAST, SLOW, BOOM], ["worker_rss"]) == [SLOW]
    assert select([FAST, SLOW], []) == [FAST, SLOW]
    with pytest.raises(ValueError, match="unknown figure"):
        select([FAST], ["wroker"])


def test_a_figure_that_raises_becomes_a_failed_outcome() -> None:
    outcome = measure(BOOM, ENV)
    assert outcome.measured is None
    assert outcome.error == "RuntimeError: the worker process exited"


def test_table_shows_result_baseline_ratio_target_and_verdict() -> None:
    outcomes = [measure(FAST, ENV), measure(SLOW, ENV), measure(BOOM, ENV)]
    lines = render(outcomes, MACHINE, quick=False)
    assert lines[0].startswith("machine: 2 cores, Python 3.11.7, Kafka 4.3.1, Linux-test")
    table = [line for line in lines if line.startswith("|")]
    assert len(table) == 2 + 3  # header, rule, one row a figure: one table
    worker, rss, replay = (r.split("|")[1:-1] for r in table[2:])
    assert [c.strip() for c in worker] == [
        "one worker", "12,346 deliveries/s", "20,000 deliveries/s (bare forward)", "0.62",
        ">= 10,000 deliveries/s", "yes",
    ]  # fmt: skip
    assert [c.strip() for c in rss][1::4] == ["512 MiB", "MISSED"]
    assert [c.strip() for c in replay][1] == "failed" and replay[-1].strip() == "FAILED"
    assert "- replay: failed after 0 s: RuntimeError: the worker process exited" in lines
    quick = render(outcomes, MACHINE, quick=True)
    assert "not judged" in quick[5] and "MISSED" not in "".join(quick)


def test_exit_code_fails_on_errors_and_on_misses_only_when_strict() -> None:
    ok, missed, failed = measure(FAST, ENV), measure(SLOW, ENV), measure(BOOM, ENV)
    assert exit_code([ok, missed], quick=False, strict=False) == 0
    assert exit_code([ok, missed], quick=False, strict=True) == 1
    assert exit_code([ok, missed], quick=True, strict=True) == 0  # quick runs are not judged
    assert exit_code([ok, failed], quick=True, strict=False) == 1


def test_json_holds_every_figure_and_the_machine() -> None:
    data = orjson.loads(as_json([measure(FAST, ENV), measure(BOOM, ENV)], MACHINE, quick=True))
    assert data["machine"]["cores"] == 2 and data["machine"]["kafka"] == "4.3.1"
    assert data["quick"] is True
    assert data["figures"]["worker"]["measured"]["result"] == 12_345.6
    assert data["figures"]["worker"]["measured"]["ratio"] == 0.617
    assert data["figures"]["replay"]["measured"] is None
    assert data["figures"]["replay"]["error"].startswith("RuntimeError")


def test_outcome_of_a_broken_module_renders_without_a_figure() -> None:
    lines = render([Outcome("broken", None, error="ImportError: x")], MACHINE, quick=False)
    assert any(line.startswith("| broken") and "FAILED" in line for line in lines)
