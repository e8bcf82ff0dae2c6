"""Run the stream worker: make sure the topics exist, then hand the process to faust's Worker."""

from __future__ import annotations

import asyncio
import logging

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
        loglevel=settings.log_level.upper(),
        redirect_stdouts=False,
        override_logging=True,
        logging_config=logging_config(settings.log_level, settings.log_format),
    )
    worker.execute_from_commandline()


class _Worker(faust.Worker):
    """faust's worker without its terminal spinner.

    At a log level of WARNING or above faust installs a spinner that turns at every log record,
    and to see them all it sets the root logger to DEBUG: then every debug line of aiokafka and
    faust (one per record sent, among others) is formatted into a record and handled, about 5% of
    a busy worker's time (``bench/README.md``, session 6; the benchmarks run workers at
    ``warning``). The root logger keeps the configured level instead."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None  # logging is set up at start, after the worker made its spinner


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
