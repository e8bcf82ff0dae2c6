"""Chaos on the real broker (SPEC R4): three workers, SIGKILLs at random moments, a rebalance, two
tickers, a store of 60 customers. The account must equal the undisturbed one and every trigger
property must only ever have been written with one value.

Each run draws its own kill moments; the seed is printed on failure, and ``CHAOS_SEED=N`` replays
one. The README's "Delivery guarantees" section has the command that repeats it 20 times.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from config import Settings
from devtools.account import differences
from devtools.localrun import ServiceProcess, play, schedule
from devtools.samplestore import generate
from handlers.account_fold import fold
from streams.topics import ensure_topics
from tests.test_worker_scenario import STEP, TAIL, expected, produced, scenario_settings, trigger_values

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize("sealed", [False, True], ids=["plain", "sealed"])
async def test_workers_killed_at_random_moments_and_rebalanced_lose_nothing(
    settings: Settings, tmp_path: Path, sealed: bool
) -> None:
    """``sealed``: with both G1 settings on, the configuration the README asks a deployment to
    run (deliveries sealed as the bridge seals them, contacts keyed by pseudonym, rows, facts and
    commands sealed by the workers, key rings read after every rebalance): the same account."""
    seed = int(os.environ.get("CHAOS_SEED") or time.time_ns() % 1_000_000)
    rng = random.Random(seed)
    settings = scenario_settings(settings)
    if sealed:
        settings = settings.model_copy(
            update={"seal_personal_data": True, "redactable": True, "privacy_secret": SecretStr("c" * 40)}
        )
    store = generate(customers=60, seed=11)
    plan = schedule(store.events, STEP, TAIL)
    await ensure_topics(settings, internal=True)

    def start(name: str) -> ServiceProcess:
        own = settings.model_copy(update={"data_dir": tmp_path / f"worker-{name}"})  # kept across restarts
        return ServiceProcess("worker", own, tmp_path / f"worker-{name}.log")

    workers = {"a": start("a"), "b": start("b")}
    started = ["a", "b"]
    windows = list(range(1, len(plan) - 1))
    kills = sorted(rng.sample(windows, 3))
    join = rng.choice(windows)
    events: list[str] = []

    async def disturb(i: int) -> None:
        if i == join and "c" not in workers:
            workers["c"] = start("c")
            started.append("c")
            events.append(f"window {i}: worker c joined")
        for _ in range(kills.count(i)):
            await asyncio.sleep(rng.uniform(0.0, 1.5))  # somewhere while the window is being handled
            victim = rng.choice(sorted(workers))
            workers[victim].kill()
            workers[victim] = start(victim)
            events.append(f"window {i}: worker {victim} killed and restarted")

    def current() -> ServiceProcess:
        return workers[started[-1]]

    def context() -> str:
        return f"chaos seed {seed} (CHAOS_SEED={seed} replays it): {events}"

    try:
        await play(settings, plan, current, on_window=disturb, tickers=2, timeout_s=120.0)
        commands = await produced(settings)
    except (TimeoutError, RuntimeError) as exc:
        raise AssertionError(f"{context()}: {exc}") from exc
    finally:
        for worker in workers.values():
            worker.stop()
    want = fold(expected(plan))
    got = fold(commands)
    assert got == want, f"{context()}\n{differences(want, got)}"
    repeated = {k: v for k, v in trigger_values(commands).items() if len(v) > 1}
    assert not repeated, f"{context()}: a trigger was written with two different values: {repeated}"
    assert "c" in workers and len(events) >= 4, context()
