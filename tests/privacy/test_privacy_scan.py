"""The scan of issue 15's acceptance test (``devtools.privacy_scan``), its pure core: a value is
found in every form a copy of it takes (lower-cased, JSON-escaped, a phone's E.164 and digits, a
dead letter's base64, a sealed envelope whose key is still held), and not where it is not (a
pseudonym, base64 noise, an envelope whose key is shredded). The broker and RocksDB side runs in
``test_redact_acceptance.py``."""

from __future__ import annotations

import base64
import os
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from devtools.privacy_scan import (
    Customer,
    Hit,
    Scan,
    hits_in,
    needle,
    needles_for,
    run_topics,
    scan_stores,
    search_item,
)
from schemas.sealing import seal, spec_for
from streams.privacy import pseudonym

ZOE = Customer("Zoë.Quillfeather@Example.TEST", "+44 7700 900123", "Zoëlle", "Quillfeather",
               "41 Brackwater Lane", None, "QX1 2ZT")  # fmt: skip
NEEDLES = needles_for(ZOE)
KEY, REF = os.urandom(32), "kid-of-zoe~v1"


def whats(data: bytes) -> list[str]:
    return sorted(what for what, _, _ in hits_in(data, NEEDLES)[0])


def test_each_form_a_copy_takes_is_found() -> None:
    assert whats(b'{"email":"zo\xc3\xab.quillfeather@example.test"}') == ["email"], "lower-cased"
    assert whats(orjson.dumps({"k": "Zo\\u00eblle"}).replace(b"\\\\", b"\\")) == ["first_name"], "escaped"
    assert whats(b'"{\\"n\\": \\"Zo\\\\u00eblle\\"}"') == ["first_name"], "escaped twice"
    assert whats(b"tel:+447700900123;") == ["phone"], "E.164"
    assert whats(b"phone=447700900123,") == ["phone"], "digits only, once (not also as E.164)"
    assert whats(b'"+44 (0) 7700-900 123"') == [] and whats(b'"+44 7700-900.123"') == ["phone"], "spaced"
    assert whats(b"id 1447700900123") == ["phone"], "the digits inside a longer number count (to be safe)"
    assert whats("Zoëlle".encode()) == ["first_name"] and whats(b"Zoe\xcc\x88lle") == ["first_name"], "NFD"
    assert whats(b"x 41 Brackwater Lane, QX1 2ZT") == ["address1", "zip"]
    assert whats(b"Zo\xc3\xab.Quillfeather@Example.TEST") == ["email"], "a name inside the email is the email"


def test_what_is_not_the_value_is_not_a_hit() -> None:
    email_pseudonym = pseudonym(b"k", "email", ZOE.email) or ""
    assert whats(email_pseudonym.encode()) == [], "a pseudonym shows nothing"
    noise = b"AbCd" * 4 + b"447700900123" + b"XyZw" * 4
    found, skipped = hits_in(noise, NEEDLES)
    assert found == [] and skipped == 2, (
        "inside a base64 run (as digits, and spaced): noise, counted, not a hit"
    )
    assert whats(b"Quillfeathers are birds") == ["last_name"], "but a word's own text is"
    with pytest.raises(ValueError, match="too short"):
        needle("zip", [("as sent", "K2P")])


def test_layers_a_dead_letter_and_a_sealed_body() -> None:
    plain = orjson.dumps({"kind": "delivery", "body": {"email": ZOE.email, "first_name": "Zoëlle"}})
    letter = orjson.dumps({"reason": "x", "original_base64": base64.b64encode(plain).decode()})
    found, _, _ = search_item(letter, NEEDLES, None)
    assert {(layer, what) for layer, what, _ in found} == {("base64", "email"), ("base64", "first_name")}

    sealed = seal(
        {"id": 1, "email": ZOE.email, "first_name": "Zoëlle", "phone": ZOE.phone},
        spec_for("customers/create") or pytest.fail("customers are sealed"),
        REF,
        KEY,
        os.urandom(12),
    )
    raw = orjson.dumps({"kind": "delivery", "body": sealed})
    assert whats(raw) == [], "sealed: nothing readable as stored"
    opened, _, unopened = search_item(raw, NEEDLES, {REF: KEY})
    assert {(layer, what) for layer, what, _ in opened} == {
        ("opened", "email"), ("opened", "first_name"), ("opened", "phone")
    }, "its key is held: anyone with the secret reads it"  # fmt: skip
    assert unopened == 0
    inside = orjson.dumps({"reason": "x", "original_base64": base64.b64encode(raw).decode()})
    assert {layer for layer, _, _ in search_item(inside, NEEDLES, {REF: KEY})[0]} == {"opened"}
    assert search_item(raw, NEEDLES, {})[0] == [], "its key shredded: nothing opens"
    as_string = orjson.dumps({"command": raw.decode()})  # a JSON document held in a string
    assert {layer for layer, _, _ in search_item(as_string, NEEDLES, {REF: KEY})[0]} == {"opened"}


def test_the_summary_names_places_and_fields_never_values() -> None:
    found = Scan()
    for at in range(5):
        hits, _ = hits_in(b'{"email":"' + ZOE.email.encode() + b'"}', needles_for(replace(ZOE, who="zoe ")))
        found.hits += [Hit("topic t.hubspot.commands", f"p0@{at} value", "raw", w, f) for w, f, _ in hits]
    text = found.summary(first=2)
    assert "topic t.hubspot.commands: 5 hit(s) of zoe email" in text
    assert "p0@0 value: zoe email (as sent) [raw]" in text and "... and 3 more location(s)" in text
    assert "Quillfeather" not in text and "ë" not in text


def test_a_rocksdb_store_is_read_by_its_rows_and_its_files(tmp_path: Path) -> None:
    """Rows are read through rocksdict (what a compressed SST holds is only seen so), the files
    raw (the WAL: uncompressed, superseded versions included)."""
    from rocksdict import Options, Rdict

    options = Options(raw_mode=True)
    options.create_if_missing(True)
    db = Rdict(str(tmp_path / "v1" / "tables" / "contacts-0.db"), options=options)
    sealed = seal(
        {"email": ZOE.email}, spec_for("customers/create") or pytest.fail("sealed"), REF, KEY, os.urandom(12)
    )
    db[b'"p1:abc"'] = orjson.dumps({"address": ZOE.email.lower()})
    db[b'"p1:def"'] = orjson.dumps(sealed)
    db.close()
    found = Scan()
    scan_stores([tmp_path], NEEDLES, {REF: KEY}, found)
    assert found.stores == [str(tmp_path / "v1" / "tables" / "contacts-0.db")] and found.rows == 2
    assert {(h.where, h.location, h.layer) for h in found.hits if h.where.startswith("rocksdb")} == {
        ("rocksdb v1/tables/contacts-0.db", 'key "p1:abc" (its value)', "raw"),
        ("rocksdb v1/tables/contacts-0.db", 'key "p1:def" (its value)', "opened"),
    }
    assert any(h.where.startswith("file v1/tables/contacts-0.db/") for h in found.hits), "the WAL, raw"
    shredded = Scan()
    scan_stores([tmp_path], NEEDLES, {}, shredded)
    assert {h.location for h in shredded.hits if h.where.startswith("rocksdb")} == {
        'key "p1:abc" (its value)'
    }


def test_the_run_s_topics_are_its_prefix_s_and_its_app_id_s_but_the_key_topic() -> None:
    listed = ["__consumer_offsets", "a.shopify.orders", "a.app.contacts", "app-contacts-changelog",
              "a.privacy.keys", "b.shopify.orders", "other-contacts-changelog"]  # fmt: skip
    assert run_topics(listed, "a.", "app", "a.privacy.keys") == [
        "a.app.contacts", "a.shopify.orders", "app-contacts-changelog"
    ]  # fmt: skip
    assert "__consumer_offsets" not in run_topics(listed, "", "app", "privacy.keys"), (
        "no prefix: all but Kafka's"
    )
