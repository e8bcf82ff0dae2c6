"""Time as HubSpot shows it: epoch milliseconds in storage, ISO 8601 UTC with milliseconds on the wire."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import lru_cache


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@lru_cache(maxsize=4096)
def iso(ms: int) -> str:
    """``2024-05-01T12:00:00.123Z``, the form HubSpot uses for createdAt/updatedAt and datetimes.
    Cached: a batch stamps every record and value with the same few instants."""
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def parse_instant(value: str) -> datetime | None:
    """An ISO 8601 instant or epoch milliseconds (both accepted by HubSpot for date properties)."""
    text = value.strip()
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
