"""The writer's waits when HubSpot (or Kafka) cannot be used, and the log lines that say so.

Every wait is measured against an injectable ``Clock`` (``handlers.writer_time``), so a test can
run hours of an outage or a daily-limit pause in moments. While it waits, a consumer keeps polling
with its partitions paused, so its group does not drop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from aiokafka import AIOKafkaConsumer

from handlers.account_setup import AccountSchema, AccountSetupError
from handlers.hubspot_client import DailyLimitError
from handlers.writer_runner import KafkaDeliveryError, WriterStats
from handlers.writer_time import Backoff, Clock, account_zone, next_daily_reset, span

log = logging.getLogger("handlers.writer")
OUTAGE_LOG_EVERY = timedelta(minutes=1)
DAILY_LOG_EVERY = timedelta(hours=1)
SETUP_RECHECK = timedelta(minutes=1)
SETUP_LOG_EVERY = timedelta(minutes=10)
POLL_WHILE_PAUSED_S = 1.0
"""A paused writer still polls Kafka (with its partitions paused) this often, so the group never
drops it for exceeding ``max.poll.interval.ms`` during an hours-long pause."""


class Pauses:
    """The writer's waits when HubSpot cannot be used, and the log lines that say so.

    An outage: capped exponential backoff with jitter between rounds, one line when it starts,
    one a minute while it lasts, one when HubSpot answers again. The daily limit: one line saying
    until when (midnight in the account's time zone), one an hour while paused, one on resuming.
    Log lines name paths, statuses and counts only: never a token, an email or a property value.
    """

    def __init__(self, clock: Clock, backoff: Backoff, stop: asyncio.Event, stats: WriterStats) -> None:
        self.clock = clock
        self.backoff = backoff
        self.stop = stop
        self.stats = stats
        self.failures = 0
        self.since: datetime | None = None
        self.last_logged: datetime | None = None
        self.reset_expected: datetime | None = None
        self.subject = "HubSpot"
        self.setup_error: str | None = None
        self.setup_logged: datetime | None = None

    async def outage(self, exc: Exception, consumer: AIOKafkaConsumer | None, held: int) -> None:
        now = self.clock.now()
        self.failures += 1
        self.stats.failed_rounds += 1
        delay = self.backoff.delay(self.failures)
        subject = "Kafka" if isinstance(exc, KafkaDeliveryError) else "HubSpot"
        if self.since is None:
            self.since = self.last_logged = now
            self.subject = subject
            log.error(
                "%s is unavailable (%s): the writer keeps its place (%d commands held, no offset "
                "committed past an unwritten command, nothing dead-lettered for an outage) and retries "
                "in %.1f s, backing off up to %.0f s",
                subject, exc, held, delay, self.backoff.cap_s,
            )  # fmt: skip
        elif self.last_logged is None or now - self.last_logged >= OUTAGE_LOG_EVERY:
            self.last_logged = now
            log.warning(
                "%s still unavailable after %s (%d rounds failed; last: %s); %d commands held; "
                "retrying every %.0f s at most",
                subject, span(now - self.since), self.failures, exc, held, self.backoff.cap_s,
            )  # fmt: skip
        await self._idle(consumer, now + timedelta(seconds=delay))

    async def misconfigured(self, exc: AccountSetupError) -> None:
        """The account cannot be written as it is (a missing stage, a locked property): say what to
        change, once and then every ``SETUP_LOG_EVERY``, and look again every ``SETUP_RECHECK``, so
        a fix in HubSpot is picked up without a restart (and a restart loop says nothing new)."""
        now = self.clock.now()
        if (
            self.setup_error != str(exc)
            or self.setup_logged is None
            or now - self.setup_logged >= SETUP_LOG_EVERY
        ):
            self.setup_error, self.setup_logged = str(exc), now
            log.error(
                "the HubSpot account is not ready for the writer: %s. Nothing is read or written until "
                "it is; the writer checks again every %s",
                exc, span(SETUP_RECHECK),
            )  # fmt: skip
        await self._idle(None, now + SETUP_RECHECK)

    def recovered(self) -> None:
        if self.since is not None:
            log.warning(
                "%s answers again after %s (%d rounds failed); catching up",
                self.subject, span(self.clock.now() - self.since), self.failures,
            )  # fmt: skip
        self.failures = 0
        self.since = self.last_logged = None

    async def daily(
        self, exc: DailyLimitError, consumer: AIOKafkaConsumer | None, schema: AccountSchema | None
    ) -> None:
        now = self.clock.now()
        self.stats.daily_pauses += 1
        zone = account_zone(schema.time_zone, schema.utc_offset_ms) if schema else None
        if self.reset_expected is not None and now - self.reset_expected < timedelta(hours=1):
            zone = None  # the computed reset came and went, the limit stayed: probe instead
        until = next_daily_reset(now, zone)
        self.reset_expected = until if zone is not None else None
        where = f"midnight in the account's time zone {schema.time_zone if schema else ''}".rstrip()
        when = (
            where
            if zone is not None
            else "the next quarter hour, to probe (the account's time zone is unknown)"
        )
        log.error(
            "HubSpot's daily API limit is used up (X-HubSpot-RateLimit-Daily: %s, -Daily-Remaining: %s): "
            "the writer pauses until %s UTC (%s), %s from now, keeping its place; nothing is "
            "dead-lettered and no offset is committed past an unwritten command",
            exc.daily if exc.daily is not None else "?", exc.remaining if exc.remaining is not None else "?",
            until.strftime("%Y-%m-%d %H:%M:%S"), when, span(until - now),
        )  # fmt: skip
        logged = now

        def tick() -> None:
            nonlocal logged
            current = self.clock.now()
            if current - logged >= DAILY_LOG_EVERY:
                logged = current
                log.warning("still paused for HubSpot's daily limit: %s to go", span(until - current))

        await self._idle(consumer, until, tick)
        if not self.stop.is_set():
            log.warning("HubSpot's daily limit has reset (by the clock): the writer resumes")

    async def _idle(
        self, consumer: AIOKafkaConsumer | None, until: datetime, tick: Callable[[], None] | None = None
    ) -> None:
        """Wait until ``until`` by the clock, or ``stop``. A consumer keeps polling, its partitions
        paused, so the group keeps it; anything fetched anyway is sought back, never skipped."""
        try:
            while not self.stop.is_set() and self.clock.now() < until:
                started = time.monotonic()
                if consumer is not None:
                    consumer.pause(*consumer.assignment())
                    batch = await consumer.getmany(timeout_ms=int(POLL_WHILE_PAUSED_S * 1000))
                    for tp, messages in batch.items():
                        if messages:
                            consumer.seek(tp, messages[0].offset)
                left = POLL_WHILE_PAUSED_S - (time.monotonic() - started)
                if left > 0:
                    await sleep_unless_stopped(
                        self.stop, min(left, max(0.0, (until - self.clock.now()).total_seconds()))
                    )
                if tick is not None:
                    tick()
        finally:
            if consumer is not None:
                consumer.resume(*consumer.assignment())


async def sleep_unless_stopped(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
