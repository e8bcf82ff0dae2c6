"""``customers/data_request`` (SPEC G1), the pure part: which records name a customer, and the
report of them that the operator sends to the merchant.

The shell (``handlers.compliance``) reads every topic the product keeps, once, and hands the
records here; nothing here reads or writes anything. A record *names* the customer when, for the
request's shop:

- a string in its key or value is the customer's email (compared by pseudonym, since the request on
  ``shopify.compliance`` keeps nothing else of it; a key such as ``contacts:a@b.c`` or
  ``b.myshopify.com/a@b.c`` counts by its last part), or their email's pseudonym itself (G1,
  ``SHOPSYNC_REDACTABLE``: a key ending ``p1:...`` such as the id map's
  ``contacts:email:p1:...``, or a value that is it), or a ``phone`` field is their phone;
- it carries the customer's id (``customer.id``, ``customer_id``, or the global id
  ``gid://shopify/Customer/<id>``), or it is keyed by that id on a topic keyed by customer id;
- it is one of the orders the request names, on ``shopify.orders``;
- it is a dead letter whose original bytes name them (the original is read too).

A record of another shop (its ``shop_domain`` says so) never counts: the request is the shop's.
The customer's state is the worker's tables as their changelogs hold them (the newest value of
each key), so what the report shows is what the running worker holds, not a recomputation.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from schemas.compliance import ComplianceRequest
from schemas.sealing import open_tree
from streams.privacy import IdentifierKind, pseudonym
from streams.topic_reader import Record

GID_PREFIX = "gid://shopify/Customer/"
HUBSPOT_NOTE = (
    "The HubSpot records synced from this shop (contacts, deals, orders, carts, line items) belong to "
    "the merchant's own HubSpot account: this app writes them on the merchant's behalf, and this report "
    "does not list them. They were not read or changed for this request; the merchant can export the "
    "customer's contact from HubSpot (HubSpot's own privacy tools) if the request covers it."
)


@dataclass(frozen=True)
class Subject:
    """Whom a request is about, as the request identifies them."""

    shop_domain: str
    customer_id: int | None
    email_pseudonym: str | None
    phone_pseudonym: str | None
    orders: frozenset[int] = frozenset()

    @classmethod
    def of(cls, request: ComplianceRequest) -> Subject:
        return cls(
            request.shop_domain, request.customer_id, request.email_pseudonym, request.phone_pseudonym,
            frozenset(request.orders),
        )  # fmt: skip


@dataclass(frozen=True)
class Sources:
    """Which topic names play which part (the shell knows the prefixes and the app id)."""

    orders: str
    customer_keyed: frozenset[str]  # topics keyed by Shopify customer id
    tables: dict[str, str]  # changelog topic -> table name
    id_map: str


@dataclass
class Found:
    """What names one subject, as it is collected."""

    records: list[dict[str, Any]] = field(default_factory=list)
    state: dict[tuple[str, str], Any] = field(default_factory=dict)  # (table, key) -> newest value
    ids: dict[str, str] = field(default_factory=dict)  # id map key -> newest value
    emails: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)


def _text(raw: bytes | None) -> str:
    return "" if raw is None else raw.decode("utf-8", "replace")


def table_key(raw: bytes | None) -> str:
    """A table's key as its changelog holds it: faust writes table keys as JSON (``"a@b.c"``)."""
    text = _text(raw)
    try:
        decoded = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return decoded if isinstance(decoded, str) else text


def _json(raw: bytes) -> Any:
    """A record's value as JSON, every sealed body in it opened (G1: with the keys the shell gave,
    ``schemas.sealing.opening``), so the report matches and shows what the customer's data is."""
    try:
        return open_tree(orjson.loads(raw))
    except orjson.JSONDecodeError:
        return _text(raw)


def _walk(value: Any, parent: str = "") -> Iterator[tuple[str, Any]]:
    """(the key a value sits under, value) of every value in a JSON tree, a dead letter's
    original bytes opened as JSON too."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "original_base64" and isinstance(v, str) and v:
                with contextlib.suppress(binascii.Error, ValueError):
                    yield from _walk(_json(base64.b64decode(v, validate=True)), k)
                continue
            yield k, v
            yield from _walk(v, k)
    elif isinstance(value, list):
        for v in value:
            yield parent, v
            yield from _walk(v, parent)


def _email_candidates(text: str) -> Iterator[str]:
    if "@" in text:
        yield text
        yield text.rsplit(":", 1)[-1]
        yield text.rsplit("/", 1)[-1]


def _last_part(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def _as_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


class Matcher:
    """Whether a record names a subject, and which of their identifiers it shows."""

    def __init__(self, key: bytes, sources: Sources) -> None:
        self.key = key
        self.sources = sources
        self._made: dict[tuple[IdentifierKind, str], str | None] = {}

    def _pseudonym(self, kind: IdentifierKind, text: str) -> str | None:
        """``pseudonym``, remembered: one store names the same few addresses over and over."""
        made = self._made.get((kind, text), ...)
        if made is ...:
            made = self._made[(kind, text)] = pseudonym(self.key, kind, text)
            if len(self._made) > 100_000:
                self._made.clear()
        return made

    def identifiers(self, subject: Subject, record: Record, value: Any) -> tuple[bool, set[str], set[str]]:
        """(names them, their emails shown, their phones shown)."""
        emails: set[str] = set()
        phones: set[str] = set()
        named = False
        key = table_key(record.key) if record.topic in self.sources.tables else _text(record.key)
        for candidate in _email_candidates(key):
            if subject.email_pseudonym and self._pseudonym("email", candidate) == subject.email_pseudonym:
                emails.add(candidate)
        if subject.email_pseudonym and key.endswith(subject.email_pseudonym):  # G1: keyed by pseudonym
            named = True
        if subject.customer_id is not None and record.topic in self.sources.customer_keyed:
            named |= _as_id(_last_part(key)) == subject.customer_id
        if subject.orders and record.topic == self.sources.orders:
            named |= _as_id(_last_part(key)) in subject.orders
        for under, item in [("", value), *_walk(value)]:
            if isinstance(item, str):
                named |= item == subject.email_pseudonym  # G1: a contact key held as a value
                if subject.email_pseudonym:
                    for candidate in _email_candidates(item):
                        if self._pseudonym("email", candidate) == subject.email_pseudonym:
                            emails.add(candidate)
                is_phone = under == "phone" and subject.phone_pseudonym is not None
                if is_phone and self._pseudonym("phone", item) == subject.phone_pseudonym:
                    phones.add(item)
                if subject.customer_id is not None and item == f"{GID_PREFIX}{subject.customer_id}":
                    named = True
            elif isinstance(item, dict) and subject.customer_id is not None:
                customer = item.get("customer")
                if isinstance(customer, dict) and _as_id(customer.get("id")) == subject.customer_id:
                    named = True
                if _as_id(item.get("customer_id")) == subject.customer_id:
                    named = True
        return named or bool(emails) or bool(phones), emails, phones


def _other_shop(subject: Subject, value: Any) -> bool:
    """The record says it is another shop's (a delivery's or request's ``shop_domain``)."""
    if not isinstance(value, dict):
        return False
    shop = value.get("shop_domain")
    if not isinstance(shop, str):
        delivery = value.get("delivery")  # a parked delivery
        shop = delivery.get("shop_domain") if isinstance(delivery, dict) else None
    return isinstance(shop, str) and bool(shop) and shop.strip().lower() != subject.shop_domain


def collect(
    subjects: dict[str, Subject], records: Iterable[Record], key: bytes, sources: Sources
) -> dict[str, Found]:
    """One pass over the records: for each subject (by request id), what names them. A table's
    or the id map's newest value of a key wins (they are compacted topics read whole); a
    tombstone means the key is gone."""
    matcher = Matcher(key, sources)
    found = {rid: Found() for rid in subjects}
    for record in records:
        value = _json(record.value) if record.value else None
        table = sources.tables.get(record.topic)
        for rid, subject in subjects.items():
            if value is not None and _other_shop(subject, value):
                continue
            named, emails, phones = matcher.identifiers(subject, record, value)
            into = found[rid]
            if table is not None or record.topic == sources.id_map:  # compacted: the newest wins
                text_key = table_key(record.key) if table is not None else _text(record.key)
                if value is None or not named:  # a tombstone, or a newer value not about them
                    if table is not None:
                        into.state.pop((table, text_key), None)
                    else:
                        into.ids.pop(text_key, None)
                    continue
                if table is not None:
                    into.state[(table, text_key)] = value
                else:
                    into.ids[text_key] = _text(record.value)  # ``<id>`` or ``gone:<id>``, as text
            elif named:
                into.records.append({
                    "topic": record.topic, "partition": record.partition, "offset": record.offset,
                    "key": _text(record.key), "value": value,
                })  # fmt: skip
            else:
                continue
            into.emails |= emails
            into.phones |= phones
    return found


def report(request: ComplianceRequest, found: Found, generated_at: datetime) -> dict[str, Any]:
    """The report of one data request: the request, the identifiers found, the worker's state,
    the writer's id map entries and every record that names the customer, and the note that
    HubSpot's records are the merchant's and untouched."""
    by_topic: dict[str, int] = {}
    for record in found.records:
        by_topic[record["topic"]] = by_topic.get(record["topic"], 0) + 1
    return {
        "kind": "shopsync.data-request-report",
        "generated_at": generated_at.isoformat(),
        "request": {
            "shop_domain": request.shop_domain,
            "shop_id": request.shop_id,
            "data_request_id": request.data_request_id,
            "customer_id": request.customer_id,
            "orders_requested": list(request.orders),
            "webhook_id": request.webhook_id,
            "received_at": request.received_at.isoformat(),
        },
        "hubspot": HUBSPOT_NOTE,
        "identifiers_found": {"emails": sorted(found.emails), "phones": sorted(found.phones)},
        "summary": {
            "records_by_topic": dict(sorted(by_topic.items())),
            "state_rows": len(found.state),
            "id_map_entries": len(found.ids),
        },
        "state": [
            {"table": table, "key": key, "value": value}
            for (table, key), value in sorted(found.state.items())
        ],
        "id_map": [{"key": k, "hubspot_id": v} for k, v in sorted(found.ids.items())],
        "records": found.records,
    }


def report_name(request: ComplianceRequest) -> str:
    """The report's file name: the shop and Shopify's data request id (else the event id), so a
    request delivered twice writes one file, and no personal data is in the name."""
    ident = request.data_request_id if request.data_request_id is not None else request.event_id
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{request.shop_domain}-{ident}")
    return f"{safe}.json"


SHOPIFY_DEADLINE = timedelta(days=30)
"""Shopify's time to complete a compliance request ("Privacy law compliance": 30 days)."""


@dataclass(frozen=True)
class Outstanding:
    """A redact request received, whether the redactor has applied it, and when Shopify's 30 days
    end."""

    topic: str
    shop_domain: str
    event_id: str
    due: datetime
    applied: bool = False


def outstanding_redactions(
    requests: Iterable[tuple[ComplianceRequest, int, int]], committed: Mapping[int, int]
) -> list[Outstanding]:
    """Every ``customers/redact`` and ``shop/redact`` received (with its partition and offset),
    oldest due first: the operator's list of obligations, each marked applied when it lies below
    the redactor group's committed offset of its partition (``committed``: the redactor commits
    a request only once its tombstones are acknowledged). Applied erases only what was sealed
    (README, Privacy (G1))."""
    found = [
        Outstanding(
            r.topic,
            r.shop_domain,
            r.event_id,
            r.received_at + SHOPIFY_DEADLINE,
            applied=offset < committed.get(partition, 0),
        )
        for r, partition, offset in requests
        if r.topic in ("customers/redact", "shop/redact")
    ]
    return sorted(found, key=lambda o: (o.due, o.shop_domain, o.event_id))
