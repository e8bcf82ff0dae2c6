"""The worker's first and last steps: its tables register without faust's fixed second, its key
ring is closed, and what is left ends without mode's fixed wait."""

from __future__ import annotations

import asyncio
import functools
import types
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest
from faust.tables import TableManager

from config import Settings
from streams.app import build
from streams.faust_fixes import PromptTableManager
from streams.worker import SHUTDOWN_GRACE_S, _Worker
from tests.g1_modes import PLAIN


class _Ring:
    """A key source that only records being stopped."""

    def __init__(self) -> None:
        self.stopped = 0

    @property
    def keys(self) -> Mapping[str, bytes]:
        return {}

    async def ensure(self, raws: Iterable[bytes]) -> None:
        return None

    async def ensure_refs(self, refs: Iterable[str]) -> None:
        return None

    async def key_for(self, shop: str, kid: str) -> tuple[str, bytes]:
        raise AssertionError("not asked here")

    async def stop(self) -> None:
        self.stopped += 1


def _worker(ring: _Ring | None, tmp_path: Path | None = None) -> _Worker:
    settings = Settings(**PLAIN)  # G1's settings off: the ring here is a stand-in
    if tmp_path is not None:
        settings = settings.model_copy(update={"data_dir": tmp_path})
    pipeline = build(settings)
    return _Worker(pipeline.app, keys=ring, redirect_stdouts=False, loglevel="WARNING")


@pytest.mark.parametrize("manager", ["faust's", "the pipeline's"])
def test_the_tables_are_registered_without_faust_s_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, manager: str
) -> None:
    """faust's table manager sleeps a second before it registers the tables (a second of every
    worker start); the pipeline's registers them and starts recovery at once. What registering
    and recovery do needs Kafka: both are recorded here, in the order they are called."""
    tables = _worker(None, tmp_path).app.tables
    assert isinstance(tables, PromptTableManager)
    if manager == "faust's":
        monkeypatch.setattr(tables, "on_start", types.MethodType(TableManager.on_start, tables))
    steps: list[str] = []

    async def step(name: str, *args: object) -> None:
        steps.append(name)

    monkeypatch.setattr(tables, "sleep", functools.partial(step, "sleep"))
    monkeypatch.setattr(tables, "_update_channels", functools.partial(step, "register"))
    monkeypatch.setattr(tables.recovery, "start", functools.partial(step, "recover"))
    asyncio.run(tables.on_start())
    assert steps == (["sleep", "register", "recover"] if manager == "faust's" else ["register", "recover"])


def test_the_key_ring_is_stopped_once_the_app_has_stopped() -> None:
    ring = _Ring()
    worker = _worker(ring)
    worker.loop.run_until_complete(worker.on_shutdown())
    assert ring.stopped == 1, "the ring's consumer and producer were left running into the loop's end"
    _worker(None).loop.run_until_complete(_worker(None).on_shutdown())  # no ring (G1 off): nothing to stop


def test_the_tasks_left_at_the_end_are_cancelled_and_finish_their_cleanup_before_the_loop_closes() -> None:
    worker = _worker(None)
    loop = worker.loop
    cleaned: list[int] = []

    async def idle(i: int) -> None:
        try:
            await asyncio.Event().wait()  # a client's routine that never ends on its own
        finally:
            await asyncio.sleep(0)  # its cleanup takes a pass of the loop or two
            cleaned.append(i)

    tasks = [loop.create_task(idle(i)) for i in range(5)]
    loop.run_until_complete(asyncio.sleep(0))  # every task is waiting
    started = loop.time()
    worker._gather_all()
    assert all(task.done() for task in tasks) and sorted(cleaned) == list(range(5))
    # mode's own version runs the loop a whole second whenever a task is left, whatever it does
    assert loop.time() - started < SHUTDOWN_GRACE_S
