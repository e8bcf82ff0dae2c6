"""The HubSpot writer: consumes ``hubspot.commands``, applies them in batches, commits after.

Each round takes the commands that arrive within a batch window, coalesces them
(``handlers.writer_plan``), and applies the plan: archives, then upserts by unique property (100
inputs per call), then association changes once both ends have HubSpot ids. Offsets are committed
only once every command up to them is applied, skipped or dead-lettered (its dead letter and the
round's id-map records acknowledged by Kafka, else the round is undone like an outage), and only
for partitions the writer is assigned (a rebalance waits for the round in flight, then drops what
was held for the revoked partitions), so a SIGKILL at any point loses nothing, and since every
write is an upsert by a unique key, re-applying a round after a crash changes nothing in HubSpot.

What HubSpot answers decides each input's fate (SPEC R5), read input by input
(``handlers.batch_answers``): only what HubSpot confirmed is counted; an input that failed on its
own with a transient error, or whose association end is missing, is *held* and retried later (its
partition's commit waits for it); one HubSpot refused for good goes to ``hubspot.commands.dlq``
with HubSpot's message and the command. When HubSpot cannot be used at all (down, timing out,
5xx, the token refused, the daily limit) the round is undone as a whole: nothing of it is counted
or dead-lettered, the consumer seeks back to the round's first offsets, and the writer waits
(capped exponential backoff with jitter, or until the daily limit resets) and reads the round
again, for as long as it takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from config import Settings
from config.kafka import KAFKA_FRAMING_BYTES
from handlers import hubspot_paths as paths
from handlers.account_setup import AccountSchema, AccountSetupError, set_up_account
from handlers.batch_answers import Verdict, anonymous, batch_errors, judge, matching
from handlers.hubspot_client import (
    DailyLimitError,
    HubSpotClient,
    HubSpotError,
    HubSpotUnavailableError,
    RatePacer,
    RetryPolicy,
)
from handlers.id_map import IdMap, delivery_failure
from handlers.writer_plan import LinkPlan, Position, RecordPlan, coalesce
from handlers.writer_time import Backoff, Clock, account_zone, next_daily_reset, span
from schemas.commands import (
    AnyCommand,
    Archive,
    Associate,
    PropertyValue,
    RecordRef,
    Upsert,
    decode_command,
    encode_command,
)
from schemas.reasons import reason_kind
from streams.topics import ensure_topics, topic_name

log = logging.getLogger(__name__)
MAX_INPUTS = 100
RETRY_WAITING_EVERY_S = 2.0
MAX_HELD_COMMANDS = 10_000
"""Commands held for a retry beyond which the writer reads no new ones until some are done: its
memory stays bounded whatever HubSpot fails on."""
DELIVERY_TIMEOUT_S = 30.0
"""How long a round waits for Kafka to acknowledge its dead letters and id-map records (an
idempotent producer retries a batch without end while a partition has no leader); then the round
is undone like one HubSpot could not take, and read again."""
OUTAGE_LOG_EVERY = timedelta(minutes=1)
DAILY_LOG_EVERY = timedelta(hours=1)
SETUP_RECHECK = timedelta(minutes=1)
SETUP_LOG_EVERY = timedelta(minutes=10)
POLL_WHILE_PAUSED_S = 1.0
"""A paused writer still polls Kafka (with its partitions paused) this often, so the group never
drops it for exceeding ``max.poll.interval.ms`` during an hours-long pause."""

Source = tuple[AnyCommand, Position]


@dataclass
class WriterStats:
    """Counters for operators and tests: what HubSpot confirmed, what was dead-lettered, what waits.

    Counters grow only when a round completes, so a round undone by an outage and read again is
    counted once; ``waiting_links`` and ``held_records`` are gauges."""

    windows: int = 0
    commands: int = 0
    upserted: int = 0
    archived: int = 0
    linked: int = 0
    unlinked: int = 0
    dead_lettered: int = 0
    skipped_deleted: int = 0
    retried_inputs: int = 0
    failed_rounds: int = 0
    daily_pauses: int = 0
    waiting_links: int = 0
    held_records: int = 0

    def add(self, other: WriterStats) -> None:
        for f in fields(self):
            if f.name not in ("waiting_links", "held_records"):
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


class KafkaDeliveryError(Exception):
    """Kafka did not acknowledge a dead letter or an id-map record of the round: the round is
    undone and retried like a round HubSpot could not take (nothing is committed past it)."""


@dataclass
class _Waiting:
    """An association not made yet: an end is not in HubSpot yet (its command may be on another
    partition, not read yet; dead-lettered after the link wait), or HubSpot failed it on its own
    with a transient error (retried with backoff, never dead-lettered)."""

    link: LinkPlan
    since: float
    next_try: float = 0.0
    attempts: int = 0
    last_error: dict[str, Any] | None = None


@dataclass
class _Held:
    """A record HubSpot failed on its own with a transient error, retried with backoff. Its
    later commands join it (coalesced in log order), so a retry never overwrites newer values;
    ``moot`` are association commands an archive made moot, done when the record is."""

    key: str
    sources: list[Source]
    moot: list[Source]
    next_try: float
    attempts: int


@dataclass
class _Round:
    """What a round will have done once it completes: counters and dead letters wait for that,
    so an undone round leaves no trace but what HubSpot itself confirmed (the id map)."""

    stats: WriterStats = field(default_factory=WriterStats)
    letters: list[tuple[bytes, bytes | None, str]] = field(default_factory=list)


@dataclass
class Writer:
    settings: Settings
    client: HubSpotClient
    producer: AIOKafkaProducer
    ids: IdMap
    schema: AccountSchema
    stats: WriterStats = field(default_factory=WriterStats)
    waiting: list[_Waiting] = field(default_factory=list)
    held: list[_Held] = field(default_factory=list)
    retry_backoff: Backoff = field(default_factory=Backoff)
    _round: _Round = field(default_factory=_Round)
    _attempts: dict[str, int] = field(default_factory=dict)
    _read_errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    producer_factory: Callable[[], AIOKafkaProducer] | None = None

    async def renew_producer(self) -> None:
        """Replace the producer after Kafka failed a round's records: an idempotent producer
        whose batch was refused answers ``OutOfOrderSequenceNumber`` for that partition ever after.
        If Kafka cannot be reached for a new one, the old one stays and the next round tries again."""
        if self.producer_factory is None:
            return
        fresh = self.producer_factory()
        try:
            await fresh.start()
        except KafkaError as exc:
            log.warning("could not start a new Kafka producer (%s); keeping the old one", type(exc).__name__)
            with contextlib.suppress(Exception):
                await fresh.stop()
            return
        old, self.producer = self.producer, fresh
        self.ids.use(fresh)
        with contextlib.suppress(Exception):  # its unacknowledged records are sent again anyway
            await asyncio.wait_for(old.stop(), 10)
        log.info("the writer's Kafka producer was replaced after a failed delivery")

    # ---- one round ----

    async def apply(self, items: list[Source], raw_letters: list[bytes] | None = None) -> None:
        """Apply one round: everything ends applied, skipped, dead-lettered or held.

        If HubSpot cannot be used (``HubSpotUnavailableError``, ``DailyLimitError``) the round is
        undone: held and waiting work is as it was, nothing is counted or dead-lettered, and the
        caller reads the round's commands again later.
        """
        saved = (list(self.waiting), list(self.held))
        self._round = _Round()
        try:
            for raw in raw_letters or []:
                self._round.letters.append((raw, None, "a record that is not a command"))
                self._round.stats.dead_lettered += 1
            await self._apply(items)
            done, self._round = self._round, _Round()
            await self._deliver(done.letters)
        except BaseException:
            self.waiting, self.held = saved
            self._round = _Round()
            self.ids.abandon()
            raise
        self.stats.add(done.stats)
        self.stats.waiting_links = len(self.waiting)
        self.stats.held_records = len(self.held)

    async def _deliver(self, letters: list[tuple[bytes, bytes | None, str]]) -> None:
        """Send the round's dead letters and wait until Kafka acknowledged them and every id-map
        change of the round; raise ``KafkaDeliveryError`` if any was not (the round is undone)."""
        dlq = topic_name(self.settings, "hubspot.commands.dlq")
        sent: list[asyncio.Future[Any]] = []
        failures: list[BaseException] = []
        for value, key, what in letters:
            log.warning("dead-lettering %s", what)
            try:
                sent.append(await self.producer.send(dlq, value, key=key))
            except KafkaError as exc:  # not even queued (no metadata, too large, ...)
                failures.append(exc)
        if sent:  # asyncio.wait, not wait_for: the producer's futures must not be cancelled
            await asyncio.wait(sent, timeout=DELIVERY_TIMEOUT_S)
        failures += [e for f in sent if (e := delivery_failure(f, DELIVERY_TIMEOUT_S)) is not None]
        id_failures = await self.ids.settle(DELIVERY_TIMEOUT_S)
        if failures or id_failures:
            kinds = sorted({type(f).__name__ for f in failures + id_failures})
            raise KafkaDeliveryError(
                f"Kafka did not acknowledge {len(failures)} of {len(letters)} dead letters and "
                f"{len(id_failures)} id-map records ({', '.join(kinds)})"
            )

    async def _apply(self, items: list[Source]) -> None:
        counts = self._round.stats
        counts.windows += 1
        counts.commands += len(items)
        now = time.monotonic()
        keys = {command.record.key for command, _ in items}
        due = [h for h in self.held if h.next_try <= now or h.key in keys]
        self.held = [h for h in self.held if not (h.next_try <= now or h.key in keys)]
        self._attempts = {h.key: h.attempts for h in due}
        self._read_errors = {}
        plan = coalesce([s for h in due for s in h.sources] + items)
        for h in due:
            if h.key in plan.records:
                plan.records[h.key].sources.extend(h.moot)
        gone = await self._archive(plan.archives())
        await self._upsert(plan.upserts())
        if gone:  # a link waiting for a record that is now archived will never be made: done
            self.waiting = [
                w for w in self.waiting if not {w.link.command.record.key, w.link.command.to.key} & gone
            ]
        now = time.monotonic()
        due_links = [w for w in self.waiting if w.next_try <= now]
        self.waiting = [w for w in self.waiting if w.next_try > now]
        links = [w.link for w in due_links] + list(plan.links.values())
        await self._link(links, {id(w.link): w for w in due_links})

    def held_positions(self) -> list[Position]:
        """Positions whose commands are not done yet (their partitions' commits wait for them)."""
        waiting = [pos for w in self.waiting for _, pos in w.link.sources]
        return waiting + [pos for h in self.held for _, pos in h.sources + h.moot]

    def drop_all(self) -> None:
        """Forget what is held and waiting (a rebalance: it is read again from the commit)."""
        self.waiting, self.held = [], []
        self.stats.waiting_links = self.stats.held_records = 0

    def pending(self) -> bool:
        return bool(self.waiting or self.held)

    def held_count(self) -> int:
        return sum(len(w.link.sources) for w in self.waiting) + sum(
            len(h.sources) + len(h.moot) for h in self.held
        )

    def _hold(self, record: RecordPlan) -> None:
        """Retry this record in a later round (HubSpot failed it on its own, transiently)."""
        attempts = self._attempts.get(record.ref.key, 0) + 1
        own = [
            s
            for s in record.sources
            if isinstance(s[0], Upsert | Archive) and s[0].record.key == record.ref.key
        ]
        moot = [s for s in record.sources if s not in own]
        delay = self.retry_backoff.delay(attempts)
        self.held.append(_Held(record.ref.key, own, moot, time.monotonic() + delay, attempts))
        self._round.stats.retried_inputs += 1

    # ---- archives ----

    async def _archive(self, records: list[RecordPlan]) -> set[str]:
        """Archive; return the keys HubSpot no longer holds (archived now, or already gone)."""
        gone: set[str] = set()
        if not records:
            return gone
        resolved, unsure = await self._resolve([r.ref for r in records])
        by_type: dict[str, list[tuple[RecordPlan, str]]] = defaultdict(list)
        for record in records:
            hubspot_id = resolved.get(record.ref.key)
            if hubspot_id is not None:
                by_type[record.ref.object_type].append((record, hubspot_id))
            elif record.ref.key in unsure:
                self._hold(record)  # HubSpot could not say whether it exists: ask again later
            elif record.ref.key in self._read_errors:  # HubSpot refused the lookup: not "gone"
                answer = self._read_errors[record.ref.key]
                status = answer.get("status")
                self._dead_letter(
                    record.sources, "HubSpot refused to look up the record to archive", answer,
                    status if isinstance(status, int) else None,
                )  # fmt: skip
            else:
                gone.add(record.ref.key)  # never written, or already gone: archiving it is done
        for object_type, entries in by_type.items():
            for chunk in _chunks(entries):
                gone |= await self._archive_chunk(object_type, chunk)
        return gone

    async def _archive_chunk(self, object_type: str, chunk: list[tuple[RecordPlan, str]]) -> set[str]:
        inputs = [{"id": hubspot_id} for _, hubspot_id in chunk]
        path = paths.batch(object_type, "archive")
        try:
            status, body = await self.client.call("POST", path, {"inputs": inputs})
        except HubSpotError as exc:
            if len(chunk) > 1:  # find the bad input(s): the good ones still go through
                half = len(chunk) // 2
                return await self._archive_chunk(object_type, chunk[:half]) | await self._archive_chunk(
                    object_type, chunk[half:]
                )
            self._dead_letter(chunk[0][0].sources, "HubSpot rejected the archive", exc.body, exc.status)
            return set()
        if status >= 400 and len(chunk) > 1:
            half = len(chunk) // 2
            return await self._archive_chunk(object_type, chunk[:half]) | await self._archive_chunk(
                object_type, chunk[half:]
            )
        errors = batch_errors(status, body)
        gone: set[str] = set()
        unknown: list[tuple[RecordPlan, str]] = []
        for record, hubspot_id in chunk:
            named = matching(errors, ids=[hubspot_id])
            if status < 400 and not named and not anonymous(errors):
                await self.ids.forget(record.ref.key)
                self._round.stats.archived += 1
                gone.add(record.ref.key)
                continue
            verdict, error = judge(named, errors, single=len(chunk) == 1)
            if verdict is Verdict.MISSING:  # deleted in HubSpot meanwhile: the archive is done
                await self.ids.gone(record.ref.key)
                self._round.stats.skipped_deleted += 1
                gone.add(record.ref.key)
            elif verdict is Verdict.REJECTED and error is not None:
                self._dead_letter(
                    record.sources, "HubSpot rejected the archive", error.letter_body(status), status
                )
            elif verdict is Verdict.UNKNOWN and len(chunk) > 1:
                unknown.append((record, hubspot_id))
            else:
                self._hold(record)
        for entry in unknown:  # one at a time, HubSpot's answer can only be about that input
            gone |= await self._archive_chunk(object_type, [entry])
        return gone

    # ---- upserts ----

    async def _upsert(self, records: list[RecordPlan]) -> None:
        groups: dict[tuple[str, str, bool], list[RecordPlan]] = defaultdict(list)
        for record in records:
            groups[(record.ref.object_type, record.ref.id_property, record.create_if_missing)].append(record)
        # Products before line items (a line item points at its product's id), then the rest.
        order = {"products": 0, "contacts": 1, "deals": 2, "line_items": 3}
        for (object_type, id_property, create), group in sorted(groups.items(), key=lambda g: order[g[0][0]]):
            if object_type == "line_items":
                found, unsure = await self._resolve_products(group)
                later = [r for r in group if self._product_later(r, found, unsure)]
                for record in later:
                    self._hold(record)  # its product's id is unknown for now: not without it
                group = [r for r in group if r not in later]
            for chunk in _chunks(group):
                await self._upsert_chunk(object_type, id_property, create, chunk)

    async def _upsert_chunk(
        self, object_type: str, id_property: str, create: bool, chunk: list[RecordPlan]
    ) -> None:
        inputs = [
            {"id": r.ref.id_value, "idProperty": id_property, "properties": self._properties(r)}
            for r in chunk
        ]
        path = paths.batch(object_type, "upsert" if create else "update")

        async def again(part: list[RecordPlan]) -> None:
            await self._upsert_chunk(object_type, id_property, create, part)

        try:
            status, body = await self.client.call("POST", path, {"inputs": inputs})
        except HubSpotError as exc:
            if len(chunk) == 1:
                self._dead_letter(chunk[0].sources, "HubSpot rejected the record", exc.body, exc.status)
                return
            await self._halves(chunk, again)  # find the bad input(s): the good ones still go through
            return
        if status >= 400 and len(chunk) > 1:  # a 404 or 409 for the whole call: narrow it down
            await self._halves(chunk, again)
            return

        def norm(value: str) -> str:
            return _norm(id_property, value)

        found: dict[str, str] = {}
        for result in body.get("results") or []:
            if not isinstance(result, dict):
                continue
            value = (result.get("properties") or {}).get(id_property)
            if value is not None and result.get("id") is not None:
                found[norm(str(value))] = str(result["id"])
        errors = batch_errors(status, body, norm)
        single = len(chunk) == 1
        unknown: list[RecordPlan] = []
        for record in chunk:
            value = norm(record.ref.id_value)
            hubspot_id = found.get(value)
            if hubspot_id is not None:
                await self.ids.put(record.ref.key, hubspot_id)
                self._round.stats.upserted += 1
                continue
            verdict, error = judge(matching(errors, ids=[value]), errors, single=single)
            if not errors and status < 400:
                # HubSpot says it did the batch, yet does not return this record.
                if create:
                    self._dead_letter(record.sources, "HubSpot did not apply the record", body, status)
                else:
                    self._round.stats.skipped_deleted += 1
                    await self.ids.gone(record.ref.key)
            elif verdict is Verdict.MISSING and not create:
                # An update-only write whose record is gone: HubSpot deleted it (C4). Not an error.
                self._round.stats.skipped_deleted += 1
                await self.ids.gone(record.ref.key)
            elif verdict is Verdict.REJECTED and error is not None:
                self._dead_letter(
                    record.sources, "HubSpot rejected the record", error.letter_body(status), status
                )
            elif verdict is Verdict.UNKNOWN and not single:
                unknown.append(record)
            else:
                self._hold(record)
        for record in unknown:  # one at a time, HubSpot's answer can only be about that input
            await again([record])

    def _properties(self, record: RecordPlan) -> dict[str, str]:
        props: dict[str, PropertyValue] = dict(record.upsert or {})
        if record.ref.object_type == "deals":
            if "pipeline" in props:
                props["pipeline"] = self.schema.pipeline_id
            stage = props.get("dealstage")
            if stage is not None:
                props["dealstage"] = self.schema.stage_ids.get(stage, stage)
        if record.ref.object_type == "line_items":
            product = self._product_id_for(props)
            if product is not None:
                props["hs_product_id"] = product
        return {k: "" if v is None else v for k, v in props.items()}

    def _product_keys(self, props: dict[str, PropertyValue]) -> list[str]:
        keys = []
        if props.get("shopify_variant_id"):
            keys.append(f"products:shopify_product_key:variant:{props['shopify_variant_id']}")
        if props.get("shopify_product_id"):
            keys.append(f"products:shopify_product_key:product:{props['shopify_product_id']}")
        return keys

    def _product_id_for(self, props: dict[str, PropertyValue]) -> str | None:
        """P2/P5: a line item points at its variant's product, else its product's."""
        for key in self._product_keys(props):
            found = self.ids.get(key)
            if found is not None:
                return found
        return None

    def _product_later(self, record: RecordPlan, found: dict[str, str], unsure: set[str]) -> bool:
        """Whether to write this line item in a later round: its product's id is unknown now.

        Either HubSpot could not say (a transient error), or the product is not in HubSpot yet:
        the products agent and the journeys agent run side by side, so a line item's command can
        reach the writer before its product's, and a line item written without ``hs_product_id``
        is never pointed at its product afterwards. The second case waits a bounded time
        (``PRODUCT_WAIT_TRIES`` rounds, about half a minute), then writes it without one: a
        product that never comes (not synced, deleted) must not hold its partition back."""
        keys = self._product_keys(record.upsert or {})
        if not keys or any(k in found or self.ids.get(k) is not None for k in keys):
            return False
        if set(keys) & unsure:
            return True
        return self._attempts.get(record.ref.key, 0) < PRODUCT_WAIT_TRIES

    async def _resolve_products(self, group: list[RecordPlan]) -> tuple[dict[str, str], set[str]]:
        """Look up the products the line items point at; return the ids found and the keys HubSpot
        could not say anything about this time."""
        refs = []
        for record in group:
            for key in self._product_keys(record.upsert or {}):
                if self.ids.get(key) is None:
                    _, _, value = key.partition(":shopify_product_key:")
                    refs.append(
                        RecordRef(object_type="products", id_property="shopify_product_key", id_value=value)
                    )
        if not refs:
            return {}, set()
        return await self._resolve(refs)

    # ---- associations ----

    async def _link(self, links: list[LinkPlan], before: dict[int, _Waiting]) -> None:
        if not links:
            return
        refs = [ref for link in links for ref in (link.command.record, link.command.to)]
        resolved, unsure = await self._resolve(refs)
        ready: dict[tuple[str, str, str], list[tuple[LinkPlan, str, str]]] = defaultdict(list)
        now = time.monotonic()
        for link in links:
            c = link.command
            from_id, to_id = resolved.get(c.record.key), resolved.get(c.to.key)
            if from_id is None or to_id is None:
                prior = before.get(id(link))
                since = prior.since if prior else now
                ends = {c.record.key, c.to.key} - set(resolved)
                if ends <= unsure:  # HubSpot could not say: ask again, without using up the wait
                    self._wait(link, prior, now, RETRY_WAITING_EVERY_S)
                elif now - since > self.settings.writer_link_wait_s:
                    missing = c.record.key if from_id is None else c.to.key
                    answer = (prior.last_error if prior else None) or self._read_errors.get(missing) or {}
                    self._dead_letter(
                        link.sources, f"association end {missing} does not exist in HubSpot", answer,
                        answer.get("status") if isinstance(answer.get("status"), int) else None,
                    )  # fmt: skip
                else:
                    self._wait(link, prior, now, RETRY_WAITING_EVERY_S, since=since)
                continue
            op = "create" if isinstance(c, Associate) else "archive"
            ready[(c.record.object_type, c.to.object_type, op)].append((link, from_id, to_id))
        for (from_type, to_type, op), entries in ready.items():
            for chunk in _chunks(entries):
                await self._link_chunk(from_type, to_type, op, chunk, before)

    def _wait(
        self,
        link: LinkPlan,
        prior: _Waiting | None,
        now: float,
        delay: float,
        *,
        since: float | None = None,
        error: dict[str, Any] | None = None,
        transient: bool = False,
    ) -> None:
        attempts = (prior.attempts if prior else 0) + (1 if transient else 0)
        if transient:
            delay = self.retry_backoff.delay(attempts)
            self._round.stats.retried_inputs += 1
        self.waiting.append(
            _Waiting(
                link,
                since if since is not None else (prior.since if prior else now),
                now + delay,
                attempts,
                error or (prior.last_error if prior else None),
            )
        )

    async def _link_chunk(
        self,
        from_type: str,
        to_type: str,
        op: str,
        chunk: list[tuple[LinkPlan, str, str]],
        before: dict[int, _Waiting],
    ) -> None:
        if op == "create":
            inputs: list[dict[str, Any]] = [
                {"from": {"id": f}, "to": {"id": t}, "types": [
                    {"associationCategory": "HUBSPOT_DEFINED",
                     "associationTypeId": link.command.association_type_id}]}
                for link, f, t in chunk
            ]  # fmt: skip
        else:
            inputs = [{"from": {"id": f}, "to": [{"id": t}]} for _, f, t in chunk]
        path = paths.association_batch(from_type, to_type, "create" if op == "create" else "archive")

        async def again(part: list[tuple[LinkPlan, str, str]]) -> None:
            await self._link_chunk(from_type, to_type, op, part, before)

        try:
            status, body = await self.client.call("POST", path, {"inputs": inputs})
        except HubSpotError as exc:
            if len(chunk) > 1:
                await self._halves(chunk, again)
                return
            self._dead_letter(chunk[0][0].sources, "HubSpot rejected the association", exc.body, exc.status)
            return
        if status >= 400 and len(chunk) > 1:
            await self._halves(chunk, again)
            return
        errors = batch_errors(status, body)
        made = _made_pairs(body) if op == "create" else set()
        single = len(chunk) == 1
        now = time.monotonic()
        unknown: list[tuple[LinkPlan, str, str]] = []
        for link, f, t in chunk:
            named = matching(errors, from_id=f, to_id=t)
            if op == "create":
                confirmed = (f, t) in made or (status in (200, 201) and not errors)
            else:
                confirmed = status < 400 and not named and not anonymous(errors)
            if confirmed:
                if op == "create":
                    self._round.stats.linked += 1
                else:
                    self._round.stats.unlinked += 1
                continue
            if status < 400 and not named and not anonymous(errors):
                # Neither listed as made nor named by an error: HubSpot did not say. Ask again.
                if single:
                    self._wait(link, before.get(id(link)), now, 0, transient=True)
                else:
                    unknown.append((link, f, t))
                continue
            verdict, error = judge(named, errors, single=single)
            prior = before.get(id(link))
            if verdict is Verdict.MISSING and error is not None:
                # An id we hold may be stale (the record was deleted in HubSpot): look it up again;
                # the end may also still be on its way. Waits, then dead-letters with this answer.
                c = link.command
                names_from = f in error.from_ids or f in error.any_ids or not error.names_inputs
                names_to = t in error.to_ids or t in error.any_ids or not error.names_inputs
                if names_from:
                    await self.ids.gone(c.record.key)
                if names_to:
                    await self.ids.gone(c.to.key)
                self._wait(link, prior, now, RETRY_WAITING_EVERY_S, error=error.letter_body(status))
            elif verdict is Verdict.REJECTED and error is not None:
                self._dead_letter(
                    link.sources, "HubSpot rejected the association", error.letter_body(status), status
                )
            elif verdict is Verdict.UNKNOWN and not single:
                unknown.append((link, f, t))
            else:
                body_of = error.letter_body(status) if error is not None else None
                self._wait(link, prior, now, 0, error=body_of, transient=True)
        for entry in unknown:  # one at a time, HubSpot's answer can only be about that input
            await again([entry])

    # ---- ids ----

    async def _resolve(self, refs: list[RecordRef]) -> tuple[dict[str, str], set[str]]:
        """HubSpot ids of ``refs``: from the id map, else read by unique property (and remembered).

        Also returns the keys HubSpot could not answer for this time (a transient error for that
        input): unknown, not absent. A key whose read HubSpot refused for good (the whole call,
        narrowed down by halving, or that input in a 207) is neither: its answer is kept in
        ``_read_errors`` for the dead letter. Only a key in none of the three is not in HubSpot."""
        out: dict[str, str] = {}
        unsure: set[str] = set()
        missing: dict[tuple[str, str], list[RecordRef]] = defaultdict(list)
        for ref in refs:
            known = self.ids.get(ref.key)
            if known is not None:
                out[ref.key] = known
            elif ref.key not in out:
                missing[(ref.object_type, ref.id_property)].append(ref)
        for (object_type, id_property), group in missing.items():
            unique = list({r.key: r for r in group}.values())
            for chunk in _chunks(unique):
                found, not_sure = await self._read(object_type, id_property, chunk)
                out.update(found)
                unsure |= not_sure
        return out, unsure

    async def _read(
        self, object_type: str, id_property: str, chunk: list[RecordRef]
    ) -> tuple[dict[str, str], set[str]]:
        def norm(value: str) -> str:
            return _norm(id_property, value)

        body = {
            "inputs": [{"id": r.id_value} for r in chunk],
            "idProperty": id_property,
            "properties": [id_property],
        }
        try:
            status, answer = await self.client.call("POST", paths.batch(object_type, "read"), body)
        except HubSpotError as exc:
            if len(chunk) > 1:  # find the input(s) HubSpot refuses: the others are still looked up
                half = len(chunk) // 2
                found_a, unsure_a = await self._read(object_type, id_property, chunk[:half])
                found_b, unsure_b = await self._read(object_type, id_property, chunk[half:])
                return {**found_a, **found_b}, unsure_a | unsure_b
            self._read_errors[chunk[0].key] = {**exc.body, "status": exc.status}
            return {}, set()
        by_value: dict[str, str] = {}
        for r in answer.get("results") or []:
            if isinstance(r, dict) and r.get("id") is not None:
                by_value[norm(str((r.get("properties") or {}).get(id_property, "")))] = str(r["id"])
        errors = batch_errors(status, answer, norm) if status != 404 else []
        found: dict[str, str] = {}
        unsure: set[str] = set()
        for ref in chunk:
            value = norm(ref.id_value)
            hubspot_id = by_value.get(value)
            if hubspot_id is not None:
                found[ref.key] = hubspot_id
                await self.ids.put(ref.key, hubspot_id)
                continue
            named = matching(errors, ids=[value])
            if not named and not anonymous(errors):
                continue  # not in HubSpot
            verdict, error = judge(named, errors, single=len(chunk) == 1)
            if verdict in (Verdict.TRANSIENT, Verdict.UNKNOWN):
                unsure.add(ref.key)
            elif verdict is Verdict.REJECTED and error is not None:
                self._read_errors[ref.key] = error.letter_body(status)
        return found, unsure

    # ---- dead letters ----

    def _dead_letter(
        self,
        sources: list[Source],
        reason: str,
        body: dict[str, Any],
        status: int | None,
    ) -> None:
        """Queue a dead letter per source command; sent when the round completes."""
        for command, position in sources:
            letter = {
                "reason": reason,
                "status": status,
                "category": body.get("category"),
                "message": body.get("message"),
                "errors": body.get("errors"),
                "command": orjson.loads(encode_command(command)),
                "source": {"partition": position.partition, "offset": position.offset},
            }
            # No record key (a contact's is its email) and no HubSpot message (it quotes values):
            # the dead letter holds both, for operators with access to the data.
            what = (
                f"a {command.record.object_type} command from {position.partition}@{position.offset}: "
                f"{reason_kind(reason)} ({body.get('category') or status})"
            )
            self._round.letters.append((self._fitted(letter), command.record.key.encode(), what))
            self._round.stats.dead_lettered += 1

    def _fitted(self, letter: dict[str, Any]) -> bytes:
        """The letter as bytes that fit one record (R6): HubSpot's answer is cut first, then the
        command's properties; the command itself stays readable at its source offset. A letter
        Kafka refuses for its size would otherwise undo the round again and again."""
        value = orjson.dumps(letter)
        limit = self.settings.max_record_bytes - KAFKA_FRAMING_BYTES
        if len(value) <= limit:
            return value
        letter = {**letter, "errors": None, "message": str(letter.get("message") or "")[:2000]}
        value = orjson.dumps(letter)
        if len(value) <= limit:
            return value
        command = dict(letter["command"])
        omitted = len(orjson.dumps(command.pop("properties", None)))
        letter["command"] = {
            **command,
            "properties_omitted": f"{omitted} bytes: read it at its source offset",
        }
        return orjson.dumps(letter)

    async def _halves(self, chunk: list[T], again: Callable[[list[T]], Awaitable[None]]) -> None:
        """Split a batch HubSpot refused as a whole, to find the input(s) at fault."""
        half = len(chunk) // 2
        await again(chunk[:half])
        await again(chunk[half:])


T = TypeVar("T")
PRODUCT_WAIT_TRIES = 5
"""Rounds a line item waits for its product to exist in HubSpot (1 + 2 + 4 + 8 + 16 s of backoff)."""


def _chunks(items: list[T]) -> list[list[T]]:
    return [items[i : i + MAX_INPUTS] for i in range(0, len(items), MAX_INPUTS)]


def _norm(id_property: str, value: str) -> str:
    return value.lower() if id_property == "email" else value


def _made_pairs(body: dict[str, Any]) -> set[tuple[str, str]]:
    """The (from, to) ids an association ``batch/create`` answer lists as made."""
    pairs: set[tuple[str, str]] = set()
    for result in body.get("results") or []:
        if not isinstance(result, dict):
            continue
        f, t = result.get("fromObjectId"), result.get("toObjectId")
        if f is None and isinstance(result.get("from"), dict):
            f = result["from"].get("id")
        if t is None and isinstance(result.get("to"), dict):
            t = result["to"].get("id")
        if f is not None and t is not None:
            pairs.add((str(f), str(t)))
    return pairs


# ---- the consumer loop ----


async def run_writer(
    settings: Settings,
    stop: asyncio.Event | None = None,
    *,
    clock: Clock | None = None,
    backoff: Backoff | None = None,
    stats: WriterStats | None = None,
) -> WriterStats:
    """Run until ``stop`` is set (or SIGTERM/SIGINT); return the counters.

    ``clock`` measures the writer's pauses (the daily limit, outages) and ``backoff`` spaces the
    retries of rounds that met an outage and of inputs HubSpot failed on their own; tests pass
    their own. ``stats``, when given, is the
    object the writer counts into, so a test can watch it while the writer runs.
    """
    stop = stop or asyncio.Event()
    clock = clock or Clock()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await ensure_topics(settings)
    client = HubSpotClient(
        settings.hubspot_base_url,
        settings.hubspot_token.get_secret_value(),
        timeout_s=settings.hubspot_timeout_s,
        pacer=RatePacer(limit=settings.hubspot_rate_limit_per_10s, interval_s=10.0),
        retry=RetryPolicy(attempts=settings.writer_retry_attempts),
    )

    def new_producer() -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True,
            linger_ms=5, max_request_size=settings.kafka_message_bytes(),  # R6: the size every topic takes
        )  # fmt: skip

    producer = new_producer()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.writer_group(),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=int(settings.session_timeout_s * 1000),
        heartbeat_interval_ms=int(settings.session_timeout_s * 1000 / 5),
    )
    stats = stats if stats is not None else WriterStats()
    backoff = backoff or Backoff()
    pauses = Pauses(clock, backoff, stop, stats)
    await producer.start()
    writer: Writer | None = None
    try:
        schema = await _set_up(client, settings, pauses)
        if schema is None:
            return stats
        ids = IdMap(producer, topic_name(settings, "hubspot.ids"))
        known = await ids.load(settings.kafka_bootstrap_servers)
        log.info("writer ready: %d known HubSpot ids, pipeline %s", known, schema.pipeline_id)
        writer = Writer(
            settings, client, producer, ids, schema, stats=stats, retry_backoff=backoff,
            producer_factory=new_producer,
        )  # fmt: skip
        books = _Books(topic_name(settings, "hubspot.commands"))
        consumer.subscribe([books.topic], listener=_Rebalance(writer, consumer, books))
        await consumer.start()
        try:
            await _consume(writer, consumer, pauses, books)
        finally:
            await consumer.stop()
        return writer.stats
    finally:
        await (writer.producer if writer is not None else producer).stop()
        await client.close()


async def _set_up(client: HubSpotClient, settings: Settings, pauses: Pauses) -> AccountSchema | None:
    """The account set-up, waiting out an outage or the daily limit like any round."""
    while not pauses.stop.is_set():
        try:
            schema = await set_up_account(client, settings.pipeline_label, settings.hubspot_pipeline_id)
        except AccountSetupError as exc:  # an operator has to act: say what, and look again later
            await pauses.misconfigured(exc)
            continue
        except DailyLimitError as exc:
            await pauses.daily(exc, None, None)
            continue
        except HubSpotUnavailableError as exc:
            await pauses.outage(exc, None, 0)
            continue
        pauses.recovered()
        return schema
    return None


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
                    await _sleep(self.stop, min(left, max(0.0, (until - self.clock.now()).total_seconds())))
                if tick is not None:
                    tick()
        finally:
            if consumer is not None:
                consumer.resume(*consumer.assignment())


@dataclass
class _Books:
    """The consumer loop's per-partition bookkeeping of ``hubspot.commands``, shared with the
    rebalance listener. ``lock`` is held for a whole round (apply, then commit) and by the listener,
    so a rebalance never interleaves with a round. ``epoch`` counts revocations: a round whose
    commands were fetched in an earlier epoch is dropped unapplied. ``reseek``: partitions to seek to
    their committed offset (their fetched commands were dropped, or kept through a revocation)."""

    topic: str
    consumed: dict[int, int] = field(default_factory=dict)  # next offset read, per partition
    committed: dict[int, int] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    epoch: int = 0
    reseek: set[TopicPartition] = field(default_factory=set)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """On a revocation: wait for the round in flight (it commits what it finished), commit what is
    done while the partitions are still ours, then drop everything held, waiting and read: from the
    committed offsets on, the partitions' next owner (perhaps this writer again) reads it anew.

    aiokafka rebalances eagerly (every rebalance revokes every partition), so the writer then holds
    nothing; should a revocation ever leave partitions assigned, they are sought back to their
    committed offsets too, since what was dropped may include their commands."""

    def __init__(self, writer: Writer, consumer: AIOKafkaConsumer, books: _Books) -> None:
        self.writer, self.consumer, self.books = writer, consumer, books

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if not revoked:
            return
        books = self.books
        async with books.lock:
            await _commit(self.consumer, books, self.writer.held_positions())
            dropped = self.writer.held_count()
            self.writer.drop_all()
            books.consumed.clear()
            books.committed.clear()
            books.reseek |= self.consumer.assignment() - set(revoked)
            books.epoch += 1
        log.info(
            "partitions %s revoked: %d held commands dropped, read again from the committed offsets",
            sorted(tp.partition for tp in revoked), dropped,
        )  # fmt: skip

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions %s assigned", sorted(tp.partition for tp in assigned))


async def _consume(writer: Writer, consumer: AIOKafkaConsumer, pauses: Pauses, books: _Books) -> None:
    settings = writer.settings
    stop = pauses.stop
    window_s = settings.writer_batch_window_ms / 1000
    while not stop.is_set():
        if books.reseek:
            async with books.lock:
                await _seek_to_committed(consumer, books)
        epoch = books.epoch
        items: list[Source] = []
        raw_letters: list[bytes] = []
        done: dict[int, int] = {}
        first: dict[TopicPartition, int] = {}  # where to seek back to if the round is undone
        if writer.held_count() >= MAX_HELD_COMMANDS:
            consumer.pause(*consumer.assignment())  # memory stays bounded: finish what is held first
        else:
            consumer.resume(*consumer.assignment())
        deadline = time.monotonic() + window_s
        while time.monotonic() < deadline and len(items) < settings.writer_max_batch:
            timeout_ms = max(1, int((deadline - time.monotonic()) * 1000))
            batch = await consumer.getmany(timeout_ms=timeout_ms, max_records=settings.writer_max_batch)
            for tp, messages in batch.items():
                for m in messages:
                    first.setdefault(tp, m.offset)
                    done[tp.partition] = m.offset + 1
                    position = Position(tp.partition, m.offset)
                    try:
                        items.append((decode_command(m.value or b""), position))
                    except (ValidationError, ValueError) as exc:
                        raw_letters.append(_raw_letter(m.value or b"", str(exc), position))
            if not batch and not writer.pending():
                break
        if not items and not writer.pending() and not done and books.committed == books.consumed:
            continue
        failure: Exception | None = None
        async with books.lock:
            if books.epoch != epoch:  # fetched before a rebalance: dropped, read again from the commit
                books.reseek |= set(first)
                continue
            try:
                await writer.apply(items, raw_letters)
            except (HubSpotUnavailableError, KafkaDeliveryError) as exc:
                _rewind(consumer, first)
                failure = exc
                if isinstance(exc, KafkaDeliveryError):
                    await writer.renew_producer()
            else:
                books.consumed.update(done)
                await _commit(consumer, books, writer.held_positions())
        if isinstance(failure, DailyLimitError):
            await pauses.daily(failure, consumer, writer.schema)
        elif failure is not None:
            await pauses.outage(failure, consumer, writer.held_count() + len(items))
        else:
            pauses.recovered()


async def _commit(consumer: AIOKafkaConsumer, books: _Books, held: list[Position]) -> None:
    """Commit, per partition assigned to this writer, everything read except from the earliest
    command still held. A commit the group refuses (it is rebalancing) is left for the next owner:
    what it did not cover is read and applied again, harmlessly."""
    earliest_held: dict[int, int] = {}
    for pos in held:
        earliest_held[pos.partition] = min(pos.offset, earliest_held.get(pos.partition, pos.offset))
    assigned = {tp.partition for tp in consumer.assignment() if tp.topic == books.topic}
    targets = {
        p: min(offset, earliest_held.get(p, offset)) for p, offset in books.consumed.items() if p in assigned
    }
    changed = {p: o for p, o in targets.items() if books.committed.get(p) != o}
    if not changed:
        return
    try:
        await consumer.commit(
            {TopicPartition(books.topic, p): OffsetAndMetadata(o, "") for p, o in changed.items()}
        )
    except (CommitFailedError, IllegalStateError, KafkaError) as exc:
        log.warning("commit refused (%s): the uncommitted commands will be read again", type(exc).__name__)
        return
    books.committed.update(changed)


async def _seek_to_committed(consumer: AIOKafkaConsumer, books: _Books) -> None:
    """Seek ``books.reseek`` (those still assigned) to their committed offsets, or the beginning."""
    wanted, books.reseek = books.reseek & consumer.assignment(), set()
    for tp in sorted(wanted):
        offset = await consumer.committed(tp)
        if offset is None or offset < 0:
            await consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, offset)


def _rewind(consumer: AIOKafkaConsumer, first: dict[TopicPartition, int]) -> None:
    """Seek back to the round's first offsets, so an undone round is read and applied again."""
    assigned = consumer.assignment()
    for tp, offset in first.items():
        if tp in assigned:
            consumer.seek(tp, offset)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _raw_letter(raw: bytes, reason: str, position: Position) -> bytes:
    letter = {"reason": f"not a command: {reason}", "original": raw.decode("utf-8", "replace"),
              "source": {"partition": position.partition, "offset": position.offset}}  # fmt: skip
    return orjson.dumps(letter)
