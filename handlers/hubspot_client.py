"""HubSpot's CRM API over httpx: pacing, retries and error classification, nothing more.

The same client talks to api.hubapi.com and to the local sandbox. It paces itself to the account's
rate limit (a rolling window it keeps from HubSpot's ``X-HubSpot-RateLimit-*`` headers) so steady
state earns no 429s; on a 429 it waits as long as the policy says; on a 5xx, a timeout or a broken
connection it retries with exponential backoff and full jitter, a bounded number of times. The
token is sent in a header and appears in no log line, exception or repr.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from handlers import writer_metrics

log = logging.getLogger(__name__)

RETRYABLE_STATUS = {500, 502, 503, 504}


class HubSpotError(Exception):
    """HubSpot refused a request for good (a 4xx other than 429): retrying will not help."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        super().__init__(f"HubSpot answered {status}: {body.get('category', '')} {body.get('message', '')}")


class HubSpotUnavailableError(Exception):
    """HubSpot could not be reached or kept failing after every retry; nothing was applied for sure."""


class HubSpotAccessError(HubSpotUnavailableError):
    """HubSpot refuses the token itself (401, or 403 for a missing scope): no record is at fault,
    so the writer waits for an operator to fix the token or the app's scopes, dead-lettering
    nothing, as for an outage."""


class DailyLimitError(HubSpotUnavailableError):
    """The account's daily request allowance is used up: wait for the next day.

    ``daily`` and ``remaining`` are what ``X-HubSpot-RateLimit-Daily``/``-Daily-Remaining`` said
    last (None when HubSpot sent neither): what can be known of the allowance, never when it resets.
    """

    def __init__(self, message: str, daily: int | None = None, remaining: int | None = None) -> None:
        super().__init__(message)
        self.daily = daily
        self.remaining = remaining


@dataclass
class RatePacer:
    """A rolling-window pacer that admits calls: at most ``limit`` per ``interval_s`` (learnt from
    HubSpot's headers) and at most ``max_in_flight`` at once.

    A call counts against the window from the moment it is admitted and keeps counting until
    ``interval_s`` after it *completed*: HubSpot counts a request when it arrives, which is after it
    was admitted and before it was answered, so counting to the answer is never generous, however
    long a request queued on the way (several in flight, a busy server). ``margin`` keeps a few calls
    of the window for other integrations of the same account; when HubSpot's
    ``X-HubSpot-RateLimit-Remaining`` says the account's allowance is spent anyway, the pacer waits
    out the window.
    """

    limit: int = 100
    interval_s: float = 10.0
    margin: float = 0.97
    max_in_flight: int = 8
    clock: Callable[[], float] = time.monotonic
    done: deque[float] = field(default_factory=deque)  # completion times, in the order they happened
    in_flight: int = 0
    paused_until: float = 0.0
    daily: int | None = None
    daily_remaining: int | None = None
    _freed: asyncio.Event = field(default_factory=asyncio.Event)

    def budget(self) -> int:
        """Calls the pacer lets count in one window (at least one)."""
        return max(1, int(self.limit * self.margin))

    async def acquire(self) -> None:
        """Wait until a call may start, and count it; every ``acquire`` is followed by ``release``."""
        while True:
            now = self.clock()
            if now < self.paused_until:
                await asyncio.sleep(self.paused_until - now)
                continue
            while self.done and self.done[0] <= now - self.interval_s:
                self.done.popleft()
            if self.in_flight < self.max_in_flight and self.in_flight + len(self.done) < self.budget():
                self.in_flight += 1
                return
            if self._freed.is_set():
                self._freed = asyncio.Event()
            freed = self._freed
            # Room comes back when a call in flight ends, or the oldest completed one leaves the window.
            expiry = self.done[0] + self.interval_s - now + 0.01 if self.done else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(freed.wait(), expiry)

    def release(self) -> None:
        """The admitted call was answered (or failed): it counts until ``interval_s`` from now."""
        self.in_flight = max(0, self.in_flight - 1)
        self.done.append(self.clock())
        self._freed.set()

    def learn(self, headers: httpx.Headers) -> None:
        try:
            if "x-hubspot-ratelimit-max" in headers:
                self.limit = max(1, int(headers["x-hubspot-ratelimit-max"]))
            if "x-hubspot-ratelimit-interval-milliseconds" in headers:
                self.interval_s = max(0.1, int(headers["x-hubspot-ratelimit-interval-milliseconds"]) / 1000)
            remaining = headers.get("x-hubspot-ratelimit-remaining")
            if remaining is not None and int(remaining) <= 1:
                # Others share the account's allowance: it is spent, so wait out the window.
                self.paused_until = self.clock() + self.interval_s
        except ValueError:
            pass  # a malformed header is ignored, the previous values stand
        for header, name in (
            ("x-hubspot-ratelimit-daily", "daily"),
            ("x-hubspot-ratelimit-daily-remaining", "daily_remaining"),
        ):
            with contextlib.suppress(ValueError, TypeError):
                if header in headers:
                    setattr(self, name, int(headers[header]))


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    base_delay_s: float = 0.2
    max_delay_s: float = 10.0
    max_throttled: int = 60

    def delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter (AWS's recipe): spreads retries of many writers."""
        return random.uniform(0, min(self.max_delay_s, self.base_delay_s * (2**attempt)))


@dataclass
class CallStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    server_errors: int = 0


class HubSpotClient:
    """One account's API: ``await client.call("POST", "/crm/v3/...", json=...)`` -> (status, body)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 10.0,
        pacer: RatePacer | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``transport``: httpx's own by default; tests pass an ``httpx.MockTransport``."""
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout_s,
            transport=transport,
        )
        self.pacer = pacer or RatePacer()
        self.retry = retry or RetryPolicy()
        self.stats = CallStats()

    def __repr__(self) -> str:
        return f"HubSpotClient({self._http.base_url})"

    async def close(self) -> None:
        await self._http.aclose()

    async def call(self, method: str, path: str, json: Any = None) -> tuple[int, dict[str, Any]]:
        """Send one request, retrying what may succeed later; return (status, parsed body).

        Raises HubSpotError for a permanent 4xx (except 404 and 409, which are returned, since
        callers treat "not found" and "already exists" as answers), HubSpotAccessError for 401 and
        403 (the token, not the request, is refused), DailyLimitError when the daily allowance is
        gone, HubSpotUnavailableError when every retry failed.
        """
        last = "no attempt"
        attempt = 0
        throttled = 0
        while attempt < self.retry.attempts:
            await self.pacer.acquire()
            self.stats.requests += 1
            started = time.monotonic()
            failure: Exception | None = None
            try:
                response = await self._http.request(method, path, json=json)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                failure = exc
            finally:  # also when the call is cancelled: its slot is never lost
                self.pacer.release()
            if failure is not None:
                last = type(failure).__name__
                writer_metrics.hubspot_answered(method, path, last, time.monotonic() - started)
                self.stats.retries += 1
                await asyncio.sleep(self.retry.delay(attempt))
                attempt += 1
                continue
            writer_metrics.hubspot_answered(method, path, response.status_code, time.monotonic() - started)
            self.pacer.learn(response.headers)
            body = _body(response)
            if response.status_code == 429:
                # Honoured, not counted as a failed attempt: a 429 storm only slows us down.
                self.stats.rate_limited += 1
                if body.get("policyName") == "DAILY":
                    raise DailyLimitError(
                        "HubSpot's daily request limit is reached",
                        self.pacer.daily,
                        self.pacer.daily_remaining,
                    )
                throttled += 1
                if throttled > self.retry.max_throttled:
                    raise HubSpotUnavailableError(f"{method} {path}: rate limited {throttled} times in a row")
                after = _retry_after(response)  # "Retry-After: 0" is an answer too: at once
                wait = self.pacer.interval_s if after is None else after
                log.warning("HubSpot rate limit (%s); waiting %.1f s", body.get("policyName", "?"), wait)
                await asyncio.sleep(wait)
                continue
            throttled = 0
            if response.status_code in RETRYABLE_STATUS:
                self.stats.server_errors += 1
                self.stats.retries += 1
                last = f"HTTP {response.status_code}"
                await asyncio.sleep(self.retry.delay(attempt))
                attempt += 1
                continue
            if response.status_code in (401, 403):
                category = body.get("category") or "no category"
                raise HubSpotAccessError(
                    f"{method} {path}: HubSpot refused the token ({response.status_code}, {category}); "
                    "check HUBSPOT_TOKEN and the private app's scopes"
                )
            if response.status_code >= 400 and response.status_code not in (404, 409):
                raise HubSpotError(response.status_code, body)
            return response.status_code, body
        raise HubSpotUnavailableError(f"{method} {path} failed after {self.retry.attempts} attempts ({last})")


def _body(response: httpx.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        parsed = response.json()
    except ValueError:
        return {"message": response.text[:500]}
    return parsed if isinstance(parsed, dict) else {"results": parsed}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
