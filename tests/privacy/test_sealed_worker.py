"""G1 step 3's second part, the worker's side, on the broker: with ``SHOPSYNC_SEAL_PERSONAL_DATA``
(and ``SHOPSYNC_REDACTABLE``) on, deliveries sealed by the bridge go through the worker as its own
process, restarted twice on the way (once on its RocksDB stores, once on a fresh data dir, so
its tables are recovered from their changelogs, sealed). Everything the worker wrote (its
commands, its internal topics' facts, its tables' changelogs, its dead letters and field problems)
holds none of the customers' personal values readable, and opens, with the key ring, to what the
same deliveries make the worker write with sealing off.

The writer is left out: it opens commands on its own branch of the work (``seal-writer``);
``test_sealed_end_to_end.py`` covers the account through the writer."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from config import Settings
from devtools.localrun import ServiceProcess, wait_until_worker_idle
from devtools.samplestore import SampleEvent, generate
from handlers.account_fold import Account, fold
from handlers.bridge import SIMULATED_RECEIVED_AT
from handlers.keyring import KeyRing
from handlers.sealer import Opener
from schemas.commands import decode_command
from schemas.sealing import (
    COMMAND,
    SEALED_FIELD,
    Shredded,
    open_derived,
    personal_part,
    seal,
    sealed_ref,
    spec_for,
)
from streams.derived_sealing import SHOP_FIELD, is_sealed_fact, open_fact, open_letter, open_row
from streams.partition_time import AS_OF, stamped_due
from streams.privacy import pseudonym
from streams.shredding import key_encryption_key, kid_of, redaction, shop_key_id, subject_key_ids
from streams.ticker import append_ticks
from streams.topic_reader import Record, read_all
from streams.topics import (
    INTERNAL_TOPICS,
    TABLES,
    changelog_topic,
    ensure_topics,
    internal_topic,
    key_topic,
    topic_name,
)
from tests.bridge.test_bridge import bridge, bridge_settings, signed
from tests.privacy.test_sealed_end_to_end import deliveries
from tests.simulate.test_simulate_b2b_consent import b2b_lines

pytestmark = pytest.mark.kafka

TICK_AT = datetime(2027, 1, 1, tzinfo=UTC)  # after every delivery: the timers due fire
Delivered = tuple[str, bytes, str]


def phases() -> list[list[Delivered]]:
    """A B2B store (companies, a company contact, its order), a generated store and Shopify's own
    payloads, in three parts: the second and third update customers, journeys and companies the
    first made, so a restarted worker must open the rows it stored before."""
    b2b = [(line["shopify"], orjson.dumps(line["body"]), line["at"]) for line in b2b_lines()]
    every = b2b + deliveries()
    n = len(every)
    return [every[: n // 2], every[n // 2 : 3 * n // 4], every[3 * n // 4 :]]


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        for inner in value.values():
            yield from _strings(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _strings(inner)
    elif isinstance(value, str):
        yield value


def personal_texts(every: list[Delivered]) -> set[str]:
    """The deliveries' personal values (``schemas.sealing.SPECS``) as text, without any that also
    shows in what stays readable (a customer's city that is also a company's)."""
    personal: set[str] = set()
    readable: set[str] = set()
    for topic, raw, _ in every:
        body = orjson.loads(raw)
        spec = spec_for(topic)
        if spec is None:
            readable |= set(_strings(body))
            continue
        personal |= {t for values in personal_part(body, spec).values() for t in _strings(values)}
        rest = seal(body, spec, "k~v", bytes(32), bytes(12))
        rest.pop(SEALED_FIELD, None)
        readable |= set(_strings(rest))
    return {t for t in personal - readable if len(t.strip()) >= 3}


def found(texts: set[str], raw: bytes) -> set[str]:
    """The texts in the bytes: as a JSON string (any length), or inside one (8 characters or more:
    a shorter one may occur by chance in base64)."""
    return {t for t in texts if orjson.dumps(t) in raw or (len(t) >= 8 and t.encode() in raw)}


def derived_topics(settings: Settings) -> dict[str, str]:
    """What the worker writes, by a name the two runs share."""
    out = {"commands": topic_name(settings, "hubspot.commands"),
           "deadletter": topic_name(settings, "shopify.deadletter"),
           "field-problems": topic_name(settings, "shopify.field-problems")}  # fmt: skip
    out |= {f"internal {n}": internal_topic(settings, n) for n in INTERNAL_TOPICS}
    out |= {f"table {t}": changelog_topic(settings, t) for t in TABLES}
    return out


async def run(settings: Settings, work: Path, restart: bool) -> dict[str, list[Record]]:
    """The three parts through bridge and worker (``restart``: a new worker for each part, the
    second on the first's RocksDB stores, the third on a fresh data dir), then one tick."""
    await ensure_topics(settings, internal=True)
    counter = itertools.count()
    worker: ServiceProcess | None = None
    own = settings
    try:
        for n, part in enumerate(phases()):
            if worker is None or restart:
                if worker is not None:
                    assert worker.stop() == 0 or not worker.alive(), worker.log_tail()
                own = settings.model_copy(
                    update={"data_dir": work / ("worker-fresh" if n == 2 else "worker")}
                )
                worker = ServiceProcess("worker", own, work / f"worker-{n}.log")
            async with bridge(own) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
                for topic, raw, at in part:
                    headers = {**signed(raw, topic, event_id=f"e{next(counter)}"),
                               "X-Shopify-Triggered-At": at, SIMULATED_RECEIVED_AT: at}  # fmt: skip
                    answer = await http.post("/webhooks/shopify", content=raw, headers=headers)
                    assert answer.status_code == 200, answer.text
            await wait_until_worker_idle(own, 60, worker)
        await append_ticks(own, TICK_AT)
        await wait_until_worker_idle(own, 60, worker)
    finally:
        if worker is not None:
            worker.stop()
    return {
        name: await read_all(settings.kafka_bootstrap_servers, topic, timeout_s=20)
        for name, topic in derived_topics(settings).items()
    }


def _opened(name: str, value: bytes, keys: dict[str, bytes]) -> Any:
    """A record of the sealed run as the unsealed run wrote it (the readable shop of a company row
    left out); None for what the bridge sealed (deliveries forwarded as they came)."""
    if name.startswith("internal "):
        if not is_sealed_fact(value):
            decoded = orjson.loads(value)
            return None if decoded.get("kind") in ("delivery", "tick") else decoded
        fact = open_fact(value, keys)
        assert fact is not None, "every key is held"
        return orjson.loads(fact[0])
    decoded = orjson.loads(value)
    if name == "deadletter":
        return open_letter(decoded, keys)
    opened = open_derived(decoded, keys, COMMAND) if name == "commands" else open_row(decoded, keys)
    assert not isinstance(opened, Shredded), "every key is held"
    return {k: v for k, v in opened.items() if k != SHOP_FIELD} if name.startswith("table ") else opened


def newest(name: str, records: list[Record], keys: dict[str, bytes] | None) -> dict[bytes | None, Any]:
    """The newest value of each key (what a table, or the writer coalescing commands, ends with)."""
    out: dict[bytes | None, Any] = {}
    for record in records:
        if not record.value:
            out.pop(record.key, None)
            continue
        value = orjson.loads(record.value) if keys is None else _opened(name, record.value, keys)
        if keys is None and name.startswith("internal ") and value.get("kind") in ("delivery", "tick"):
            value = None
        if name.startswith("table ") and value is not None:
            if (record.key or b"").startswith(b'"\\u0000clock'):
                continue  # a partition's clock: how far its stream time got depends on timing
            value = {k: v for k, v in value.items() if k != AS_OF}  # so does the time a row was decided at
        if value is not None:
            out[record.key] = value
    return out


def changed(want: dict[bytes | None, Any], got: dict[bytes | None, Any]) -> list[str]:
    """What differs, field by field (the first few)."""
    out = []
    for key in sorted(set(want) & set(got), key=repr):
        a, b = want[key], got[key]
        if a != b and isinstance(a, dict) and isinstance(b, dict):
            out += [
                f"{key!r} {f}: {a.get(f)!r} != {b.get(f)!r}"
                for f in sorted(set(a) | set(b))
                if a.get(f) != b.get(f)
            ]
    return out[:8]


def folded(records: list[Record], keys: dict[str, bytes] | None) -> Account:
    """The account the commands make, each partition in order (as the writer applies them),
    opened first when sealed."""
    ordered = sorted(records, key=lambda r: (r.partition, r.offset))
    if keys is None:
        return fold(decode_command(r.value) for r in ordered)
    return fold(decode_command(orjson.dumps(_opened("commands", r.value, keys))) for r in ordered)


async def test_the_sealed_worker_writes_nothing_personal_readable_and_opens_to_the_unsealed_output(
    settings: Settings, tmp_path: Path
) -> None:
    secret = SecretStr("worker-privacy-secret")
    common = {"redactable": True, "privacy_secret": secret, "simulation_mode": True, "tick_interval_s": 0}
    plain = bridge_settings(settings, **common)
    sealed = bridge_settings(
        settings, **common, seal_personal_data=True, topic_prefix=f"{settings.topic_prefix}sealed.",
        app_id=f"{settings.app_id}-sealed",
    )  # fmt: skip
    plain_out, sealed_out = await asyncio.gather(
        run(plain, tmp_path / "plain", restart=False), run(sealed, tmp_path / "sealed", restart=True)
    )
    texts = personal_texts([d for part in phases() for d in part])
    plain_raw = b"".join(r.value or b"" for records in plain_out.values() for r in records)
    sealed_raw = b"".join(r.value or b"" for records in sealed_out.values() for r in records)
    assert len(found(texts, plain_raw)) >= 10, "without sealing the worker writes the values readable"
    assert found(texts, sealed_raw) == set(), "sealed, none is readable"
    assert sealed_out["deadletter"] == [] == plain_out["deadletter"]

    opener = Opener(sealed, refresh_s=0.0)
    try:
        await opener.ensure(r.value for records in sealed_out.values() for r in records if r.value)
        keys = dict(opener.keys)
    finally:
        await opener.stop()
    for name in derived_topics(settings):
        if name == "commands":  # intermediate commands vary with timing: the account they make
            want_account, got_account = folded(plain_out[name], None), folded(sealed_out[name], keys)
            assert got_account.records == want_account.records
            assert got_account.associations == want_account.associations
            continue
        want = newest(name, plain_out[name], None)
        got = newest(name, sealed_out[name], keys)
        assert got == want, (name, sorted(set(want) ^ set(got), key=repr)[:5], changed(want, got))
    for table in ("contacts", "journeys", "companies", "company-members", "order-journeys"):
        rows = [orjson.loads(r.value) for r in sealed_out[f"table {table}"] if r.value]
        assert rows and any(SEALED_FIELD in row for row in rows), f"the {table} table's rows are sealed"
        if table in ("contacts", "journeys"):  # timed: the rebuild reads due times without keys
            sealed_rows = [row for row in rows if SEALED_FIELD in row]
            assert all(stamped_due(row, sealed.rule_config().fingerprint())[0] for row in sealed_rows), (
                f"every sealed {table} row has its due_at readable beside the envelope"
            )
    assert any(is_sealed_fact(r.value) for r in sealed_out["internal companies"]), "member facts sealed"
    shop_kid = shop_key_id(sealed.privacy_key(), "s.myshopify.com")
    company_refs = {sealed_ref(orjson.loads(r.value)) for r in sealed_out["table companies"] if r.value}
    assert {kid_of(ref) for ref in company_refs if ref} == {shop_kid}, "a company: the shop's own subject"
    reports = [orjson.loads(r.value) for r in sealed_out["table reports"] if r.value]
    assert reports and not any(SEALED_FIELD in row for row in reports), "the dashboard reads them keyless"
    sealed_commands = [orjson.loads(r.value) for r in sealed_out["commands"]]
    contacts = [c for c in sealed_commands if c["record"]["object_type"] == "contacts"]
    assert contacts and all(
        SEALED_FIELD in c and "properties" not in c for c in contacts if c["op"] == "upsert"
    )
    readable = {c["record"]["object_type"] for c in sealed_commands if "properties" in c}
    assert readable <= {"products", "deals", "line_items"}, readable  # a product; an anonymous cart's deal


def marks(records: list[Record]) -> dict[int, int]:
    """Each partition's next offset."""
    out: dict[int, int] = {}
    for record in records:
        out[record.partition] = max(out.get(record.partition, 0), record.offset + 1)
    return out


async def post(settings: Settings, events: list[SampleEvent], first: int) -> None:
    async with bridge(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        for n, event in enumerate(events, start=first):
            raw, at = orjson.dumps(event.body), event.at.isoformat()
            headers = {**signed(raw, event.topic, event_id=f"e{n}"), "X-Shopify-Triggered-At": at,
                       SIMULATED_RECEIVED_AT: at}  # fmt: skip
            answer = await http.post("/webhooks/shopify", content=raw, headers=headers)
            assert answer.status_code == 200, answer.text


async def test_a_subject_shredded_before_the_worker_reads_it_leaves_nothing_of_them_written(
    settings: Settings, tmp_path: Path
) -> None:
    """A customer redacted while their last deliveries wait for the worker (a worker behind the
    redactor, a replay): the worker decides them with the key gone, so their journey's and order's
    rows are deleted and their deal's commands are not sent; another customer is untouched."""
    secret = SecretStr("worker-privacy-secret")
    own = bridge_settings(settings, redactable=True, privacy_secret=secret, simulation_mode=True,
                          tick_interval_s=0, seal_personal_data=True)  # fmt: skip
    await ensure_topics(own, internal=True)
    events = sorted(generate(customers=2, seed=11).events, key=lambda e: e.at)
    later = [e for e in events if e.topic in ("orders/paid", "orders/fulfilled")]
    (buyer,) = {e.body["customer"]["id"] for e in later}
    email = next(e.body["email"] for e in events if e.topic == "customers/create" and e.body["id"] == buyer)
    worker = ServiceProcess("worker", own, tmp_path / "worker-0.log")
    try:
        await post(own, [e for e in events if e not in later], 0)
        await wait_until_worker_idle(own, 60, worker)
    finally:
        assert worker.stop() == 0 or not worker.alive(), worker.log_tail()
    before = {name: marks(await read_all(own.kafka_bootstrap_servers, topic)) for name, topic in
              derived_topics(own).items()}  # fmt: skip
    await post(own, later, 100)  # sealed under the buyer's key, not read yet
    key = own.privacy_key()
    kids = subject_key_ids(key, "s.myshopify.com", pseudonym(key, "email", email), buyer)
    ring = KeyRing(own.kafka_bootstrap_servers, key_topic(own), key_encryption_key(key))
    await ring.start()
    try:
        assert await ring.shred(redaction(ring.held, "s.myshopify.com", kids)) >= 1
        held = dict(ring.keys)
    finally:
        await ring.stop()
    worker = ServiceProcess("worker", own, tmp_path / "worker-1.log")
    try:
        await wait_until_worker_idle(own, 60, worker)
    finally:
        assert worker.stop() == 0 or not worker.alive(), worker.log_tail()
    out = {
        name: await read_all(own.kafka_bootstrap_servers, topic)
        for name, topic in derived_topics(own).items()
    }
    assert out["deadletter"] == []
    new = {n: [r for r in records if r.offset >= before[n].get(r.partition, 0)] for n, records in out.items()}
    journeys = [r for r in new["table journeys"] if not (r.key or b"").startswith(b'"\\u0000clock')]
    assert journeys and all(not r.value for r in journeys), "the buyer's journey row goes"
    assert any(not r.value for r in new["table order-journeys"]), "and the order router's memory of it"
    new_commands = [orjson.loads(r.value) for r in new["commands"]]
    assert not any(SEALED_FIELD in c or "properties" in c for c in new_commands), "nothing of theirs"
    others = [orjson.loads(r.value) for r in out["table contacts"] if r.value]
    others = [row for row in others if (ref := sealed_ref(row)) and kid_of(ref) not in kids]
    assert others and not any(isinstance(open_row(row, held), Shredded) for row in others), "others open"


async def test_an_opener_catches_up_on_a_ref_another_worker_made_since_it_last_read(
    settings: Settings,
) -> None:
    """``Opener.ensure_refs`` (the worker, meeting a stored row it has no key for): a key another
    process made after this opener last read the key topic is read now, whatever ``REFRESH_S``
    says; a ref that is not on the topic stays missing (its subject's key is gone)."""
    own = bridge_settings(settings, privacy_secret=SecretStr("opener-secret"), seal_personal_data=True)
    await ensure_topics(own, internal=True)
    opener = Opener(own, refresh_s=3600.0)
    other = KeyRing(own.kafka_bootstrap_servers, key_topic(own), key_encryption_key(own.privacy_key()))
    await opener.ensure([])
    await other.start()
    try:
        ref, data_key = await other.key_for("s.myshopify.com", "kid-made-elsewhere")
        await opener.ensure([])  # within refresh_s and naming no ref: no catch-up
        assert ref not in opener.keys
        await opener.ensure_refs([ref, "kid-never~made"])
        assert opener.keys.get(ref) == data_key
        assert "kid-never~made" not in opener.keys
    finally:
        await other.stop()
        await opener.stop()
