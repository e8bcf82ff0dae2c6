"""The initial import through GraphQL bulk operations (SPEC I1, beside the REST path of
``handlers.importer``): per resource, start ``bulkOperationRunQuery``, poll the operation until
it stops, stream its JSONL with httpx, rebuild parents from ``__parentId``, convert each record to
the webhook body the rules parse (``handlers.bulk_convert``) and append it as an import delivery
exactly as the REST import does (same topics, keys and event ids from record id + updated_at, so
a re-import is a duplicate the rules drop; dead letters for what cannot be read or keyed).

Resumable at any point: the state file keeps each resource's operation id, its download URL and
the byte offset (and line count) up to which every record is appended and acknowledged by Kafka.
A crash or a dropped connection resumes with an HTTP Range request from that offset (the start of
the first root not yet appended), so nothing is skipped, and nothing acknowledged is appended
twice; an interruption the process sees (an error, Ctrl-C) first waits for what it has sent, so
only a hard kill can re-append, at most one batch, which the event ids make harmless.

A FAILED (or CANCELED) operation is reported with its error code and how much partial data it
left, never taken as complete; its state is cleared so the next run starts a fresh operation.
``import_jsonl`` imports a file downloaded elsewhere, with no network (an air gap).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from config import Settings
from handlers import bulk_queries
from handlers.bulk_convert import CONVERTERS, EXPANDERS, ConversionError
from handlers.bulk_jsonl import ParentRebuilder, Rebuilt, split_lines
from handlers.graphql_cost import Bucket, requested_cost, throttled_wait, wait_before
from handlers.importer import (
    RESOURCES,
    ShopifyImportError,
    import_delivery,
    key_prefix,
    load_states,
    placed,
    save_states,
)
from handlers.loss import LossReport, dead_letter_record
from handlers.progress import NoProgress, Progress, Totals
from handlers.sealer import Sealer, sealer_for
from streams.topics import ensure_topics, topic_name

log = logging.getLogger(__name__)
BULK_API_VERSION = "2026-07"
"""The newest version: the first whose orders carry cartToken and checkoutToken (D4's join)."""
BULK_RESOURCES = (*RESOURCES, "companies")
"""What bulk operations can import: the REST resources and B2B companies (X2; Shopify Plus shops
only, so they are imported when asked for: ``--resources ...,companies``)."""
FINISHED = ("COMPLETED", "FAILED", "CANCELED", "EXPIRED")


class BulkOperationFailedError(ShopifyImportError):
    """An operation ended FAILED, CANCELED or EXPIRED: the resource is not imported."""


@dataclass
class BulkResourceState:
    operation_id: str | None = None
    url: str | None = None
    offset: int = 0
    """Bytes of the export whose records are all appended and acknowledged."""
    lines: int = 0
    count: int = 0
    lost: int = 0
    done: bool = False
    roots: int | None = None
    """The completed operation's ``rootObjectCount``: the records to come (the progress total)."""
    size: int | None = None
    """Its ``fileSize`` in bytes, when Shopify says it."""
    done_roots: int | None = None
    """Roots (export records) appended, what ``roots`` counts; None: every root was one record
    (a state written before companies, whose one root is several records)."""

    def roots_done(self) -> int:
        return self.done_roots if self.done_roots is not None else self.count + self.lost


@dataclass
class BulkImportState:
    """Where the bulk import is, per resource; saved atomically after every acknowledged batch."""

    path: Path
    resources: dict[str, BulkResourceState] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> BulkImportState:
        return cls(path, load_states(path, BulkResourceState))

    def save(self) -> None:
        save_states(self.path, self.resources)


class InterruptedImportError(Exception):
    """``stop_after_lines`` was reached (tests: a crash at a chosen line)."""


BATCHES_IN_FLIGHT = 2
"""Batches sent and not yet acknowledged at most (:meth:`Appender.commit`): what a kill can make
an import append again, in batches."""


@dataclass(frozen=True)
class _Batch:
    """Records sent and not yet acknowledged, what they count for, and the offset after them."""

    sent: list[asyncio.Future[Any]]
    roots: int
    count: int
    lost: int
    offset: int
    lines: int


@dataclass
class Appender:
    """Turns rebuilt roots into appended records, a batch at a time, and moves the state's
    offset only once Kafka acknowledged every record before it."""

    settings: Settings
    producer: AIOKafkaProducer
    resource: str
    shop: str
    api_version: str
    state: BulkResourceState
    report: LossReport
    save: Callable[[], None]
    batch: int = 1000
    progress: Progress = field(default_factory=NoProgress)
    """Told the records and bytes done after every acknowledged batch (``start`` is the caller's)."""
    sealer: Sealer | None = None
    """G1: seals each body's personal values before it is appended (None: sealing is off)."""
    _sent: list[asyncio.Future[Any]] = field(default_factory=list)
    _in_flight: _Batch | None = None
    _prefix: str = ""
    _pending_count: int = 0
    _pending_lost: int = 0
    _pending_roots: int = 0

    def __post_init__(self) -> None:
        self._prefix = key_prefix(self.settings, self.shop)  # X3: once, not per record

    async def add(self, root: Rebuilt) -> None:
        self._pending_roots += 1
        for target, key, value in await self._placed(root):
            if target == topic_name(self.settings, "shopify.deadletter"):
                self._pending_lost += 1
                self.report.dead_letter("shopify.deadletter", orjson.loads(value)["reason"])
            else:
                self._pending_count += 1
            self._sent.append(await self.producer.send(target, value, key=key))

    async def _placed(self, root: Rebuilt) -> list[tuple[str, bytes | None, bytes]]:
        """The records one root becomes: one body (a company: the company, its locations and its
        contacts, each on its topic), or one dead letter with the reason. Sealed (G1) once the
        keys of the subjects they name are acknowledged."""
        problem = root.problem
        if root.record is not None:
            try:
                bodies = self._bodies(root.record)
            except (ConversionError, KeyError, TypeError, ValueError) as exc:
                problem = f"a {self.resource} record the import cannot read: {type(exc).__name__}"
            else:
                seal = None
                if self.sealer is not None:
                    await self.sealer.prepare(
                        import_delivery(self.resource, body, self.shop, self.api_version, topic)
                        for topic, body in bodies
                    )
                    seal = self.sealer.seal_held
                return [
                    placed(
                        self.settings,
                        self.resource,
                        body,
                        self.shop,
                        self.api_version,
                        topic,
                        seal,
                        self._prefix,
                    )
                    for topic, body in bodies
                ]
        reason = f"import {self.resource}: {problem}"
        letter = dead_letter_record(reason, topic=f"import:{self.resource}", key=None, original=root.raw)
        return [(topic_name(self.settings, "shopify.deadletter"), None, letter)]

    def _bodies(self, record: dict[str, Any]) -> list[tuple[str | None, dict[str, Any]]]:
        expand = EXPANDERS.get(self.resource)
        if expand is not None:
            return list(expand(record))
        return [(None, CONVERTERS[self.resource](record))]

    def due(self) -> bool:
        return len(self._sent) >= self.batch

    async def commit(self, offset: int, lines: int, final: bool = False) -> None:
        """Close the batch sent since the last commit (its records came from the bytes before
        ``offset``) and record the offset once Kafka acknowledged every record of it and of the
        batches before it. Two batches are in flight: the one closed last is awaited only when
        the next one closes (or at the ``final`` commit), so the next batch is read, converted
        and sent while its acknowledgements come back, instead of the import waiting on each
        batch's last linger and round trip. A kill can so re-append up to two batches (they
        carry the same event ids: repeats change nothing); a stop or a failure never does, it
        ends in a final commit."""
        closed = _Batch(
            self._sent, self._pending_roots, self._pending_count, self._pending_lost, offset, lines
        )
        self._sent = []
        self._pending_count = self._pending_lost = self._pending_roots = 0
        if self._in_flight is not None:
            await self._settle(self._in_flight)
        self._in_flight = closed
        if final:
            self._in_flight = None
            await self._settle(closed)

    async def _settle(self, batch: _Batch) -> None:
        await asyncio.gather(*batch.sent)
        self.state.done_roots = self.state.roots_done() + batch.roots
        self.state.count += batch.count
        self.state.lost += batch.lost
        self.state.offset, self.state.lines = batch.offset, batch.lines
        self.save()
        self.progress.update(self.state.roots_done(), self.state.offset)

    def start_progress(self) -> None:
        """Open this resource's phase: its total (when the operation said it) and where it is."""
        rs = self.state
        self.progress.start(f"import {self.resource}", Totals(rs.roots, rs.size), rs.roots_done(), rs.offset)

    def summary(self) -> str:
        """What the resource's import amounted to (logged once it is complete)."""
        rs = self.state
        return (
            f"bulk import {self.resource}: {rs.count} records ({rs.lost} dead-lettered), "
            f"{rs.lines} lines, {rs.offset / 1e6:.1f} MB read"
        )


async def append_lines(
    appender: Appender, lines: AsyncIterator[tuple[int, bytes]], stop_after_lines: int | None = None
) -> None:
    """Rebuild and append every root of ``lines`` (which start at the state's offset); commit a
    batch at a time. However it ends, what was sent is awaited and the offset saved."""
    state = appender.state
    rebuilder = ParentRebuilder()
    consumed, consumed_lines, seen = state.offset, state.lines, 0
    try:
        async for offset, line in lines:
            for root in rebuilder.feed(offset, line):
                await appender.add(root)
                consumed, consumed_lines = root.end, consumed_lines + root.lines
            seen += 1
            if appender.due():
                await appender.commit(consumed, consumed_lines)
            if stop_after_lines is not None and seen >= stop_after_lines:
                raise InterruptedImportError(f"stopped after {seen} lines")
        for root in rebuilder.finish():
            await appender.add(root)
            consumed, consumed_lines = root.end, consumed_lines + root.lines
    finally:
        await appender.commit(consumed, consumed_lines, final=True)


@dataclass
class AdminGraphQL:
    """GraphQL against one shop's Admin API: retries transport errors and 5xx, paces each query by
    the bucket the last answer described (``handlers.graphql_cost``: it waits until the bucket
    holds what the same query requested last time), and waits out a THROTTLED answer anyway (the
    bucket is the app's on the store, shared with its other clients). ``clock`` and ``sleep`` are
    the shell's; tests pass their own."""

    http: httpx.AsyncClient
    api_version: str
    attempts: int = 8
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    paced_s: float = 0.0
    """Seconds waited so far before queries (pacing), not counting THROTTLED waits."""
    _bucket: Bucket | None = None
    _answered_at: float = 0.0
    _costs: dict[str, float] = field(default_factory=dict)

    async def data(self, document: str, /, **variables: Any) -> dict[str, Any]:
        path = f"/admin/api/{self.api_version}/graphql.json"
        for attempt in range(self.attempts):
            pause = wait_before(self._bucket, self.clock() - self._answered_at, self._costs.get(document))
            if pause > 0:
                self.paced_s += pause
                await self.sleep(pause)
            try:
                response = await self.http.post(path, json={"query": document, "variables": variables})
            except (httpx.TimeoutException, httpx.TransportError):
                await asyncio.sleep(min(10.0, 0.2 * 2**attempt) * random.random())
                continue
            if response.status_code in (401, 403):
                raise ShopifyImportError(
                    f"Shopify refused the token ({response.status_code}): check SHOPIFY_ADMIN_TOKEN"
                )
            if response.status_code == 429 or response.status_code >= 500:
                await asyncio.sleep(min(10.0, 0.2 * 2**attempt) * random.random())
                continue
            response.raise_for_status()
            body = response.json()
            self._learn(document, body)
            errors = body.get("errors") or []
            if any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors):
                await self.sleep(throttled_wait(body))
                continue
            if errors or not isinstance(body.get("data"), dict):
                raise ShopifyImportError(f"Shopify refused the query: {errors[0].get('message', errors)}")
            data: dict[str, Any] = body["data"]
            return data
        raise ShopifyImportError("Shopify's GraphQL Admin API kept failing")

    def _learn(self, document: str, body: dict[str, Any]) -> None:
        """Remember the bucket this answer describes, and what the query asked of it."""
        bucket = Bucket.from_answer(body)
        if bucket is not None:
            self._bucket, self._answered_at = bucket, self.clock()
        cost = requested_cost(body)
        if cost is not None:
            self._costs[document] = cost


async def start_operation(admin: AdminGraphQL, resource: str) -> str:
    query = bulk_queries.bulk_query(resource, admin.api_version)
    payload = (await admin.data(bulk_queries.RUN, query=query))["bulkOperationRunQuery"]
    if payload["userErrors"] or not payload.get("bulkOperation"):
        error = payload["userErrors"][0] if payload["userErrors"] else {"message": "no operation"}
        raise ShopifyImportError(
            f"Shopify did not start the {resource} export: {error.get('code')} {error['message']}"
        )
    return str(payload["bulkOperation"]["id"])


async def wait_for(admin: AdminGraphQL, operation_id: str, poll_s: float) -> dict[str, Any]:
    """Poll until the operation stops; its last answer. The wait between polls grows to 10 s."""
    wait = poll_s
    while True:
        if bulk_queries.polls_by_id(admin.api_version):
            op = (await admin.data(bulk_queries.POLL_BY_ID, id=operation_id))["bulkOperation"]
        else:
            op = (await admin.data(bulk_queries.POLL_CURRENT))["currentBulkOperation"]
            if op is not None and op["id"] != operation_id:
                raise ShopifyImportError(f"another bulk operation ({op['id']}) replaced {operation_id}")
        if op is None:
            raise ShopifyImportError(f"Shopify no longer knows bulk operation {operation_id}")
        if op["status"] in FINISHED:
            return dict(op)
        log.info("bulk operation %s: %s, %s objects so far", operation_id, op["status"], op["objectCount"])
        await asyncio.sleep(wait)
        wait = min(10.0, max(wait * 1.5, 0.5)) if poll_s > 0 else 0.0


async def download(
    http: httpx.AsyncClient, url: str, appender: Appender, stop_after_lines: int | None, attempts: int = 6
) -> None:
    """Stream the export into ``appender`` from the state's offset; a dropped connection resumes
    with a Range request from the last committed offset."""
    for attempt in range(attempts):
        offset = appender.state.offset
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            async with http.stream("GET", url, headers=headers) as response:
                if response.status_code == 416:  # nothing after the offset: already complete
                    return
                if response.status_code >= 500:
                    await asyncio.sleep(min(10.0, 0.2 * 2**attempt) * random.random())
                    continue
                if response.is_error:  # a signed URL lives a week (Shopify), then answers 4xx
                    raise ShopifyImportError(
                        f"the {appender.resource} export's URL answered {response.status_code} (expired?); "
                        f"remove {appender.resource!r} from the state file to start a fresh export"
                    )
                if offset and response.status_code != 206:
                    raise ShopifyImportError(
                        f"the export's host ignored the Range request ({response.status_code})"
                    )
                await append_lines(appender, split_lines(response.aiter_bytes(), offset), stop_after_lines)
                return
        except (httpx.TimeoutException, httpx.TransportError):
            log.warning(
                "bulk import %s: download interrupted; resuming at byte %d",
                appender.resource,
                appender.state.offset,
            )
            await asyncio.sleep(min(10.0, 0.2 * 2**attempt) * random.random())
    raise ShopifyImportError(f"the {appender.resource} export kept failing to download")


def import_producer(settings: Settings) -> AIOKafkaProducer:
    """The import's producer: every record acknowledged by all replicas, idempotent, lingering a
    little so records travel in batches (the benchmark's Kafka baseline uses the same)."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True, linger_ms=20,
        max_request_size=settings.kafka_message_bytes(),
    )  # fmt: skip


async def run_bulk_import(
    settings: Settings,
    admin_url: str,
    token: str,
    state_path: Path,
    *,
    resources: Iterable[str] = RESOURCES,
    api_version: str = BULK_API_VERSION,
    poll_s: float = 1.0,
    stop_after_lines: int | None = None,
    report: LossReport | None = None,
    shop: str | None = None,
    progress: Progress | None = None,
    checkpoint_every: int = 1000,
) -> dict[str, int]:
    """Import (or resume importing) ``resources`` through bulk operations; the records appended
    per resource in this run. Raises BulkOperationFailedError for an operation that did not
    complete (after importing the resources before it). ``shop``: the domain the records are of
    (default: the Admin API's host; a local Admin API serves a store under another name).
    ``progress``: told each resource's records as they are acknowledged, against the total the
    completed operation reported (``rootObjectCount``), so a display knows the ETA before the
    download begins. ``checkpoint_every``: records sent between two acknowledged, saved offsets
    (what a hard kill can re-append at most; fewer cost a state write each)."""
    shown = progress if progress is not None else NoProgress()
    report = report if report is not None else LossReport()
    await ensure_topics(settings)
    shop = shop or httpx.URL(admin_url).host
    state = BulkImportState.load(state_path)
    producer = import_producer(settings)
    await producer.start()
    sealer = sealer_for(settings, follow=True)  # G1: None unless sealing; follows redactions meanwhile
    appended: dict[str, int] = {}
    headers = {"X-Shopify-Access-Token": token, "Accept": "application/json"}
    try:
        async with (
            httpx.AsyncClient(base_url=admin_url.rstrip("/"), headers=headers, timeout=30) as api,
            httpx.AsyncClient(timeout=httpx.Timeout(30, read=120)) as storage,  # signed URLs: no token
        ):
            admin = AdminGraphQL(api, api_version)
            chosen = [r for r in resources if not state.resources.get(r, BulkResourceState()).done]
            if bulk_queries.polls_by_id(api_version):  # up to five run at once: start them all
                for resource in chosen:
                    rs = state.resources.setdefault(resource, BulkResourceState())
                    if rs.operation_id is None:
                        rs.operation_id = await start_operation(admin, resource)
                        state.save()
            for resource in chosen:
                rs = state.resources.setdefault(resource, BulkResourceState())
                before = rs.count
                if rs.url is None:
                    if rs.operation_id is None:
                        rs.operation_id = await start_operation(admin, resource)
                        state.save()
                    op = await wait_for(admin, rs.operation_id, poll_s)
                    if op["status"] != "COMPLETED":
                        state.resources[resource] = BulkResourceState()  # the next run starts afresh
                        state.save()
                        raise BulkOperationFailedError(_failure(resource, op))
                    rs.url, rs.roots = op["url"], _count(op, "rootObjectCount")
                    rs.size = _count(op, "fileSize")
                    state.save()
                    log.info("bulk import %s: export ready, %s objects", resource, op["objectCount"])
                if rs.url:  # an empty export has no url: nothing to read
                    appender = Appender(
                        settings, producer, resource, shop, api_version, rs, report, state.save,
                        batch=checkpoint_every, progress=shown, sealer=sealer,
                    )  # fmt: skip
                    appender.start_progress()
                    try:
                        await download(storage, rs.url, appender, stop_after_lines)
                    except InterruptedImportError:
                        appended[resource] = rs.count - before
                        return appended
                    finally:
                        shown.finish()
                    log.info("%s", appender.summary())
                rs.done = True
                state.save()
                appended[resource] = rs.count - before
    finally:
        await producer.stop()
        if sealer is not None:
            await sealer.stop()
    return appended


def _count(op: dict[str, Any], name: str) -> int | None:
    """A count of the operation (Shopify's ``UnsignedInt64`` is a string in JSON), if given."""
    try:
        return int(op[name])
    except (KeyError, TypeError, ValueError):
        return None


def _failure(resource: str, op: dict[str, Any]) -> str:
    partial = (
        f"; partial data ({op['objectCount']} objects, {op['rootObjectCount']} {resource}) at its "
        "partialDataUrl, which `import --graphql --from-jsonl` can read once downloaded"
        if op.get("partialDataUrl")
        else ""
    )
    return (
        f"the {resource} bulk operation {op['id']} ended {op['status']} "
        f"(errorCode {op.get('errorCode')}){partial}; nothing of it was imported, run again to retry"
    )


async def _file_lines(path: Path) -> AsyncIterator[tuple[int, bytes]]:
    offset = 0
    with path.open("rb") as source:
        for line in source:
            yield offset, line
            offset += len(line)


async def import_jsonl(
    settings: Settings,
    path: Path,
    resource: str,
    shop: str,
    *,
    api_version: str = BULK_API_VERSION,
    report: LossReport | None = None,
    progress: Progress | None = None,
) -> int:
    """Import one downloaded export (an air gap: no Shopify, only Kafka); the records appended.
    ``api_version`` is the version the export was made in (it is recorded on each delivery).
    The file's record count is not known before it is read, its size is: the progress is by bytes."""
    report = report if report is not None else LossReport()
    shown = progress if progress is not None else NoProgress()
    await ensure_topics(settings)
    producer = import_producer(settings)
    await producer.start()
    sealer = sealer_for(settings, follow=True)
    rs = BulkResourceState(size=await asyncio.to_thread(os.path.getsize, path))
    try:
        appender = Appender(
            settings,
            producer,
            resource,
            shop,
            api_version,
            rs,
            report,
            lambda: None,
            progress=shown,
            sealer=sealer,
        )
        appender.start_progress()
        try:
            await append_lines(appender, _file_lines(path))
        finally:
            shown.finish()
        log.info("%s", appender.summary())
    finally:
        await producer.stop()
        if sealer is not None:
            await sealer.stop()
    return rs.count
