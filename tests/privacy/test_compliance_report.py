"""``customers/data_request``: the pure matcher over records, and the whole report against a real
worker's topics and changelogs."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from config import Settings
from devtools.localrun import ServiceProcess, append_events, wait_until_worker_idle
from devtools.samplestore import SHOP_DOMAIN, SampleEvent, customer_body, order_body
from handlers.compliance import write_reports
from handlers.compliance_report import (
    HUBSPOT_NOTE,
    Sources,
    Subject,
    collect,
    outstanding_redactions,
    report,
    report_name,
)
from handlers.redactor import redact_once, redactor_args
from schemas.compliance import ComplianceRequest
from schemas.envelope import Delivery, encode
from shopsync.cli import main
from streams.privacy import compliance_request, pseudonym
from streams.topic_reader import Record
from streams.topics import ensure_topics, topic_name
from tests.privacy.test_keyring import key_topic

KEY = b"report-test-key"
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ADA, GRACE = "ada.lovelace@example.com", "grace@example.com"
SOURCES = Sources(
    orders="shopify.orders", customer_keyed=frozenset({"shopify.customers", "cl-company-members"}),
    tables={"cl-contacts": "contacts", "cl-company-members": "company-members"}, id_map="hubspot.ids",
)  # fmt: skip


def subject(email: str = ADA, customer_id: int | None = 4242, phone: str | None = None) -> Subject:
    return Subject(
        SHOP_DOMAIN, customer_id, pseudonym(KEY, "email", email), pseudonym(KEY, "phone", phone),
        frozenset({5001}),
    )  # fmt: skip


def rec(topic: str, key: str, value: object, offset: int = 0) -> Record:
    raw = b"" if value is None else value if isinstance(value, bytes) else orjson.dumps(value)
    return Record(topic, 0, offset, key.encode(), raw)


def envelope(body: dict[str, object], topic: str, shop: str = SHOP_DOMAIN) -> dict[str, object]:
    return {"kind": "delivery", "topic": topic, "shop_domain": shop, "body": body}


def test_what_names_the_customer_is_found_and_nothing_else() -> None:
    ada = customer_body(4242, " Ada.Lovelace@Example.COM", "Ada", "Lovelace", AT)
    grace = customer_body(99, GRACE, "Grace", "Hopper", AT)
    original = orjson.dumps(envelope(ada, "customers/update"))
    letter = {"reason": "x", "original_base64": base64.b64encode(original).decode()}
    records = [
        rec("shopify.customers", "4242", envelope(ada, "customers/create")),  # 0: by email and id
        rec("shopify.customers", "99", envelope(grace, "customers/create")),  # someone else
        rec("shopify.customers", "4242", envelope(ada, "customers/create", shop="other.myshopify.com")),
        rec("shopify.orders", "5001", envelope({"id": 5001}, "orders/create")),  # the request names it
        rec("shopify.orders", "6001", envelope({"id": 6001, "customer": {"id": 4242}}, "orders/create")),
        rec("shopify.orders", "6002", envelope({"id": 6002, "customer": {"id": 99}}, "orders/create")),
        rec("shopify.deadletter", "4242", letter),  # the original names them
        rec("shopify.checkouts", "t1", envelope({"phone": "+1 555 625 1199"}, "checkouts/create")),
        rec("cl-contacts", ADA, {"email": ADA, "v": 1}, 1),
        rec("cl-contacts", ADA, {"email": ADA, "v": 2}, 2),  # the newest value wins
        rec("cl-contacts", GRACE, {"email": GRACE}, 3),
        rec("cl-company-members", "4242", {"companies": {"7": {}}}, 4),
        rec("cl-company-members", "4242", None, 5),  # a tombstone: no longer held
        rec("hubspot.ids", f"contacts:{ADA}", b"901"),
        rec("hubspot.ids", f"contacts:{GRACE}", b"902"),
    ]  # fmt: skip
    found = collect({"r": subject(phone="+15556251199")}, records, KEY, SOURCES)["r"]
    assert [(r["topic"], r["key"]) for r in found.records] == [
        ("shopify.customers", "4242"), ("shopify.orders", "5001"), ("shopify.orders", "6001"),
        ("shopify.deadletter", "4242"), ("shopify.checkouts", "t1"),
    ]  # fmt: skip
    assert found.state == {("contacts", ADA): {"email": ADA, "v": 2}}
    assert found.ids == {f"contacts:{ADA}": "901"}
    assert found.emails == {" Ada.Lovelace@Example.COM", ADA} and found.phones == {"+1 555 625 1199"}
    made = report(request(), found, AT)
    assert made["hubspot"] == HUBSPOT_NOTE and "not read or changed" in made["hubspot"]
    assert made["summary"] == {
        "records_by_topic": {"shopify.checkouts": 1, "shopify.customers": 1, "shopify.deadletter": 1,
                             "shopify.orders": 2},
        "state_rows": 1, "id_map_entries": 1,
    }  # fmt: skip
    assert GRACE not in orjson.dumps(made).decode()


@given(st.emails())
def test_another_address_never_names_the_customer(email: str) -> None:
    if email.strip().lower() == ADA:
        return
    body = customer_body(99, email, "X", "Y", AT)
    records = [rec("shopify.customers", "99", envelope(body, "customers/create"))]
    found = collect({"r": subject()}, records, KEY, SOURCES)["r"]
    assert found.records == [] and found.emails == set()


def request(**update: object) -> ComplianceRequest:
    fields: dict[str, object] = {
        "topic": "customers/data_request", "shop_domain": SHOP_DOMAIN, "webhook_id": "w", "event_id": "e",
        "received_at": AT, "customer_id": 4242, "data_request_id": 9999, **update,
    }  # fmt: skip
    return ComplianceRequest.model_validate(fields)


def test_the_report_is_named_by_shop_and_request_never_by_person() -> None:
    assert report_name(request()) == "sample-store.myshopify.com-9999.json"
    assert report_name(request(data_request_id=None, event_id="e/1")) == "sample-store.myshopify.com-e_1.json"


@pytest.mark.kafka
async def test_the_report_holds_the_workers_state_the_topics_and_the_id_map(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"privacy_secret": SecretStr("privacy-test-secret")})
    await ensure_topics(settings, internal=True)
    ada_customer = {"id": 4242, "email": ADA}
    events = [
        SampleEvent(AT, "customers/create", customer_body(4242, ADA, "Ada", "Lovelace", AT), "e1"),
        SampleEvent(AT, "customers/create", customer_body(99, GRACE, "Grace", "Hopper", AT), "e2"),
        SampleEvent(AT, "orders/create", order_body(5001, 1, [], AT, customer=ada_customer, email=ADA,
                                                    checkout_token=None, cart_token=None), "e3"),
    ]  # fmt: skip
    worker = ServiceProcess("worker", settings, tmp_path / "worker.log")
    try:
        await append_events(settings, events)
        await wait_until_worker_idle(settings, 90, worker)
    finally:
        worker.stop()
    asked = Delivery(
        topic="customers/data_request", shop_domain=SHOP_DOMAIN, webhook_id="w9", event_id="e9",
        received_at=AT,
        body={"shop_id": 1, "shop_domain": SHOP_DOMAIN, "customer": {"id": 4242, "email": ADA},
              "orders_requested": [5001], "data_request": {"id": 9999}},
    )  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        request_record = compliance_request(asked, settings.privacy_key())
        await producer.send_and_wait(topic_name(settings, "shopify.compliance"), encode(request_record), b"s")
        await producer.send_and_wait(topic_name(settings, "hubspot.ids"), b"901", f"contacts:{ADA}".encode())
    finally:
        await producer.stop()

    (written,) = await write_reports(settings, AT, tmp_path / "reports")
    assert written.path == tmp_path / "reports" / "sample-store.myshopify.com-9999.json"
    assert written.path.stat().st_mode & 0o777 == 0o600, "readable by the operator only"
    made = orjson.loads(written.path.read_bytes())
    topics = made["summary"]["records_by_topic"]
    assert topics[topic_name(settings, "shopify.customers")] == 1
    assert topics[topic_name(settings, "shopify.orders")] == 1
    assert topics[topic_name(settings, "shopify.compliance")] == 1, "the request itself (pseudonymised)"
    assert any(name.endswith(".contacts") for name in topics), "the worker's internal topic, by email"
    tables = {row["table"] for row in made["state"]}
    assert "contacts" in tables, f"the worker's contact state from its changelog: {tables}"
    contact = next(row for row in made["state"] if row["table"] == "contacts")
    assert contact["key"] == ADA
    assert made["id_map"] == [{"key": f"contacts:{ADA}", "hubspot_id": "901"}]
    assert made["identifiers_found"]["emails"] == [ADA]
    assert GRACE.encode() not in written.path.read_bytes() and b"Hopper" not in written.path.read_bytes()


@pytest.mark.kafka
async def test_no_compliance_topic_yet_is_no_report_rather_than_an_error(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"privacy_secret": SecretStr("s")})
    assert await write_reports(settings, AT, tmp_path / "reports") == []
    assert not (tmp_path / "reports").exists()


def containers(inner: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """Lists and objects of ``inner`` (keys that are none of the names the matcher reads)."""
    return st.lists(inner, max_size=3) | st.dictionaries(
        st.text("kmn", min_size=1, max_size=3), inner, max_size=3
    )


LEAVES = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(alphabet="abc xyz.:/", max_size=12)
)
json_values = st.recursive(LEAVES, containers, max_leaves=12)


def plant(tree: object, value: object, path: list[int]) -> object:
    """The tree with ``value`` placed somewhere along ``path`` (choices at each container)."""
    if not path or not isinstance(tree, dict | list) or not tree:
        return [tree, value]
    if isinstance(tree, list):
        i = path[0] % len(tree)
        return [plant(v, value, path[1:]) if n == i else v for n, v in enumerate(tree)]
    keys = sorted(tree)
    chosen = keys[path[0] % len(keys)]
    return {k: plant(v, value, path[1:]) if k == chosen else v for k, v in tree.items()}


@given(
    json_values,
    st.lists(st.integers(0, 10), max_size=5),
    st.sampled_from([ADA, " ADA.Lovelace@example.com ", f"contacts:{ADA}"]),
)
def test_the_email_is_found_wherever_a_record_holds_it(tree: object, path: list[int], spelled: str) -> None:
    value = {"kind": "delivery", "body": plant(tree, spelled, path)}
    found = collect({"r": subject(customer_id=None)}, [rec("shopify.carts", "t", value)], KEY, SOURCES)["r"]
    assert len(found.records) == 1 and found.emails


@given(json_values, st.lists(st.integers(0, 10), max_size=5))
def test_the_customer_id_is_found_wherever_a_record_holds_it_as_a_customer(
    tree: object, path: list[int]
) -> None:
    for planted in ({"customer": {"id": 4242}}, {"customer_id": "4242"}, "gid://shopify/Customer/4242"):
        value = {"body": plant(tree, planted, path)}
        found = collect({"r": subject(email=GRACE)}, [rec("shopify.orders", "1", value)], KEY, SOURCES)["r"]
        assert len(found.records) == 1, planted
    stranger = {"body": plant(tree, {"customer": {"id": 4243}, "id": 4242}, path)}
    assert (
        collect({"r": subject(email=GRACE)}, [rec("shopify.orders", "1", stranger)], KEY, SOURCES)[
            "r"
        ].records
        == []
    )


def test_redacts_are_listed_with_their_deadline_and_applied_below_the_redactors_offset() -> None:
    later = datetime(2026, 3, 5, tzinfo=UTC)
    requests = [
        (request(), 0, 0),
        (
            request(
                topic="shop/redact", event_id="s", received_at=later, customer_id=None, data_request_id=None
            ),
            1,
            4,
        ),
        (request(topic="customers/redact", event_id="c", data_request_id=None), 0, 1),
    ]
    listed = outstanding_redactions(requests, {0: 2, 1: 4})
    assert [(p.topic, p.event_id, p.due, p.applied) for p in listed] == [
        ("customers/redact", "c", datetime(2026, 4, 1, 9, 0, tzinfo=UTC), True),
        ("shop/redact", "s", datetime(2026, 4, 4, tzinfo=UTC), False),  # offset 4 is the next to apply
    ]
    assert not any(p.applied for p in outstanding_redactions(requests, {})), "the redactor never ran"


@pytest.mark.kafka
def test_the_command_writes_the_reports_and_warns_of_redacts_without_personal_data(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings.model_copy(update={"privacy_secret": SecretStr("cli-secret")})
    key = settings.privacy_key()

    async def append() -> None:
        await ensure_topics(settings)
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
        await producer.start()
        try:
            for topic, event in (("customers/data_request", "d1"), ("customers/redact", "r1")):
                body = {"shop_domain": SHOP_DOMAIN, "customer": {"id": 4242, "email": ADA},
                        "data_request": {"id": 77}}  # fmt: skip
                delivery = Delivery(topic=topic, shop_domain=SHOP_DOMAIN, webhook_id=event, event_id=event,
                                    received_at=AT, body=body)  # fmt: skip
                value = encode(compliance_request(delivery, key))
                await producer.send_and_wait(topic_name(settings, "shopify.compliance"), value, b"s")
        finally:
            await producer.stop()

    asyncio.run(append())
    for name, value in {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "SHOPSYNC_TOPIC_PREFIX": settings.topic_prefix, "SHOPSYNC_APP_ID": settings.app_id,
        "SHOPSYNC_PRIVACY_SECRET": "cli-secret",
        "SHOPSYNC_COMPLIANCE_DIR": str(tmp_path / "out"),
        "SHOPSYNC_SEAL_PERSONAL_DATA": "false", "SHOPSYNC_REDACTABLE": "false",  # as the fixture's
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["compliance", "report"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "sample-store.myshopify.com-77.json").exists()
    assert "1 data request report(s) written" in result.stderr
    assert (
        "1 redact request(s) pending: `shopsync compliance redact` applies them" in result.stderr
        and "due 2026-04-01" in result.stderr
    )
    assert ADA not in result.output and "lovelace" not in result.stderr.lower(), "names and counts only"

    async def redact() -> None:  # the redactor applies the stored request (it commits it)
        await key_topic(settings)
        await redact_once(*redactor_args(settings))

    asyncio.run(redact())
    again = CliRunner().invoke(main, ["compliance", "report"])
    assert again.exit_code == 0, again.output
    assert "1 redact request(s) applied by the redactor" in again.stderr
    assert "pending" not in again.stderr, "nothing left to do"
