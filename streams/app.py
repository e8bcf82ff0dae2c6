"""The faust engine: topics, tables and agents over the processor core. Agents only move data.

Two stages, because Shopify's topics are keyed by Shopify ids and the rules need other keys:

1. *Routers* read the Shopify and HubSpot topics as raw bytes and forward each valid input, as it
   is, to the worker's internal topics under the keys the rules use (``streams.entities``).
2. *Entity agents* (contacts, journeys, the HubSpot-id join; products read their Shopify topic
   directly) keep each entity's state in a table.

Every agent is the same loop over :func:`streams.processor.step`, a batch at a time (a ``Stage``
says which kind, how a record is decoded, which table holds its states). **The commit order** of
one batch, the only place it is written down:

1. decode every event's value once, run the batch through the kind, per partition, in log order;
2. send every output (HubSpot commands, forwards, field problems, dead letters) and wait until
   Kafka acknowledged all of them;
3. then write each changed state once (with the stream time it was decided at) and each moved
   partition clock: the tables' changelogs are written after the outputs, so a crash in between
   can only repeat outputs, and repeats change nothing;
4. then acknowledge the batch's events, and faust commits their offsets (never past an
   unacknowledged one: ``streams.faust_fixes``).

A batch that cannot finish (the agent is cancelled, or the process exits because Kafka stayed
unusable) acknowledges nothing: its events are read again from the committed offset.

With ``SHOPSYNC_SEAL_PERSONAL_DATA`` (SPEC G1) the outputs of step 2 and the rows of step 3 are
sealed under the key of the data subject they came from before they are written, and rows and
facts are opened where they are read back (``streams.derived_sealing``; :meth:`Pipeline._sealing`
says whose key). The rules never see a sealed value.

Time is data: each internal partition's "now" is the newest instant it has seen, in a delivery's
``received_at`` or a tick's ``at``. The ticker appends ticks to every partition of the timer
topics; a tick fires the timers due in its partition, inside normal stream processing.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import faust
import orjson
from aiokafka.errors import KafkaError
from faust.exceptions import FaustError
from pydantic import ValidationError

from config import Settings
from config.kafka import LETTER_RESERVE_BYTES
from schemas.commands import command_key, encode_command
from schemas.envelope import Delivery, HubSpotContactDeletion, Tick, encode
from schemas.problems import FieldProblem, FieldProblemRecord
from schemas.reasons import reason_kind
from schemas.sealing import (
    NONCE_BYTES,
    SHREDDED,
    KeySource,
    Shredded,
    current_keys,
    opening,
    refs_in,
    sealed_ref,
)
from streams import codec, faust_fixes, metrics
from streams.deletions import ContactIdMapping, contact_id_mapping
from streams.derived_sealing import (
    SHOP_FIELD,
    command_is_personal,
    fact_shop,
    is_sealed_fact,
    open_fact,
    open_row,
    row_ref,
    seal_command,
    seal_fact,
    seal_letter,
    seal_row,
)
from streams.entities import (
    COMPANIES,
    COMPANY_MEMBERS,
    DELETION_ROUTER,
    HUBSPOT_OBJECTS,
    ID_ROUTER,
    INPUTS,
    LOG_RECORDS,
    PRODUCTS,
    ROUTER,
    ROWS,
    TIMED,
    Routable,
    Rows,
    encode_forward,
    orjson_kind,
    product_key,
    router_key,
    what_of,
)
from streams.partition_time import AS_OF, DUE_AT, PartitionTime, clock_key, clock_row, due_stamp, stamped_due
from streams.processor import Kind, PoisonError, StepResult, UnreadableStateError, step
from streams.report_stage import REPORTS
from streams.rules.journeys import FirstPurchase
from streams.rules.reports import DealFacts
from streams.shredding import shop_key_id
from streams.topics import (
    CONSUMED_TOPICS,
    INTERNAL_TOPICS,
    ROUTED_TOPICS,
    TABLES,
    TIMER_TOPICS,
    TOPICS,
    internal_topic,
    is_size_error,
    size_configs,
    topic_name,
)

log = logging.getLogger(__name__)

KAFKA_RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)
EXIT_KAFKA_FAILED = 75  # EX_TEMPFAIL: restart me
STALL_CHECK_S = (
    2.0  # how often the worker looks for partitions faust stopped feeding (a stall heals in 2-3 checks)
)
MAX_LETTER_REASON_CHARS = 8_000  # at most 4 bytes a character (JSON-escaped: 6): inside the reserve
BATCH_MAX = 500  # events per batch at most (per agent)
BATCH_WITHIN_S = 0.05  # how long a batch waits to fill: the latency a quiet stream pays at most
PRODUCER_BATCH_BYTES = 256 * 1024
PRODUCER_LINGER_S = 0.005
DECODED_STATES_KEPT = 2_000  # per stage: states kept decoded between batches (memory stays bounded)
KEY_RING_TIMEOUT_S = 60.0  # G1: a key ring catch-up (or a shop key's making) taking longer is Kafka failing
KEY_PASSES = 4  # G1: plans of one batch at most while the ring catches up on what they met
GONE_REFS_KEPT = 100_000  # G1: refs found gone (a key never comes back) remembered, not caught up on again

Send = tuple[Any, bytes | None, bytes]
"""One output: (faust topic, key, value)."""

Sealing = tuple[str, bytes] | Shredded | None
"""Whose key seals a unit's writes (G1): (key ref, data key); SHREDDED when that subject's key is
gone (nothing personal of it is written); None when nothing it came from was sealed."""

NOT_PERSONAL_FACTS: tuple[type, ...] = (FirstPurchase, DealFacts)
"""Rule-built forwards that name no person (a journey's first-purchase flag, a deal's report
facts: ids, amounts, the Shopify customer id), left readable: the reports' changelog is read by the
dashboard without keys. Every other rule-built forward (a company member's fact: its email) is
sealed whole under its unit's subject."""


async def _kafka_retried(
    what: str, call: Callable[[], Awaitable[T]], failures: tuple[type[BaseException], ...]
) -> T:
    """``call`` while Kafka fails (``failures``), after each of ``KAFKA_RETRY_DELAYS_S``; past the
    last, exit without acknowledging the batch, so the replacement reads it again (sending a
    batch's outputs, and G1's key ring calls). Any other error is the caller's."""
    for attempt in range(len(KAFKA_RETRY_DELAYS_S) + 1):
        try:
            return await call()
        except failures as exc:
            if attempt == len(KAFKA_RETRY_DELAYS_S):
                log.critical(
                    "Kafka kept failing while %s (%s); exiting without acknowledging the batch, "
                    "so the next worker handles it again", what, type(exc).__name__,
                )  # fmt: skip
                os._exit(EXIT_KAFKA_FAILED)
            log.warning("Kafka failed while %s (%s); retrying", what, type(exc).__name__)
            await asyncio.sleep(KAFKA_RETRY_DELAYS_S[attempt])
    raise AssertionError("unreachable: the last attempt returns or exits")


class _TooLargeError(Exception):
    """A batch's output that Kafka refuses for its size (R6): the batch is redone one unit at a time."""


@dataclass(frozen=True)
class Decoded:
    """An event's value, decoded once: the kind's key and input, and its field problems (R1)."""

    key: str
    record: Any
    problems: tuple[FieldProblem, ...] = ()
    delivery: Delivery | None = None
    ref: str | None = None  # G1: the key ref the input came sealed under
    shop: str | None = None  # the shop it is from, when it says


@dataclass(frozen=True)
class Stage:
    """One agent: which kind it runs, how its records decode, where its states live."""

    name: str
    kind: Kind
    decode: Callable[[Any, bytes], Decoded | None]  # (event, value) -> input; None: nothing to do
    table: Any | None = None
    rows: Rows | None = None
    time: PartitionTime | None = None
    stamp_partition: bool = False  # rows say their partition (timed kinds' clocks are derived from it)
    shop_subject: bool = False  # G1: its rows hold several customers' values: sealed under the shop's key


@dataclass(frozen=True)
class _Write:
    """A table row to write once the batch's outputs are acknowledged."""

    event: Any  # an event of the row's partition (faust's tables find the partition from it)
    store: _TableStore
    key: str
    row: Any  # None: delete the row (G1: its subject's key is gone)
    state: Any = None  # the decoded state the row holds (None: a clock row)
    ref: str | None = None  # the key ref the row is sealed under
    shop: str | None = None


@dataclass
class _KeyCheck:
    """G1: what one batch's plan met that the key ring did not hold. A stored row's ref not held
    may only be one the ring has not read yet (sealed by another worker under a key made moments
    ago: the previous owner, after a rebalance), so the plan notes it (``behind``) and
    ``_handle_batch`` catches the ring up and plans again; only a ref still missing after that
    (``confirmed``) is a shredded subject's. ``shops``: shops whose own key was gone (made again)."""

    confirmed: set[str] = field(default_factory=set)
    behind: set[str] = field(default_factory=set)
    shops: set[str] = field(default_factory=set)
    gone: set[str] = field(default_factory=set)  # the worker's: refs found gone by earlier batches

    def missing(self, ref: str) -> None:
        if ref not in self.confirmed and ref not in self.gone:
            self.behind.add(ref)


@dataclass
class _Part:
    """Outputs that succeed or fail together, and the writes that follow them. A batch sends all its
    parts at once; redone after a size error, each part on its own (``letter``: what its input
    becomes if its outputs are too large)."""

    sends: list[Send] = field(default_factory=list)
    writes: list[_Write] = field(default_factory=list)
    letter: tuple[Any, str, str | None] | None = None
    dropped: int = 0  # G1: commands and facts left out, their subject's key gone (counted once sent)
    notes: tuple[Callable[[], None], ...] = ()
    """What the part counts and logs (its dead letters, field problems, a timer fired): done once
    its outputs are acknowledged, never at planning, which a batch may do more than once (a key
    catch-up, a size error) or not finish (Kafka failing: the batch is read again)."""


class _TableStore:
    """A kind's states in a faust table, with the newest ones kept decoded in memory.

    Decoding a row (pydantic validation of a whole state) is the dearest part of loading it, and
    the shell is the table's only writer: a state it stored is the row it wrote, so it is kept as
    the object for the next batch of that key. Bounded (oldest out first), and dropped on every
    rebalance with the rest of what this worker remembers of its partitions."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.decoded: dict[str, tuple[Any, str | None, str | None]] = {}  # key -> (state, ref, shop)
        self.refs: dict[str, str | None] = {}
        """G1: the key ref each row loaded in this batch is sealed under (the subject its writes
        are sealed under when no input of the batch names one), and its shop."""
        self.shops: dict[str, str | None] = {}
        self.check: _KeyCheck | None = None  # G1: the plan's, where a row's ref not held is noted

    def load(self, key: str) -> Any | None:
        """The key's state; a sealed row is opened with the batch's keys, and reads as no state
        when its subject's key is gone (redacted: G1)."""
        if key in self.decoded:
            state, ref, shop = self.decoded[key]
            self.refs[key], self.shops[key] = ref, shop
            if ref is not None and ref not in (current_keys() or {}):
                return None  # shredded since it was stored
            return state
        stage = self.stage
        if stage.table is None or stage.rows is None:
            return None
        raw = stage.table.get(key)
        if raw is None:
            return None
        try:
            ref = row_ref(raw)
            self.refs[key] = ref
            self.shops[key] = raw.get(SHOP_FIELD) if isinstance(raw, dict) else None
            if ref is not None:
                keys = current_keys()
                if keys is None:
                    raise ValueError("the row is sealed (G1) and the worker was given no keys")
                opened = open_row(raw, keys)
                if isinstance(opened, Shredded):
                    if self.check is not None:
                        self.check.missing(ref)  # gone, or not read yet: _handle_batch tells
                    return None
                raw = {k: v for k, v in opened.items() if k != SHOP_FIELD}
            return stage.rows.from_row(raw)
        except (ValidationError, ValueError, TypeError) as exc:
            raise UnreadableStateError(
                f"the stored {stage.kind.name} state of this key cannot be read: {exc}"
            ) from exc

    def stored(self, key: str, state: Any, ref: str | None = None, shop: str | None = None) -> None:
        """``state`` is now the row of ``key`` (called once it is written; None: deleted)."""
        decoded = self.decoded
        decoded.pop(key, None)
        decoded[key] = (state, ref, shop)
        if len(decoded) > DECODED_STATES_KEPT:
            del decoded[next(iter(decoded))]

    def begin(self, check: _KeyCheck | None = None) -> None:
        """A new plan: what it learns of its rows' refs is its own."""
        self.refs.clear()
        self.shops.clear()
        self.check = check

    def forget(self) -> None:
        self.decoded.clear()


class Pipeline:
    """The faust app plus handles on its topics and tables (one per worker process)."""

    def __init__(self, settings: Settings, keys: KeySource | None = None) -> None:
        if settings.seal_personal_data and keys is None:
            raise ValueError(
                "SHOPSYNC_SEAL_PERSONAL_DATA is on: the worker needs the key ring to open sealed "
                "bodies (handlers.sealer.opener_for)"
            )
        self.keys = keys  # G1: the key ring sealed bodies open with (None: nothing is sealed)
        self._shop_keys: dict[str, tuple[str, bytes]] = {}  # G1: shop -> its own subject's key
        self._check: _KeyCheck | None = None  # G1: the running plan's (plans are synchronous)
        self._gone: set[str] = set()  # G1: refs still missing after a catch-up: shredded for good
        self.key_ring_timeout_s = KEY_RING_TIMEOUT_S
        codec.register()
        faust_fixes.install(frozenset(topic_name(settings, spec.name) for spec in TOPICS if spec.compacted))
        self.healer = faust_fixes.StallHealer()
        self.settings = settings
        self.config = settings.rule_config()
        self._rules_fingerprint = self.config.fingerprint()  # what due_at stamps are made under
        self.app = faust.App(
            settings.app_id,
            broker=[f"kafka://{hp.strip()}" for hp in settings.kafka_bootstrap_servers.split(",")],
            store=settings.store,
            datadir=str(settings.data_dir),
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.replication_factor,
            key_serializer="raw",
            value_serializer="orjson",
            producer_acks=-1,
            # A batch's outputs go out together and are awaited together: let them share produce
            # requests (the default 16 KB batch holds three deliveries of a few KB).
            producer_max_batch_size=PRODUCER_BATCH_BYTES,
            producer_linger=PRODUCER_LINGER_S,
            producer_max_request_size=settings.kafka_message_bytes(),  # R6: sizes agree end to end
            consumer_max_fetch_size=settings.kafka_message_bytes(),
            consumer_auto_offset_reset="earliest",
            broker_session_timeout=settings.session_timeout_s,
            broker_heartbeat_interval=max(settings.session_timeout_s / 5, 0.5),
            broker_rebalance_timeout=settings.session_timeout_s,
            broker_commit_interval=settings.commit_interval_s,
            web_enabled=settings.web_port > 0,
            web_host="127.0.0.1",
            web_port=settings.web_port or 6066,
            web_bind="127.0.0.1",
            processing_guarantee="at_least_once",
            stream_wait_empty=True,
            autodiscover=False,
            TableManager=faust_fixes.PromptTableManager,
        )
        self.sources = {name: self._raw_topic(topic_name(settings, name)) for name in CONSUMED_TOPICS}
        self.internal: dict[str, Any] = {
            name: self._raw_topic(internal_topic(settings, name)) for name in INTERNAL_TOPICS
        }
        self.commands = self._raw_topic(topic_name(settings, "hubspot.commands"))
        self.deadletter = self._raw_topic(topic_name(settings, "shopify.deadletter"))
        self.field_problems = self._raw_topic(topic_name(settings, "shopify.field-problems"))

        def table(name: str) -> Any:
            return self.app.Table(
                name, default=None, partitions=settings.partitions,
                extra_topic_configs=size_configs(settings), options=rocksdb_options(settings),
            )  # fmt: skip

        self.order_journeys = table("order-journeys")
        self.hubspot_objects = table("hubspot-objects")
        self.tables: dict[str, Any] = {kind.name: table(kind.name) for kind in TIMED}
        self.report_facts = table("reports")  # E1 (streams.report_stage)
        self.company_states = table("companies")  # X2
        self.member_states = table("company-members")  # X2: company contacts by customer
        known = {"order-journeys", "hubspot-objects", "products", "reports", "companies", "company-members"}
        assert {*known, *self.tables} == set(TABLES)
        self.product_states = table("products")
        self._all_tables = {
            "order-journeys": self.order_journeys, "hubspot-objects": self.hubspot_objects,
            **self.tables, "reports": self.report_facts, "companies": self.company_states,
            "company-members": self.member_states, "products": self.product_states,
        }  # fmt: skip
        assert set(self._all_tables) == set(TABLES)
        # Stream time and timer indexes per partition, derived from the tables after each
        # assignment and dropped on every rebalance (streams.partition_time).
        self.time: dict[str, PartitionTime] = {
            kind.name: PartitionTime(functools.partial(self._due_of, kind)) for kind in TIMED
        }
        self.stores: dict[str, _TableStore] = {}
        self.app.on_partitions_revoked.connect(self._on_revoked)
        self.app.on_partitions_assigned.connect(self._on_assigned)

        for name in ROUTED_TOPICS:
            if name == "hubspot.events":
                stage = Stage(f"route-{name}", DELETION_ROUTER, _decode_deletion)
            else:  # one kind for every Shopify router; only orders have a state (their memory)
                stage = Stage(
                    f"route-{name}", ROUTER, self._decode_routable, self.order_journeys, ROWS["route"]
                )
            self._agent(self.sources[name], stage)
        self._agent(
            self.sources["shopify.products"],
            Stage(
                "products",
                PRODUCTS,
                self._decode_product,
                self.product_states,
                ROWS["products"],
                stamp_partition=True,
            ),
        )
        self._agent(self.sources["hubspot.ids"], Stage("route-hubspot.ids", ID_ROUTER, _decode_mapping))
        self._agent(
            self.internal["hubspot-objects"],
            Stage(
                "hubspot-objects",
                HUBSPOT_OBJECTS,
                _decode_join_input,
                self.hubspot_objects,
                ROWS["hubspot-objects"],
            ),
        )
        for kind in TIMED:
            stage = Stage(
                kind.name, kind, functools.partial(_decode_entity_input, kind.name), self.tables[kind.name],
                ROWS[kind.name], self.time[kind.name], stamp_partition=True,
            )  # fmt: skip
            self._agent(self.internal[kind.name], stage)
        self._agent(  # X2: B2B companies, re-keyed by Shopify company id
            self.internal["companies"],
            Stage(
                "companies",
                COMPANIES,
                functools.partial(_decode_entity_input, "companies"),
                self.company_states,
                ROWS["companies"],
                shop_subject=True,
            ),
        )
        self._agent(  # X2: company contacts joined with their customer's email, by customer id
            self.internal["company-members"],
            Stage(
                "company-members",
                COMPANY_MEMBERS,
                functools.partial(_decode_entity_input, "company-members"),
                self.member_states,
                ROWS["company-members"],
            ),
        )
        self._agent(  # E1: each journey's deal facts, for the reports
            self.internal["reports"],
            Stage("reports", REPORTS, _decode_report, self.report_facts, ROWS["reports"]),
        )
        self.app.timer(STALL_CHECK_S, name="stall-healer")(self._heal_stalls)
        if settings.tick_interval_s > 0:
            self.app.timer(settings.tick_interval_s, on_leader=True, name="ticker")(self._live_tick)

    def all_tables(self) -> dict[str, Any]:
        """Every faust table of the worker, by name (its metrics read their stores)."""
        return dict(self._all_tables)

    def _raw_topic(self, name: str) -> Any:
        return self.app.topic(
            name, key_serializer="raw", value_serializer="raw", partitions=self.settings.partitions
        )

    def _due_of(self, kind: Kind, raw: dict[str, Any]) -> datetime | None:
        """A stored row's next due time (the timer index's rebuild, inside the batch's
        ``opening``): its ``due_at`` stamp when made under these rule settings (no decoding, no
        opening); else the state decoded, a sealed row opened first (one whose key is gone has no
        timer)."""
        assert kind.next_due is not None
        stamped, due = stamped_due(raw, self._rules_fingerprint)
        if stamped:
            return due
        if row_ref(raw) is not None:
            opened = open_row(raw, current_keys() or {})
            if isinstance(opened, Shredded):
                if self._check is not None:  # perhaps not read yet: planned again once caught up
                    self._check.missing(str(row_ref(raw)))
                return None
            raw = opened
        return kind.next_due(ROWS[kind.name].from_row(raw), self.config)

    # ---- the one agent loop ----

    def _agent(self, topic: Any, stage: Stage) -> None:
        """An agent (concurrency 1) that handles its events a batch at a time (see the module's
        commit order). Whatever an input's handling raises ends as a dead letter with its reason
        and the stream moves on (R2). Kafka's own failures are not the record's fault: sending
        is retried (it is idempotent), and if Kafka stays unusable the process exits at once,
        without acknowledging, so its replacement handles the batch again."""

        self.stores[stage.name] = _TableStore(stage)

        async def agent(stream: Any) -> AsyncIterator[None]:
            async for events in stream.take_events(BATCH_MAX, BATCH_WITHIN_S):
                started = time.perf_counter()
                try:
                    await self._handle_batch(stage, events)
                except BaseException:
                    faust_fixes.withhold(events)  # not done: read again from the committed offset
                    raise
                metrics.batch_done(stage.name, events, time.perf_counter() - started)
                yield None

        self.app.agent(topic, name=stage.name, concurrency=1)(agent)

    async def _handle_batch(self, stage: Stage, events: Sequence[Any]) -> None:
        check: _KeyCheck | None = None
        if self.keys is not None:  # G1: every key the batch's sealed bodies name, before any parse
            keys, check = self.keys, _KeyCheck(gone=self._gone)
            await self._with_keys(
                "catching up the key ring", lambda: keys.ensure(_value_bytes(event) for event in events)
            )
            if stage.shop_subject:
                await self._ensure_shop_keys(self._shops_of(events))
        parts = self._plan(stage, events, check)
        await self._catch_up_keys(stage, events, check, parts)
        dropped = sum(part.dropped for part in parts)
        try:
            await self._send([s for part in parts for s in part.sends])
        except _TooLargeError:
            # One output is too large for Kafka: redo the batch one input at a time, so only the
            # input (or the timer) whose outputs are too large is dead-lettered (R6). The timer
            # index was moved by the batch: derive it again from the tables, unchanged so far.
            if stage.time is not None:
                stage.time.reset()
            parts = []
            for event in events:
                for part in self._plan(stage, [event]):
                    try:
                        await self._send(part.sends)
                    except _TooLargeError as exc:
                        if part.letter is None:  # field problems and dead letters are cut to fit
                            raise RuntimeError("a field problem or a dead letter is too large") from exc
                        letter_event, reason, key = part.letter
                        cause = exc.__cause__
                        letter = self._letter_part(
                            letter_event, f"{reason}: {type(cause).__name__}: {cause}", key
                        )
                        await self._send(letter.sends)
                        _noted(letter)
                        continue
                    self._store(part.writes)
                    _noted(part)
            metrics.shredded_dropped(stage.name, dropped)
            return
        for part in parts:
            self._store(part.writes)
            _noted(part)
        metrics.shredded_dropped(stage.name, dropped)

    async def _catch_up_keys(
        self, stage: Stage, events: Sequence[Any], check: _KeyCheck | None, parts: list[_Part]
    ) -> None:
        """G1: while the plan met stored rows under refs the ring does not hold, or shops whose own
        key is gone, catch the ring up on those refs (make the shops' keys again) and plan the
        batch again (``parts`` replaced in place), the timer index derived again as the size
        path does; a ref still missing after its catch-up is a shredded subject's. Never seals a
        company under anything but its shop's key: if that stays gone, Kafka is failing."""
        if check is None or self.keys is None:
            return
        keys = self.keys
        for _ in range(KEY_PASSES):
            if not check.behind and not check.shops:
                return
            behind, shops = set(check.behind), set(check.shops)
            if behind:
                await self._with_keys("catching up the key ring", functools.partial(keys.ensure_refs, behind))
            if shops:
                for shop in shops:
                    self._shop_keys.pop(shop, None)
                await self._ensure_shop_keys(shops)
            check.confirmed |= behind
            if len(self._gone) > GONE_REFS_KEPT:
                self._gone.clear()  # bounded: one more catch-up each for the refs forgotten
            self._gone |= {ref for ref in behind if ref not in keys.keys}
            check.behind.clear()
            check.shops.clear()
            if stage.time is not None:
                stage.time.reset()  # the plan moved the timer index: derive it again
            parts[:] = self._plan(stage, events, check)
        if check.behind or check.shops:
            log.critical(
                "the key ring kept changing under a %s batch's plan; exiting without acknowledging "
                "it, so the next worker handles it again", stage.name,
            )  # fmt: skip
            os._exit(EXIT_KAFKA_FAILED)

    async def _with_keys(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """G1: a key ring call, bounded: a catch-up reads until the key topic's end, which never
        comes while its leader is unreachable (aiokafka returns empty batches meanwhile). A
        timeout or a Kafka error is treated as ``_send`` treats Kafka failing: retried, then the
        process exits without acknowledging the batch, so the replacement reads it again."""
        timeout_s = self.key_ring_timeout_s
        return await _kafka_retried(
            what, lambda: asyncio.wait_for(call(), timeout_s), (KafkaError, TimeoutError)
        )

    @staticmethod
    def _shops_of(events: Sequence[Any]) -> set[str]:
        """The shops a batch's inputs name (a delivery's domain, a sealed fact's shop)."""
        shops: set[str] = set()
        for event in events:
            raw = _value_bytes(event)
            shop = fact_shop(raw) if is_sealed_fact(raw) else _shop_of(raw)
            if shop:
                shops.add(shop.strip().lower())
        return shops

    async def _ensure_shop_keys(self, shops: Iterable[str]) -> None:
        """G1: the key of each shop, for a stage sealed under the shop's own subject (made and
        acknowledged first if the shop has none: a redacted shop's next one)."""
        keys = self.keys
        assert keys is not None
        secret = self.settings.privacy_key()
        for shop in shops:
            kid = shop_key_id(secret, shop)
            self._shop_keys[shop] = await self._with_keys(
                "making a shop's key", functools.partial(keys.key_for, shop, kid)
            )

    def _plan(self, stage: Stage, events: Sequence[Any], check: _KeyCheck | None = None) -> list[_Part]:
        """Decode the events and run them through the stage's kind, per partition; the batch's
        outputs and writes, in log order per partition. Synchronous, so the keys it opens sealed
        bodies with (G1: caught up by ``_handle_batch`` first) are the ones given here; what it met
        and did not hold is noted in ``check``."""
        self.stores[stage.name].begin(check)
        self._check = check
        try:
            with opening(self.keys.keys) if self.keys is not None else contextlib.nullcontext():
                return self._plan_opened(stage, events)
        finally:
            self._check = None
            self.stores[stage.name].check = None

    def _plan_opened(self, stage: Stage, events: Sequence[Any]) -> list[_Part]:
        by_partition: dict[int, list[Any]] = {}
        for event in events:
            by_partition.setdefault(event.message.partition, []).append(event)
        parts: list[_Part] = []
        for partition, group in by_partition.items():
            decoded: list[tuple[Any, Decoded]] = []
            for event in group:
                raw = _value_bytes(event)
                try:
                    item = stage.decode(event, raw)
                except PoisonError as exc:
                    parts.append(self._letter_part(event, str(exc)))
                    continue
                if item is None:
                    if self.keys is not None and is_sealed_fact(raw):
                        parts.append(_Part(dropped=1))  # a redacted subject's fact (G1)
                    continue
                decoded.append((event, item))
                if item.problems and item.delivery is not None:
                    parts.append(self._problem_part(event, item.delivery, item.problems))
            if not decoded and stage.time is None:
                continue
            with faust_fixes.event_context(group[0]):  # the tables read this partition's rows
                clock = self._clock(stage, partition) if stage.time is not None else None
                result = step(
                    stage.kind, self.config, self.stores[stage.name], [(d.key, d.record) for _, d in decoded],
                    clock, what_of,
                )  # fmt: skip
            parts += self._parts(stage, partition, group[0], decoded, result)
        return parts

    def _parts(
        self,
        stage: Stage,
        partition: int,
        anchor: Any,
        decoded: list[tuple[Any, Decoded]],
        result: StepResult,
    ) -> list[_Part]:
        parts: list[_Part] = []
        subjects = _Subjects(decoded) if self.keys is not None else None
        for rejected in result.rejected:
            event, item = decoded[rejected.position]
            of_letter: Sealing = None  # the unit's: an input's own subject, else its row's
            if subjects is not None:  # a reason can quote a sealed row's values (E: found in review)
                key = rejected.key if rejected.key is not None else item.key
                of_letter = self._sealing(stage, subjects, key, rejected.position)
            parts.append(self._letter_part(event, rejected.reason, rejected.key, of_letter))
        newest = result.states()
        for unit in result.units:
            sealing: Sealing = None
            shop: str | None = None
            if subjects is not None:
                sealing = self._sealing(stage, subjects, unit.key, unit.position)
                shop = subjects.shop(unit.key, unit.position) or self.stores[stage.name].shops.get(unit.key)
            sends = self._unit_sends(unit.commands, unit.forwards, sealing, shop)
            dropped = len(unit.commands) + len(unit.forwards) - len(sends)
            writes: list[_Write] = []
            state, as_of = newest.get(unit.key, (None, None))
            if unit.changed and state is unit.state and stage.table is not None and stage.rows is not None:
                row: dict[str, Any] | None = stage.rows.to_row(state)
                assert row is not None
                if stage.stamp_partition:
                    row["partition"] = partition
                if as_of is not None and stage.time is not None:
                    row[AS_OF] = as_of.isoformat()
                if stage.time is not None and stage.kind.next_due is not None:
                    due = stage.kind.next_due(state, self.config)
                    row[DUE_AT] = due_stamp(due, self._rules_fingerprint)
                ref = None
                if isinstance(sealing, Shredded):
                    row, state = None, None  # never written in the clear: the row goes (G1)
                elif sealing is not None:
                    ref = sealing[0]
                    if stage.shop_subject and shop is not None:
                        row[SHOP_FIELD] = shop
                    row = seal_row(row, sealing[0], sealing[1], os.urandom(NONCE_BYTES))
                writes.append(_Write(anchor, self.stores[stage.name], unit.key, row, state, ref, shop))
            event = decoded[unit.position][0]
            timer = isinstance(decoded[unit.position][1].record, Tick)
            reason = f"a {stage.kind.name} timer's output is too large" if timer else "too large to forward"
            notes = (functools.partial(metrics.timer_fired, stage.kind.name),) if timer else ()
            parts.append(_Part(sends, writes, (event, reason, unit.key if timer else None), dropped, notes))
        if result.clock_moved and result.now is not None and stage.table is not None:
            clock_write = _Write(
                anchor, self.stores[stage.name], clock_key(partition), clock_row(result.now, partition)
            )
            parts.append(_Part(writes=[clock_write]))
        return parts

    def _sealing(self, stage: Stage, subjects: _Subjects, key: str, position: int) -> Sealing:
        """G1: whose key seals what the unit of ``key`` at ``position`` writes. A stage sealed by
        shop (companies) takes the shop's own key; any other the subject of the newest sealed input
        of that key in the batch up to it, else the one its stored row was sealed under.
        A shredded subject's ref gives way to a live one (a late input sealed under a redacted
        key never deletes a row sealed under a live key); SHREDDED only when none is left."""
        assert self.keys is not None
        store = self.stores[stage.name]
        if stage.shop_subject:
            shop = subjects.shop(key, position) or store.shops.get(key)
            if shop:  # never a member's key: the shop's, made again if it is gone
                shop = shop.strip().lower()
                held = self._shop_keys.get(shop)
                if held is not None and held[0] in self.keys.keys:
                    return held
                if self._check is not None:
                    self._check.shops.add(shop)
                return SHREDDED  # for this plan only: planned again with the shop's new key
        sealing: Sealing = None
        for ref in (*subjects.refs(key, position), store.refs.get(key)):
            if ref is not None:
                sealing = self._held(ref)
                if not isinstance(sealing, Shredded):
                    return sealing
        return sealing

    def _held(self, ref: str) -> Sealing:
        """(ref, its data key), or SHREDDED when the key is gone."""
        assert self.keys is not None
        data_key = self.keys.keys.get(ref)
        return SHREDDED if data_key is None else (ref, data_key)

    def _unit_sends(
        self, commands: Sequence[Any], forwards: Sequence[Any], sealing: Sealing, shop: str | None
    ) -> list[Send]:
        """A unit's commands and forwards as records; sealed (G1) under ``sealing``. A shredded
        subject's commands that carry personal values, and its rule-built facts, are not sent: the
        writer would read them as erased anyway, and they cannot be written in the clear."""
        sends: list[Send] = []
        for command in commands:
            value = encode_command(command)
            if isinstance(sealing, Shredded):
                if command_is_personal(value):
                    continue
            elif sealing is not None:
                value = seal_command(value, sealing[0], sealing[1], os.urandom(NONCE_BYTES))
            sends.append((self.commands, command_key(command).encode(), value))
        for forward in forwards:
            value = encode_forward(forward)
            built = forward.raw is None and not isinstance(forward.record, NOT_PERSONAL_FACTS)
            if built and isinstance(sealing, Shredded):
                continue
            if built and sealing is not None and not isinstance(sealing, Shredded):
                value = seal_fact(value, sealing[0], sealing[1], os.urandom(NONCE_BYTES), shop)
            sends.append((self.internal[forward.target], forward.key.encode(), value))
        return sends

    def _clock(self, stage: Stage, partition: int) -> Any:
        """The partition's clock and timer index, derived from the table on first use after an
        assignment (one scan for every partition the table's rows name; the table is fully
        recovered before any event is handed to us)."""
        keeper = stage.time
        assert keeper is not None and stage.table is not None, "a timed kind keeps its states in a table"
        if not keeper.ready(partition):
            started = time.monotonic()
            pending = keeper.rebuild(partition, stage.table.items())
            log.info(
                "stream time and timer indexes for %s derived at [%d]'s first batch (one scan of "
                "the partitions held): %d pending there, %.3f s",
                stage.kind.name, partition, pending, time.monotonic() - started,
            )  # fmt: skip
        return keeper.clock(partition)

    @staticmethod
    def _store(writes: list[_Write]) -> None:
        for write in writes:
            table = write.store.stage.table
            assert table is not None, "only stages with a table write"
            with faust_fixes.event_context(write.event):
                if write.row is not None:
                    table[write.key] = write.row
                elif write.key in table:
                    del table[write.key]  # G1: a shredded subject's row
            if write.state is not None or write.row is None:
                write.store.stored(write.key, write.state, write.ref, write.shop)

    async def _send(self, sends: list[Send]) -> None:
        """Send the outputs and wait until Kafka acknowledged every one, retrying the whole lot
        (repeats change nothing) while Kafka fails; exit without acknowledging if it stays
        unusable. A size refusal is the record's fault, not Kafka's: ``_TooLargeError``."""
        if not sends:
            return

        async def once() -> None:
            try:
                pending = [await topic.send(key=key, value=value) for topic, key, value in sends]
                await asyncio.gather(*pending)
            except (KafkaError, FaustError) as exc:
                if is_size_error(exc):
                    raise _TooLargeError() from exc
                raise
            metrics.sent(topic.get_topic_name() for topic, _, _ in sends)

        await _kafka_retried("sending a batch's outputs", once, (KafkaError, FaustError))

    # ---- decoding: each event's value once ----

    def _decode_routable(self, event: Any, raw: bytes) -> Decoded | None:
        record = _parse(LOG_RECORDS.decode, raw, "not a valid record")
        if isinstance(record, Tick):
            return None  # time is carried by the internal topics; a tick here has nothing to fire
        body, problems = _parse(
            lambda _: record.parse_body_with_problems(), raw, f"body does not fit {record.topic}"
        )
        routable = Routable(record, body, raw)
        return Decoded(
            router_key(routable, self.config), routable, problems, record, sealed_ref(record.body),
            record.shop_domain,
        )  # fmt: skip

    def _decode_product(self, event: Any, raw: bytes) -> Decoded | None:
        record = _parse(LOG_RECORDS.decode, raw, "not a valid record")
        if isinstance(record, Tick):
            return None
        body, problems = _parse(
            lambda _: record.parse_body_with_problems(), raw, f"body does not fit {record.topic}"
        )
        return Decoded(
            product_key(record, body, self.config), record, problems, record, sealed_ref(record.body),
            record.shop_domain,
        )  # fmt: skip

    def _problem_part(self, event: Any, record: Delivery, problems: tuple[FieldProblem, ...]) -> _Part:
        """The delivery's field problems (R1) as records for ``shopify.field-problems``: sent with
        the batch's outputs, so they are durable before its offset can be committed."""
        msg = event.message
        key = (msg.key or b"").decode("utf-8", "replace")
        notes = tuple(functools.partial(metrics.field_problem, record.topic, p.reason) for p in problems)
        sends: list[Send] = [
            (
                self.field_problems,
                msg.key or b"",
                encode(
                    FieldProblemRecord(
                        shopify_topic=record.topic,
                        record_key=key,
                        event_id=record.event_id,
                        path=problem.path,
                        reason=problem.reason,
                        source_topic=msg.topic,
                        source_partition=msg.partition,
                        source_offset=msg.offset,
                    )
                ),
            )
            for problem in problems
        ]
        return _Part(sends, notes=notes)

    # ---- rebalance: stream time and timer indexes are derived again after every rebalance ----

    async def _on_revoked(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        self._forget()

    async def _on_assigned(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        self._forget()

    def _forget(self) -> None:
        for time_ in self.time.values():
            time_.reset()
        for store in self.stores.values():
            store.forget()
        self.healer.forget()

    async def _heal_stalls(self) -> None:
        """Read again the records faust fetched but never handed to an agent (faust_fixes)."""
        consumer: Any = self.app.consumer
        if self.app.rebalancing or not consumer.flow_active:
            return
        for tp, offset in self.healer.stalled(consumer):
            log.warning(
                "%s[%d]: records from offset %d were fetched but never handled (a faust consumer "
                "race); fetching them again", tp.topic, tp.partition, offset,
            )  # fmt: skip
            await consumer.seek_wait({tp: offset})
            consumer._read_offset[tp] = offset or None

    # ---- time ----

    async def _live_tick(self) -> None:
        """The live ticker: a wall-clock tick to every partition of the timer topics. Every
        worker's leader runs one; two tickers at once only make more ticks, which is harmless
        (stream time is the newest instant seen, and firing is idempotent)."""
        value = encode(Tick(at=datetime.now(UTC)))
        for name in TIMER_TOPICS:
            for partition in range(self.settings.partitions):
                await self.internal[name].send(key=b"tick", value=value, partition=partition)

    # ---- dead letters ----

    def _letter_part(self, event: Any, reason: str, key: str | None = None, sealing: Sealing = None) -> _Part:
        """A dead letter as a part of its own, logged and counted once it is acknowledged."""
        msg, kind = event.message, reason_kind(reason)

        def note() -> None:
            log.warning("dead-lettered %s[%s]@%s: %s", msg.topic, msg.partition, msg.offset, kind)
            metrics.dead_letter(kind)

        return _Part([self._letter(event, reason, key, sealing)], notes=(note,))

    def _letter(self, event: Any, reason: str, key: str | None = None, sealing: Sealing = None) -> Send:
        """The dead letter of a record (or, with ``key``, of the entity whose timer failed on this
        tick): the reason and the original bytes. Sent with the batch's outputs, so the offset
        only moves past a record once its dead letter is durable. With G1's sealing the reason
        (which may quote the input: a pydantic message shows an invalid email) is sealed under
        ``sealing``, else under the key the record's bytes name; its kind stays readable."""
        msg = event.message
        if len(reason) > MAX_LETTER_REASON_CHARS:  # within LETTER_RESERVE_BYTES, whatever the text
            reason = reason[: MAX_LETTER_REASON_CHARS - 1] + "…"
        value = _value_bytes(event)
        letter = {
            "reason": reason,
            "topic": msg.topic,
            "partition": msg.partition,
            "offset": msg.offset,
            "key": key if key is not None else (msg.key or b"").decode("utf-8", "replace"),
            "original_base64": base64.b64encode(value).decode(),
        }
        if len(letter["original_base64"]) > self.settings.max_record_bytes - LETTER_RESERVE_BYTES:
            letter["original_base64"] = ""  # R6: the letter must fit; the original stays at its offset
            letter["original_omitted"] = f"{len(value)} bytes: read it at its offset"
        if self.keys is not None:
            if sealing is None:
                sealing = self._sealing_of_bytes(value)
            letter = seal_letter(letter, sealing, os.urandom(NONCE_BYTES))
        return (self.deadletter, key.encode() if key is not None else msg.key, orjson.dumps(letter))

    def _sealing_of_bytes(self, raw: bytes) -> Sealing:
        """The subject a record's bytes are sealed under (the first ref they name), if any."""
        assert self.keys is not None
        refs = sorted(refs_in(raw))
        return self._held(refs[0]) if refs else None


class _Subjects:
    """G1: the key refs and shops of a batch's inputs by state key, in log order, so a unit's
    writes are sealed under the newest subject among its key's inputs up to it."""

    def __init__(self, decoded: Sequence[tuple[Any, Decoded]]) -> None:
        self._refs: dict[str, list[tuple[int, str]]] = {}
        self._shops: dict[str, list[tuple[int, str]]] = {}
        for position, (_, item) in enumerate(decoded):
            if item.ref is not None:
                self._refs.setdefault(item.key, []).append((position, item.ref))
            if item.shop:
                self._shops.setdefault(item.key, []).append((position, item.shop))

    @staticmethod
    def _newest(seen: list[tuple[int, str]] | None, position: int) -> str | None:
        found = None
        for at, value in seen or ():
            if at > position:
                break
            found = value
        return found

    def refs(self, key: str, position: int) -> list[str]:
        """The refs of the key's sealed inputs up to ``position``, newest first."""
        return [ref for at, ref in reversed(self._refs.get(key, [])) if at <= position]

    def shop(self, key: str, position: int) -> str | None:
        return self._newest(self._shops.get(key), position)


def _shop_of(raw: bytes) -> str | None:
    """A delivery's shop from its bytes (None for what names none: a tick, a fact)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    shop = value.get("shop_domain") if isinstance(value, dict) else None
    return shop if isinstance(shop, str) else None


def _decode_deletion(event: Any, raw: bytes) -> Decoded:
    deletion = _parse(HubSpotContactDeletion.model_validate_json, raw, "not a HubSpot contact.deletion")
    return Decoded("", deletion)


def _decode_mapping(event: Any, raw: bytes) -> Decoded | None:
    mapping = contact_id_mapping(event.message.key, event.message.value)
    return Decoded("", mapping) if mapping is not None else None


def _decode_join_input(event: Any, raw: bytes) -> Decoded:
    key = (event.message.key or b"").decode()
    if orjson_kind(raw) == "contact-id":
        return Decoded(key, _parse(ContactIdMapping.model_validate_json, raw, "not a contact id mapping"))
    return Decoded(
        key, _parse(HubSpotContactDeletion.model_validate_json, raw, "not a HubSpot contact.deletion")
    )


def _decode_entity_input(name: str, event: Any, raw: bytes) -> Decoded | None:
    """An entity's input: a delivery forwarded as it came (sealed by the bridge, opened where its
    body is parsed), a tick, or a rule-built fact, which G1's sealing seals whole (opened here
    with the batch's keys; one whose subject's key is gone is dropped)."""
    ref: str | None = None
    shop: str | None = None
    if is_sealed_fact(raw):
        keys = current_keys()
        if keys is None:
            raise PoisonError(f"not a {name} input: a sealed fact (G1) and the worker was given no keys")
        opened = _parse(lambda b: open_fact(b, keys), raw, f"not a {name} input")
        if opened is None:
            return None  # its subject was redacted: nothing of it is left to act on
        raw, ref, shop = opened
    record = _parse(INPUTS[name].decode, raw, f"not a {name} input")
    if isinstance(record, Delivery):
        ref, shop = sealed_ref(record.body), record.shop_domain
    return Decoded((event.message.key or b"").decode(), record, ref=ref, shop=shop)


def _decode_report(event: Any, raw: bytes) -> Decoded:
    facts = _parse(DealFacts.model_validate_json, raw, "not a journey's deal facts")
    return Decoded((event.message.key or b"").decode(), facts)


def _value_bytes(event: Any) -> bytes:
    raw = event.message.value
    return raw if isinstance(raw, bytes) else bytes(raw or b"")


T = TypeVar("T")


def _parse(parse: Callable[[bytes], T], raw: bytes, what: str) -> T:
    try:
        return parse(raw)
    except (ValidationError, ValueError) as exc:
        raise PoisonError(f"{what}: {exc}") from exc


def rocksdb_options(settings: Settings) -> dict[str, int]:
    """Each table partition's RocksDB memory, bounded by the settings (faust's defaults, 3 x 64
    MiB of memtables and a 2 GiB block cache per database, grew a worker past a GiB at 100,000
    checkouts; ``bench/README.md``). Other stores ignore these options."""
    return {
        "write_buffer_size": settings.rocksdb_write_buffer_mib << 20,
        "max_write_buffer_number": 2,
        "block_cache_size": settings.rocksdb_block_cache_mib << 20,
        "block_cache_compressed_size": settings.rocksdb_block_cache_mib << 20,  # python-rocksdb only
    }


def build(settings: Settings, keys: KeySource | None = None) -> Pipeline:
    return Pipeline(settings, keys)


def _noted(part: _Part) -> None:
    """Count and log what an acknowledged part did (``_Part.notes``)."""
    for note in part.notes:
        note()
