"""`shopsync simulate`: the scenario format, and the whole pipeline on a generated store."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from shopsync.account import fold
from shopsync.localrun import delivery_for, schedule
from shopsync.samplestore import generate, scenario_lines
from shopsync.simulate import ScenarioError, parse, run
from streams.inprocess import InProcessPipeline
from tests.writer.conftest import agrees, held


def write(tmp_path: Path, lines: list[object]) -> Path:
    path = tmp_path / "scenario.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines))
    return path


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"at": "2026-03-02T09:00:00Z"}, "exactly one of"),
        ({"at": "2026-03-02T09:00:00Z", "shopify": "orders/create"}, "need a .body."),
        ({"at": "2026-03-02T09:00:00Z", "hubspot": "contact.deletion"}, "needs an .email."),
        ({"at": "2026-03-02T09:00:00", "tick": True}, "timezone"),
        ({"at": "2026-03-02T09:00:00Z", "tick": True, "surprise": 1}, "surprise"),
    ],
)
def test_a_malformed_line_is_named_with_the_reason(
    tmp_path: Path, line: dict[str, object], message: str
) -> None:
    path = write(tmp_path, [{"at": "2026-03-02T08:00:00Z", "tick": True}, line])
    with pytest.raises(ScenarioError, match=f"scenario.jsonl:2: .*{message}"):
        parse(path)


def test_time_never_goes_backwards_and_broken_json_is_named(tmp_path: Path) -> None:
    path = write(
        tmp_path, [{"at": "2026-03-02T09:00:00Z", "tick": True}, {"at": "2026-03-02T08:00:00Z", "tick": True}]
    )
    with pytest.raises(ScenarioError, match=':2: "at" goes backwards'):
        parse(path)
    path.write_text('{"at": "2026-03-02T09:00:00Z", "tick": true}\n{nope\n')
    with pytest.raises(ScenarioError, match=":2: not JSON"):
        parse(path)


def test_the_cli_exits_non_zero_naming_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, [{"at": "2026-03-02T09:00:00Z", "shopify": "orders/create"}])
    result = subprocess.run(
        [sys.executable, "-m", "shopsync", "simulate", str(path), "--out", str(tmp_path / "a.json")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0 and "scenario.jsonl:1" in result.stderr


@pytest.mark.kafka
async def test_a_generated_store_through_the_whole_pipeline(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Bridge, worker, writer and sandbox together give the account the rules describe."""
    store = generate(customers=6, seed=4)
    path = write(tmp_path, list(scenario_lines(store)))
    result = await run(parse(path), kafka_bootstrap, tmp_path, 120)
    pipeline = InProcessPipeline()
    for batch, tick_at in schedule(store.events, timedelta(hours=12), timedelta(days=3)):
        for event in batch:
            pipeline.deliver(delivery_for(event))
        pipeline.tick(tick_at)
    problems = agrees(fold(pipeline.commands), held(result.account))
    assert not problems, problems[:10]
