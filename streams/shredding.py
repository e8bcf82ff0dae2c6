"""Crypto-shredding (SPEC G1), the pure foundation: data keys per data subject, an envelope for
encrypted fields, the key topic's records, and redaction as a tombstone.

**Not wired into the product yet** (nothing in the bridge, the worker or the importer imports
this module): it is the design of the README's "Privacy (G1)" section made executable and
property-tested, so the wiring can be done path by path on top of it.

- A **data subject** is one customer of one shop, named by a **key id**: a keyed hash of the shop
  and the customer's identity (the email's pseudonym, else the Shopify customer id), so the key id
  shows neither. A subject has one or more **data keys** (32 random bytes, AES-256-GCM), each
  named by a **key ref** ``<key id>~<version>``; the key topic holds each under
  ``<shop>/<key ref>``, wrapped (encrypted) under a key-encryption key derived from
  ``SHOPSYNC_PRIVACY_SECRET``, so a copy of the topics without the secret holds no usable key.
- A record's personal values travel together in one envelope, a JSON string
  ``e1.<key ref>.<base64url(nonce | ciphertext | tag)>`` under ``_shopsync_sealed``; the field's
  name and the key ref are the AEAD's associated data, so a ciphertext moved to another field or
  another subject does not open. The rest of the record stays readable.
- **Redaction** is the key topic's tombstones for every key of the subject (``customers/redact``)
  or of the shop (``shop/redact``): once compaction has dropped the earlier values and every
  reader has dropped its copy, every field sealed with them, in every topic, changelog, RocksDB
  store, dead letter and backup, is noise, and a replay from offset 0 reads them as erased.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from schemas.compliance import ComplianceRequest
from streams.privacy import pseudonym

ENVELOPE_PREFIX: Final = "e1."
NONCE_BYTES: Final = 12  # AES-GCM's standard nonce (NIST SP 800-38D): random per encryption
DATA_KEY_BYTES: Final = 32  # AES-256
KEY_ID_BYTES: Final = 16
KEK_CONTEXT: Final = b"shopsync key-encryption key v1"
KEY_TOPIC: Final = "privacy.keys"
"""The compacted topic of data keys: key = ``<shop>/<key ref>``, value = the wrapped data key, a
tombstone (null) once the subject is redacted. Declared here and not in ``streams.topics.TOPICS`` while no
part of the product writes it."""

DAY_MS: Final = 24 * 60 * 60 * 1000
KEY_TOPIC_CONFIGS: Final = {
    "cleanup.policy": "compact",
    "segment.ms": str(DAY_MS),  # the active segment is never compacted: roll it daily
    "max.compaction.lag.ms": str(7 * DAY_MS),  # a redacted key's old value is cleaned within 7 days
    "delete.retention.ms": str(DAY_MS),  # readers have a day to see a tombstone (Kafka's default)
    "min.cleanable.dirty.ratio": "0.01",
}
"""The key topic's configuration: a tombstone's old value must leave the brokers' logs well within
Shopify's 30 days (README, "The 30 days and compaction")."""

PERSONAL_CUSTOMER_FIELDS: Final = ("email", "phone", "first_name", "last_name", "note")
PERSONAL_ADDRESS_FIELDS: Final = (
    "first_name", "last_name", "name", "company", "address1", "address2", "city", "zip", "phone",
    "latitude", "longitude",
)  # fmt: skip
"""The personal fields of a ``customers/*`` body and of each of its addresses (Shopify's Customer
resource: contact details and up to ten addresses); country, province and ids stay readable."""


class Shredded:
    """What a field whose data key is gone reads as: erased (the rules treat it as absent)."""

    def __repr__(self) -> str:
        return "SHREDDED"


SHREDDED: Final = Shredded()


def _subject(secret: bytes, shop: str, ident: str) -> str:
    digest = hmac.new(secret, b"subject\x00" + shop.strip().lower().encode() + b"\x00" + ident.encode(),
                      hashlib.sha256).digest()  # fmt: skip
    return base64.urlsafe_b64encode(digest[:KEY_ID_BYTES]).rstrip(b"=").decode()


def key_id(secret: bytes, shop: str, email: str | None, customer_id: int | None) -> str | None:
    """The subject's key id: by the email's pseudonym if there is an email (contacts are one per
    email), else by the customer id; None when neither names anyone (nothing to encrypt for). Made
    from the pseudonym, not the email, so a redaction that knows only the pseudonym (all that
    ``shopify.compliance`` keeps) finds the same key id."""
    email_pseudonym = pseudonym(secret, "email", email)
    if email_pseudonym is not None:
        return _subject(secret, shop, f"email:{email_pseudonym}")
    return _subject(secret, shop, f"customer:{customer_id}") if customer_id else None


def subject_key_ids(
    secret: bytes, shop: str, email_pseudonym: str | None, customer_id: int | None
) -> set[str]:
    """Every key id a customer's records may be sealed under: by email (records that carried one)
    and by customer id (a customer's records from before they had an email)."""
    kids = set()
    if email_pseudonym is not None:
        kids.add(_subject(secret, shop, f"email:{email_pseudonym}"))
    if customer_id:
        kids.add(_subject(secret, shop, f"customer:{customer_id}"))
    return kids


KEY_REF_SEPARATOR: Final = "~"  # in neither base64url nor a key id


def key_ref(kid: str, version: bytes) -> str:
    """One data key of a subject: ``<key id>~<version>``. A subject may have several keys (two
    bridges meeting a new customer at once each make one): every key is its own record on the key
    topic, so no key ever replaces another that a record was sealed with, and a redaction
    tombstones them all."""
    return f"{kid}{KEY_REF_SEPARATOR}{_b64(version)}"


def kid_of(ref: str) -> str:
    return ref.split(KEY_REF_SEPARATOR, 1)[0]


def key_encryption_key(secret: bytes) -> bytes:
    """The key the data keys are wrapped with on the key topic (never the secret itself)."""
    return hmac.new(secret, KEK_CONTEXT, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def wrap(kek: bytes, ref: str, data_key: bytes, nonce: bytes) -> bytes:
    """The key topic's value for a data key: nonce | AES-GCM(kek, data key, aad = key ref)."""
    return nonce + AESGCM(kek).encrypt(nonce, data_key, ref.encode())


def unwrap(kek: bytes, ref: str, wrapped: bytes) -> bytes:
    return AESGCM(kek).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], ref.encode())


def is_envelope(value: object) -> bool:
    return isinstance(value, str) and value.startswith(ENVELOPE_PREFIX)


def encrypt(data_key: bytes, ref: str, path: str, plaintext: str, nonce: bytes) -> str:
    """One field, sealed: ``e1.<key ref>.<base64url(nonce | ciphertext | tag)>``. ``nonce`` must be
    fresh random bytes for each call (the shell passes ``os.urandom(12)``); it is a parameter so
    the function stays pure and testable."""
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"a nonce is {NONCE_BYTES} bytes")
    sealed = AESGCM(data_key).encrypt(nonce, plaintext.encode(), f"{ref}\x00{path}".encode())
    return f"{ENVELOPE_PREFIX}{ref}.{_b64(nonce + sealed)}"


def envelope_key_id(value: str) -> str:
    return value[len(ENVELOPE_PREFIX) :].split(".", 1)[0]


def decrypt(keys: Mapping[str, bytes], path: str, value: str) -> str | Shredded:
    """The field's plaintext, or :data:`SHREDDED` when its subject's key is gone (redacted).
    Raises ``ValueError`` for an envelope that is damaged or was moved to another field."""
    ref, _, body = value[len(ENVELOPE_PREFIX) :].partition(".")
    data_key = keys.get(ref)
    if data_key is None:
        return SHREDDED
    try:
        raw = _unb64(body)
        return (
            AESGCM(data_key)
            .decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], f"{ref}\x00{path}".encode())
            .decode()
        )
    except (InvalidTag, binascii.Error, ValueError) as exc:
        raise ValueError(f"the encrypted field at {path!r} does not open with its subject's key") from exc


SEALED_FIELD: Final = "_shopsync_sealed"
"""Where a record's sealed personal fields travel: one envelope per record, in the record."""


def _is_value(value: object) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _parts(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], tuple[str, ...]]]:
    """(place, object, its personal fields) of the body and each of its addresses."""
    yield "", body, PERSONAL_CUSTOMER_FIELDS
    if isinstance(body.get("default_address"), dict):
        yield "default_address", body["default_address"], PERSONAL_ADDRESS_FIELDS
    for i, address in enumerate(body.get("addresses") or []):
        if isinstance(address, dict):
            yield f"addresses.{i}", address, PERSONAL_ADDRESS_FIELDS


def personal_part(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The body's personal values, by place: ``{"": {"email": ...}, "addresses.0": {...}}``."""
    part: dict[str, dict[str, Any]] = {}
    for place, record, fields in _parts(body):
        values = {name: record[name] for name in fields if _is_value(record.get(name))}
        if values:
            part[place] = values
    return part


def _without(body: dict[str, Any], part: Mapping[str, Mapping[str, Any]], fill: bool) -> dict[str, Any]:
    """A copy of the body without the part's fields (``fill``: every personal field set to null)."""
    out = dict(body)
    if isinstance(out.get("default_address"), dict):
        out["default_address"] = dict(out["default_address"])
    if isinstance(out.get("addresses"), list):
        out["addresses"] = [dict(a) if isinstance(a, dict) else a for a in out["addresses"]]
    for place, record, fields in _parts(out):
        for name in fields if fill else part.get(place, {}):
            if fill:
                record[name] = None
            else:
                record.pop(name, None)
    return out


def encrypt_customer(body: dict[str, Any], ref: str, data_key: bytes, nonce: bytes) -> dict[str, Any]:
    """A ``customers/*`` body with its personal values moved into one sealed envelope
    (:data:`SEALED_FIELD`), a new dict; the body is not changed. One envelope per record, not
    one per field: the bench (``bench/bench_privacy.py``) measured a field-by-field seal at 1.9x
    the body's bytes and ~70 us, one envelope at +250 bytes and ~5 us. Ids, timestamps, consent,
    tags, country and province stay readable: what the rules key and order by needs no key."""
    part = personal_part(body)
    if not part:
        return dict(body)
    out = _without(body, part, fill=False)
    out[SEALED_FIELD] = encrypt(data_key, ref, SEALED_FIELD, orjson.dumps(part).decode(), nonce)
    return out


def decrypt_customer(body: dict[str, Any], keys: Mapping[str, bytes]) -> dict[str, Any]:
    """The body as it was sealed; if its subject's key is gone (redacted), every personal field
    reads as null, as a redacted customer's email must: the rules then see no contact (C2)."""
    sealed = body.get(SEALED_FIELD)
    if not (isinstance(sealed, str) and is_envelope(sealed)):
        return body
    out = {k: v for k, v in body.items() if k != SEALED_FIELD}
    opened = decrypt(keys, SEALED_FIELD, sealed)
    if isinstance(opened, Shredded):
        return _without(out, {}, fill=True)
    out = _without(out, {}, fill=False)  # copies of the nested objects, filled in below
    part: dict[str, dict[str, Any]] = orjson.loads(opened)
    for place, record, _ in _parts(out):
        record.update(part.get(place, {}))
    return out


@dataclass(frozen=True)
class KeyRecord:
    """One record of the key topic, keyed ``<shop>/<key ref>`` (the shop in the clear, so a
    ``shop/redact`` finds every key of the shop): the wrapped data key, or None (a tombstone)."""

    shop: str
    ref: str
    wrapped: bytes | None

    @property
    def topic_key(self) -> bytes:
        return f"{self.shop}/{self.ref}".encode()

    @classmethod
    def from_topic(cls, key: bytes, value: bytes | None) -> KeyRecord:
        shop, _, ref = key.decode().rpartition("/")
        return cls(shop, ref, value or None)


def redaction(held: Iterable[KeyRecord], shop: str, kids: set[str] | None) -> list[KeyRecord]:
    """The tombstones of a redaction: every live key of the shop whose key id is one of ``kids``
    (``customers/redact``), or every live key of the shop (``kids`` None: ``shop/redact``)."""
    live: dict[str, KeyRecord] = {}
    for record in held:
        if record.wrapped is None:
            live.pop(record.ref, None)
        elif record.shop == shop and (kids is None or kid_of(record.ref) in kids):
            live[record.ref] = record
    return [KeyRecord(shop, ref, None) for ref in live]


def redaction_for(request: ComplianceRequest, secret: bytes, held: Iterable[KeyRecord]) -> list[KeyRecord]:
    """What a compliance request appends to the key topic: nothing for a data request; the
    customer's keys for ``customers/redact``; every key of the shop for ``shop/redact``."""
    if request.topic == "customers/data_request":
        return []
    if request.topic == "shop/redact":
        return redaction(held, request.shop_domain, None)
    kids = subject_key_ids(secret, request.shop_domain, request.email_pseudonym, request.customer_id)
    return redaction(held, request.shop_domain, kids) if kids else []


def fold_keys(records: Iterable[KeyRecord], kek: bytes) -> dict[str, bytes]:
    """The key ring a reader holds after reading the key topic in order: each key ref's data key,
    unwrapped; a tombstone removes it."""
    ring: dict[str, bytes] = {}
    for record in records:
        if record.wrapped is None:
            ring.pop(record.ref, None)
        else:
            ring[record.ref] = unwrap(kek, record.ref, record.wrapped)
    return ring


def personal_values(body: dict[str, Any]) -> list[str]:
    """Every personal value of a customer body in the clear, as text: what a redaction must make
    unreadable (for tests, and for the scan of issue 15's acceptance test)."""
    return [str(v) for values in personal_part(body).values() for v in values.values()]
