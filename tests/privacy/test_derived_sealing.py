"""What the worker seals itself (G1 step 3's second part), without a broker: the pure formats of
``streams.derived_sealing`` (rows, commands, facts, dead letters), and the shell's use of them in
``streams.app`` (a stored row opened on load, read as no state once its key is gone; a shredded
subject's unit sends nothing personal; a dead letter's reason sealed)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from config import Settings
from handlers.compliance_report import collect
from schemas.commands import Archive, RecordRef, Upsert, decode_command, encode_command
from schemas.sealing import COMMAND, SEALED_FIELD, SHREDDED, open_derived, opening, refs_in
from streams.app import Pipeline, Stage, _TableStore
from streams.derived_sealing import (
    SHOP_FIELD,
    fact_shop,
    is_sealed_fact,
    open_fact,
    open_letter,
    open_row,
    seal_command,
    seal_fact,
    seal_letter,
    seal_row,
)
from streams.entities import CONTACTS, ROWS
from streams.partition_time import AS_OF
from streams.processor import Forward, UnreadableStateError
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
    """A key source for the shell (``schemas.sealing.KeySource``) holding what it is given."""

    def __init__(self, keys: dict[str, bytes]) -> None:
        self.held = keys

    @property
    def keys(self) -> Mapping[str, bytes]:
        return self.held

    async def ensure(self, raws: Iterable[bytes]) -> None:
        return None

    async def key_for(self, shop: str, kid: str) -> tuple[str, bytes]:
        return REF, KEY


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


def sealed_pipeline(keys: dict[str, bytes]) -> Pipeline:
    settings = Settings(seal_personal_data=True, privacy_secret=SecretStr("s"))
    return Pipeline(settings, Keys(keys))


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
