"""The format of what the product derives and seals itself (G1, step 3's second part): HubSpot
commands keep their op, natural keys and association types readable and hide their properties and
contact addresses; any derived value opens whole, or reads as erased whole when its key is gone."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from schemas.commands import Associate, RecordRef, Upsert, decode_command, encode_command
from schemas.sealing import COMMAND, SEALED_FIELD, SHREDDED, open_derived, refs_in, seal, seal_whole
from streams.shredding import key_ref

KEY = bytes(range(32))
REF = key_ref("kid-1", b"v1")
NONCE = b"\x07" * 12
CONTACT = RecordRef(object_type="contacts", id_property="email", id_value="p1:abc", address="ann@example.com")
DEAL = RecordRef(object_type="deals", id_property="shopify_deal_id", id_value="token-1")

text = st.text(min_size=1, max_size=30)


@given(email=text, first=text, phone=text)
def test_a_sealed_upsert_holds_none_of_its_values_and_opens_to_the_same_command(
    email: str, first: str, phone: str
) -> None:
    command = Upsert(record=CONTACT, properties={"email": email, "firstname": first, "phone": phone})
    encoded: dict[str, Any] = orjson.loads(encode_command(command))
    sealed = seal(encoded, COMMAND, REF, KEY, NONCE)
    raw = orjson.dumps(sealed)
    assert "properties" not in sealed and "address" not in sealed["record"]
    assert sealed["op"] == "upsert" and sealed["record"]["id_value"] == "p1:abc", "keys stay readable"
    assert b"ann@example.com" not in raw
    assert refs_in(raw) == {REF}, "the shell finds the key to ask for without parsing"
    opened = open_derived(orjson.loads(raw), {REF: KEY}, COMMAND)
    assert opened is not SHREDDED
    assert decode_command(orjson.dumps(opened)) == command


def test_an_association_hides_both_addresses_and_keeps_its_type() -> None:
    command = Associate(record=DEAL, to=CONTACT, association_type_id=3)
    sealed = seal(orjson.loads(encode_command(command)), COMMAND, REF, KEY, NONCE)
    assert b"ann@example.com" not in orjson.dumps(sealed)
    assert sealed["association_type_id"] == 3 and sealed["to"]["id_value"] == "p1:abc"
    opened = open_derived(sealed, {REF: KEY}, COMMAND)
    assert opened is not SHREDDED and decode_command(orjson.dumps(opened)) == command


def test_a_command_without_personal_values_is_left_as_it_is() -> None:
    command = Associate(record=DEAL, to=RecordRef(object_type="products", id_property="p", id_value="9"),
                        association_type_id=20)  # fmt: skip
    encoded = orjson.loads(encode_command(command))
    assert seal(encoded, COMMAND, REF, KEY, NONCE) == encoded


def test_a_derived_value_whose_key_is_gone_reads_as_erased_whole() -> None:
    row = {"email": "p1:abc", "address": "ann@example.com", "purchases": {"1": "2026-01-01"}}
    sealed = seal_whole(row, REF, KEY, NONCE)
    assert list(sealed) == [SEALED_FIELD]
    assert open_derived(sealed, {REF: KEY}) == row
    assert open_derived(sealed, {}) is SHREDDED, "not a row with holes: the reader drops it"
    command = seal(orjson.loads(encode_command(Upsert(record=CONTACT, properties={"email": "a"}))), COMMAND,
                   REF, KEY, NONCE)  # fmt: skip
    assert open_derived(command, {"other~v": KEY}, COMMAND) is SHREDDED


def test_a_value_that_is_not_sealed_opens_as_itself() -> None:
    row = {"email": "ann@example.com"}
    assert open_derived(row, {}) is row
