"""Run the stream worker: make sure the topics exist, then hand the process to faust's Worker."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from config import Settings
from config.logs import logging_config
from schemas.sealing import KeySource
from streams import metrics
from streams.app import Pipeline, build
from streams.runtime import tune_gc
from streams.topics import ensure_topics


def run_worker(settings: Settings, keys: KeySource | None = None) -> None:
    """Block until the worker is stopped (SIGINT/SIGTERM stop it cleanly). ``keys``: G1's key
    ring, required while ``SHOPSYNC_SEAL_PERSONAL_DATA`` is on (the CLI passes it)."""
    asyncio.run(ensure_topics(settings, internal=True))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    pipeline = build(settings, keys)
    _watch(pipeline)
    tune_gc()  # the app is set up: freeze it, and collect less often (streams.runtime)
    worker = _Worker(
        pipeline.app,
        keys=keys,
        loglevel=settings.log_level.upper(),
        redirect_stdouts=False,
        override_logging=True,
        logging_config=logging_config(settings.log_level, settings.log_format),
    )
    worker.execute_from_commandline()


SHUTDOWN_GRACE_S = 1.0
"""How long the last tasks left at shutdown get to end once cancelled (they end in a few ms)."""


class _Worker(faust.Worker):
    """faust's worker without its terminal spinner, which stops its key ring and ends without
    mode's fixed two seconds.

    At a log level of WARNING or above faust installs a spinner that turns at every log record,
    and to see them all it sets the root logger to DEBUG: then every debug line of aiokafka and
    faust (one per record sent, among others) is formatted into a record and handled, about 5% of
    a busy worker's time (``bench/README.md``, session 6; the benchmarks run workers at
    ``warning``). The root logger keeps the configured level instead."""

    def __init__(self, *services: Any, keys: KeySource | None = None, **options: Any) -> None:
        super().__init__(*services, **options)
        self.keys = keys

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None  # logging is set up at start, after the worker made its spinner

    async def on_shutdown(self) -> None:
        """Once the app has stopped (offsets committed, producer flushed, group left), G1's key
        ring closes its consumer and producer: they are not faust's, so nothing else would, and
        their tasks were left running into the loop's shutdown."""
        await super().on_shutdown()
        if self.keys is not None:
            await self.keys.stop()

    def _gather_all(self) -> None:
        """Cancel the tasks still left and wait until they have ended (``SHUTDOWN_GRACE_S`` at most).

        mode's own version runs the loop for a second whenever any task is left (one always is),
        and then ``_sentinel_task`` runs it for one more: two seconds of every worker's stop, in
        the demo and in each of the suite's worker restarts, after everything was already done."""
        tasks = [task for task in asyncio.all_tasks(self.loop) if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            self.loop.run_until_complete(asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_S))

    async def _sentinel_task(self) -> None:
        """One pass of the loop for callbacks the cancellations scheduled (mode sleeps 1 s)."""
        await asyncio.sleep(0)


def _watch(pipeline: Pipeline) -> None:
    """Serve the worker's ``/metrics`` on its event loop and refresh its gauges there."""
    settings = pipeline.settings

    async def serve() -> None:
        await metrics.serve(settings.metrics_host, settings.worker_metrics_port, "worker")

    async def refresh() -> None:
        pending = {name: time.pending() for name, time in pipeline.time.items()}
        metrics.refresh_gauges(pending, pipeline.app.consumer)
        metrics.refresh_rocksdb(pipeline.all_tables())

    pipeline.app.task(serve)
    pipeline.app.timer(metrics.REFRESH_S, name="metrics")(refresh)
