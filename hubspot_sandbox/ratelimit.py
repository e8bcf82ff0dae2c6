"""HubSpot's limits of a private-app token: a rolling 10-second window and a daily count, plus
the search endpoints' own limit of five requests a second.

A writer has to pace itself by the X-HubSpot-RateLimit-* headers and back off on 429; the
sandbox enforces the limits so that behaviour is tested, not assumed. A refused request does not
count against any limit. Counters live in memory: a restart starts a fresh day.

Search requests count against the 10-second and daily limits too (they are API calls), and
HubSpot sends no rate-limit headers on their answers (the usage guidelines' headers table lists
search as an exception; HubSpot's community confirms only ``X-HubSpot-Correlation-Id`` comes back).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from hubspot_sandbox.tiers import SEARCH_PER_SECOND

WINDOW_S = 10.0
SEARCH_WINDOW_S = 1.0


_SEARCH_KEY = "search:account"


@dataclass(frozen=True)
class Refusal:
    policy: str  # "TEN_SECONDLY_ROLLING", "DAILY" or (search) "SECONDLY"
    message: str
    retry_after_s: int | None


class RateLimiter:
    def __init__(
        self,
        per_10s: int,
        daily: int,
        *,
        search_per_s: int = SEARCH_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], str] = lambda: datetime.now(UTC).date().isoformat(),
    ) -> None:
        self.per_10s = per_10s
        self.daily = daily
        self.search_per_s = search_per_s
        self._clock = clock
        self._today = today
        self._windows: dict[str, deque[float]] = {}
        self._days: dict[str, tuple[str, int]] = {}

    def reset(self) -> None:
        self._windows.clear()
        self._days.clear()

    def _window(self, key: str, span_s: float = WINDOW_S) -> deque[float]:
        window = self._windows.setdefault(key, deque())
        cutoff = self._clock() - span_s
        while window and window[0] <= cutoff:
            window.popleft()
        return window

    def _used_today(self, key: str) -> int:
        day, used = self._days.get(key, ("", 0))
        return used if day == self._today() else 0

    def acquire(self, key: str, *, search: bool = False) -> Refusal | None:
        """Count one request of ``key`` (a token), or say which limit refuses it. A search also
        needs room in the account's one-second search window (the sandbox is one account)."""
        if self._used_today(key) >= self.daily:
            return Refusal("DAILY", "You have reached your daily limit.", None)
        window = self._window(key)
        if len(window) >= self.per_10s:
            return Refusal(
                "TEN_SECONDLY_ROLLING",
                "You have reached your ten_secondly_rolling limit.",
                self._wait(window, WINDOW_S),
            )
        searches = self._window(_SEARCH_KEY, SEARCH_WINDOW_S)
        if search and len(searches) >= self.search_per_s:
            return Refusal("SECONDLY", "You have reached your secondly limit.", self._wait(searches, 1.0))
        now = self._clock()
        window.append(now)
        if search:
            searches.append(now)
        self._days[key] = (self._today(), self._used_today(key) + 1)
        return None

    def _wait(self, window: deque[float], span_s: float) -> int:
        """Whole seconds until the oldest request leaves the window (at least one)."""
        wait = window[0] + span_s - self._clock() if window else 1.0
        return max(1, math.ceil(wait))

    def headers(self, key: str) -> dict[str, str]:
        """Where ``key`` stands, as HubSpot reports it on every answer."""
        return {
            "X-HubSpot-RateLimit-Max": str(self.per_10s),
            "X-HubSpot-RateLimit-Remaining": str(max(0, self.per_10s - len(self._window(key)))),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(WINDOW_S * 1000)),
            "X-HubSpot-RateLimit-Daily": str(self.daily),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily - self._used_today(key))),
        }
