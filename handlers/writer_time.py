"""Time as the writer's pauses see it: an injectable clock, capped backoff, and HubSpot's day.

The writer pauses for hours on end (an outage, the daily limit); a test cannot wait that long,
so every pause is measured against a ``Clock`` the caller may replace (``ManualClock`` in tests:
time moves only when the test says so). HubSpot's daily limit resets at midnight in the
account's time zone (developers.hubspot.com, "API usage guidelines"; the zone is the account's
``timeZone`` in ``GET /account-info/v3/details``); no header says when, so the next reset is
computed from the zone, and, when the zone is unknown, probed at every quarter hour (midnight
falls on one in every zone).
"""

from __future__ import annotations

import random
import time as _time
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PROBE_EVERY = timedelta(minutes=15)
RESET_MARGIN = timedelta(seconds=30)
"""Waited past the computed midnight, for clock skew between HubSpot and us."""


class Clock:
    """The wall clock (aware, UTC), and a monotonic one for the spacing of retries."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (``time.monotonic``)."""
        return _time.monotonic()


class ManualClock(Clock):
    """A clock that moves only when told to (tests)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start.astimezone(UTC)
        self._monotonic = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, by: timedelta) -> None:
        self._now += by
        self._monotonic += by.total_seconds()


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with jitter, for rounds that fail as a whole (an outage).

    "Equal jitter": half the capped delay, plus a random part up to the other half, so many
    writers coming back from the same outage spread out, and none retries at once in a loop.
    """

    base_s: float = 1.0
    cap_s: float = 60.0

    def delay(self, failures: int) -> float:
        capped = min(self.cap_s, self.base_s * 2.0 ** max(0, failures - 1))
        return capped / 2 + random.uniform(0, capped / 2)


def account_zone(name: str | None, offset_ms: int | None = None) -> tzinfo | None:
    """The account's zone from its settings: the IANA name, else the fixed offset, else None."""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    if offset_ms is not None:
        return timezone(timedelta(milliseconds=offset_ms))
    return None


def next_daily_reset(now: datetime, zone: tzinfo | None) -> datetime:
    """When HubSpot's daily allowance is next renewed (aware, UTC), margin included.

    Without the zone, the next quarter hour: the writer then probes HubSpot with one request
    every 15 minutes until the allowance is back (at most 96 refused requests a day).
    """
    if zone is None:
        step = PROBE_EVERY.total_seconds()
        epoch = now.timestamp()
        return datetime.fromtimestamp((epoch // step + 1) * step, UTC) + RESET_MARGIN
    local = now.astimezone(zone)
    midnight = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=zone)
    return midnight.astimezone(UTC) + RESET_MARGIN


def span(delta: timedelta) -> str:
    """``3h04m``, ``12m05s`` or ``40s``: a duration for a log line."""
    seconds = max(0, int(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
