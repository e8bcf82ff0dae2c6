"""Log lines of every service: JSON objects by default (``SHOPSYNC_LOG_FORMAT=json``), or text.

A JSON line carries the time, level, logger and message; a message that is itself a JSON object
(the bridge's structured events) is merged in rather than quoted. Nothing here adds data to a
line: what a line may carry (never a payload, an email or a secret) is the caller's rule.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if message.startswith("{"):
            try:
                fields = json.loads(message)
            except ValueError:
                fields = None
            if isinstance(fields, dict):
                line.update(fields)
            else:
                line["message"] = message
        else:
            line["message"] = message
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the root logger (also what faust's worker is given)."""
    formatter: dict[str, Any] = (
        {"()": "config.logs.JsonFormatter"} if fmt == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "default"}},
        "root": {"level": level.upper(), "handlers": ["default"]},
    }


def configure_logging(level: str, fmt: str) -> None:
    import logging.config

    logging.config.dictConfig(logging_config(level, fmt))
