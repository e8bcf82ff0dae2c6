"""The faust application: topics, tables and agents. Agents only move data; rules decide.

Two stages, because Shopify's topics are keyed by Shopify ids and the rules need other keys:

1. *Routers* read the Shopify topics as raw bytes. A record that is not valid JSON, not an
   envelope, or whose body does not fit its model goes to ``shopify.deadletter`` with the reason
   and its original bytes, and the partition keeps moving. A valid delivery is forwarded, as it
   is, to the worker's internal topics under the keys the rules use: the contact's email and
   the purchase journey (``streams.rules.keys``). ``orders/delete`` carries only the order id, so
   the orders router remembers each order's journey in a table.
2. *Entity agents* (contacts, journeys; products read their Shopify topic directly) keep each
   entity's state in a table, call the pure rules (``streams.rules``) and send the commands.

Time is data: each internal partition's "now" is the newest instant it has seen, in a delivery's
``received_at`` or a tick's ``at``. The ticker appends ticks to every partition of the internal
topics; an agent that reads one fires the timers due in that partition, inside normal stream
processing, so table writes and changelogs work as for any event.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import faust
import orjson
from aiokafka.errors import KafkaError
from faust.exceptions import FaustError
from pydantic import BaseModel, ValidationError

from schemas.commands import AnyCommand, command_key, encode_command
from schemas.envelope import Delivery, HubSpotContactDeletion, Tick, decode_log_record, encode
from schemas.problems import FieldProblem, FieldProblemRecord
from schemas.reasons import reason_kind
from shopsync.config import LETTER_RESERVE_BYTES, Settings
from streams import codec, faust_fixes
from streams.deletions import (
    ContactIdMapping,
    HubSpotObjectState,
    contact_id_mapping,
    on_deletion,
    on_mapping,
)
from streams.entities import ENTITIES, Decided, EntityKind, instant_of
from streams.partition_time import AS_OF, PartitionTime, clock_key, clock_row
from streams.routing import OrderMemory, UnroutableError, route
from streams.rules import products
from streams.rules.common import RuleConfig
from streams.rules.keys import normalize_email
from streams.topics import (
    INTERNAL_TOPICS,
    TIMER_TOPICS,
    TOPICS,
    TopicName,
    internal_topic,
    is_size_error,
    size_configs,
    topic_name,
)

log = logging.getLogger(__name__)

ROUTED_TOPICS: tuple[TopicName, ...] = (
    "shopify.customers",
    "shopify.orders",
    "shopify.checkouts",
    "shopify.carts",
    "hubspot.events",
)
CONSUMED_TOPICS: tuple[TopicName, ...] = (*ROUTED_TOPICS, "shopify.products", "hubspot.ids")
"""The Shopify/HubSpot topics the worker's agents read (its consumer group's lag is measured on
these and on the internal topics)."""

S = TypeVar("S", bound=BaseModel)
KAFKA_RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)
EXIT_KAFKA_FAILED = 75  # EX_TEMPFAIL: restart me
STALL_CHECK_S = 5.0  # how often the worker looks for partitions faust stopped feeding
MAX_LETTER_REASON_CHARS = 8_000  # at most 4 bytes a character (JSON-escaped: 6): inside the reserve


class PoisonError(ValueError):
    """A record that cannot be processed; it goes to the dead-letter topic with this reason."""


class Pipeline:
    """The faust app plus handles on its topics and tables (one per worker process)."""

    def __init__(self, settings: Settings) -> None:
        codec.register()
        faust_fixes.install(frozenset(topic_name(settings, spec.name) for spec in TOPICS if spec.compacted))
        self.healer = faust_fixes.StallHealer()
        self.settings = settings
        self.config: RuleConfig = settings.rule_config()
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
            producer_max_request_size=settings.kafka_message_bytes(),  # R6: sizes agree end to end
            consumer_max_fetch_size=settings.kafka_message_bytes(),
            consumer_auto_offset_reset="earliest",
            broker_session_timeout=settings.session_timeout_s,
            broker_heartbeat_interval=max(settings.session_timeout_s / 5, 0.5),
            broker_rebalance_timeout=settings.session_timeout_s,
            broker_commit_interval=1.0,
            web_enabled=settings.web_port > 0,
            web_host="127.0.0.1",
            web_port=settings.web_port or 6066,
            web_bind="127.0.0.1",
            processing_guarantee="at_least_once",
            stream_wait_empty=True,
            autodiscover=False,
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
                extra_topic_configs=size_configs(settings),
            )  # fmt: skip

        self.order_journeys = table("order-journeys")
        self.hubspot_objects = table("hubspot-objects")
        self.tables: dict[str, Any] = {kind.name: table(kind.name) for kind in ENTITIES}
        self.product_states = table("products")
        # Stream time and timer indexes per partition, derived from the tables after each
        # assignment and dropped on every rebalance (streams.partition_time).
        self.time: dict[str, PartitionTime] = {
            kind.name: PartitionTime(functools.partial(kind.due_of, config=self.config)) for kind in ENTITIES
        }
        self.app.on_partitions_revoked.connect(self._on_revoked)
        self.app.on_partitions_assigned.connect(self._on_assigned)

        for name in ROUTED_TOPICS:
            self._agent(self.sources[name], f"route-{name}", self._route)
        self._agent(self.sources["shopify.products"], "products", self._product_event)
        self._agent(self.sources["hubspot.ids"], "route-hubspot.ids", self._route_id)
        self._agent(self.internal["hubspot-objects"], "hubspot-objects", self._hubspot_object_event)
        for kind in ENTITIES:
            self._agent(self.internal[kind.name], kind.name, functools.partial(self._entity_event, kind))
        self.app.timer(STALL_CHECK_S, name="stall-healer")(self._heal_stalls)
        if settings.tick_interval_s > 0:
            self.app.timer(settings.tick_interval_s, on_leader=True, name="ticker")(self._live_tick)

    def _agent(self, topic: Any, name: str, handle: Callable[[Any], Awaitable[None]]) -> None:
        """An agent (concurrency 1) that handles each event in turn. Whatever the handling raises
        ends as a dead letter with its reason and the stream moves on (R2): faust acknowledges
        the event an agent crashed on and restarts the agent after it, so an exception let
        through would skip the record silently. Kafka's own failures are not the record's fault:
        the handling is retried (it is idempotent), and if Kafka stays unusable the process
        exits at once, without acknowledging, so its replacement handles the record again."""

        async def agent(stream: Any) -> AsyncIterator[None]:
            async for event in stream.events():
                await self._handle_safely(event, handle)
                yield None

        self.app.agent(topic, name=name, concurrency=1)(agent)

    def _raw_topic(self, name: str) -> Any:
        return self.app.topic(
            name, key_serializer="raw", value_serializer="raw", partitions=self.settings.partitions
        )

    async def _handle_safely(self, event: Any, handle: Callable[[Any], Awaitable[None]]) -> None:
        """Handle the event; what cannot be handled is dead-lettered. The dead letter's send is
        under the same Kafka retries as the handling: the event is acknowledged when this returns,
        so it may only return once the record's outcome (forwards, or its dead letter) is durable."""
        letter: str | None = None
        for attempt in range(len(KAFKA_RETRY_DELAYS_S) + 1):
            try:
                if letter is None:
                    try:
                        await handle(event)
                        return
                    except PoisonError as exc:
                        letter = str(exc)
                    except (KafkaError, FaustError) as exc:
                        if not is_size_error(exc):
                            raise
                        # the record's fault, not Kafka's: retrying cannot help (R6)
                        letter = f"too large to forward: {type(exc).__name__}: {exc}"
                    except Exception as exc:  # a bug or a record no rule foresaw: never skip it
                        log.error(
                            "handling a record failed (%s: %s); dead-lettering it",
                            type(exc).__name__, reason_kind(str(exc)),
                        )  # fmt: skip
                        letter = f"{type(exc).__name__} while handling the record: {exc}"
                await self._dead_letter(event, letter)
                return
            except (KafkaError, FaustError) as exc:
                if attempt == len(KAFKA_RETRY_DELAYS_S):
                    log.critical(
                        "Kafka kept failing while handling a record (%s); exiting without "
                        "acknowledging it, so the next worker handles it again",
                        type(exc).__name__,
                    )
                    os._exit(EXIT_KAFKA_FAILED)
                log.warning("Kafka failed while handling a record (%s); retrying", type(exc).__name__)
                await asyncio.sleep(KAFKA_RETRY_DELAYS_S[attempt])

    # ---- rebalance: stream time and timer indexes are derived again after every rebalance ----

    async def _on_revoked(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        self._forget()

    async def _on_assigned(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        self._forget()

    def _forget(self) -> None:
        for time_ in self.time.values():
            time_.reset()
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

    # ---- stage 1: routers ----

    async def _route(self, event: Any) -> None:
        raw = _value_bytes(event)
        topic = event.message.topic
        if topic == topic_name(self.settings, "hubspot.events"):
            await self._route_deletion(raw)
            return
        record = _parse(decode_log_record, raw, "not a valid record")
        if isinstance(record, Tick):
            return  # time is carried by the internal topics; a tick here has nothing to fire
        body, problems = _parse(
            lambda _: record.parse_body_with_problems(), raw, f"body does not fit {record.topic}"
        )
        order_id = str(getattr(body, "id", "")) if record.resource == "orders" else ""
        stored = self.order_journeys.get(order_id) if order_id else None
        memory = OrderMemory(
            journey=stored.get("journey"),
            pending_delete=stored["pending_delete"].encode() if stored.get("pending_delete") else None,
            email=stored.get("email"),
        ) if stored else None  # fmt: skip
        try:
            routed = route(record, body, raw, memory)
        except UnroutableError as exc:
            raise PoisonError(str(exc)) from exc
        forwards = [(self.internal[name], key.encode(), raw) for name, key in routed.targets]
        forwards += [
            (self.internal[name], key.encode(), pending) for (name, key), pending in routed.also_forward
        ]
        forwards += self._problem_records(event, record, problems)
        await self._send([], forwards)  # acknowledged before the order memory moves on
        if routed.memory is not None:
            self.order_journeys[order_id] = {
                "journey": routed.memory.journey,
                "pending_delete": routed.memory.pending_delete.decode()
                if routed.memory.pending_delete
                else None,
                "email": routed.memory.email,
            }

    def _problem_records(
        self, event: Any, record: Delivery, problems: tuple[FieldProblem, ...]
    ) -> list[tuple[Any, bytes, bytes]]:
        """The delivery's field problems (R1) as records for ``shopify.field-problems``: sent with
        the delivery's forwards, so they are durable before its offset can be committed."""
        msg = event.message
        key = (msg.key or b"").decode("utf-8", "replace")
        return [
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

    # ---- HubSpot deletions: joined with the writer's id map by HubSpot object id (C4, R5) ----

    async def _route_deletion(self, raw: bytes) -> None:
        deletion = _parse(HubSpotContactDeletion.model_validate_json, raw, "not a HubSpot contact.deletion")
        email = normalize_email(deletion.email)
        if email is not None:  # appended with its email (by an older bridge): straight to the contact
            await self._send([], [(self.internal["contacts"], email.encode(), encode(deletion))])
            return
        await self._send([], [(self.internal["hubspot-objects"], str(deletion.object_id).encode(), raw)])

    async def _route_id(self, event: Any) -> None:
        """The writer's id map: a contact's HubSpot id goes on to the join, keyed by that id."""
        mapping = contact_id_mapping(event.message.key, event.message.value)
        if mapping is not None:
            await self._send(
                [], [(self.internal["hubspot-objects"], str(mapping.object_id).encode(), encode(mapping))]
            )

    async def _hubspot_object_event(self, event: Any) -> None:
        raw = _value_bytes(event)
        key = event.message.key.decode()
        stored = self.hubspot_objects.get(key)
        state = HubSpotObjectState.model_validate(stored) if stored is not None else HubSpotObjectState()
        if orjson.loads(raw).get("kind") == "contact-id":
            mapping = _parse(ContactIdMapping.model_validate_json, raw, "not a contact id mapping")
            state, released = on_mapping(state, mapping)
        else:
            deletion = _parse(
                HubSpotContactDeletion.model_validate_json, raw, "not a HubSpot contact.deletion"
            )
            state, released = on_deletion(state, deletion)
        forwards = [(self.internal["contacts"], (d.email or "").encode(), encode(d)) for d in released]
        await self._send([], forwards)
        self.hubspot_objects[key] = state.model_dump(mode="json")

    # ---- stage 2: entity agents (contacts, journeys: one code path, streams.entities) ----

    async def _entity_event(self, kind: EntityKind, event: Any) -> None:
        record = _parse(kind.inputs.validate_json, _value_bytes(event), f"not a {kind.name} input")
        partition = event.message.partition
        table = self.tables[kind.name]
        at = instant_of(record)
        now, moved = self._time(kind, partition).advance(partition, at)
        wrote_state = False
        try:
            if isinstance(record, Tick):
                wrote_state = await self._fire_due(kind, event, now) > 0
                return
            key = event.message.key.decode()
            state = self._load_entity(kind, key) or kind.new(key)
            # Decided at its own instant, not the partition's clock: the re-keyed topics interleave
            # three routers, so which records reached the partition first is timing, not data.
            outcome = _guard(lambda: kind.decide(state, record, at, self.config), record)
            await self._commit(kind, key, partition, now, outcome)
            wrote_state = True
        finally:
            if moved and not wrote_state:  # the clock moved with this input: keep that durable too
                table[clock_key(partition)] = clock_row(now, partition)

    def _load_entity(self, kind: EntityKind, key: str) -> BaseModel | None:
        raw = self.tables[kind.name].get(key)
        if raw is None:
            return None
        try:
            return kind.model.model_validate(raw)
        except ValidationError as exc:
            raise PoisonError(f"the stored {kind.name} state of this key cannot be read: {exc}") from exc

    async def _commit(
        self, kind: EntityKind, key: str, partition: int, now: datetime, outcome: Decided
    ) -> None:
        """Send, then store: the outputs are acknowledged before the state that says they were
        sent (see :meth:`_send`); the state carries the stream time it was decided at."""
        facts = [(self.internal[name], fact_key, value) for name, fact_key, value in outcome.facts]
        await self._send(outcome.commands, facts)
        raw = outcome.state.model_copy(update={"partition": partition}).model_dump(mode="json")
        raw[AS_OF] = now.isoformat()
        self.tables[kind.name][key] = raw
        self._time(kind, partition).index(partition).set(key, kind.next_due(outcome.state, self.config))

    def _time(self, kind: EntityKind, partition: int) -> PartitionTime:
        """The partition's clock and timer index, derived from the table on first use after an
        assignment (one scan; the table is fully recovered before any event is handed to us)."""
        keeper = self.time[kind.name]
        if not keeper.ready(partition):
            started = time.monotonic()
            pending = keeper.rebuild(partition, self.tables[kind.name].items())
            log.info(
                "stream time and timer index for %s[%d]: %d pending, derived in %.3f s",
                kind.name, partition, pending, time.monotonic() - started,
            )  # fmt: skip
        return keeper

    async def _fire_due(self, kind: EntityKind, event: Any, now: datetime) -> int:
        """Fire the timers of the tick's partition due by ``now``; return how many states were
        written. A state that cannot fire (unreadable, or a rule raised) is dead-lettered with its
        key and stays in the table; the partition's other timers fire regardless (R2). If Kafka
        fails half-way the index is dropped, so the retry derives it again from the table and
        loses none of the timers already taken off it."""
        partition = event.message.partition
        keeper = self._time(kind, partition)
        fired = 0
        try:
            for key in keeper.index(partition).pop_due(now):
                try:
                    state = self._load_entity(kind, key)
                    if state is None:
                        continue
                    outcome = kind.on_tick(state, now, self.config)
                except (KafkaError, FaustError):
                    raise
                except Exception as exc:
                    await self._dead_letter(
                        event, f"a {kind.name} timer could not fire: {type(exc).__name__}: {exc}", key=key
                    )
                    continue
                try:
                    await self._commit(kind, key, partition, now, outcome)
                except (KafkaError, FaustError) as exc:
                    if not is_size_error(exc):
                        raise
                    # this entity's output cannot be sent; the partition's other timers still fire
                    await self._dead_letter(
                        event, f"a {kind.name} timer's output is too large: {exc}", key=key
                    )
                    continue
                fired += 1
        except BaseException:
            keeper.reset()
            raise
        return fired

    async def _product_event(self, event: Any) -> None:
        record = _parse(decode_log_record, _value_bytes(event), "not a valid record")
        if isinstance(record, Tick):
            return
        body, problems = _parse(
            lambda _: record.parse_body_with_problems(), b"", f"body does not fit {record.topic}"
        )
        product_id = int(getattr(body, "id", 0))
        key = str(product_id)
        state = self._load(
            self.product_states,
            key,
            products.ProductState,
            lambda: products.ProductState(product_id=product_id),
        )
        outcome = products.decide(state, record, record.received_at, self.config)
        await self._send(outcome.commands, self._problem_records(event, record, problems))
        self.product_states[key] = outcome.state.model_copy(
            update={"partition": event.message.partition}
        ).model_dump(mode="json")

    # ---- time ----

    async def _live_tick(self) -> None:
        """The live ticker: a wall-clock tick to every partition of the timer topics. Every
        worker's leader runs one; two tickers at once only make more ticks, which is harmless
        (stream time is the newest instant seen, and firing is idempotent)."""
        value = encode(Tick(at=datetime.now(UTC)))
        for name in TIMER_TOPICS:
            for partition in range(self.settings.partitions):
                await self.internal[name].send(key=b"tick", value=value, partition=partition)

    # ---- plumbing ----

    def _load(self, table: Any, key: str, model: type[S], default: Callable[[], S | None]) -> S | Any:
        raw = table.get(key)
        return model.model_validate(raw) if raw is not None else default()

    async def _send(
        self, commands: list[AnyCommand], facts: list[tuple[Any, bytes, bytes]] | None = None
    ) -> None:
        """Send the commands (and facts) and wait until Kafka acknowledged them, before the caller
        stores the new state. The other order could lose them: a crash after the table's changelog
        was written but before the commands were would leave a state that says "already sent".
        This way a crash can only repeat commands, and repeats change nothing."""
        sent = [
            await self.commands.send(key=command_key(command).encode(), value=encode_command(command))
            for command in commands
        ]
        sent += [await topic.send(key=key, value=value) for topic, key, value in facts or []]
        if sent:
            await asyncio.gather(*sent)

    async def _dead_letter(self, event: Any, reason: str, key: str | None = None) -> None:
        """Append the record (or, with ``key``, the entity whose timer failed on this tick) to the
        dead-letter topic with the reason and the original bytes, and wait for the ack: the
        offset may only move past a record once its dead letter is durable."""
        msg = event.message
        log.warning("dead-lettering %s[%s]@%s: %s", msg.topic, msg.partition, msg.offset, reason_kind(reason))
        if len(reason) > MAX_LETTER_REASON_CHARS:  # within LETTER_RESERVE_BYTES, whatever the text
            reason = reason[: MAX_LETTER_REASON_CHARS - 1] + "…"
        letter = {
            "reason": reason,
            "topic": msg.topic,
            "partition": msg.partition,
            "offset": msg.offset,
            "key": key if key is not None else (msg.key or b"").decode("utf-8", "replace"),
            "original_base64": base64.b64encode(_value_bytes(event)).decode(),
        }
        if len(letter["original_base64"]) > self.settings.max_record_bytes - LETTER_RESERVE_BYTES:
            letter["original_base64"] = ""  # R6: the letter must fit; the original stays at its offset
            letter["original_omitted"] = f"{len(_value_bytes(event))} bytes: read it at its offset"
        sent = await self.deadletter.send(
            key=key.encode() if key is not None else msg.key, value=orjson.dumps(letter)
        )
        await sent


def _value_bytes(event: Any) -> bytes:
    raw = event.message.value
    return raw if isinstance(raw, bytes) else bytes(raw or b"")


T = TypeVar("T")


def _parse(parse: Callable[[bytes], T], raw: bytes, what: str) -> T:
    try:
        return parse(raw)
    except (ValidationError, ValueError) as exc:
        raise PoisonError(f"{what}: {exc}") from exc


def _guard(run: Callable[[], T], record: Delivery) -> T:
    try:
        return run()
    except (ValidationError, ValueError) as exc:
        raise PoisonError(f"body does not fit {record.topic}: {exc}") from exc


def build(settings: Settings) -> Pipeline:
    return Pipeline(settings)
