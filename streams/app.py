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
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import faust
import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from schemas.commands import AnyCommand, command_key, encode_command
from schemas.envelope import Delivery, HubSpotContactDeletion, Tick, decode_log_record, encode
from shopsync.config import Settings
from streams import codec
from streams.routing import OrderMemory, UnroutableError, route
from streams.rules import contacts, journeys, products
from streams.rules.common import RuleConfig
from streams.rules.journeys import FirstPurchase
from streams.rules.keys import normalize_email
from streams.timers import TimerIndex
from streams.topics import TopicName, internal_topic, topic_name

log = logging.getLogger(__name__)

ROUTED_TOPICS: tuple[TopicName, ...] = (
    "shopify.customers",
    "shopify.orders",
    "shopify.checkouts",
    "shopify.carts",
    "hubspot.events",
)
CONSUMED_TOPICS: tuple[TopicName, ...] = (*ROUTED_TOPICS, "shopify.products")
"""The Shopify/HubSpot topics the worker's agents read (its consumer group's lag is measured on
these and on the internal topics)."""

ContactInput = Delivery | Tick | HubSpotContactDeletion
JourneyInput = Delivery | Tick | FirstPurchase
_CONTACT_INPUT: TypeAdapter[ContactInput] = TypeAdapter(ContactInput)
_JOURNEY_INPUT: TypeAdapter[JourneyInput] = TypeAdapter(JourneyInput)
S = TypeVar("S", bound=BaseModel)


class PoisonError(ValueError):
    """A record that cannot be processed; it goes to the dead-letter topic with this reason."""


class Pipeline:
    """The faust app plus handles on its topics and tables (one per worker process)."""

    def __init__(self, settings: Settings) -> None:
        codec.register()
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
        self.internal = {
            name: self._raw_topic(internal_topic(settings, name)) for name in ("contacts", "journeys")
        }
        self.commands = self._raw_topic(topic_name(settings, "hubspot.commands"))
        self.deadletter = self._raw_topic(topic_name(settings, "shopify.deadletter"))

        def table(name: str) -> Any:
            return self.app.Table(name, default=None, partitions=settings.partitions)

        self.order_journeys = table("order-journeys")
        self.contact_states = table("contacts")
        self.journey_states = table("journeys")
        self.product_states = table("products")
        # In-memory indexes over the tables, per partition (rebuilt after each assignment).
        self.indexes: dict[tuple[str, int], TimerIndex] = {}
        self.stream_time: dict[tuple[str, int], datetime] = {}
        self.app.on_partitions_revoked.connect(self._on_revoked)
        self.app.on_partitions_assigned.connect(self._on_assigned)

        for name in ROUTED_TOPICS:
            self._agent(self.sources[name], f"route-{name}", self._route)
        self._agent(self.sources["shopify.products"], "products", self._product_event)
        self._agent(self.internal["contacts"], "contacts", self._contact_event)
        self._agent(self.internal["journeys"], "journeys", self._journey_event)
        if settings.tick_interval_s > 0:
            self.app.timer(settings.tick_interval_s, on_leader=True, name="ticker")(self._live_tick)

    def _agent(self, topic: Any, name: str, handle: Callable[[Any], Awaitable[None]]) -> None:
        """An agent (concurrency 1) that handles each event in turn; a poison event is
        dead-lettered with the reason and the stream moves on."""

        async def agent(stream: Any) -> AsyncIterator[None]:
            async for event in stream.events():
                try:
                    await handle(event)
                except PoisonError as exc:
                    await self._dead_letter(event, str(exc))
                yield None

        self.app.agent(topic, name=name, concurrency=1)(agent)

    def _raw_topic(self, name: str) -> Any:
        return self.app.topic(
            name, key_serializer="raw", value_serializer="raw", partitions=self.settings.partitions
        )

    # ---- rebalance: drop indexes of partitions this worker no longer (or newly) owns ----

    async def _on_revoked(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        self._forget({tp.partition for tp in (args[0] if args else kwargs.get("revoked", ()))})

    async def _on_assigned(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        self._forget({tp.partition for tp in (args[0] if args else kwargs.get("assigned", ()))})

    def _forget(self, partitions: set[int]) -> None:
        for key in [k for k in self.indexes if k[1] in partitions]:
            del self.indexes[key]

    # ---- stage 1: routers ----

    async def _route(self, event: Any) -> None:
        raw = _value_bytes(event)
        topic = event.message.topic
        if topic == topic_name(self.settings, "hubspot.events"):
            deletion = _parse(
                HubSpotContactDeletion.model_validate_json, raw, "not a HubSpot contact.deletion"
            )
            email = normalize_email(deletion.email)
            if email is None:
                raise PoisonError("contact.deletion without an email: cannot tell which contact (C4)")
            await self._send([], [(self.internal["contacts"], email.encode(), raw)])
            return
        record = _parse(decode_log_record, raw, "not a valid record")
        if isinstance(record, Tick):
            return  # time is carried by the internal topics; a tick here has nothing to fire
        body = _parse(lambda _: record.parse_body(), raw, f"body does not fit {record.topic}")
        order_id = str(getattr(body, "id", "")) if record.resource == "orders" else ""
        stored = self.order_journeys.get(order_id) if order_id else None
        memory = OrderMemory(
            journey=stored.get("journey"),
            pending_delete=stored["pending_delete"].encode() if stored.get("pending_delete") else None,
        ) if stored else None  # fmt: skip
        try:
            routed = route(record, body, raw, memory)
        except UnroutableError as exc:
            raise PoisonError(str(exc)) from exc
        forwards = [(self.internal[name], key.encode(), raw) for name, key in routed.targets]
        forwards += [
            (self.internal["journeys"], journey.encode(), delete) for journey, delete in routed.also_forward
        ]
        await self._send([], forwards)  # acknowledged before the order memory moves on
        if routed.memory is not None:
            self.order_journeys[order_id] = {
                "journey": routed.memory.journey,
                "pending_delete": routed.memory.pending_delete.decode()
                if routed.memory.pending_delete
                else None,
            }

    # ---- stage 2: entity agents ----

    async def _contact_event(self, event: Any) -> None:
        record = _parse(_CONTACT_INPUT.validate_json, _value_bytes(event), "not a contact input")
        partition = event.message.partition
        now = self._advance("contacts", partition, _instant(record))
        table = self.contact_states
        if isinstance(record, Tick):
            await self._fire_due("contacts", partition, now, self._fire_contact)
            return
        email = event.message.key.decode()
        state = self._load(table, email, contacts.ContactState, lambda: contacts.ContactState(email=email))
        if isinstance(record, HubSpotContactDeletion):
            outcome = contacts.decide_deletion(state, record, now, self.config)
        else:
            outcome = _guard(lambda: contacts.decide(state, record, now, self.config), record)
        await self._commit_contact(email, partition, outcome)

    async def _fire_contact(self, email: str, partition: int, now: datetime) -> None:
        state = self._load(self.contact_states, email, contacts.ContactState, lambda: None)
        if state is not None:
            await self._commit_contact(email, partition, contacts.on_tick(state, now, self.config))

    async def _commit_contact(self, email: str, partition: int, outcome: contacts.Outcome) -> None:
        facts = [(self.internal["journeys"], fact.journey.encode(), encode(fact)) for fact in outcome.facts]
        await self._send(outcome.commands, facts)
        state = outcome.state.model_copy(update={"partition": partition})
        self.contact_states[email] = state.model_dump(mode="json")
        self._index("contacts", partition).set(email, contacts.next_due(state, self.config))

    async def _journey_event(self, event: Any) -> None:
        record = _parse(_JOURNEY_INPUT.validate_json, _value_bytes(event), "not a journey input")
        partition = event.message.partition
        now = self._advance("journeys", partition, _instant(record))
        if isinstance(record, Tick):
            await self._fire_due("journeys", partition, now, self._fire_journey)
            return
        key = event.message.key.decode()
        state = self._load(
            self.journey_states, key, journeys.JourneyState, lambda: journeys.JourneyState(key=key)
        )
        if isinstance(record, FirstPurchase):
            outcome = journeys.decide_first_purchase(state, record, now, self.config)
        else:
            outcome = _guard(lambda: journeys.decide(state, record, now, self.config), record)
        await self._commit_journey(key, partition, outcome)

    async def _fire_journey(self, key: str, partition: int, now: datetime) -> None:
        state = self._load(self.journey_states, key, journeys.JourneyState, lambda: None)
        if state is not None:
            await self._commit_journey(key, partition, journeys.on_tick(state, now, self.config))

    async def _commit_journey(self, key: str, partition: int, outcome: journeys.Outcome) -> None:
        await self._send(outcome.commands)
        state = outcome.state.model_copy(update={"partition": partition})
        self.journey_states[key] = state.model_dump(mode="json")
        self._index("journeys", partition).set(key, journeys.next_due(state, self.config))

    async def _product_event(self, event: Any) -> None:
        record = _parse(decode_log_record, _value_bytes(event), "not a valid record")
        if isinstance(record, Tick):
            return
        body = _parse(lambda _: record.parse_body(), b"", f"body does not fit {record.topic}")
        product_id = int(getattr(body, "id", 0))
        key = str(product_id)
        state = self._load(
            self.product_states,
            key,
            products.ProductState,
            lambda: products.ProductState(product_id=product_id),
        )
        outcome = products.decide(state, record, record.received_at, self.config)
        await self._send(outcome.commands)
        self.product_states[key] = outcome.state.model_copy(
            update={"partition": event.message.partition}
        ).model_dump(mode="json")

    # ---- time ----

    def _advance(self, name: str, partition: int, at: datetime) -> datetime:
        """The partition's stream time after seeing ``at`` (it never goes backwards)."""
        key = (name, partition)
        current = self.stream_time.get(key)
        now = at if current is None or at > current else current
        self.stream_time[key] = now
        return now

    def _index(self, name: str, partition: int) -> TimerIndex:
        """The partition's timer index, built from the table on first use after an assignment."""
        key = (name, partition)
        index = self.indexes.get(key)
        if index is None:
            index = self.indexes[key] = TimerIndex()
            started = time.monotonic()
            table, model, due = self._timer_source(name)
            for entity, raw in table.items():
                if raw is not None and raw.get("partition") == partition:
                    index.set(entity, due(model.model_validate(raw), self.config))
            log.info(
                "timer index for %s[%d]: %d pending, built in %.3f s",
                name,
                partition,
                len(index),
                time.monotonic() - started,
            )
        return index

    def _timer_source(self, name: str) -> tuple[Any, type[Any], Callable[[Any, RuleConfig], datetime | None]]:
        if name == "contacts":
            return self.contact_states, contacts.ContactState, contacts.next_due
        return self.journey_states, journeys.JourneyState, journeys.next_due

    async def _fire_due(
        self, name: str, partition: int, now: datetime, fire: Callable[[str, int, datetime], Any]
    ) -> None:
        for key in self._index(name, partition).pop_due(now):
            await fire(key, partition, now)

    async def _live_tick(self) -> None:
        """The live ticker: a wall-clock tick to every partition of the timer topics. Every
        worker's leader runs one; two tickers at once only make more ticks, which is harmless
        (stream time is the newest instant seen, and firing is idempotent)."""
        value = encode(Tick(at=datetime.now(UTC)))
        for topic in self.internal.values():
            for partition in range(self.settings.partitions):
                await topic.send(key=b"tick", value=value, partition=partition)

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

    async def _dead_letter(self, event: Any, reason: str) -> None:
        msg = event.message
        from shopsync.loss import reason_kind  # the reason without payload values (R7: logs name paths)

        log.warning("dead-lettering %s[%s]@%s: %s", msg.topic, msg.partition, msg.offset, reason_kind(reason))
        letter = {
            "reason": reason,
            "topic": msg.topic,
            "partition": msg.partition,
            "offset": msg.offset,
            "key": (msg.key or b"").decode("utf-8", "replace"),
            "original_base64": base64.b64encode(_value_bytes(event)).decode(),
        }
        await self.deadletter.send(key=msg.key, value=orjson.dumps(letter))


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


def _instant(record: Delivery | Tick | HubSpotContactDeletion | FirstPurchase) -> datetime:
    if isinstance(record, Tick | FirstPurchase):
        return record.at
    if isinstance(record, HubSpotContactDeletion):
        return record.occurred_at
    return record.received_at


def build(settings: Settings) -> Pipeline:
    return Pipeline(settings)
