"""Crypto-shredding (SPEC G1), the pure foundation: data keys per data subject, an envelope for
encrypted fields, the key topic's records, and redaction as a tombstone.

Wired behind ``SHOPSYNC_SEAL_PERSONAL_DATA`` (off by default): the bridge and the importers seal
with it (``handlers.sealer``), the worker and replay open (``schemas.sealing``), and the
redactor (``handlers.redactor``) appends :func:`redaction_for`'s tombstones. It is the design of the
README's "Privacy (G1)" section made executable and property-tested.

- A **data subject** is one customer of one shop, named by a **key id**: a keyed hash of the shop
  and the customer's identity (a record's Shopify customer id, else the email's or the phone's
  pseudonym: :func:`record_key_id`), so the key id
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
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from schemas.compliance import ComplianceRequest
from schemas.sealing import (
    ADDRESS,
    CUSTOMER,
    ENVELOPE_PREFIX,
    NONCE_BYTES,
    SEALED_FIELD,
    SHREDDED,
    Shredded,
    decrypt,
    encrypt,
    envelope_key_id,
    is_envelope,
    open_sealed,
    seal,
)
from schemas.sealing import personal_part as personal_part_of
from schemas.types import gid_number
from streams.privacy import pseudonym

__all__ = [
    "ENVELOPE_PREFIX", "NONCE_BYTES", "SEALED_FIELD", "SHREDDED", "Shredded", "decrypt", "encrypt",
    "envelope_key_id", "is_envelope",
]  # fmt: skip
"""The envelope itself lives in ``schemas.sealing`` (the one parse of a body opens it); these
names are re-exported for the callers of this module."""

DATA_KEY_BYTES: Final = 32  # AES-256
KEY_ID_BYTES: Final = 16
KEK_CONTEXT: Final = b"shopsync key-encryption key v1"
KEY_TOPIC: Final = "privacy.keys"
"""The compacted topic of data keys: key = ``<shop>/<key ref>``, value = the wrapped data key, a
tombstone (null) once the subject is redacted. Declared by ``streams.topics.ensure_topics`` (with
:data:`KEY_TOPIC_CONFIGS`) when ``SHOPSYNC_SEAL_PERSONAL_DATA`` is on, and not in
``streams.topics.TOPICS``: the topic is the keys, never a record anyone replays."""

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

PERSONAL_CUSTOMER_FIELDS: Final = CUSTOMER.names
PERSONAL_ADDRESS_FIELDS: Final = ADDRESS.names
"""The personal fields of a ``customers/*`` body and of each of its addresses (Shopify's Customer
resource: contact details and up to ten addresses); country, province and ids stay readable. The
other body kinds' are in ``schemas.sealing.SPECS``."""


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


def record_key_id(
    secret: bytes, shop: str, email: str | None, customer_id: int | None, phone: str | None = None
) -> str | None:
    """Whose key seals one record: by the Shopify customer id when the record names one (a
    customer's id never changes, their email may: ``customers/redact`` names only the current
    email, so records sealed under an earlier one would stay readable), else by the email's
    pseudonym (a guest's checkout or order), else by the phone's (a guest known by phone only);
    None when nothing names anyone."""
    if customer_id:
        return _subject(secret, shop, f"customer:{customer_id}")
    email_pseudonym = pseudonym(secret, "email", email)
    if email_pseudonym is not None:
        return _subject(secret, shop, f"email:{email_pseudonym}")
    phone_pseudonym = pseudonym(secret, "phone", phone)
    return _subject(secret, shop, f"phone:{phone_pseudonym}") if phone_pseudonym is not None else None


def subject_key_ids(
    secret: bytes,
    shop: str,
    email_pseudonym: str | None,
    customer_id: int | None,
    phone_pseudonym: str | None = None,
) -> set[str]:
    """Every key id a customer's records may be sealed under: by customer id (their records as
    a customer), by email and by phone (a guest's records, or records sealed by email before)."""
    kids = set()
    if email_pseudonym is not None:
        kids.add(_subject(secret, shop, f"email:{email_pseudonym}"))
    if customer_id:
        kids.add(_subject(secret, shop, f"customer:{customer_id}"))
    if phone_pseudonym is not None:
        kids.add(_subject(secret, shop, f"phone:{phone_pseudonym}"))
    return kids


def shop_key_id(secret: bytes, shop: str) -> str:
    """The key id of what names no customer the product can tell (a parked delivery of an
    unknown kind without one, a cart's note): the shop's own subject, shredded by ``shop/redact``."""
    return _subject(secret, shop, "shop")


def _customer_id(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str):
        if value.isascii() and value.isdigit():
            return int(value) or None
        return gid_number(value)
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def body_key_id(secret: bytes, shop: str, topic: str, body: Mapping[str, Any]) -> str:
    """Whose key seals a delivery body (:func:`record_key_id`): the customer it is about by their
    Shopify customer id (the body's id for ``customers/*``, the customer's for orders and
    checkouts, the global id a company contact names), else by email (a customer's own, else
    the order's or checkout's), else by phone, else the shop's subject. ``customers/redact``
    names the customer by id, email and phone (:func:`subject_key_ids`), so each finds its
    records."""
    resource = topic.partition("/")[0]
    customer = body.get("customer")
    customer = customer if isinstance(customer, Mapping) else {}
    if resource == "customers":
        email, cid, phone = _text(body.get("email")), _customer_id(body.get("id")), _text(body.get("phone"))
    elif resource == "company_contacts":
        email, cid, phone = None, _customer_id(body.get("customer_admin_graphql_api_id")), None
    else:
        email = next(
            (e for e in map(_text, (customer.get("email"), body.get("email"), body.get("contact_email")))
             if pseudonym(secret, "email", e) is not None),
            None,
        )  # fmt: skip
        cid = _customer_id(customer.get("id")) or _customer_id(body.get("customer_id"))
        phone = next(
            (p for p in map(_text, (customer.get("phone"), body.get("phone"), body.get("sms_marketing_phone")))  # noqa: E501
             if pseudonym(secret, "phone", p) is not None),
            None,
        )  # fmt: skip
    return record_key_id(secret, shop, email, cid, phone) or shop_key_id(secret, shop)


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


def wrap(kek: bytes, ref: str, data_key: bytes, nonce: bytes) -> bytes:
    """The key topic's value for a data key: nonce | AES-GCM(kek, data key, aad = key ref)."""
    return nonce + AESGCM(kek).encrypt(nonce, data_key, ref.encode())


def unwrap(kek: bytes, ref: str, wrapped: bytes) -> bytes:
    return AESGCM(kek).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], ref.encode())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def personal_part(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A customer body's personal values, by place: ``{"": {"email": ...}, "addresses.0": {...}}``."""
    return personal_part_of(body, CUSTOMER)


def encrypt_customer(body: dict[str, Any], ref: str, data_key: bytes, nonce: bytes) -> dict[str, Any]:
    """A ``customers/*`` body with its personal values moved into one sealed envelope
    (:data:`SEALED_FIELD`), a new dict; the body is not changed (``schemas.sealing.seal`` with
    the customer's fields). Ids, timestamps, consent, tags, country and province stay readable:
    what the rules key and order by needs no key."""
    return seal(body, CUSTOMER, ref, data_key, nonce)


def decrypt_customer(body: dict[str, Any], keys: Mapping[str, bytes]) -> dict[str, Any]:
    """The body as it was sealed; if its subject's key is gone (redacted), every personal field
    reads as null, as a redacted customer's email must: the rules then see no contact (C2)."""
    return open_sealed(body, keys, CUSTOMER)


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
        elif _named(record, shop, kids):
            live[record.ref] = record
    return [KeyRecord(shop, ref, None) for ref in live]


def _named(record: KeyRecord, shop: str, kids: set[str] | None) -> bool:
    """Whether a redaction of ``shop`` naming ``kids`` (None: the whole shop) takes this key."""
    return record.shop == shop and (kids is None or kid_of(record.ref) in kids)


def _request_kids(request: ComplianceRequest, secret: bytes) -> set[str] | None:
    """The key ids a redact names: its customer's (none known: an empty set), every one of the
    shop's for ``shop/redact`` (None)."""
    if request.topic == "shop/redact":
        return None
    return subject_key_ids(
        secret, request.shop_domain, request.email_pseudonym, request.customer_id, request.phone_pseudonym
    )


def redaction_for(request: ComplianceRequest, secret: bytes, held: Iterable[KeyRecord]) -> list[KeyRecord]:
    """What a compliance request appends to the key topic: nothing for a data request; the
    customer's keys for ``customers/redact``; every key of the shop for ``shop/redact``."""
    if request.topic == "customers/data_request":
        return []
    kids = _request_kids(request, secret)
    return redaction(held, request.shop_domain, kids) if kids is None or kids else []


def already_shredded(request: ComplianceRequest, secret: bytes, tombstones: Iterable[KeyRecord]) -> int:
    """How many of the request's keys were shredded before it (tombstones the ring read): a
    redact applied again (its HubSpot erasure failed, or the redactor stopped before its commit)
    finds its keys gone, which its log says rather than "0 keys shredded"."""
    if request.topic == "customers/data_request":
        return 0
    kids = _request_kids(request, secret)
    return sum(1 for t in tombstones if _named(t, request.shop_domain, kids))


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
