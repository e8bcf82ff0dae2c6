"""What the dashboard shows, read from Kafka and the services' ``/metrics``, never from HubSpot.

- The eight reports (E1): the worker's ``reports`` table changelog (compacted: each journey's
  newest deal facts, ``streams.report_stage``), tailed from the beginning and folded by
  ``streams.rules.reports.compute``. Any number of workers write it; this reads all partitions.
- The S1 summary: contacts and products synced from the writer's id map (``hubspot.ids``: a live
  id is a record HubSpot holds; a tombstone or ``gone:`` is not; a contact whose id a HubSpot
  deletion in ``hubspot.events`` names is not either, C4), deals by stage from the facts.
- Pipeline health: dead letters and field problems by reason (their topics, counted as the loss
  report counts them, ``handlers.loss``); consumer lag per topic of the worker's and the
  writer's groups (committed offsets against end offsets); timers pending and HubSpot calls and
  429s, scraped from the worker's and the writer's ``/metrics``.

One consumer per topic (a topic that does not exist yet, such as the changelog before the worker
first ran, is looked for again on the next refresh). Nothing here holds a payload: keys are
counted, never kept, and emails never leave this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from config import Settings
from handlers.loss import LossReport, add_records
from streams.deletions import GONE_PREFIX
from streams.rules.keys import is_variant_key
from streams.rules.reports import DealFacts, compute, deals_by_stage
from streams.topics import (
    CONSUMED_TOPICS,
    INTERNAL_TOPICS,
    TopicName,
    changelog_topic,
    internal_topic,
    topic_name,
)

log = logging.getLogger(__name__)

HEALTH_TOPICS: tuple[TopicName, ...] = (
    "shopify.deadletter",
    "hubspot.commands.dlq",
    "shopify.field-problems",
)
PRODUCT_KEY = "products:shopify_product_key:"  # a product's id-map key (variants too, P5)


@dataclass
class _Tail:
    """One topic read from its beginning, for as long as the dashboard runs."""

    topic: str
    consumer: AIOKafkaConsumer | None = None
    records: int = 0


@dataclass
class DashboardData:
    """The dashboard's numbers, kept current by :meth:`refresh` (called every few seconds)."""

    settings: Settings
    facts: dict[str, DealFacts] = field(default_factory=dict)
    ids: dict[str, str | None] = field(default_factory=dict)  # natural key -> live HubSpot id
    deleted: set[str] = field(default_factory=set)  # HubSpot ids of contacts deleted in HubSpot
    loss: LossReport = field(default_factory=LossReport)
    lag: dict[str, dict[str, int]] = field(default_factory=dict)
    scraped: dict[str, dict[str, float] | None] = field(default_factory=dict)
    refreshed_at: float = 0.0
    _tails: dict[str, _Tail] = field(default_factory=dict)
    _admin: AIOKafkaAdminClient | None = None
    _meta: AIOKafkaConsumer | None = None
    _cache: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = self.settings
        self._tails = {
            "reports": _Tail(changelog_topic(s, "reports")),
            "ids": _Tail(topic_name(s, "hubspot.ids")),
            "events": _Tail(topic_name(s, "hubspot.events")),
            **{name: _Tail(topic_name(s, name)) for name in HEALTH_TOPICS},
        }

    async def close(self) -> None:
        if self._admin is not None:
            with contextlib.suppress(Exception):
                await self._admin.close()
        if self._meta is not None:
            with contextlib.suppress(Exception):
                await self._meta.stop()
        self._admin = self._meta = None
        for tail in self._tails.values():
            if tail.consumer is not None:
                with contextlib.suppress(Exception):
                    await tail.consumer.stop()
                tail.consumer = None

    # ---- reading ----

    async def refresh(self) -> None:
        """Read what is new on every topic, the groups' lag, and the services' metrics."""
        for name, tail in self._tails.items():
            try:
                for key, value in await self._poll(tail):
                    self._apply(name, key, value)
            except KafkaError as exc:
                log.warning("dashboard: reading %s failed (%s)", tail.topic, type(exc).__name__)
        with contextlib.suppress(KafkaError, OSError, asyncio.TimeoutError):
            self.lag = await self._lag()
        self.scraped = {
            "worker": await _scrape(self.settings.metrics_host, self.settings.worker_metrics_port),
            "writer": await _scrape(self.settings.metrics_host, self.settings.writer_metrics_port),
        }
        self.refreshed_at = time.time()
        self._cache.clear()

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        """The admin client (group offsets) and a consumer for metadata and end offsets."""
        if self._admin is None or self._meta is None:
            s = self.settings
            self._admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap_servers)
            self._meta = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap_servers)
            await self._admin.start()
            await self._meta.start()
            await self._meta._client.force_metadata_update()
        return self._admin, self._meta

    async def _poll(self, tail: _Tail) -> list[tuple[bytes | None, bytes | None]]:
        if tail.consumer is None:
            _, meta = await self._clients()
            parts = meta.partitions_for_topic(tail.topic)
            if not parts:  # not created yet (or not known yet): look again next time
                await meta._client.force_metadata_update()
                return []
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.settings.kafka_bootstrap_servers, enable_auto_commit=False,
                auto_offset_reset="earliest", max_partition_fetch_bytes=self.settings.kafka_message_bytes(),
                fetch_max_bytes=self.settings.kafka_message_bytes(),
            )  # fmt: skip
            await consumer.start()
            tps = [TopicPartition(tail.topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            tail.consumer = consumer
        out: list[tuple[bytes | None, bytes | None]] = []
        while True:
            batch = await tail.consumer.getmany(timeout_ms=100, max_records=5000)
            if not batch:
                return out
            for messages in batch.values():
                out += [(m.key, m.value) for m in messages]
            tail.records += sum(len(m) for m in batch.values())

    def _apply(self, name: str, key: bytes | None, value: bytes | None) -> None:
        text = (key or b"").decode("utf-8", "replace")
        if name == "reports":
            facts = _facts(value)
            if facts is None:
                self.facts.pop(_table_key(text), None)
            else:
                self.facts[facts.key] = facts
        elif name == "ids":
            live = value is not None and value != b"" and not value.startswith(GONE_PREFIX.encode())
            self.ids[text] = value.decode() if live and value is not None else None
        elif name == "events":
            event = _object(value)
            if event.get("kind") == "contact.deletion" and event.get("object_id") is not None:
                self.deleted.add(str(event["object_id"]))
        elif value is not None:
            add_records(self.loss, name, [value])

    async def _lag(self) -> dict[str, dict[str, int]]:
        """Per group (the worker's, the writer's), per topic: end offsets minus committed."""
        s = self.settings
        groups = {
            "worker": [topic_name(s, t) for t in CONSUMED_TOPICS]
            + [internal_topic(s, n) for n in INTERNAL_TOPICS],
            "writer": [topic_name(s, "hubspot.commands")],
        }  # fmt: skip
        group_ids = {"worker": s.app_id, "writer": s.writer_group()}
        admin, consumer = await self._clients()
        await consumer._client.force_metadata_update()
        out: dict[str, dict[str, int]] = {}
        for group, topics in groups.items():
            committed = await asyncio.wait_for(admin.list_consumer_group_offsets(group_ids[group]), 5)
            tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
            ends = await asyncio.wait_for(consumer.end_offsets(tps), 5) if tps else {}
            lag: Counter[str] = Counter()
            for tp, end in ends.items():
                done = committed.get(tp)
                lag[_short(s, tp.topic)] += max(0, end - (done.offset if done and done.offset >= 0 else 0))
            out[group] = dict(sorted(lag.items()))
        return out

    # ---- what the page and the JSON endpoints show ----

    def reports(self) -> dict[str, Any]:
        if "reports" not in self._cache:
            self._cache["reports"] = compute(self.facts.values())
        result: dict[str, Any] = self._cache["reports"]
        return result

    def summary(self) -> dict[str, Any]:
        """S1: contacts, deals (by stage), orders and carts (X1), companies (X2) and products (and
        variants, P5) HubSpot holds. Deals by stage come from the journeys' facts, so they are shown
        only where the mode writes deals."""
        held = Counter(
            key.split(":", 1)[0] for key, hubspot_id in self.ids.items()
            if hubspot_id is not None and not (key.startswith("contacts:") and hubspot_id in self.deleted)
        )  # fmt: skip
        variants = sum(1 for key, live in self.ids.items() if live and is_variant_id(key))
        stages = deals_by_stage(self.facts.values()) if self.settings.writes("deals") else {}
        return {
            "contacts": held.get("contacts", 0),
            "deals": sum(stages.values()),
            "deals_by_stage": stages,
            "orders": held.get("orders", 0),
            "carts": held.get("carts", 0),
            "companies": held.get("companies", 0),
            "products": held.get("products", 0) - variants,
            "variants": variants,
            "line_items": held.get("line_items", 0),
        }

    def health(self) -> dict[str, Any]:
        worker, writer = self.scraped.get("worker"), self.scraped.get("writer")
        return {
            "consumer_lag": self.lag,
            "writer_backlog": self.lag.get("writer", {}).get("hubspot.commands"),
            "dead_letters": _by_reason(self.loss.dead_letters),
            "field_problems": _by_reason(
                {(t, f"{path}  {reason}"): n for (t, path, reason), n in self.loss.field_problems.items()}
            ),
            "timers_pending": _pick(worker, "shopsync_worker_timers_pending"),
            "timers_fired": _pick(worker, "shopsync_worker_timers_fired_total"),
            "hubspot_calls": _pick(writer, "shopsync_hubspot_requests_total"),
            "hubspot_429s": _pick(writer, "shopsync_hubspot_rate_limited_total"),
            "metrics_reachable": {"worker": worker is not None, "writer": writer is not None},
            "refreshed_at": self.refreshed_at,
        }


def _table_key(text: str) -> str:
    """A faust changelog key is the table key as JSON-encoded bytes or as it is (raw)."""
    with contextlib.suppress(orjson.JSONDecodeError):
        decoded = orjson.loads(text)
        if isinstance(decoded, str):
            return decoded
    return text


def _object(value: bytes | None) -> dict[str, Any]:
    try:
        decoded = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _facts(value: bytes | None) -> DealFacts | None:
    if not value:
        return None
    try:
        return DealFacts.model_validate_json(value)
    except ValidationError:
        return None


def _short(settings: Settings, topic: str) -> str:
    """A topic's name without the deployment's prefix (and app id, for internal topics)."""
    name = topic.removeprefix(settings.topic_prefix)
    return name.removeprefix(f"{settings.app_id}.")


def _by_reason(counted: dict[tuple[str, str], int]) -> list[dict[str, Any]]:
    rows = [{"where": where, "reason": reason, "count": n} for (where, reason), n in counted.items()]
    return sorted(rows, key=lambda r: (-r["count"], r["where"], r["reason"]))


def _pick(samples: dict[str, float] | None, name: str) -> float | None:
    """The sum of a scraped metric's samples (None: the service's /metrics did not answer)."""
    if samples is None:
        return None
    return sum(v for k, v in samples.items() if k == name or k.startswith(name + "{"))


async def _scrape(host: str, port: int) -> dict[str, float] | None:
    """A service's /metrics as ``{"name{labels}": value}``; None when it does not answer."""
    if port <= 0:
        return None
    try:
        async with httpx.AsyncClient(timeout=2.0) as http:
            answer = await http.get(f"http://{host}:{port}/metrics")
    except httpx.HTTPError:
        return None
    if answer.status_code != 200:
        return None
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def is_variant_id(key: str) -> bool:
    """An id-map key of a variant synced as a product, of any shop (X3: ``<shop>/variant:<id>``)."""
    return key.startswith(PRODUCT_KEY) and is_variant_key(key.removeprefix(PRODUCT_KEY))
