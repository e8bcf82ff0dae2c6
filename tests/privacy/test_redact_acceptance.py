"""Issue 15's acceptance test (G1): after ``customers/redact``, no byte of that customer's email,
phone, name or address remains readable in any topic, changelog, RocksDB store or dead letter; a
replay from offset 0 yields an account without them; other customers are untouched.

The whole product runs, with ``SHOPSYNC_SEAL_PERSONAL_DATA`` and ``SHOPSYNC_REDACTABLE`` on:
signed webhooks through the bridge (which seals), the worker as its own process (RocksDB tables,
changelogs, internal topics), the writer, the HubSpot sandbox. The store is the smallest that
reaches every place a customer's values can be copied to: three customers with distinctive values
(so a needle can match nothing but them: no other customer's text, no base64 noise), two of them
with checkouts and paid orders (journeys, deals, line items, the reports' facts), one abandoned
checkout (its timer fires on the tick), a delivery the worker dead-letters and a command HubSpot
refuses (so both dead-letter topics hold the customer before the redact, as a real store's would).
And a B2B company (X2) whose contacts both are, Ottoline's orders placed for it: a company's row
and commands are sealed under the shop's key, which her redact does not shred, so they must name
her by her pseudonym alone (as they did not before: her email stayed readable in the company's
changelog and association commands).

Ottoline is redacted; Peregrine is the customer who must be untouched; Hyacinth's update after the
redact makes the worker run a batch after it (its key ring follows the key topic, so the
worker has read past the redact). The scan (``devtools.privacy_scan``) lists the topics from the
broker and searches every record and every RocksDB row in every form a value takes, opening sealed
values with the keys the key topic still holds: a value sealed under a key that was not shredded is
readable, so a redactor that shreds nothing fails (a).

HubSpot's own records stay: they are the merchant's (README, Privacy (G1): HubSpot is left alone
unless ``SHOPSYNC_REDACT_HUBSPOT`` says otherwise, tested in ``test_redact_hubspot.py``), so the
account written before the redact still holds Ottoline and is not what is checked. The check is
a replay from offset 0 into a fresh sandbox account: what the topics still say.

And (d): no log line of any service (the worker's log file; the bridge's, writer's, redactor's
and replay's records in this process) holds either customer's values, redact or not.

Without the worker's and the writer's sealing of what they derive (G1 step 3's second part), (a)
fails, naming the changelogs, RocksDB stores, ``hubspot.commands`` and the writer's dead letters
that hold her in the clear (as it did on main before that sealing was merged).

Every part is checked and reported together (a failure of (a) does not hide (b) or (c)), with the
scan's places, counts and first locations, so the message says what is left to seal.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from config import Settings
from devtools.localrun import ServiceProcess, wait_until_worker_idle, wait_until_written
from devtools.privacy_scan import Customer, Hit, Scan, hits_in, needles_for, scan
from devtools.samplestore import (
    CITIES,
    PRODUCTS,
    Line,
    checkout_body,
    customer_body,
    order_body,
    product_body,
)
from handlers.redactor import redact_once, redactor_args
from handlers.replay import desired_commands, rebuild, send
from handlers.writer import run_writer
from hubspot_sandbox import Sandbox, SandboxConfig, running_sandbox
from streams.ticker import append_ticks
from streams.topic_reader import read_all
from streams.topics import ensure_topics, topic_name
from tests.bridge.test_bridge import bridge, bridge_settings, signed
from tests.privacy.test_sealed_end_to_end import account
from tests.rules.test_companies import COMPANY_ID, company_body
from tests.rules.test_company_members import contact_body
from tests.writer.conftest import TOKEN, admin

pytestmark = pytest.mark.kafka

SHOP = "s.myshopify.com"  # the shop ``signed`` names
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SECRET = SecretStr("redact-acceptance-privacy-secret, 32+ bytes")

OTTOLINE = Customer(
    "Ottoline.Vandersnoot@Quillmail.test", "+44 7700 900461", "Ottoline", "Vandersnoöt",
    "17 Wrenfield Passage", "Flat 9, Quayside Mews", "QX9 7ZT", who="ottoline ",
)  # fmt: skip
PEREGRINE = Customer(
    "peregrine.blatherwick@fernpost.test", "+1 613 555 0187", "Peregrine", "Blatherwick",
    "88 Lindqvist Crescent", None, "K2P 9XQ", who="peregrine ",
)  # fmt: skip
HYACINTH = Customer(
    "hyacinth.dumbleford@mossbank.test", "+61 491 570 156", "Hyacinth", "Dumbleford",
    "3 Kestrel Yard", None, "VW4 2RJ", who="hyacinth ",
)  # fmt: skip
IDS = {OTTOLINE: 7100000001, PEREGRINE: 7100000002, HYACINTH: 7100000003}


def person(c: Customer, at: datetime, updated: datetime | None = None, city: int = 0) -> dict[str, Any]:
    """A ``customers/*`` body of the customer, their values in every field Shopify has for them
    (an update: a newer ``updated_at`` and another city, so the contact's properties change)."""
    body = customer_body(IDS[c], c.email, c.first_name or "", c.last_name or "", at, phone=c.phone,
                         accepts_marketing=True, updated_at=updated, city=CITIES[city])  # fmt: skip
    for place in (body["default_address"], *body["addresses"]):
        place.update(address1=c.address1, address2=c.address2, zip=c.zip, phone=c.phone,
                     name=f"{c.first_name} {c.last_name}")  # fmt: skip
    return body


def journey(
    c: Customer, n: int, lines: list[Line], at: datetime
) -> list[tuple[datetime, str, dict[str, Any]]]:
    """A checkout, completed into an order that is then paid: every entity a buyer touches."""
    body = person(c, at)
    checkout, cart, oid = f"chk{n}ab", f"cart{n}ab", 7200000000 + n

    def check(t: datetime, done: datetime | None) -> dict[str, Any]:
        out = checkout_body(checkout, cart, lines, t, at, customer=body, email=c.email, completed_at=done)
        return {**out, "phone": c.phone, "billing_address": body["default_address"],
                "shipping_address": body["default_address"]}  # fmt: skip

    def order(t: datetime, status: str) -> dict[str, Any]:
        return {**order_body(oid, n, lines, at + timedelta(minutes=9), customer=body, email=c.email,
                             checkout_token=checkout, cart_token=cart, financial_status=status,
                             updated_at=t), "phone": c.phone}  # fmt: skip

    t = at + timedelta(minutes=9)
    return [
        (at, "customers/create", body),
        (at + timedelta(minutes=5), "checkouts/create", check(at + timedelta(minutes=5), None)),
        (t, "checkouts/update", check(t, t)),
        (t, "orders/create", order(t, "pending")),
        (t + timedelta(minutes=1), "orders/paid", order(t + timedelta(minutes=1), "paid")),
    ]


def b2b(
    events: list[tuple[datetime, str, dict[str, Any]]],
) -> list[tuple[datetime, str, dict[str, Any]]]:
    """The journey's orders placed for the company (X2): the company links their buyer."""
    place = {"company": {"id": COMPANY_ID, "location_id": 8101}}
    return [(at, topic, body | place if topic.startswith("orders/") else body) for at, topic, body in events]


def member(c: Customer, n: int, at: datetime) -> tuple[datetime, str, dict[str, Any]]:
    """``company_contacts/create``: the customer is a contact of the company (no email in it)."""
    return at, "company_contacts/create", contact_body(at, IDS[c], f"gid://shopify/CompanyContact/{n}")


def store() -> list[tuple[datetime, str, dict[str, Any]]]:
    """Products, Ottoline's and Peregrine's journeys, Ottoline's abandoned second checkout, Hyacinth
    without an order, and an order of Ottoline's the worker cannot read (its id is not a number:
    a dead letter holding her sealed original)."""
    products = [
        product_body(7300000000 + i, spec, AT - timedelta(days=30)) for i, spec in enumerate(PRODUCTS[:2])
    ]
    lines = [
        Line(products[0], products[0]["variants"][0], 1),
        Line(products[1], products[1]["variants"][1], 2),
    ]
    later = AT + timedelta(hours=2)
    abandoned = checkout_body("chk9ab", "cart9ab", lines[:1], later, later, customer=person(OTTOLINE, AT),
                              email=OTTOLINE.email)  # fmt: skip
    unreadable = order_body(7200000009, 9, lines, later, customer=person(OTTOLINE, AT), email=OTTOLINE.email,
                            checkout_token=None, cart_token=None) | {"id": "seven-thousand"}  # fmt: skip
    return [
        *[(AT - timedelta(days=30), "products/create", p) for p in products],
        (AT - timedelta(days=1), "companies/create", company_body(AT - timedelta(days=1))),
        *b2b(journey(OTTOLINE, 1, lines, AT)),
        *journey(PEREGRINE, 2, lines[1:], AT + timedelta(minutes=30)),
        (AT + timedelta(minutes=40), "customers/create", person(HYACINTH, AT + timedelta(minutes=40))),
        member(OTTOLINE, 1, AT + timedelta(minutes=41)),
        member(PEREGRINE, 2, AT + timedelta(minutes=42)),
        (later, "checkouts/create", abandoned),
        (later, "orders/create", unreadable),
    ]


async def post(http: httpx.AsyncClient, topic: str, body: dict[str, Any], event: str, at: datetime) -> None:
    """One webhook, signed as Shopify signs it (the compliance ones too)."""
    raw = orjson.dumps(body)
    headers = {**signed(raw, topic, event_id=event, shop=SHOP), "X-Shopify-Triggered-At": at.isoformat()}
    answer = await http.post("/webhooks/shopify", content=raw, headers=headers)
    assert answer.status_code == 200, answer.text


async def update(
    http: httpx.AsyncClient, settings: Settings, worker: ServiceProcess, c: Customer, city: int
) -> None:
    """A ``customers/update`` a day later in another city (a property changes: a command), then
    until the worker and the writer are idle."""
    await post(http, "customers/update", person(c, AT, AT + timedelta(days=1), city), f"upd-{IDS[c]}", AT)
    await wait_until_worker_idle(settings, 120, worker)
    await wait_until_written(settings, 90)


def of(found: Scan, c: Customer) -> list[Hit]:
    return [h for h in found.hits if h.what.startswith(c.who)]


def held_places(hits: list[Hit]) -> set[tuple[str, str, str]]:
    """Where a customer's values are, as topic records and RocksDB rows (a raw file's byte offsets
    move as RocksDB rewrites its files: the rows are the store's identity)."""
    return {(h.where, h.location, h.what) for h in hits if not h.where.startswith("file ")}


def contact(dump_account: tuple[dict[Any, dict[str, Any]], set[Any]], c: Customer) -> dict[str, Any] | None:
    return dump_account[0].get(("contacts", c.email.lower()))


def linked(dump_account: tuple[dict[Any, dict[str, Any]], set[Any]], c: Customer) -> set[Any]:
    return {a for a in dump_account[1] if ("contacts", c.email.lower()) in a[:2]}


async def written(settings: Settings, sandbox: Sandbox) -> tuple[dict[Any, dict[str, Any]], set[Any]]:
    """The sandbox's account once the writer (already running) has written every command."""
    await wait_until_written(settings, 90)
    return account(await admin(sandbox, "GET", "/_sandbox/dump"))


async def test_after_a_redact_nothing_of_the_customer_is_readable_and_replay_forgets_them(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config = SandboxConfig(db_path=tmp_path / "sandbox.db", token=SecretStr(TOKEN))
    fresh = SandboxConfig(db_path=tmp_path / "replayed.db", token=SecretStr(TOKEN))
    async with running_sandbox(config) as sandbox, running_sandbox(fresh) as replayed_sandbox:
        own = bridge_settings(
            settings, seal_personal_data=True, redactable=True, privacy_secret=SECRET,
            tick_interval_s=0,  # no wall-clock ticker: the test's own tick, after the deliveries
            hubspot_base_url=sandbox.url, hubspot_token=SecretStr(TOKEN), writer_batch_window_ms=200,
            writer_link_wait_s=5.0, data_dir=tmp_path / "worker",
        )  # fmt: skip
        await ensure_topics(own, internal=True)
        worker = ServiceProcess("worker", own, tmp_path / "worker.log")
        stop_writer = asyncio.Event()
        writer = asyncio.create_task(run_writer(own, stop_writer))
        try:
            async with bridge(own) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
                # 1. The store, and the tick a day later (the abandoned checkout's timer fires).
                for n, (at, topic, body) in enumerate(store()):
                    await post(http, topic, body, f"e{n}", at)
                await wait_until_worker_idle(own, 120, worker)
                await append_ticks(own, datetime.now(UTC) + timedelta(days=1))
                await wait_until_worker_idle(own, 120, worker)
                original = await written(own, sandbox)

                # 2. A command of Ottoline's that HubSpot refuses for good: a writer's dead letter.
                refuse = {"batch_error_rate": 1.0, "batch_error_category": "VALIDATION_ERROR"}
                await admin(sandbox, "POST", "/_sandbox/faults", refuse)
                await update(http, own, worker, OTTOLINE, city=2)
                await admin(sandbox, "POST", "/_sandbox/faults", {"batch_error_rate": 0.0})
                letters = await read_all(own.kafka_bootstrap_servers, topic_name(own, "hubspot.commands.dlq"))
                shopify_letters = await read_all(
                    own.kafka_bootstrap_servers, topic_name(own, "shopify.deadletter")
                )
                assert letters and shopify_letters, "both dead-letter topics hold a record of hers"
                before = await scan(own, [own.data_dir], [OTTOLINE, PEREGRINE])

                # 3. The redact, signed like any webhook; the redactor applies it (the CLI's call).
                her = {"id": IDS[OTTOLINE], "email": OTTOLINE.email, "phone": OTTOLINE.phone}
                redact = {"shop_id": 954889, "shop_domain": SHOP, "customer": her,
                          "orders_to_redact": [7200000001, 7200000009]}  # fmt: skip
                await post(http, "customers/redact", redact, "e-redact", AT + timedelta(days=2))
                applied = await redact_once(*redactor_args(own))  # HubSpot left alone: the default
                assert [a.topic for a in applied] == ["customers/redact"] and applied[0].shredded >= 1

                # 4. The worker reads past it: a batch after the redact (its ring follows the keys).
                await update(http, own, worker, HYACINTH, city=3)
        finally:
            code = worker.stop()
            stop_writer.set()
            await asyncio.wait_for(writer, 30)
        assert code == 0 or not worker.alive(), worker.log_tail()

        # (a) The scan of every topic, changelog, RocksDB store and dead letter, opened with the
        # keys the key topic holds now.
        after = await scan(own, [own.data_dir], [OTTOLINE, PEREGRINE])

        # (b) A replay from offset 0 into a fresh account (its own topics and writer group).
        rebuilt = await rebuild(own)
        again = own.model_copy(
            update={"topic_prefix": f"replayed-{own.topic_prefix}", "app_id": f"{own.app_id}-replayed",
                    "hubspot_base_url": replayed_sandbox.url}
        )  # fmt: skip
        sent = await send(again, desired_commands(rebuilt, again.rule_config()), rebuilt.subjects)
        replay_topic = topic_name(again, "hubspot.commands")
        sealed_replay = await scan(again, [], [PEREGRINE], topics=[replay_topic])
        plain_replay = await scan(again, [], [PEREGRINE], keys={}, topics=[replay_topic])
        stop_replay = asyncio.Event()
        replay_writer = asyncio.create_task(run_writer(again, stop_replay))
        try:
            replayed = await written(again, replayed_sandbox)
        finally:
            stop_replay.set()
            await asyncio.wait_for(replay_writer, 30)
        replayed_dump = orjson.dumps(await admin(replayed_sandbox, "GET", "/_sandbox/dump"))

    # The premises: the pipeline carried both customers, and the scan sees them where they are.
    assert contact(original, OTTOLINE) and contact(original, PEREGRINE), "both reached HubSpot"
    ottoline_before = of(before, OTTOLINE)
    assert any(h.layer == "opened" and "shopify.customers" in h.where for h in ottoline_before), (
        "before the redact her sealed records open: the scan reads what the keys open\n" + before.summary()
    )
    assert any(h.layer in ("base64", "opened") and "deadletter" in h.where for h in ottoline_before), (
        "and a dead letter's original bytes\n" + before.summary()
    )

    for c in (OTTOLINE, PEREGRINE):
        assert any(("companies", str(COMPANY_ID)) in link[:2] for link in linked(original, c)), (
            "the company is linked to both: (a) and (c) cover its row and its links"
        )
    assert held_places(of(before, PEREGRINE)), "Peregrine's values are found before: (c) compares something"
    problems: list[str] = []
    ottoline_after = of(after, OTTOLINE)
    if ottoline_after:
        leaked = replace(after, hits=ottoline_after)
        problems.append(f"(a) her values are still readable after the redact: {leaked.summary(first=4)}")
    if after.unopened:
        problems.append(
            f"(a) {after.unopened} envelope(s) under a held key did not open: the scan cannot read them"
        )
    account_hits, _ = hits_in(replayed_dump, needles_for(OTTOLINE))
    if contact(replayed, OTTOLINE) or account_hits:
        fields = sorted({what for what, _, _ in account_hits})
        held = contact(replayed, OTTOLINE) is not None
        problems.append(f"(b) the replayed account still holds her: contact {held}, values {fields}")
    lost = held_places(of(before, PEREGRINE)) - held_places(of(after, PEREGRINE))
    if lost:
        problems.append(f"(c) Peregrine's values are gone from {len(lost)} places: {sorted(lost)[:5]}")
    if contact(replayed, PEREGRINE) != contact(original, PEREGRINE):
        problems.append(
            f"(c) Peregrine's contact differs after replay: {contact(original, PEREGRINE)} "
            f"before, {contact(replayed, PEREGRINE)} replayed"
        )
    if linked(replayed, PEREGRINE) != linked(original, PEREGRINE):
        changed = sorted(linked(original, PEREGRINE) ^ linked(replayed, PEREGRINE))
        problems.append(f"(c) Peregrine's associations differ: {changed}")
    # (e) The replay's own commands: a live customer's values sealed under her key (they open, and
    # nothing of her is readable without it), so a later redact erases them too; none of the
    # redacted customer's personal commands appended.
    if not of(sealed_replay, PEREGRINE):
        problems.append("(e) the replay's commands open to none of Peregrine's values: (e) checks nothing")
    if of(plain_replay, PEREGRINE):
        shown = replace(plain_replay, hits=of(plain_replay, PEREGRINE)).summary(first=4)
        problems.append(f"(e) replay (send) appended Peregrine's values in the clear: {shown}")
    if sent.left_out_redacted < 1:
        problems.append("(e) replay (send) left out none of the redacted customer's commands")
    logged = (tmp_path / "worker.log").read_bytes() + caplog.text.encode()
    in_logs, _ = hits_in(logged, [*needles_for(OTTOLINE), *needles_for(PEREGRINE)])
    if in_logs:
        problems.append(f"(d) the logs hold personal values: {sorted({what for what, _, _ in in_logs})}")
    assert not problems, "\n".join(problems)
