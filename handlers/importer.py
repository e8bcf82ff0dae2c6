"""The initial import (SPEC C5): a shop's history from the Shopify Admin API into the topics.

Pages through customers, orders, products and abandoned checkouts with httpx (cursor pagination by
the ``Link`` header), honouring Shopify's rate limits (the leaky-bucket header
``X-Shopify-Shop-Api-Call-Limit``, and 429 with ``Retry-After``) and retrying 5xx with backoff.
Each record is appended as a delivery with ``source: "import"``, so the processors give the
contacts it creates the C5 drill-downs. Resumable: after each page is acknowledged by Kafka, the
next page's cursor is saved to a state file; a crash or Ctrl-C resumes from there. A page
appended again after a crash changes nothing in HubSpot: its event ids are derived from the
record and its ``updated_at``, so the processors drop the repeats.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from config import Settings
from handlers.loss import LossReport, dead_letter_record
from handlers.progress import NoProgress, Progress, Totals
from handlers.sealer import sealer_for
from schemas.envelope import Delivery, encode
from streams.topics import UnroutableError, ensure_topics, route, topic_name

S = TypeVar("S")

RESOURCES = ("products", "customers", "orders", "checkouts")
"""In this order: products first, so line items find them; then the people and their purchases."""

ENDPOINTS = {
    "customers": "customers.json?limit={limit}",
    "orders": "orders.json?status=any&limit={limit}",
    "products": "products.json?limit={limit}",
    "checkouts": "checkouts.json?limit={limit}",
}
TOPICS = {"customers": "customers/create", "orders": "orders/create", "products": "products/create",
          "checkouts": "checkouts/create"}  # fmt: skip


class ShopifyImportError(RuntimeError):
    """The import cannot go on (bad credentials, a shop that does not answer); the state is kept."""


@dataclass
class ResourceState:
    next_url: str | None = None
    done: bool = False
    count: int = 0


@dataclass
class ImportState:
    """Where the import is, per resource; saved atomically after every page."""

    path: Path
    resources: dict[str, ResourceState] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> ImportState:
        return cls(path, load_states(path, ResourceState))

    def save(self) -> None:
        save_states(self.path, self.resources)


def load_states(path: Path, kind: Callable[..., S]) -> dict[str, S]:
    """A progress file's per-resource states (none when there is no file yet)."""
    raw = orjson.loads(path.read_bytes()) if path.exists() else {}
    return {k: kind(**v) for k, v in raw.items()}


def save_states(path: Path, resources: Mapping[str, object]) -> None:
    """Write a progress file atomically (a crash leaves the old one or the new one, whole)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps({k: vars(v) for k, v in resources.items()}))
    os.replace(tmp, path)


@dataclass(frozen=True)
class ShopImport:
    """One shop of an import (X3): its Admin API base URL, its token, its progress file."""

    shop: str
    url: str
    token: str
    state_path: Path


def import_plan(settings: Settings, shops: tuple[str, ...], state_path: Path) -> list[ShopImport]:
    """The shops to import, in the order given, each with its own token (``admin_token``) and,
    when there are several, its own progress file beside ``state_path`` (one shop keeps that very
    file, so a single-shop import resumes as before)."""
    plan, unique = [], dict.fromkeys(shops)
    for given in unique:
        url = given if given.startswith("http") else f"https://{given}"
        host = httpx.URL(url).host
        path = state_path if len(unique) == 1 else state_path.with_name(f"{state_path.stem}.{host}.json")
        plan.append(ShopImport(host, url, settings.admin_token(host), path))
    return plan


def next_link(header: str | None) -> str | None:
    """The ``rel="next"`` URL of Shopify's ``Link`` header."""
    for part in (header or "").split(","):
        if 'rel="next"' in part and "<" in part:
            return part[part.index("<") + 1 : part.index(">")]
    return None


def import_delivery(
    resource: str, record: dict[str, Any], shop: str, api_version: str, topic: str | None = None
) -> Delivery:
    """A record as an import event; its id is stable per record version (repeats are dropped).
    ``topic``: the webhook topic it stands for, when a resource's records are of several (a bulk
    company is also its locations and contacts); records named only by a global id (companies
    and theirs) are identified by it."""
    version = record.get("updated_at") or record.get("created_at") or ""
    ident = record.get("id") or record.get("token") or record.get("admin_graphql_api_id")
    kind = topic.partition("/")[0] if topic else resource
    event_id = f"import:{kind}:{ident}:{version}"
    return Delivery(
        topic=topic or TOPICS[resource], shop_domain=shop, webhook_id=event_id, event_id=event_id,
        api_version=api_version, received_at=datetime.now(UTC), source="import", body=record,
    )  # fmt: skip


def key_prefix(settings: Settings, shop: str) -> str:
    """The shop's Kafka key prefix (X3: empty for the primary shop)."""
    return settings.rule_config().key_prefix(shop)


def placed(
    settings: Settings,
    resource: str,
    record: object,
    shop: str,
    api_version: str,
    topic: str | None = None,
    seal: Callable[[Delivery], Delivery] | None = None,
    prefix: str | None = None,
) -> tuple[str, bytes | None, bytes]:
    """Where a listed record is appended, under which key, as which bytes: its resource's topic
    (or ``topic``'s, see :func:`import_delivery`), or, when it has no identity to be keyed by,
    the dead-letter topic with the reason. ``seal`` (G1, ``handlers.sealer.Sealer.seal_held``):
    the delivery's personal values sealed before it is encoded, the dead letter's original too.
    ``prefix``: the shop's key prefix (X3, :func:`key_prefix`), given by an import that places
    many records; deriving the rule settings for each record was 42 % of this function's time."""
    if not isinstance(record, dict):
        reason = f"import {resource}: the listed record is not a JSON object"
        original = orjson.dumps(record)
    else:
        if prefix is None:
            prefix = key_prefix(settings, shop)
        delivery = import_delivery(resource, record, shop, api_version, topic)
        if seal is not None:
            delivery = seal(delivery)
        try:
            name, key = route(delivery.topic, record, prefix)
            return topic_name(settings, name), key, encode(delivery)
        except UnroutableError as exc:
            reason, original = f"import {resource}: {exc}", encode(delivery)
    letter = dead_letter_record(reason, topic=f"import:{resource}", key=None, original=original)
    return topic_name(settings, "shopify.deadletter"), None, letter


@dataclass
class ShopifyAdmin:
    """A paced, retrying GET against the Admin API."""

    http: httpx.AsyncClient
    attempts: int = 6

    async def get(self, url: str) -> httpx.Response:
        for attempt in range(self.attempts):
            try:
                response = await self.http.get(url)
            except (httpx.TimeoutException, httpx.TransportError):
                await asyncio.sleep(min(10.0, 0.2 * 2**attempt) * random.random())
                continue
            if response.status_code == 429:
                await asyncio.sleep(float(response.headers.get("Retry-After", "2")))
                continue
            if response.status_code >= 500:
                await asyncio.sleep(min(10.0, 0.2 * 2**attempt) * random.random())
                continue
            if response.status_code in (401, 403):
                raise ShopifyImportError(
                    f"Shopify refused the token ({response.status_code}): check SHOPIFY_ADMIN_TOKEN"
                )
            response.raise_for_status()
            await self._pace(response.headers.get("X-Shopify-Shop-Api-Call-Limit"))
            return response
        raise ShopifyImportError(f"Shopify kept failing for {url}")

    async def _pace(self, header: str | None) -> None:
        """Leaky bucket: when it is more than 80% full, let it drain below that (it leaks 2 calls/s
        on standard plans), so the import never runs into 429s of its own making."""
        try:
            used, size = (int(x) for x in (header or "").split("/"))
        except ValueError:
            return
        if used > 0.8 * size:
            await asyncio.sleep((used - 0.8 * size + 1) / 2.0)


async def run_import(
    settings: Settings,
    admin_url: str,
    token: str,
    state_path: Path,
    *,
    resources: tuple[str, ...] = RESOURCES,
    api_version: str = "2026-04",
    page_size: int = 250,
    stop_after_pages: int | None = None,
    progress: Progress | None = None,
    report: LossReport | None = None,
) -> dict[str, int]:
    """Import (or resume importing) ``resources``; return the records appended per resource.
    ``progress`` is told each resource's records after every acknowledged page (REST pages say
    no total, so it shows the count and the rate, no ETA).

    A record that cannot be appended where it belongs (not a JSON object, or no id or token, so no
    key) is appended to ``shopify.deadletter`` with the reason and its bytes instead, and counted
    in ``report`` (R2: never skipped silently; R7: the command shows it)."""
    report = report if report is not None else LossReport()
    shown = progress if progress is not None else NoProgress()
    await ensure_topics(settings)
    shop = httpx.URL(admin_url).host
    prefix = key_prefix(settings, shop)
    state = ImportState.load(state_path)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True, linger_ms=20,
        max_request_size=settings.kafka_message_bytes(),  # R6: the size every topic takes
    )  # fmt: skip
    await producer.start()
    sealer = sealer_for(settings, follow=True)  # G1: None unless sealing; follows redactions meanwhile
    appended: dict[str, int] = {}
    pages = 0
    headers = {"X-Shopify-Access-Token": token, "Accept": "application/json"}
    try:
        async with httpx.AsyncClient(base_url=admin_url.rstrip("/"), headers=headers, timeout=30) as http:
            admin = ShopifyAdmin(http)
            for resource in resources:
                rs = state.resources.setdefault(resource, ResourceState())
                if not rs.done:
                    shown.start(f"import {resource}", Totals(), rs.count)
                url = rs.next_url or f"/admin/api/{api_version}/" + ENDPOINTS[resource].format(
                    limit=page_size
                )
                while not rs.done:
                    if stop_after_pages is not None and pages >= stop_after_pages:
                        shown.finish()
                        return appended
                    response = await admin.get(url)
                    try:
                        records = response.json().get(resource, [])
                    except (ValueError, AttributeError) as exc:
                        raise ShopifyImportError(f"Shopify answered {url} with no {resource} list") from exc
                    sent, lost = [], 0
                    seal = None
                    if sealer is not None:  # the page's new subjects' keys, acknowledged first
                        await sealer.prepare(
                            import_delivery(resource, r, shop, api_version)
                            for r in records
                            if isinstance(r, dict)
                        )
                        seal = sealer.seal_held
                    for record in records:
                        target, key, value = placed(
                            settings, resource, record, shop, api_version, seal=seal, prefix=prefix
                        )
                        if target == topic_name(settings, "shopify.deadletter"):
                            lost += 1
                            report.dead_letter("shopify.deadletter", orjson.loads(value)["reason"])
                        sent.append(await producer.send(target, value, key=key))
                    await asyncio.gather(*sent)  # acknowledged by Kafka before the cursor moves on
                    rs.count += len(records) - lost
                    appended[resource] = appended.get(resource, 0) + len(records) - lost
                    following = next_link(response.headers.get("Link"))
                    rs.next_url, rs.done = following, following is None
                    if following is not None:
                        url = following
                    state.save()
                    pages += 1
                    shown.update(rs.count)
                shown.finish()
    finally:
        await producer.stop()
        if sealer is not None:
            await sealer.stop()
    return appended
