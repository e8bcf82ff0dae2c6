"""``shopsync compliance report``: a report for each ``customers/data_request`` (SPEC G1).

The shell around ``handlers.compliance_report``: it reads ``shopify.compliance`` for the data
requests, then every topic the product keeps (the Shopify and HubSpot topics, the dead letters,
the parked deliveries, the worker's internal topics and its tables' changelogs for
``SHOPSYNC_APP_ID``) once, hands the records to the pure matcher, and writes one JSON file per
request in ``SHOPSYNC_COMPLIANCE_DIR`` for the operator to send to the merchant (written to a
temporary name and renamed, so a half-written report never sits under the final name). It logs
and prints counts and file names only: the reports hold the customer's personal data, the logs
never do.

With ``SHOPSYNC_SEAL_PERSONAL_DATA`` on it reads the key topic too and opens every sealed body
before matching (a customer whose key was shredded is no longer found in them: erased).

It reads topics rather than asking the worker, so it runs beside a live worker (or without one),
and what it reports of the worker's state is what the tables' changelogs hold: the state a
restarted worker would load.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError

from config import Settings
from handlers.compliance_report import Sources, Subject, collect, report, report_name
from handlers.sealer import opener_for
from schemas.compliance import ComplianceRequest
from schemas.sealing import opening
from streams.topic_reader import Record, read_all
from streams.topics import INTERNAL_TOPICS, TABLES, TOPICS, changelog_topic, internal_topic, topic_name

log = logging.getLogger("shopsync.compliance")
CUSTOMER_KEYED_TABLES = ("company-members",)
"""The tables (and internal topics of the same name) keyed by Shopify customer id."""


@dataclass(frozen=True)
class Written:
    path: Path
    records: int
    state_rows: int
    id_map_entries: int


def sources(settings: Settings) -> Sources:
    return Sources(
        orders=topic_name(settings, "shopify.orders"),
        customer_keyed=frozenset(
            {topic_name(settings, "shopify.customers")}
            | {internal_topic(settings, "company-members")}
            | {changelog_topic(settings, t) for t in CUSTOMER_KEYED_TABLES}
        ),
        tables={changelog_topic(settings, t): t for t in TABLES},
        id_map=topic_name(settings, "hubspot.ids"),
    )


def every_topic(settings: Settings) -> list[str]:
    """Every topic that may hold a customer's data: the declared ones, the worker's internal ones
    and its changelogs."""
    return [
        *(topic_name(settings, t.name) for t in TOPICS),
        *(internal_topic(settings, n) for n in INTERNAL_TOPICS),
        *(changelog_topic(settings, t) for t in TABLES),
    ]


async def existing_topics(settings: Settings) -> set[str]:
    """The topics the cluster has (a worker that never ran has no internal topics yet)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def stored_requests(
    settings: Settings, existing: set[str] | None = None
) -> list[tuple[ComplianceRequest, int, int]]:
    """Every request on ``shopify.compliance`` with its partition and offset, in log order, a
    redelivery once (by event id: the first copy, the one the redactor reaches first)."""
    existing = await existing_topics(settings) if existing is None else existing
    seen: dict[tuple[str, str], tuple[ComplianceRequest, int, int]] = {}
    name = topic_name(settings, "shopify.compliance")
    for record in await read_all(settings.kafka_bootstrap_servers, name) if name in existing else []:
        try:
            request = ComplianceRequest.model_validate_json(record.value)
        except ValidationError:
            log.warning(orjson.dumps({"event": "compliance.unreadable", "offset": record.offset}).decode())
            continue
        seen.setdefault((request.topic, request.event_id), (request, record.partition, record.offset))
    return list(seen.values())


async def compliance_requests(
    settings: Settings, existing: set[str] | None = None
) -> list[ComplianceRequest]:
    """Every request on ``shopify.compliance``, in log order, a redelivery once (by event id)."""
    return [request for request, _, _ in await stored_requests(settings, existing)]


async def redactor_committed(settings: Settings) -> dict[int, int]:
    """The redactor group's (``<app id>.redactor``) committed offset per partition of
    ``shopify.compliance``: every request below it was applied (the redactor commits a request
    only after Kafka acknowledged its tombstones). Empty when the redactor never ran."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(f"{settings.app_id}.redactor")
    finally:
        await admin.close()
    name = topic_name(settings, "shopify.compliance")
    return {
        tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == name and meta.offset >= 0
    }


async def data_requests(settings: Settings, existing: set[str]) -> list[ComplianceRequest]:
    """The data requests, one per report (a request redelivered under another event id too)."""
    reports: dict[str, ComplianceRequest] = {}
    for request in await compliance_requests(settings, existing):
        if request.topic == "customers/data_request":
            reports.setdefault(report_name(request), request)
    return list(reports.values())


async def write_reports(settings: Settings, now: datetime, out: Path | None = None) -> list[Written]:
    """Write the report of every data request on ``shopify.compliance`` (again, if written before:
    a report shows what is held when it is made)."""
    existing = await existing_topics(settings)
    requests = await data_requests(settings, existing)
    if not requests:
        return []
    records: list[Record] = []
    for name in (n for n in every_topic(settings) if n in existing):
        records += await read_all(settings.kafka_bootstrap_servers, name, timeout_s=120)
    subjects = {report_name(r): Subject.of(r) for r in requests}
    opener = opener_for(settings)  # G1: sealed records are opened, so they are matched and shown
    keys: Mapping[str, bytes] = {}
    if opener is not None:
        try:
            await opener.ensure(r.value for r in records if r.value)
            keys = dict(opener.keys)
        finally:
            await opener.stop()
    with opening(keys) if opener is not None else contextlib.nullcontext():
        found = collect(subjects, records, settings.privacy_key(), sources(settings))
    folder = out or Path(settings.compliance_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for request in requests:
        name = report_name(request)
        body = report(request, found[name], now)
        path = folder / name
        partial = path.with_suffix(".json.partial")
        partial.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        partial.chmod(0o600)  # the customer's personal data: the operator's eyes only
        os.replace(partial, path)
        summary = body["summary"]
        written.append(
            Written(path, len(found[name].records), summary["state_rows"], summary["id_map_entries"])
        )
        log.info(orjson.dumps({"event": "compliance.report_written", "file": name,
                               "records": len(found[name].records)}).decode())  # fmt: skip
    return written
