"""The faust application: topics, tables and agents. Agents only move data; rules decide.

Each input record is read as raw bytes, so a record that is not valid JSON, or whose body does not
fit its model, can be dead-lettered with its original bytes and the reason while the partition
keeps moving. Valid deliveries are de-duplicated by ``X-Shopify-Event-Id`` and handed to the pure
rules in ``streams.rules``; their commands go to ``hubspot.commands``, keyed by record.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from typing import Any

import faust
from pydantic import ValidationError

from schemas.commands import AnyCommand, command_key
from schemas.envelope import Delivery, Tick, decode_log_record
from schemas.shopify import Customer
from shopsync.config import Settings
from streams import codec
from streams.rules.contacts import contact_upsert
from streams.topics import TopicName, topic_name

log = logging.getLogger(__name__)

CONSUMED_TOPICS: tuple[TopicName, ...] = ("shopify.customers",)
"""The input topics the worker's agents read (its consumer group's lag is measured on these)."""


class Pipeline:
    """The faust app plus handles on its topics and tables (one per worker process)."""

    def __init__(self, settings: Settings) -> None:
        codec.register()
        self.settings = settings
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
            web_enabled=settings.web_port > 0,
            web_host="127.0.0.1",
            web_port=settings.web_port or 6066,
            web_bind="127.0.0.1",
            processing_guarantee="at_least_once",
            stream_wait_empty=True,
            autodiscover=False,
        )
        self.customers = self._source("shopify.customers")
        self.commands = self._sink("hubspot.commands")
        self.deadletter = self._sink("shopify.deadletter")
        self.seen_events = self.app.Table(
            "seen-events", default=None, partitions=settings.partitions, value_type=None
        )
        self.app.agent(self.customers, name="customers", concurrency=1)(self._customers_agent)

    def _source(self, name: TopicName) -> Any:
        return self.app.topic(
            topic_name(self.settings, name),
            key_serializer="raw",
            value_serializer="raw",
            partitions=self.settings.partitions,
            internal=False,
        )

    def _sink(self, name: TopicName) -> Any:
        return self._source(name)

    async def _customers_agent(self, stream: Any) -> AsyncIterator[None]:
        async for event in stream.events():
            record = await self._decode(event)
            if isinstance(record, Delivery) and self._first_time(record):
                try:
                    commands = self._decide_customer(record)
                except (ValidationError, ValueError) as exc:
                    await self._dead_letter(event, f"body does not fit {record.topic}: {exc}")
                    continue
                for command in commands:
                    await self._send(command)
            yield None

    def _decide_customer(self, delivery: Delivery) -> list[AnyCommand]:
        body = delivery.parse_body()
        if isinstance(body, Customer):
            upsert = contact_upsert(body)
            return [upsert] if upsert is not None else []
        return []  # customers/delete: C3, the HubSpot contact stays.

    def _first_time(self, delivery: Delivery) -> bool:
        """True the first time an event id is seen (duplicates change nothing, emit nothing)."""
        if self.seen_events.get(delivery.event_id) is not None:
            return False
        self.seen_events[delivery.event_id] = delivery.event_time.timestamp()
        return True

    async def _decode(self, event: Any) -> Delivery | Tick | None:
        raw = event.message.value
        try:
            return decode_log_record(raw if isinstance(raw, bytes) else bytes(raw or b""))
        except (ValidationError, ValueError) as exc:
            await self._dead_letter(event, f"not a valid record: {exc}")
            return None

    async def _dead_letter(self, event: Any, reason: str) -> None:
        msg = event.message
        log.warning("dead-lettering %s[%s]@%s: %s", msg.topic, msg.partition, msg.offset, reason[:200])
        raw = msg.value if isinstance(msg.value, bytes) else b""
        letter = {
            "reason": reason,
            "topic": msg.topic,
            "partition": msg.partition,
            "offset": msg.offset,
            "key": (msg.key or b"").decode("utf-8", "replace"),
            "original_base64": base64.b64encode(raw).decode(),
        }
        await self.deadletter.send(key=msg.key, value=letter, value_serializer="orjson")

    async def _send(self, command: AnyCommand) -> None:
        await self.commands.send(
            key=command_key(command).encode(),
            value=command.model_dump(mode="json"),
            value_serializer="orjson",
        )


def build(settings: Settings) -> Pipeline:
    return Pipeline(settings)
