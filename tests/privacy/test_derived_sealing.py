"""What the worker seals itself (G1 step 3's second part), without a broker: the pure formats of
``streams.derived_sealing`` (rows, commands, facts, dead letters), and the shell's use of them in
``streams.app`` (a stored row opened on load, read as no state once its key is gone; a shredded
subject's unit sends nothing personal; a dead letter's reason sealed)."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from config import Settings
from handlers.compliance_report import collect
from schemas.commands import Archive, RecordRef, Upsert, decode_command, encode_command
from schemas.envelope import Delivery, HubSpotContactDeletion, Tick, encode
from schemas.reasons import reason_kind
from schemas.sealing import COMMAND, SEALED_FIELD, SHREDDED, Shredded, open_derived, opening, refs_in
from streams import app, metrics
from streams.app import (
    Decoded,
    Pipeline,
    Send,
    Stage,
    _decode_entity_input,
    _KeyCheck,
    _Subjects,
    _TableStore,
)
from streams.derived_sealing import (
    SHOP_FIELD,
    fact_shop,
    is_sealed_fact,
    open_fact,
    open_letter,
    open_row,
    row_ref,
    seal_command,
    seal_fact,
    seal_letter,
    seal_row,
)
from streams.entities import COMPANIES, CONTACTS, ROWS
from streams.partition_time import AS_OF, PartitionTime
from streams.processor import Forward, PoisonError, UnreadableStateError
from streams.rules.company_members import CompanyMember
from streams.rules.contacts import ContactState
from streams.rules.journeys import FirstPurchase
from streams.shredding import key_ref
from tests.privacy.test_compliance_report import ADA, SOURCES, rec, subject
from tests.privacy.test_compliance_report import KEY as PSEUDONYM_KEY

KEY = bytes(range(32))
REF = key_ref("kid-1", b"v1")
NONCE = b"\x05" * 12
EMAIL = "ann.example@example.com"
AT = datetime(2026, 3, 1, tzinfo=UTC)
CONTACT = RecordRef(object_type="contacts", id_property="email", id_value="p1:abc", address=EMAIL)

text = st.text(min_size=1, max_size=20)


@given(
    values=st.dictionaries(text, st.one_of(text, st.integers(-(2**53), 2**53), st.none()), max_size=6),
    partition=st.integers(0, 9),
)
def test_a_sealed_row_keeps_only_what_the_shell_reads_and_opens_to_the_row(
    values: dict[str, Any], partition: int
) -> None:
    row = {**values, "email": EMAIL, "partition": partition, AS_OF: AT.isoformat()}
    sealed = seal_row(row, REF, KEY, NONCE)
    assert set(sealed) == {SEALED_FIELD, "partition", AS_OF}, "the timer index's rebuild reads these"
    assert EMAIL.encode() not in orjson.dumps(sealed)
    assert refs_in(orjson.dumps(sealed)) == {REF}
    assert open_row(sealed, {REF: KEY}) == row
    assert open_row(sealed, {}) is SHREDDED
    assert open_row(row, {}) is row, "a row from before sealing reads as it is"


def test_a_command_is_sealed_only_when_it_carries_personal_values() -> None:
    upsert = encode_command(Upsert(record=CONTACT, properties={"email": EMAIL, "firstname": "Ann"}))
    sealed = seal_command(upsert, REF, KEY, NONCE)
    assert EMAIL.encode() not in sealed and b"Ann" not in sealed
    opened = open_derived(orjson.loads(sealed), {REF: KEY}, COMMAND)
    assert opened is not SHREDDED and decode_command(orjson.dumps(opened)) == decode_command(upsert)
    archive = encode_command(Archive(record=RecordRef(object_type="deals", id_property="k", id_value="1")))
    assert seal_command(archive, REF, KEY, NONCE) is archive, "the same bytes: nothing to hide"


def test_a_fact_is_sealed_whole_with_its_shop_beside_and_opens_to_its_bytes() -> None:
    fact = orjson.dumps(
        CompanyMember(company_id=7, customer_id=9, email=EMAIL, at=AT).model_dump(mode="json")
    )
    sealed = seal_fact(fact, REF, KEY, NONCE, "s.myshopify.com")
    assert is_sealed_fact(sealed) and not is_sealed_fact(fact)
    assert EMAIL.encode() not in sealed and fact_shop(sealed) == "s.myshopify.com"
    assert open_fact(sealed, {REF: KEY}) == (fact, REF, "s.myshopify.com")
    assert open_fact(sealed, {}) is None, "a redacted member's fact is dropped"
    delivery = b'{"kind":"delivery","body":{"_shopsync_sealed":"e1.x~y.zz"}}'
    assert not is_sealed_fact(delivery), "a delivery forwarded as it came is the bridge's"


def test_a_dead_letter_keeps_its_reason_kind_and_seals_the_reason() -> None:
    reason = f"body does not fit customers/create: 1 validation error\nemail\n  bad [input_value='{EMAIL}']"
    letter = {"reason": reason, "topic": "t", "offset": 3}
    sealed = seal_letter(letter, (REF, KEY), NONCE)
    assert EMAIL.encode() not in orjson.dumps(sealed) and sealed["reason"].startswith("body does not fit")
    assert open_letter(sealed, {REF: KEY})["reason"] == reason
    assert open_letter(sealed, {}) == sealed, "its key gone, only the kind is left"
    gone = seal_letter(letter, SHREDDED, NONCE)
    assert SEALED_FIELD not in gone and EMAIL not in gone["reason"]
    assert seal_letter(letter, None, NONCE) is letter, "an input that was not sealed keeps its reason"


class Keys:
    """A key source for the shell (``schemas.sealing.KeySource``) holding what it is given; a
    catch-up on refs (``ensure_refs``) brings in ``arriving`` (keys another worker made that the
    ring had not read yet)."""

    def __init__(self, keys: dict[str, bytes], arriving: dict[str, bytes] | None = None) -> None:
        self.held = keys
        self.arriving = arriving or {}
        self.asked: list[set[str]] = []

    @property
    def keys(self) -> Mapping[str, bytes]:
        return self.held

    async def ensure(self, raws: Iterable[bytes]) -> None:
        return None

    async def ensure_refs(self, refs: Iterable[str]) -> None:
        self.asked.append(set(refs))
        self.held.update(self.arriving)

    async def key_for(self, shop: str, kid: str) -> tuple[str, bytes]:
        return REF, KEY

    async def stop(self) -> None:
        return None


def contacts_store(table: dict[str, Any]) -> _TableStore:
    return _TableStore(Stage("contacts", CONTACTS, lambda e, r: None, table, ROWS["contacts"]))


def test_a_stored_row_opens_and_reads_as_no_state_once_its_key_is_gone() -> None:
    state = ContactState(email="p1:abc", address=EMAIL)
    table = {"p1:abc": seal_row({**ROWS["contacts"].to_row(state), "partition": 1}, REF, KEY, NONCE)}
    store = contacts_store(table)
    with opening({REF: KEY}):
        assert store.load("p1:abc") == state.model_copy(update={"partition": 1})
    assert store.refs["p1:abc"] == REF, "its writes are sealed under the same subject"
    with opening({}):
        assert store.load("p1:abc") is None, "the subject was redacted: no state"
    with pytest.raises(UnreadableStateError):
        store.load("p1:abc")  # a sealed row read with no keys given is never taken as erased
    store.stored("p1:abc", state, REF)
    with opening({REF: KEY}):
        assert store.load("p1:abc") is state, "kept decoded between batches"
    with opening({}):
        assert store.load("p1:abc") is None, "and dropped once its key is shredded"


def sealed_pipeline(keys: dict[str, bytes], source: Keys | None = None) -> Pipeline:
    settings = Settings(seal_personal_data=True).model_copy(update={"privacy_secret": SecretStr("s")})
    return Pipeline(settings, source if source is not None else Keys(keys))


def test_a_shredded_subject_sends_nothing_personal_and_a_held_one_sends_it_sealed() -> None:
    pipeline = sealed_pipeline({REF: KEY})
    upsert = Upsert(record=CONTACT, properties={"email": EMAIL})
    archive = Archive(record=RecordRef(object_type="deals", id_property="k", id_value="1"))
    member = CompanyMember(company_id=7, customer_id=9, email=EMAIL, at=AT)
    first = FirstPurchase(event_id="e", journey="j", first=True, at=AT)
    forwards = [Forward("companies", "7", member), Forward("journeys", "j", first),
                Forward("contacts", "p1:abc", raw=b'{"kind":"delivery"}')]  # fmt: skip
    gone = pipeline._unit_sends([upsert, archive], forwards, SHREDDED, None)
    assert [value for _, _, value in gone] == [
        encode_command(archive),
        orjson.dumps(first.model_dump(mode="json")),
        b'{"kind":"delivery"}',
    ], "the archive, the fact naming no one and the bridge's bytes go; the upsert and the member do not"
    held = pipeline._unit_sends([upsert, archive], forwards, (REF, KEY), "s.myshopify.com")
    assert all(EMAIL.encode() not in value for _, _, value in held)
    assert is_sealed_fact(held[2][2]) and fact_shop(held[2][2]) == "s.myshopify.com"
    assert held[3][2] == orjson.dumps(first.model_dump(mode="json")), "a journey's flag stays readable"


def test_the_timer_index_reads_sealed_rows_and_no_timer_for_a_shredded_one() -> None:
    pipeline = sealed_pipeline({REF: KEY})
    state = ContactState(email="p1:abc", address=EMAIL, purchases={"1": AT})
    row = seal_row({**ROWS["contacts"].to_row(state), "partition": 0}, REF, KEY, NONCE)
    plain = pipeline._due_of(CONTACTS, ROWS["contacts"].to_row(state))
    assert plain is not None, "a contact with a purchase waits for its re-engagement"
    with opening({REF: KEY}):
        assert pipeline._due_of(CONTACTS, row) == plain
    with opening({}):
        assert pipeline._due_of(CONTACTS, row) is None


def test_a_dead_letter_of_a_sealed_record_seals_its_reason_under_the_record_s_key() -> None:
    pipeline = sealed_pipeline({REF: KEY})
    value = orjson.dumps({"kind": "delivery", "body": {SEALED_FIELD: f"e1.{REF}.abc"}})
    message = SimpleNamespace(topic="t", partition=0, offset=1, key=b"k", value=value)
    _, _, raw = pipeline._letter(SimpleNamespace(message=message), f"does not fit: {EMAIL}")
    assert EMAIL.encode() not in raw
    assert open_letter(orjson.loads(raw), {REF: KEY})["reason"] == f"does not fit: {EMAIL}"
    assert SHOP_FIELD not in orjson.loads(raw)


def test_the_compliance_report_finds_a_sealed_row_and_not_one_whose_key_is_gone() -> None:
    """``shopsync compliance report`` reads the worker's changelogs: a sealed contact row opens
    (``open_tree``) and names the customer; once the key is gone nothing of it is left to match."""
    state = ContactState(email=ADA)
    row = seal_row({**ROWS["contacts"].to_row(state), "partition": 0}, REF, KEY, NONCE)
    records = [rec("cl-contacts", '"p1:another"', row)]  # only the value names her: sealed
    with opening({REF: KEY}):
        found = collect({"r": subject()}, records, PSEUDONYM_KEY, SOURCES)["r"]
    assert list(found.state) == [("contacts", "p1:another")]
    assert found.state[("contacts", "p1:another")]["email"] == ADA, "shown opened"
    with opening({}):
        gone = collect({"r": subject()}, records, PSEUDONYM_KEY, SOURCES)["r"]
    assert not gone.state, "a redacted subject's row names no one"


# ---- the shell's batches (``Pipeline._handle_batch``) under keys the ring holds, lacks or gets ----

OTHER_REF = key_ref("kid-2", b"v1")
OTHER_KEY = bytes(range(1, 33))
SHOP = "s.myshopify.com"


class Event:
    """A consumed record as the shell reads it (``event.message``); weak-referable, as faust's."""

    def __init__(self, value: bytes, key: bytes = b"p1:abc", offset: int = 1) -> None:
        self.message = SimpleNamespace(topic="t", partition=0, offset=offset, key=key, value=value)


def contacts_stage(pipeline: Pipeline, table: dict[str, Any]) -> Stage:
    """The contacts agent's stage over a dict for its table, registered with the pipeline."""
    due_of = functools.partial(pipeline._due_of, CONTACTS)
    stage = Stage(
        "contacts", CONTACTS, functools.partial(_decode_entity_input, "contacts"), table,
        ROWS["contacts"], PartitionTime(due_of), stamp_partition=True,
    )  # fmt: skip
    pipeline.stores[stage.name] = _TableStore(stage)
    return stage


def sent_by(pipeline: Pipeline) -> list[Send]:
    """What the pipeline's batches send (acknowledged at once), recorded."""
    sent: list[Send] = []

    async def send(sends: list[Send]) -> None:
        sent.extend(sends)

    pipeline._send = send  # type: ignore[method-assign]
    return sent


def contact_row(state: ContactState, ref: str = REF, key: bytes = KEY) -> dict[str, Any]:
    return seal_row({**ROWS["contacts"].to_row(state), "partition": 0}, ref, key, NONCE)


def deletion() -> Event:
    """An input that was never sealed (HubSpot's deletion names the contact by its key only)."""
    return Event(encode(HubSpotContactDeletion(event_id="d1", object_id=5, email="p1:abc", occurred_at=AT)))


PURCHASED = ContactState(email="p1:abc", address=EMAIL, purchases={"1": AT})


async def test_a_row_sealed_under_a_key_the_ring_has_not_read_yet_is_caught_up_on_not_shredded() -> None:
    """D: a row the previous owner sealed under a key made moments ago (after a rebalance) is
    opened once the ring caught up on its ref, never read as a redacted subject's and deleted."""
    source = Keys({}, arriving={REF: KEY})
    pipeline = sealed_pipeline({}, source)
    table = {"p1:abc": contact_row(PURCHASED)}
    stage = contacts_stage(pipeline, table)
    sent_by(pipeline)
    await pipeline._handle_batch(stage, [deletion()])
    assert "p1:abc" in table, "the row is kept"
    assert source.asked == [{REF}], "caught up on the stored row's ref"
    opened = open_row(table["p1:abc"], {REF: KEY})
    assert not isinstance(opened, Shredded) and opened["address"] == EMAIL, "the stored state was read"


async def test_a_row_whose_key_is_still_gone_after_the_catch_up_is_a_redacted_subject_s() -> None:
    source = Keys({})
    pipeline = sealed_pipeline({}, source)
    table = {"p1:abc": contact_row(PURCHASED)}
    sent_by(pipeline)
    await pipeline._handle_batch(contacts_stage(pipeline, table), [deletion()])
    assert source.asked == [{REF}]
    assert "p1:abc" not in table, "its key gone after the catch-up: the row goes"


async def test_the_timer_index_is_rebuilt_after_the_catch_up_so_no_timer_is_lost() -> None:
    """D: the first batch after an assignment derives the timer index from the table: a row
    sealed under a key not read yet keeps its timer (its re-engagement)."""
    source = Keys({}, arriving={REF: KEY})
    pipeline = sealed_pipeline({}, source)
    stage = contacts_stage(pipeline, {"p1:abc": contact_row(PURCHASED)})
    sent_by(pipeline)
    await pipeline._handle_batch(stage, [Event(encode(Tick(at=AT)), key=b"tick")])
    assert stage.time is not None and len(stage.time.index(0)) == 1, "its timer is pending"


class ExitedError(Exception):
    """``os._exit`` in a test: the worker would exit here, acknowledging nothing."""


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> None:
    def exit_(code: int) -> None:
        raise ExitedError(code)

    monkeypatch.setattr(os, "_exit", exit_)  # streams.app calls os._exit
    monkeypatch.setattr(app, "KAFKA_RETRY_DELAYS_S", (0.0, 0.0))


class Hanging(Keys):
    """A ring whose catch-up never ends (the key topic's leader unreachable: empty batches)."""

    calls = 0

    async def ensure(self, raws: Iterable[bytes]) -> None:
        self.calls += 1
        await asyncio.Event().wait()


async def test_a_catch_up_that_never_ends_is_kafka_failing_the_batch_is_not_acknowledged(exits: None) -> None:
    """B: bounded, retried, then the worker exits without acknowledging (read again elsewhere)."""
    source = Hanging({REF: KEY})
    pipeline = sealed_pipeline({}, source)
    pipeline.key_ring_timeout_s = 0.01
    sent = sent_by(pipeline)
    with pytest.raises(ExitedError) as exited:
        await asyncio.wait_for(pipeline._handle_batch(contacts_stage(pipeline, {}), [deletion()]), 10)
    assert exited.value.args == (app.EXIT_KAFKA_FAILED,)
    assert source.calls == 3 and sent == [], "tried three times, nothing sent"


class Failing(Keys):
    async def key_for(self, shop: str, kid: str) -> tuple[str, bytes]:
        raise KafkaConnectionError()


def companies_stage(pipeline: Pipeline, table: dict[str, Any]) -> Stage:
    stage = Stage(
        "companies", COMPANIES, functools.partial(_decode_entity_input, "companies"), table,
        ROWS["companies"], shop_subject=True,
    )  # fmt: skip
    pipeline.stores[stage.name] = _TableStore(stage)
    return stage


async def test_a_shop_key_kafka_does_not_make_is_retried_then_exits(exits: None) -> None:
    """I: a KafkaError making the shop's key goes the way ``_send``'s does, not out of the agent."""
    pipeline = sealed_pipeline({}, Failing({}))
    sent = sent_by(pipeline)
    raw = encode(Delivery(topic="companies/create", shop_domain=SHOP, webhook_id="w", event_id="e",
                          received_at=AT, body={"id": 7}))  # fmt: skip
    with pytest.raises(ExitedError):
        await pipeline._handle_batch(companies_stage(pipeline, {}), [Event(raw, key=b"7")])
    assert sent == []


def test_a_malformed_sealed_fact_is_a_dead_letter_not_a_crash() -> None:
    """I: a record that starts like a sealed fact and is no JSON is dead-lettered with its reason."""
    pipeline = sealed_pipeline({REF: KEY})
    stage = companies_stage(pipeline, {})
    broken = Event(b'{"' + SEALED_FIELD.encode() + b'": nope', key=b"7")
    assert fact_shop(_value(broken)) is None and pipeline._shops_of([broken]) == set()
    parts = pipeline._plan(stage, [broken])
    (letter,) = [send for part in parts for send in part.sends]
    assert orjson.loads(letter[2])["reason"].startswith("not a companies input")


def _value(event: Event) -> bytes:
    value = event.message.value
    assert isinstance(value, bytes)
    return value


def test_the_dead_letter_of_an_unsealed_input_is_sealed_under_its_row_s_key() -> None:
    """E: an input that was never sealed whose sealed row fails validation once opened: the
    reason quotes the row's values (pydantic's input_value), so it is sealed under the row's key."""
    pipeline = sealed_pipeline({REF: KEY})
    row = {**ROWS["contacts"].to_row(PURCHASED), "purchases": EMAIL, "partition": 0}
    stage = contacts_stage(pipeline, {"p1:abc": seal_row(row, REF, KEY, NONCE)})
    parts = pipeline._plan(stage, [deletion()])
    (letter,) = [value for part in parts for topic, _, value in part.sends if topic is pipeline.deadletter]
    assert EMAIL.encode() not in letter
    assert EMAIL in open_letter(orjson.loads(letter), {REF: KEY})["reason"], "the full reason, sealed"


def subjects_of(ref: str) -> _Subjects:
    record = HubSpotContactDeletion(event_id="d1", object_id=5, occurred_at=AT)
    return _Subjects([(deletion(), Decoded("p1:abc", record, ref=ref, shop=SHOP))])


def test_a_late_input_under_a_shredded_key_never_deletes_a_row_under_a_live_one() -> None:
    """G: the newest input's subject is gone, the stored row's is live: sealed under the row's."""
    pipeline = sealed_pipeline({OTHER_REF: OTHER_KEY})
    stage = contacts_stage(pipeline, {})
    pipeline.stores[stage.name].refs["p1:abc"] = OTHER_REF
    assert pipeline._sealing(stage, subjects_of(REF), "p1:abc", 0) == (OTHER_REF, OTHER_KEY)
    pipeline.stores[stage.name].refs["p1:abc"] = key_ref("kid-3", b"v1")
    assert pipeline._sealing(stage, subjects_of(REF), "p1:abc", 0) is SHREDDED, "no live subject left"


def test_a_company_is_never_sealed_under_a_member_s_key() -> None:
    """H: the shop's key not held, the member's is: the shop's is made again (planned again)."""
    pipeline = sealed_pipeline({REF: KEY})
    stage = companies_stage(pipeline, {})
    pipeline._shop_keys[SHOP] = (OTHER_REF, OTHER_KEY)  # shredded since it was made
    pipeline._check = check = _KeyCheck()
    assert pipeline._sealing(stage, subjects_of(REF), "p1:abc", 0) is SHREDDED
    assert check.shops == {SHOP}, "its key is made again before the batch is planned again"


async def test_a_company_batch_makes_the_shop_s_key_again_and_seals_under_it() -> None:
    """H, through a batch: the shop's key is shredded between its making and the plan."""

    class Remaking(Keys):
        made = 0

        async def key_for(self, shop: str, kid: str) -> tuple[str, bytes]:
            self.made += 1
            if self.made == 1:
                return OTHER_REF, OTHER_KEY  # a key the ring no longer holds by the plan
            self.held[REF] = KEY
            return REF, KEY

    source = Remaking({})
    pipeline = sealed_pipeline({}, source)
    table: dict[str, Any] = {}
    stage = companies_stage(pipeline, table)
    sent_by(pipeline)
    raw = encode(Delivery(topic="companies/create", shop_domain=SHOP, webhook_id="w", event_id="e",
                          received_at=AT, body={"id": 7, "name": "Acme"}))  # fmt: skip
    await pipeline._handle_batch(stage, [Event(raw, key=b"7")])
    assert table and all(row_ref(row) == REF for row in table.values()), "sealed under the shop's new key"
    assert source.made == 2


async def test_a_ref_found_gone_is_not_caught_up_on_again_by_the_next_batch() -> None:
    """A key never comes back: a row under a ref found gone costs one catch-up, not one a batch."""
    source = Keys({})
    pipeline = sealed_pipeline({}, source)
    record = encode(HubSpotContactDeletion(event_id="d1", object_id=5, email="p1:abc", occurred_at=AT))
    stage = contacts_stage(pipeline, {"p1:abc": contact_row(PURCHASED), "p1:def": contact_row(PURCHASED)})
    sent_by(pipeline)
    await pipeline._handle_batch(stage, [deletion()])
    await pipeline._handle_batch(stage, [Event(record, key=b"p1:def")])
    assert source.asked == [{REF}]


def counted(metric: Any, **labels: str) -> float:
    return float(metric.labels(**labels)._value.get())


async def test_a_batch_planned_again_counts_its_dead_letters_and_timers_once() -> None:
    """A batch is planned again after a key catch-up (and one input at a time after a size
    error): what it counts (a dead letter, a timer fired) is counted once its outputs are
    acknowledged, not once a plan. Before, the catch-up's second plan counted both twice."""
    source = Keys({}, arriving={REF: KEY})
    pipeline = sealed_pipeline({}, source)
    stage = contacts_stage(pipeline, {"p1:abc": contact_row(PURCHASED)})
    sent = sent_by(pipeline)
    poison = Event(b"not a delivery", offset=2)
    kind = reason_kind(str(_poison_reason(stage, poison)))
    letters, timers = (
        counted(metrics.DEAD_LETTERS, reason=kind),
        counted(metrics.TIMERS_FIRED, kind="contacts"),
    )
    later = Tick(at=AT + timedelta(days=400))  # past the re-engagement delay: the contact's timer fires
    await pipeline._handle_batch(stage, [Event(encode(later), key=b"tick"), poison])
    assert source.asked == [{REF}], "planned again once the ring caught up on the row's ref"
    assert [t for t, _, _ in sent].count(pipeline.deadletter) == 1
    assert counted(metrics.DEAD_LETTERS, reason=kind) == letters + 1
    assert counted(metrics.TIMERS_FIRED, kind="contacts") == timers + 1


def _poison_reason(stage: Stage, event: Event) -> Exception:
    try:
        stage.decode(event, event.message.value)
    except PoisonError as exc:
        return exc
    raise AssertionError("the event must be poison")
