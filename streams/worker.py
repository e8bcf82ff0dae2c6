"""Run the stream worker: make sure the topics exist, then hand the process to faust's Worker."""

from __future__ import annotations

import asyncio

import faust

from config import Settings
from streams.app import build
from streams.runtime import tune_gc
from streams.topics import ensure_topics


def run_worker(settings: Settings) -> None:
    """Block until the worker is stopped (SIGINT/SIGTERM stop it cleanly)."""
    asyncio.run(ensure_topics(settings, internal=True))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    pipeline = build(settings)
    tune_gc()  # the app is set up: freeze it, and collect less often (streams.runtime)
    worker = faust.Worker(
        pipeline.app,
        loglevel=settings.log_level.upper(),
        redirect_stdouts=False,
        override_logging=True,
    )
    worker.execute_from_commandline()
