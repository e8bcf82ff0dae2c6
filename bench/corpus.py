"""The benchmarks' records: a generated store made as large as real payloads, encoded once, copied.

Generating a million deliveries one by one (``devtools.samplestore.generate``, then the envelope)
costs about a minute, which would make the generator the thing measured. Instead a *template* of a
few thousand deliveries is generated and encoded once, and every further record is a byte-level
copy of a template record in which every identity carries a copy number: the 13-digit Shopify ids
and the 11-digit event ids get it as a leading digit string, the 32-hex cart and checkout tokens as
a prefix, e-mail domains as a prefix after the ``@``. So copy ``k`` is a store of its own (its own
customers, e-mails, carts, checkouts, orders, products and event ids, none a duplicate of another
copy's), and making it is one ``bytes.join`` per record.

Orders and checkouts are made as large as Shopify's own sample webhooks (``../shared/fixtures``:
an order is about 15 KB of JSON, the generator's about 4 KB): every top-level field and line-item
field the generator does not write is taken from the fixture, as a real shop sends them.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from config import Settings
from devtools.localrun import delivery_for
from devtools.samplestore import SampleEvent, generate, ts
from schemas.envelope import encode
from streams.topics import TopicName, route, topic_name

CANDIDATE = re.compile(rb"[0-9a-f]{11,}|@example\.com")
"""Runs of hex digits and e-mail domains: what :func:`is_identity` then sorts out."""


def identity_start(match: re.Match[bytes]) -> int | None:
    """Where a copy number goes in this candidate, if it is an identity: in front of the 13-digit
    Shopify ids (``samplestore.stable_id``), the 11-digit event ids (a second pass's start with
    2), the 32-hex cart, checkout and order tokens, and after the ``@`` of e-mail domains."""
    run = match.group()
    if run[:1] == b"@":
        return match.start() + 1
    shopify_id = len(run) == 13 and run[:1] == b"1"
    event_id = len(run) == 11 and run[:1] in b"12"
    if len(run) == 32 or (run.isdigit() and (shopify_id or event_id)):
        return match.start()
    return None


FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "shopify" / "webhooks"
TEMPLATE_CUSTOMERS = 2_000
SEND_BATCH = 5_000  # sends in flight before their acknowledgements are awaited


@dataclass(frozen=True)
class TemplateRecord:
    """One encoded delivery, cut where a copy number goes: ``copy(k)`` joins the pieces with it."""

    topic: TopicName
    key_parts: tuple[bytes, ...]
    value_parts: tuple[bytes, ...]

    def copy(self, mark: bytes) -> tuple[TopicName, bytes, bytes]:
        return self.topic, mark.join(self.key_parts), mark.join(self.value_parts)


@dataclass(frozen=True)
class Template:
    records: tuple[TemplateRecord, ...]
    value_bytes: int  # the encoded size of one copy
    realistic: bool  # orders and checkouts enlarged from Shopify's fixtures

    def __len__(self) -> int:
        return len(self.records)

    def copies(self, count: int, first_copy: int = 1) -> Iterator[tuple[TopicName, bytes, bytes]]:
        """``count`` records: whole copies of the template, the last one cut short."""
        copy = first_copy
        while count > 0:
            mark = str(copy).encode()
            for record in self.records[:count]:
                yield record.copy(mark)
            count -= len(self.records)
            copy += 1


def cut(raw: bytes) -> tuple[bytes, ...]:
    """``raw`` split at the start of every identity (so ``mark.join`` prefixes each with ``mark``)."""
    starts = [at for m in CANDIDATE.finditer(raw) if (at := identity_start(m)) is not None]
    return tuple(raw[a:b] for a, b in zip([0, *starts], [*starts, len(raw)], strict=True))


def fixture(topic: str) -> dict[str, Any] | None:
    path = FIXTURES / f"{topic.replace('/', '_')}.json"
    if not path.is_file():
        return None
    loaded = orjson.loads(path.read_bytes())
    return loaded if isinstance(loaded, dict) else None


def enlarge(topic: str, body: dict[str, Any], sample: dict[str, Any] | None) -> dict[str, Any]:
    """``body`` with every field of Shopify's sample it lacks (top level and line items)."""
    if sample is None or topic.endswith("/delete"):
        return body
    out = {**sample, **body}
    sample_lines = sample.get("line_items") or []
    if sample_lines and isinstance(body.get("line_items"), list):
        out["line_items"] = [{**sample_lines[0], **line} for line in body["line_items"]]
    return out


@functools.cache
def template(
    customers: int, seed: int = 1, topics: frozenset[str] | None = None, realistic: bool = True
) -> Template:
    """The generated store of ``customers`` as encoded deliveries in time order (only ``topics``,
    e.g. ``{"checkouts/create"}``, if given), ready to copy. Made once per run and arguments."""
    return template_of(sample_events(customers, seed, topics), realistic)


def sample_events(customers: int, seed: int = 1, topics: frozenset[str] | None = None) -> list[SampleEvent]:
    events = generate(customers=customers, seed=seed).ordered()
    return [e for e in events if topics is None or e.topic in topics]


def for_deliveries(count: int, realistic: bool = True) -> Template:
    """A template to copy ``count`` deliveries from: the store of 2,000 customers (10,257
    deliveries), or a smaller one when fewer are wanted (about 5 deliveries a customer)."""
    return template(min(TEMPLATE_CUSTOMERS, count // 5 + 10), realistic=realistic)


def template_of(events: Iterable[SampleEvent], realistic: bool = True) -> Template:
    """These sample events as a template (enlarged from the fixtures if ``realistic``)."""
    records = []
    size = 0
    for event in enlarged(events) if realistic else events:
        name, key = route(event.topic, event.body)
        value = encode(delivery_for(event))
        size += len(value)
        records.append(TemplateRecord(name, cut(key), cut(value)))
    return Template(tuple(records), size, realistic and FIXTURES.is_dir())


def enlarged(events: Iterable[SampleEvent]) -> Iterator[SampleEvent]:
    """The events with their bodies enlarged to the size of Shopify's samples (:func:`enlarge`)."""
    samples: dict[str, dict[str, Any] | None] = {}
    for event in events:
        if event.topic not in samples:
            samples[event.topic] = fixture(event.topic)
        yield replace(event, body=enlarge(event.topic, event.body, samples[event.topic]))


def updated(event: SampleEvent, later: timedelta) -> SampleEvent:
    """The same record delivered again ``later`` as its ``<resource>/update`` with a new event id
    (its leading 1 becomes 2, so copies still differ), so the rules treat it as news."""
    at = event.at + later
    body = {**event.body, "updated_at": ts(at)}
    topic = event.topic.partition("/")[0] + "/update"
    return SampleEvent(at, topic, body, "2" + event.event_id[1:], event.source)


async def append(settings: Settings, records: Iterable[tuple[TopicName, bytes, bytes]]) -> int:
    """Append ``(topic, key, value)`` records (acks=all, idempotent, large batches); return the count."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True,
        linger_ms=20, max_batch_size=1024 * 1024, max_request_size=settings.kafka_message_bytes(),
    )  # fmt: skip
    await producer.start()
    count = 0
    names: dict[TopicName, str] = {}
    try:
        pending = []
        for name, key, value in records:
            topic = names.get(name) or names.setdefault(name, topic_name(settings, name))
            pending.append(await producer.send(topic, value, key=key))
            count += 1
            if len(pending) >= SEND_BATCH:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count
