"""Run the stream worker: make sure the topics exist, then hand the process to faust's Worker."""

from __future__ import annotations

import asyncio

import faust

from config import Settings
from config.logs import logging_config
from streams import metrics
from streams.app import Pipeline, build
from streams.runtime import tune_gc
from streams.topics import ensure_topics


def run_worker(settings: Settings) -> None:
    """Block until the worker is stopped (SIGINT/SIGTERM stop it cleanly)."""
    asyncio.run(ensure_topics(settings, internal=True))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    pipeline = build(settings)
    _watch(pipeline)
    tune_gc()  # the app is set up: freeze it, and collect less often (streams.runtime)
    worker = faust.Worker(
        pipeline.app,
        loglevel=settings.log_level.upper(),
        redirect_stdouts=False,
        override_logging=True,
        logging_config=logging_config(settings.log_level, settings.log_format),
    )
    worker.execute_from_commandline()


def _watch(pipeline: Pipeline) -> None:
    """Serve the worker's ``/metrics`` on its event loop and refresh its gauges there."""
    settings = pipeline.settings

    async def serve() -> None:
        await metrics.serve(settings.metrics_host, settings.worker_metrics_port, "worker")

    async def refresh() -> None:
        pending = {name: time.pending() for name, time in pipeline.time.items()}
        metrics.refresh_gauges(pending, pipeline.app.consumer)

    pipeline.app.task(serve)
    pipeline.app.timer(metrics.REFRESH_S, name="metrics")(refresh)
