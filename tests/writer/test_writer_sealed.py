"""The writer's side of sealed commands (G1, step 3's second part), without Kafka: reading a
round's records (opened, plain, redacted, not commands), dead letters that keep the command as it
was read and hide HubSpot's text, and a held command dropped once its key is shredded.

The commands are sealed here as the worker seals them: ``seal(orjson.loads(encode_command(c)),
COMMAND, ref, key, nonce)``."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from handlers.compliance_report import Sources, Subject, collect
from handlers.writer_letters import LETTER, REDACTED_WITHHELD, command_letter, fitted, raw_letter
from handlers.writer_plan import Position
from handlers.writer_sealed import read_commands, shredded
from schemas.commands import (
    AnyCommand,
    Archive,
    Associate,
    RecordRef,
    SetSubscription,
    Upsert,
    decode_command,
    encode_command,
)
from schemas.sealing import COMMAND, SEALED_FIELD, open_tree, opening, refs_in, seal
from streams.privacy import pseudonym
from streams.shredding import key_ref
from streams.topic_reader import Record
from tests.writer.test_writer_runner import Rig, deal, upsert

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
REF = key_ref("kid-ann", b"v1")
OTHER_REF = key_ref("kid-bob", b"v1")
EMAIL = "ann.lee@example.com"
ANN = RecordRef(object_type="contacts", id_property="email", id_value="p1:ann", address=EMAIL)
DEAL = RecordRef(object_type="deals", id_property="shopify_deal_key", id_value="order:1")


def sealed(command: AnyCommand, ref: str = REF, key: bytes = KEY) -> bytes:
    """The command as the worker appends it with sealing on."""
    return orjson.dumps(seal(orjson.loads(encode_command(command)), COMMAND, ref, key, os.urandom(12)))


def commands() -> list[AnyCommand]:
    return [
        Upsert(record=ANN, properties={"email": EMAIL, "firstname": "Annabel Quinnell", "zip": "SW1A 1AA"}),
        Associate(record=DEAL, to=ANN, association_type_id=3),
        Archive(record=ANN),
        SetSubscription(record=ANN, subscription="Marketing", state="SUBSCRIBED",
                        legal_basis="CONSENT_WITH_NOTICE", legal_basis_explanation=f"{EMAIL} ticked it"),
    ]  # fmt: skip


# ---- reading a round ----


def test_sealed_commands_open_to_the_commands_the_worker_sealed_and_plain_ones_read_as_they_are() -> None:
    plain = Upsert(record=DEAL, properties={"dealname": "Order 1"})
    records = [(sealed(c), Position(0, n)) for n, c in enumerate(commands())]
    records.append((encode_command(plain), Position(0, 9)))  # a log written partly before the setting
    read = read_commands(records, {REF: KEY})
    assert [c for c, _ in read.items] == [*commands(), plain]
    assert not read.letters and not read.redacted
    for (_, position), (raw, _) in zip(read.items, records, strict=True):
        assert position.received == (raw if position.ref else None), "a sealed one keeps what was read"
    assert {p.ref for _, p in read.items} == {REF, None}
    assert read.items[0][1] == Position(0, 0), "positions compare by where they were read only"


def test_a_command_whose_key_is_gone_is_redacted_not_sent_nor_a_dead_letter() -> None:
    records = [(sealed(c), Position(1, n)) for n, c in enumerate(commands())]
    records.append((sealed(commands()[0], OTHER_REF, OTHER_KEY), Position(1, 7)))
    read = read_commands(records, {OTHER_REF: OTHER_KEY})  # Ann's key was shredded (a redact)
    assert [p.offset for p in read.redacted] == [0, 1, 2, 3]
    assert [p.offset for _, p in read.items] == [7] and not read.letters


def test_with_sealing_off_every_record_reads_as_before_the_setting() -> None:
    """No keys: a sealed record is not a command, and its letter is the one the writer always wrote."""
    raw = sealed(commands()[0])
    read = read_commands([(raw, Position(0, 3)), (encode_command(commands()[1]), Position(0, 4))], None)
    assert [c for c, _ in read.items] == [commands()[1]] and not read.redacted
    (letter,) = read.letters
    expected = raw_letter(raw, _validation_text(raw), Position(0, 3))
    assert letter == expected and letter.value.startswith(b'{"reason":"not a command: ')


def _validation_text(raw: bytes) -> str:
    try:
        decode_command(raw)
    except ValidationError as exc:
        return str(exc)
    raise AssertionError("a sealed record is not a command without its keys")


def test_a_sealed_record_that_is_not_a_command_is_dead_lettered_with_its_details_sealed() -> None:
    """Pydantic quotes the input it refuses: with the record opened, that is the customer's data."""
    value = orjson.loads(encode_command(commands()[0]))
    value["properties"]["firstname"] = {"not": "a string", "mail": EMAIL}
    raw = orjson.dumps(seal(value, COMMAND, REF, KEY, os.urandom(12)))
    read = read_commands([(raw, Position(2, 5))], {REF: KEY}, lambda: os.urandom(12))
    (letter,) = read.letters
    assert EMAIL.encode() not in letter.value and b"a string" not in letter.value
    body = orjson.loads(letter.value)
    assert body["reason"].startswith("not a command: ") and "properties.firstname" in body["reason"]
    with opening({REF: KEY}):
        opened = open_tree(body)
    assert EMAIL in opened["detail"], "the full text opens with the key"
    assert opened["original"] == raw.decode(), "the record as it was read (sealed)"


def test_an_envelope_that_does_not_open_with_its_key_is_a_dead_letter() -> None:
    raw = sealed(commands()[0], REF, OTHER_KEY)  # sealed under another key than its ref's
    read = read_commands([(raw, Position(0, 0))], {REF: KEY}, lambda: os.urandom(12))
    (letter,) = read.letters
    assert b"does not open" in letter.value and not read.items and not read.redacted


# ---- dead letters ----

answers = st.fixed_dictionaries({
    "category": st.sampled_from(["VALIDATION_ERROR", "INVALID_EMAIL", None]),
    "message": st.text(min_size=1, max_size=40),
    "errors": st.lists(st.fixed_dictionaries({"message": st.text(min_size=1, max_size=40)}), max_size=3),
})  # fmt: skip


@settings(max_examples=60)
@given(answer=answers, which=st.integers(0, 3))
def test_a_sealed_commands_dead_letter_holds_nothing_readable_of_the_command_or_hubspots_answer(
    answer: dict[str, Any], which: int
) -> None:
    """HubSpot echoes the value it refuses (``Property values were not valid: ann@...``)."""
    command = commands()[which]
    answer = {**answer, "message": f"{answer['message']} {EMAIL}"}
    raw = sealed(command)
    position = Position(0, 4, received=raw, ref=REF)
    letter = command_letter(command, position, "HubSpot rejected the record", answer, 400, 1_000_000,
                            {REF: KEY}, lambda: os.urandom(12))  # fmt: skip
    assert EMAIL.encode() not in letter.value and b"Annabel Quinnell" not in letter.value
    body = orjson.loads(letter.value)
    assert body["command"] == orjson.loads(raw), "kept as it was read, not the opened one encoded again"
    assert body["reason"] == "HubSpot rejected the record" and body["status"] == 400
    assert body["category"] == answer["category"], "what says why stays readable"
    assert refs_in(letter.value) == {REF}
    plain = command_letter(command, Position(0, 4), "HubSpot rejected the record", answer, 400, 1_000_000)
    with opening({REF: KEY}):
        assert open_tree(body) == orjson.loads(plain.value), "opened, the letter the setting off writes"
    assert letter.key == plain.key == command.record.key.encode() and letter.what == plain.what


def test_a_sealed_commands_letter_whose_key_is_gone_keeps_no_answer() -> None:
    command = commands()[0]
    position = Position(0, 4, received=sealed(command), ref=REF)
    answer = {"category": "VALIDATION_ERROR", "message": f"{EMAIL} is not valid", "errors": [{"m": EMAIL}]}
    letter = command_letter(command, position, "HubSpot rejected the record", answer, 400, 1_000_000,
                            {}, lambda: os.urandom(12))  # fmt: skip
    body = orjson.loads(letter.value)
    assert EMAIL.encode() not in letter.value and body["withheld"] == REDACTED_WITHHELD
    assert not set(LETTER.names) & set(body) and body["category"] == "VALIDATION_ERROR"


def test_an_unsealed_commands_letter_is_byte_for_byte_the_one_before_sealing() -> None:
    command = commands()[0]
    answer = {"category": "VALIDATION_ERROR", "message": "bad", "errors": [{"message": "x"}]}
    letter = command_letter(command, Position(3, 8), "HubSpot rejected the record", answer, 400, 1_000_000)
    assert letter.value == orjson.dumps({
        "reason": "HubSpot rejected the record", "status": 400, "category": "VALIDATION_ERROR",
        "message": "bad", "errors": [{"message": "x"}], "command": orjson.loads(encode_command(command)),
        "source": {"partition": 3, "offset": 8},
    })  # fmt: skip


def test_a_sealed_letter_too_large_for_a_record_drops_the_sealed_part_and_says_where_it_is() -> None:
    command = Upsert(record=ANN, properties={"email": EMAIL, "notes": "n" * 5000})
    raw = sealed(command)
    position = Position(0, 4, received=raw, ref=REF)
    answer = {"category": "VALIDATION_ERROR", "message": EMAIL * 300, "errors": [{"message": "e" * 3000}]}
    letter = command_letter(command, position, "HubSpot rejected the record", answer, 400, 4000,
                            {REF: KEY}, lambda: os.urandom(12))  # fmt: skip
    assert len(letter.value) <= 4000 and EMAIL.encode() not in letter.value
    body = orjson.loads(letter.value)
    assert body["command"]["sealed_omitted"].endswith("read it at its source offset")
    assert SEALED_FIELD not in body["command"] and body["command"]["record"]["id_value"] == "p1:ann"


def test_every_try_of_fitting_a_letter_is_sealed_with_its_own_nonce() -> None:
    """AES-GCM under one key must never see one nonce twice."""
    given_out: list[bytes] = []

    def nonce() -> bytes:
        given_out.append(os.urandom(12))
        return given_out[-1]

    command = Upsert(record=ANN, properties={"email": EMAIL})
    letter = {"reason": "r", "message": "m" * 3000, "errors": [], "command": orjson.loads(sealed(command))}
    fitted(letter, 2500, lambda one: seal(one, LETTER, REF, KEY, nonce()))
    assert len(given_out) == len(set(given_out)) == 3


# ---- the plan runner ----


async def test_a_held_command_whose_key_is_shredded_while_it_waits_is_dropped_unsent() -> None:
    rig = Rig()
    rig.hubspot.fail_times["order:1"] = 1  # held for a retry
    keys = {REF: KEY}
    runner = rig.runner()
    runner.keys = keys
    command = upsert(deal(1), dealname="Ann's order")
    await runner.apply([(command, Position(0, 0, received=sealed(command), ref=REF))])
    assert runner.held_positions() == [Position(0, 0)]
    del keys[REF]  # the redactor's tombstone, read by the ring
    rig.clock.advance(timedelta(seconds=5))
    await runner.apply([], [], [Position(0, 1, ref=REF)])
    assert "order:1" not in rig.hubspot.records.get("deals", {}), "never sent"
    assert runner.held_positions() == [] and runner.stats.skipped_redacted == 2
    assert runner.stats.dead_lettered == 0


async def test_a_held_record_keeps_the_commands_of_a_subject_still_live() -> None:
    """A held record coalesces every later command of its key, which another subject may have
    decided (one contact, two shops: X3); a redact of one drops only its own commands."""
    rig = Rig()
    rig.hubspot.fail_times["order:1"] = 1  # held for a retry
    other = "kid-2~v1"
    keys = {REF: KEY, other: KEY}
    runner = rig.runner()
    runner.keys = keys
    first, second = upsert(deal(1), dealname="Ann's order"), upsert(deal(1), amount="12.00")
    await runner.apply([
        (first, Position(0, 0, received=sealed(first), ref=REF)),
        (second, Position(0, 1, received=sealed(second), ref=other)),
    ])  # fmt: skip
    assert runner.held_positions() == [Position(0, 0), Position(0, 1)]
    del keys[REF]  # one subject's tombstone
    rig.clock.advance(timedelta(seconds=5))
    await runner.apply([])
    written = rig.hubspot.props[rig.hubspot.records["deals"]["order:1"]]
    assert written.get("amount") == "12.00", "the live subject's command was sent"
    assert "dealname" not in written, "the redacted one's was not"
    assert runner.held_positions() == [] and runner.stats.skipped_redacted == 1


async def test_a_refused_sealed_command_is_dead_lettered_sealed_by_the_runner() -> None:
    rig = Rig()
    rig.hubspot.refuse["order:2"] = "VALIDATION_ERROR"
    runner = rig.runner()
    runner.keys = {REF: KEY}
    command = upsert(deal(2), dealname=f"order of {EMAIL}")
    raw = sealed(command)
    await runner.apply([(command, Position(0, 0, received=raw, ref=REF))])
    (letter,) = rig.letters.delivered
    assert EMAIL.encode() not in letter.value and orjson.loads(letter.value)["command"] == orjson.loads(raw)
    assert runner.stats.dead_lettered == 1


def test_shredded_is_about_commands_read_sealed_only() -> None:
    command = commands()[0]
    assert shredded([(command, Position(0, 0, ref=REF))], {})
    assert not shredded([(command, Position(0, 0, ref=REF))], {REF: KEY})
    assert not shredded([(command, Position(0, 0))], {}), "a plain command has no key to lose"
    assert not shredded([(command, Position(0, 0, ref=REF))], None), "sealing off"


# ---- other readers ----


def test_the_compliance_report_finds_the_customer_in_sealed_commands_and_letters_opened() -> None:
    """``shopsync compliance report`` opens what it reads (``open_tree`` inside ``opening``): a
    sealed command and the writer's sealed letter are found by their opened values and shown
    opened; without the keys only the pseudonym key is left to match."""

    secret, shop = b"report-key", "s.myshopify.com"
    ann = RecordRef(object_type="contacts", id_property="email", id_value="p1:not-hers", address=EMAIL)
    command = Upsert(record=ann, properties={"email": EMAIL, "firstname": "Annabel Quinnell"})
    raw = sealed(command)
    letter = command_letter(command, Position(0, 0, received=raw, ref=REF), "HubSpot rejected the record",
                            {"message": f"Email address {EMAIL} is invalid"}, 400, 1_000_000, {REF: KEY},
                            lambda: os.urandom(12))  # fmt: skip
    records = [
        Record("hubspot.commands", 0, 0, command.record.key.encode(), raw),
        Record("hubspot.commands.dlq", 0, 0, command.record.key.encode(), letter.value),
    ]
    sources = Sources(orders="shopify.orders", customer_keyed=frozenset(), tables={}, id_map="hubspot.ids")
    who = {"r": Subject(shop, None, pseudonym(secret, "email", EMAIL), None, frozenset())}
    assert collect(who, records, secret, sources)["r"].records == [], (
        "sealed, and keyed by no pseudonym of hers"
    )
    with opening({REF: KEY}):
        found = collect(who, records, secret, sources)["r"]
    assert [r["topic"] for r in found.records] == ["hubspot.commands", "hubspot.commands.dlq"]
    assert found.records[0]["value"]["properties"]["firstname"] == "Annabel Quinnell", "shown opened"
    assert EMAIL in found.records[1]["value"]["message"]
