"""The HubSpot writer: consumes ``hubspot.commands``, applies them in batches, commits after.

Each cycle takes the commands that arrive within a batch window, coalesces them
(``handlers.writer_plan``), and applies the plan: archives, then upserts by unique property (100
inputs per call), then association changes once both ends have HubSpot ids. What HubSpot rejects
for good goes to ``hubspot.commands.dlq`` with HubSpot's message and the command; the rest goes
on. Offsets are committed only once every command up to them is applied, skipped or dead-lettered
(an association waiting for its other end holds its partition's commit back), so a SIGKILL at any
point loses nothing, and since every write is an upsert by a unique key, re-applying a window
after a crash changes nothing in HubSpot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from handlers.account_setup import AccountSchema, set_up_account
from handlers.hubspot_client import (
    DailyLimitError,
    HubSpotClient,
    HubSpotError,
    HubSpotUnavailableError,
    RatePacer,
    RetryPolicy,
)
from handlers.id_map import IdMap
from handlers.writer_plan import LinkPlan, Position, RecordPlan, coalesce
from schemas.commands import AnyCommand, Associate, PropertyValue, RecordRef, decode_command, encode_command
from schemas.reasons import reason_kind
from shopsync.config import Settings
from streams.topics import ensure_topics, topic_name

log = logging.getLogger(__name__)
MAX_INPUTS = 100


@dataclass
class WriterStats:
    """Counters for operators and tests."""

    windows: int = 0
    commands: int = 0
    upserted: int = 0
    archived: int = 0
    linked: int = 0
    dead_lettered: int = 0
    skipped_deleted: int = 0
    waiting_links: int = 0


@dataclass
class _Waiting:
    """An association whose other end is not in HubSpot yet (its command may be on another
    partition, not read yet); retried every few seconds, dead-lettered after the link wait."""

    link: LinkPlan
    since: float
    next_try: float = 0.0


RETRY_WAITING_EVERY_S = 2.0


@dataclass
class Writer:
    settings: Settings
    client: HubSpotClient
    producer: AIOKafkaProducer
    ids: IdMap
    schema: AccountSchema
    stats: WriterStats = field(default_factory=WriterStats)
    waiting: list[_Waiting] = field(default_factory=list)

    # ---- one window ----

    async def apply(self, items: list[tuple[AnyCommand, Position]]) -> None:
        """Apply one window's commands (everything is applied, skipped, dead-lettered or waiting)."""
        plan = coalesce(items)
        self.stats.windows += 1
        self.stats.commands += len(items)
        await self._archive(plan.archives())
        await self._upsert(plan.upserts())
        archived = {r.ref.key for r in plan.archives()}
        if archived:  # a link waiting for a record that is now archived will never be made: done
            self.waiting = [
                w for w in self.waiting if not {w.link.command.record.key, w.link.command.to.key} & archived
            ]
        now = time.monotonic()
        due = [w for w in self.waiting if w.next_try <= now]
        self.waiting = [w for w in self.waiting if w.next_try > now]
        links = [w.link for w in due] + list(plan.links.values())
        started = {id(w.link): w.since for w in due}
        await self._link(links, started)
        self.stats.waiting_links = len(self.waiting)

    def held_positions(self) -> list[Position]:
        """Positions whose commands are not done yet (their partitions' commits wait for them)."""
        return [pos for w in self.waiting for _, pos in w.link.sources]

    # ---- archives ----

    async def _archive(self, records: list[RecordPlan]) -> None:
        if not records:
            return
        resolved = await self._resolve([r.ref for r in records])
        by_type: dict[str, list[tuple[RecordPlan, str]]] = defaultdict(list)
        for record in records:
            hubspot_id = resolved.get(record.ref.key)
            if hubspot_id is None:
                continue  # never written, or already gone: archiving it is done
            by_type[record.ref.object_type].append((record, hubspot_id))
        for object_type, entries in by_type.items():
            for chunk in _chunks(entries):
                inputs = [{"id": hubspot_id} for _, hubspot_id in chunk]
                try:
                    await self.client.call(
                        "POST", f"/crm/v3/objects/{object_type}/batch/archive", {"inputs": inputs}
                    )
                except HubSpotError as exc:
                    for record, _ in chunk:
                        await self._dead_letter(
                            record.sources, "HubSpot rejected the archive", exc.body, exc.status
                        )
                    continue
                for record, _ in chunk:
                    await self.ids.forget(record.ref.key)
                    self.stats.archived += 1

    # ---- upserts ----

    async def _upsert(self, records: list[RecordPlan]) -> None:
        groups: dict[tuple[str, str, bool], list[RecordPlan]] = defaultdict(list)
        for record in records:
            groups[(record.ref.object_type, record.ref.id_property, record.create_if_missing)].append(record)
        # Products before line items (a line item points at its product's id), then the rest.
        order = {"products": 0, "contacts": 1, "deals": 2, "line_items": 3}
        for (object_type, id_property, create), group in sorted(groups.items(), key=lambda g: order[g[0][0]]):
            if object_type == "line_items":
                await self._resolve_products(group)
            for chunk in _chunks(group):
                await self._upsert_chunk(object_type, id_property, create, chunk)

    async def _upsert_chunk(
        self, object_type: str, id_property: str, create: bool, chunk: list[RecordPlan]
    ) -> None:
        inputs = [
            {"id": r.ref.id_value, "idProperty": id_property, "properties": self._properties(r)}
            for r in chunk
        ]
        path = f"/crm/v3/objects/{object_type}/batch/{'upsert' if create else 'update'}"
        try:
            status, body = await self.client.call("POST", path, {"inputs": inputs})
        except HubSpotError as exc:
            if len(chunk) == 1:
                await self._dead_letter(chunk[0].sources, "HubSpot rejected the record", exc.body, exc.status)
                return
            half = len(chunk) // 2  # find the bad input(s): the good ones still go through
            await self._upsert_chunk(object_type, id_property, create, chunk[:half])
            await self._upsert_chunk(object_type, id_property, create, chunk[half:])
            return
        found: dict[str, str] = {}
        for result in body.get("results", []):
            value = (result.get("properties") or {}).get(id_property)
            if value is not None and "id" in result:
                found[_norm(id_property, str(value))] = str(result["id"])
        errors = body.get("errors") or []
        for record in chunk:
            hubspot_id = found.get(_norm(id_property, record.ref.id_value))
            if hubspot_id is not None:
                await self.ids.put(record.ref.key, hubspot_id)
                self.stats.upserted += 1
            elif not create or status == 404 or _category(errors) == "OBJECT_NOT_FOUND":
                # An update-only write whose record is gone: HubSpot deleted it (C4). Not an error.
                self.stats.skipped_deleted += 1
                await self.ids.forget(record.ref.key)
            else:
                await self._dead_letter(record.sources, "HubSpot did not apply the record", body, status)

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

    async def _resolve_products(self, group: list[RecordPlan]) -> None:
        refs = []
        for record in group:
            for key in self._product_keys(record.upsert or {}):
                if self.ids.get(key) is None:
                    _, _, value = key.partition(":shopify_product_key:")
                    refs.append(
                        RecordRef(object_type="products", id_property="shopify_product_key", id_value=value)
                    )
        if refs:
            await self._resolve(refs)

    # ---- associations ----

    async def _link(self, links: list[LinkPlan], started: dict[int, float]) -> None:
        if not links:
            return
        refs = [ref for link in links for ref in (link.command.record, link.command.to)]
        resolved = await self._resolve(refs)
        ready: dict[tuple[str, str, str], list[tuple[LinkPlan, str, str]]] = defaultdict(list)
        now = time.monotonic()
        for link in links:
            c = link.command
            from_id, to_id = resolved.get(c.record.key), resolved.get(c.to.key)
            if from_id is None or to_id is None:
                since = started.get(id(link), now)
                if now - since > self.settings.writer_link_wait_s:
                    missing = c.record.key if from_id is None else c.to.key
                    await self._dead_letter(
                        link.sources, f"association end {missing} does not exist in HubSpot", {}, None
                    )
                else:
                    self.waiting.append(_Waiting(link, since, now + RETRY_WAITING_EVERY_S))
                continue
            op = "create" if isinstance(c, Associate) else "archive"
            ready[(c.record.object_type, c.to.object_type, op)].append((link, from_id, to_id))
        for (from_type, to_type, op), entries in ready.items():
            for chunk in _chunks(entries):
                if op == "create":
                    inputs: list[dict[str, Any]] = [
                        {"from": {"id": f}, "to": {"id": t}, "types": [
                            {"associationCategory": "HUBSPOT_DEFINED",
                             "associationTypeId": link.command.association_type_id}]}
                        for link, f, t in chunk
                    ]  # fmt: skip
                else:
                    inputs = [{"from": {"id": f}, "to": [{"id": t}]} for _, f, t in chunk]
                path = f"/crm/v4/associations/{from_type}/{to_type}/batch/{op}"
                try:
                    await self.client.call("POST", path, {"inputs": inputs})
                except HubSpotError as exc:
                    for link, _, _ in chunk:
                        await self._dead_letter(
                            link.sources, "HubSpot rejected the association", exc.body, exc.status
                        )
                    continue
                self.stats.linked += len(chunk)

    # ---- ids ----

    async def _resolve(self, refs: list[RecordRef]) -> dict[str, str]:
        """HubSpot ids of ``refs``: from the id map, else read by unique property (and remembered)."""
        out: dict[str, str] = {}
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
                body = {
                    "inputs": [{"id": r.id_value} for r in chunk],
                    "idProperty": id_property,
                    "properties": [id_property],
                }
                _, answer = await self.client.call("POST", f"/crm/v3/objects/{object_type}/batch/read", body)
                by_value = {
                    _norm(id_property, str((r.get("properties") or {}).get(id_property, ""))): str(r["id"])
                    for r in answer.get("results", [])
                    if "id" in r
                }
                for ref in chunk:
                    hubspot_id = by_value.get(_norm(id_property, ref.id_value))
                    if hubspot_id is not None:
                        out[ref.key] = hubspot_id
                        await self.ids.put(ref.key, hubspot_id)
        return out

    # ---- dead letters ----

    async def _dead_letter(
        self,
        sources: list[tuple[AnyCommand, Position]],
        reason: str,
        body: dict[str, Any],
        status: int | None,
    ) -> None:
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
            log.warning(
                "dead-lettering a %s command from %s@%s: %s (%s)", command.record.object_type,
                position.partition, position.offset, reason_kind(reason), body.get("category") or status,
            )  # fmt: skip
            await self.producer.send(
                topic_name(self.settings, "hubspot.commands.dlq"),
                orjson.dumps(letter),
                key=command.record.key.encode(),
            )
            self.stats.dead_lettered += 1


T = TypeVar("T")


def _chunks(items: list[T]) -> list[list[T]]:
    return [items[i : i + MAX_INPUTS] for i in range(0, len(items), MAX_INPUTS)]


def _norm(id_property: str, value: str) -> str:
    return value.lower() if id_property == "email" else value


def _category(errors: list[dict[str, Any]]) -> str | None:
    return errors[0].get("category") if errors else None


# ---- the consumer loop ----


async def run_writer(settings: Settings, stop: asyncio.Event | None = None) -> WriterStats:
    """Run until ``stop`` is set (or SIGTERM/SIGINT); return the counters."""
    stop = stop or asyncio.Event()
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
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True, linger_ms=5,
        max_request_size=settings.kafka_message_bytes(),  # R6: the size every topic takes
    )  # fmt: skip
    consumer = AIOKafkaConsumer(
        topic_name(settings, "hubspot.commands"),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.writer_group(),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=int(settings.session_timeout_s * 1000),
        heartbeat_interval_ms=int(settings.session_timeout_s * 1000 / 5),
    )
    await producer.start()
    try:
        schema = await set_up_account(client, settings.pipeline_label)
        ids = IdMap(producer, topic_name(settings, "hubspot.ids"))
        known = await ids.load(settings.kafka_bootstrap_servers)
        log.info("writer ready: %d known HubSpot ids, pipeline %s", known, schema.pipeline_id)
        writer = Writer(settings, client, producer, ids, schema)
        await consumer.start()
        try:
            await _consume(writer, consumer, stop)
        finally:
            await consumer.stop()
        return writer.stats
    finally:
        await producer.stop()
        await client.close()


async def _consume(writer: Writer, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
    settings = writer.settings
    window_s = settings.writer_batch_window_ms / 1000
    consumed: dict[int, int] = {}  # partition -> next offset read (committed once nothing before it waits)
    committed: dict[int, int] = {}
    while not stop.is_set():
        items: list[tuple[AnyCommand, Position]] = []
        done: dict[int, int] = {}
        deadline = time.monotonic() + window_s
        while time.monotonic() < deadline and len(items) < settings.writer_max_batch:
            timeout_ms = max(1, int((deadline - time.monotonic()) * 1000))
            batch = await consumer.getmany(timeout_ms=timeout_ms, max_records=settings.writer_max_batch)
            for tp, messages in batch.items():
                for m in messages:
                    done[tp.partition] = m.offset + 1
                    try:
                        items.append((decode_command(m.value or b""), Position(tp.partition, m.offset)))
                    except (ValidationError, ValueError) as exc:
                        await _dead_letter_raw(
                            writer, m.value or b"", str(exc), Position(tp.partition, m.offset)
                        )
            if not batch and not writer.waiting:
                break
        if not items and not writer.waiting and not done and committed == consumed:
            continue
        try:
            await writer.apply(items)
        except DailyLimitError:
            log.error("HubSpot's daily limit is reached; pausing an hour without committing")
            await _pause(stop, 3600)
            _rewind(consumer, items)
            continue
        except HubSpotUnavailableError as exc:
            log.error("HubSpot unavailable (%s); the window will be retried", exc)
            await _pause(stop, 5)
            _rewind(consumer, items)
            continue
        consumed.update(done)
        await writer.producer.flush()
        committed = await _commit(consumer, settings, consumed, committed, writer.held_positions())


async def _commit(
    consumer: AIOKafkaConsumer,
    settings: Settings,
    consumed: dict[int, int],
    committed: dict[int, int],
    held: list[Position],
) -> dict[int, int]:
    """Commit, per partition, everything read except from the earliest command still waiting."""
    topic = topic_name(settings, "hubspot.commands")
    earliest_held: dict[int, int] = {}
    for pos in held:
        earliest_held[pos.partition] = min(pos.offset, earliest_held.get(pos.partition, pos.offset))
    targets = {p: min(offset, earliest_held.get(p, offset)) for p, offset in consumed.items()}
    changed = {p: o for p, o in targets.items() if committed.get(p) != o}
    if changed:
        await consumer.commit(
            {TopicPartition(topic, p): OffsetAndMetadata(o, "") for p, o in changed.items()}
        )
    return {**committed, **changed}


def _rewind(consumer: AIOKafkaConsumer, items: list[tuple[AnyCommand, Position]]) -> None:
    """Seek back to the window's first offsets, so a failed window is read and applied again."""
    first: dict[int, int] = {}
    for _, pos in items:
        first[pos.partition] = min(pos.offset, first.get(pos.partition, pos.offset))
    for tp in consumer.assignment():
        if tp.partition in first:
            consumer.seek(tp, first[tp.partition])


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _dead_letter_raw(writer: Writer, raw: bytes, reason: str, position: Position) -> None:
    letter = {"reason": f"not a command: {reason}", "original": raw.decode("utf-8", "replace"),
              "source": {"partition": position.partition, "offset": position.offset}}  # fmt: skip
    await writer.producer.send(topic_name(writer.settings, "hubspot.commands.dlq"), orjson.dumps(letter))
    writer.stats.dead_lettered += 1
