"""HubSpot's two limits of a private-app token: a rolling 10-second window and a daily count.

A writer has to pace itself by the X-HubSpot-RateLimit-* headers and back off on 429; the
sandbox enforces both so that behaviour is tested, not assumed. A refused request does not
count against either limit. Counters live in memory: a restart starts a fresh day.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

WINDOW_S = 10.0


@dataclass(frozen=True)
class Refusal:
    policy: str  # "TEN_SECONDLY_ROLLING" or "DAILY"
    message: str
    retry_after_s: int | None


class RateLimiter:
    def __init__(
        self,
        per_10s: int,
        daily: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], str] = lambda: datetime.now(UTC).date().isoformat(),
    ) -> None:
        self.per_10s = per_10s
        self.daily = daily
        self._clock = clock
        self._today = today
        self._windows: dict[str, deque[float]] = {}
        self._days: dict[str, tuple[str, int]] = {}

    def reset(self) -> None:
        self._windows.clear()
        self._days.clear()

    def _window(self, key: str) -> deque[float]:
        window = self._windows.setdefault(key, deque())
        cutoff = self._clock() - WINDOW_S
        while window and window[0] <= cutoff:
            window.popleft()
        return window

    def _used_today(self, key: str) -> int:
        day, used = self._days.get(key, ("", 0))
        return used if day == self._today() else 0

    def acquire(self, key: str) -> Refusal | None:
        """Count one request of ``key`` (a token), or say which limit refuses it."""
        if self._used_today(key) >= self.daily:
            return Refusal("DAILY", "You have reached your daily limit.", None)
        window = self._window(key)
        if len(window) >= self.per_10s:
            wait = window[0] + WINDOW_S - self._clock() if window else 1.0
            return Refusal(
                "TEN_SECONDLY_ROLLING",
                "You have reached your ten_secondly_rolling limit.",
                max(1, math.ceil(wait)),
            )
        window.append(self._clock())
        self._days[key] = (self._today(), self._used_today(key) + 1)
        return None

    def headers(self, key: str) -> dict[str, str]:
        """Where ``key`` stands, as HubSpot reports it on every answer."""
        return {
            "X-HubSpot-RateLimit-Max": str(self.per_10s),
            "X-HubSpot-RateLimit-Remaining": str(max(0, self.per_10s - len(self._window(key)))),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(WINDOW_S * 1000)),
            "X-HubSpot-RateLimit-Daily": str(self.daily),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily - self._used_today(key))),
        }
