"""The worker's logging keeps the configured level (faust's spinner would set the root to DEBUG)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from config import Settings
from config.logs import logging_config
from streams.app import build
from streams.worker import _Worker
from tests.g1_modes import PLAIN


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


@pytest.mark.usefixtures("restored_logging")
@pytest.mark.parametrize("level", ["warning", "error", "info"])
def test_the_root_logger_keeps_the_configured_level(level: str) -> None:
    pipeline = build(Settings(log_level=level, **PLAIN))  # G1's settings off: no keys needed here
    worker = _Worker(
        pipeline.app, loglevel=level.upper(), redirect_stdouts=False, override_logging=True,
        logging_config=logging_config(level, "json"),
    )  # fmt: skip
    worker._setup_logging()
    assert logging.getLogger().level == logging.getLevelName(level.upper())
    assert not logging.getLogger("aiokafka.producer.producer").isEnabledFor(logging.DEBUG)
    assert worker.spinner is None
