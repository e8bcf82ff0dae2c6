"""Sealed bodies (SPEC G1, crypto-shredding): the wire format of a record's personal values, and
how a reader opens it.

A body that carries personal values travels with them moved into one envelope,
``_shopsync_sealed: "e1.<key ref>.<base64url(nonce | ciphertext | tag)>"`` (AES-256-GCM under the
data subject's key, the field name and the key ref bound in as associated data); everything else
stays readable, so routing, ordering and dedupe need no key. The plaintext is the personal part,
``{place: {field: value}}``, a place being a dotted path into the body (``""`` the body itself,
``"billing_address"``, ``"customer.default_address"``, ``"addresses.0"``), so any reader opens
any sealed body without knowing its kind.

Here, not in ``streams.shredding`` (the keys, subjects and redactions), because the one parse of a
delivery body (``schemas.envelope.Delivery.parse_body_with_problems``) opens it, and schemas
import nothing above them. Which fields are personal is declared per body kind (:data:`SPECS`).

**Opening is given its keys by the shell**, not looked up: a parse is synchronous and pure, and
the keys live in the key ring (``handlers.keyring``) on the key topic. The shell reads the key
refs a batch names (:func:`refs_in`), has the ring catch up on any it does not hold, and runs the
batch inside ``with opening(ring.keys):``; the parse then opens with :func:`current_keys`. A ref
still missing then was shredded: its fields open as absent (null). A sealed body parsed outside
any ``opening`` is an error (:class:`SealedBodyError`), never silently read as erased: that would
make a customer look redacted because a shell forgot to give the keys.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ENVELOPE_PREFIX: Final = "e1."
NONCE_BYTES: Final = 12  # AES-GCM's standard nonce (NIST SP 800-38D): random per encryption
SEALED_FIELD: Final = "_shopsync_sealed"
"""Where a record's sealed personal fields travel: one envelope per record, in the record."""


class Shredded:
    """What a field whose data key is gone reads as: erased (the rules treat it as absent)."""

    def __repr__(self) -> str:
        return "SHREDDED"


SHREDDED: Final = Shredded()


class SealedBodyError(ValueError):
    """A sealed body was read where no keys were given (a shell that did not open the batch)."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


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
    """The key ref an envelope was sealed under (readable: it names no one)."""
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


# ---- which fields are personal, per body kind ----


@dataclass(frozen=True)
class Fields:
    """The personal fields of one object of a body, and of the objects (and lists of objects)
    inside it that hold more."""

    names: tuple[str, ...] = ()
    objects: Mapping[str, Fields] = field(default_factory=dict)
    lists: Mapping[str, Fields] = field(default_factory=dict)


ADDRESS: Final = Fields((
    "first_name", "last_name", "name", "company", "address1", "address2", "city", "zip", "phone",
    "latitude", "longitude",
))  # fmt: skip
"""A Shopify address: country, province (and their codes), ids and ``default`` stay readable."""

CUSTOMER: Final = Fields(
    ("email", "phone", "first_name", "last_name", "note", "multipass_identifier"),
    objects={"default_address": ADDRESS},
    lists={"addresses": ADDRESS},
)
"""Shopify's Customer resource (``customers/*``, and the ``customer`` of orders and checkouts):
contact details and up to ten addresses. Consent, tags, state, currency and ids stay readable."""

CLIENT_DETAILS: Final = Fields(("browser_ip", "user_agent", "session_hash", "accept_language"))

LINE_ITEM: Final = Fields(("properties",), objects={"destination_location": ADDRESS})
"""A line item's custom properties (the buyer's free text: an engraving, a gift message) and the
address it ships to; the product, variant, quantity, prices and the origin (the merchant's) stay
readable."""

ORDER: Final = Fields(
    ("email", "contact_email", "phone", "note", "note_attributes", "browser_ip"),
    objects={
        "customer": CUSTOMER,
        "billing_address": ADDRESS,
        "shipping_address": ADDRESS,
        "client_details": CLIENT_DETAILS,
    },
    lists={
        "shipping_lines": Fields(("phone",)),
        "fulfillments": Fields(objects={"destination": ADDRESS}),
        "line_items": LINE_ITEM,
    },
)
"""Shopify's Order resource: the buyer's email and phone, the note and its attributes (free text
a merchant's checkout may fill with anything), the browser's address, the customer, both
addresses, a shipping line's phone, a fulfillment's destination, a line item's properties and
destination. Ids, name and number, prices, line items' products and quantities, tags, status,
source and the landing and referring sites stay readable."""

CHECKOUT: Final = Fields(
    (*ORDER.names, "sms_marketing_phone"),
    objects=ORDER.objects,
    lists={"shipping_lines": Fields(("phone",)), "line_items": LINE_ITEM},
)
"""Shopify's abandoned Checkout: an order's fields, and the phone given for SMS marketing. The
token, cart token and recovery URL stay readable (the journey is keyed by them)."""

CART: Final = Fields(("note",))
"""A cart names no one; its note is the buyer's free text."""

COMPANY_CONTACT: Final = Fields(("title",))
"""A company contact names its customer by global id only; its job title is theirs."""

SPECS: Final[Mapping[str, Fields]] = {
    "customers": CUSTOMER,
    "orders": ORDER,
    "checkouts": CHECKOUT,
    "carts": CART,
    "company_contacts": COMPANY_CONTACT,
}
"""The body kinds (Shopify resources) sealed, by resource. Products, companies and company
locations name no person (a company's address is the business's) and stay as sent."""


COMMAND: Final = Fields(
    ("properties", "legal_basis_explanation"),
    objects={"record": Fields(("address",)), "to": Fields(("address",))},
)
"""A HubSpot command's personal part (G1, step 3's second part): an upsert's ``properties`` whole
(a contact's email, names, phone and address; a deal's or an Order's name and addresses), a
subscription's legal-basis text, and each contact ref's ``address`` (the email under a pseudonym
key). The op, the natural keys (pseudonyms and Shopify ids), association types and subscription
states stay readable: the writer partitions, coalesces, orders and maps ids by them without a key.
Sealed by the worker under the subject of the entity that decided it, opened by the writer
(:func:`open_derived`) just before it sends it to HubSpot."""


def spec_for(topic: str) -> Fields | None:
    """The personal fields of a Shopify topic's body (``orders/create``), or None."""
    return SPECS.get(topic.partition("/")[0])


def _join(place: str, name: str) -> str:
    return f"{place}.{name}" if place else name


def _walk(obj: dict[str, Any], spec: Fields, place: str = "") -> Iterator[tuple[str, dict[str, Any], Fields]]:
    """(place, object, its fields) of the object and of every object inside it that the spec names."""
    yield place, obj, spec
    for name, inner in spec.objects.items():
        child = obj.get(name)
        if isinstance(child, dict):
            yield from _walk(child, inner, _join(place, name))
    for name, inner in spec.lists.items():
        items = obj.get(name)
        if isinstance(items, list):
            for i, item in enumerate(items):
                if isinstance(item, dict):
                    yield from _walk(item, inner, _join(place, f"{name}.{i}"))


def _copy_along(obj: dict[str, Any], spec: Fields) -> dict[str, Any]:
    """A copy of the object and of every container the spec reaches (the rest is shared)."""
    out = dict(obj)
    for name, inner in spec.objects.items():
        if isinstance(out.get(name), dict):
            out[name] = _copy_along(out[name], inner)
    for name, inner in spec.lists.items():
        if isinstance(out.get(name), list):
            out[name] = [_copy_along(i, inner) if isinstance(i, dict) else i for i in out[name]]
    return out


def personal_part(body: dict[str, Any], spec: Fields) -> dict[str, dict[str, Any]]:
    """The body's personal values, by place: ``{"": {"email": ...}, "addresses.0": {...}}``
    (a null, like an absent field, names no one and stays where it is)."""
    part: dict[str, dict[str, Any]] = {}
    for place, record, fields in _walk(body, spec):
        values = {name: record[name] for name in fields.names if record.get(name) is not None}
        if values:
            part[place] = values
    return part


def seal(body: dict[str, Any], spec: Fields, ref: str, data_key: bytes, nonce: bytes) -> dict[str, Any]:
    """The body with its personal values moved into one envelope (:data:`SEALED_FIELD`), a new
    dict; the body is not changed. A body without personal values comes back as an equal copy.
    One envelope per record, not one per field: the bench (``bench/bench_privacy.py``) measured
    field by field at 1.9x the body's bytes, one envelope at 1.2x."""
    part = personal_part(body, spec)
    if not part:
        return dict(body)
    out = _copy_along(body, spec)
    for place, record, _ in _walk(out, spec):
        for name in part.get(place, {}):
            record.pop(name, None)
    out[SEALED_FIELD] = encrypt(data_key, ref, SEALED_FIELD, orjson.dumps(part).decode(), nonce)
    return out


def seal_whole(body: dict[str, Any], ref: str, data_key: bytes, nonce: bytes) -> dict[str, Any]:
    """A body of a kind the product does not read (a parked delivery), all of it sealed: what an
    unknown topic holds cannot be told apart, so none of it is left readable."""
    if not body:
        return {}
    return {SEALED_FIELD: encrypt(data_key, ref, SEALED_FIELD, orjson.dumps({"": body}).decode(), nonce)}


def sealed_ref(body: dict[str, Any]) -> str | None:
    """The key ref a body is sealed under, or None when it is not sealed."""
    sealed = body.get(SEALED_FIELD)
    return envelope_key_id(sealed) if isinstance(sealed, str) and is_envelope(sealed) else None


def _place(out: dict[str, Any], place: str, copied: set[int]) -> dict[str, Any] | None:
    """The object at ``place`` in ``out``, each container on the way copied once (``copied``)."""
    node: Any = out
    for segment in place.split(".") if place else ():
        if isinstance(node, dict):
            child = node.get(segment)
        elif isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
            child = node[int(segment)]
        else:
            return None
        if not isinstance(child, dict | list):
            return None
        if id(child) not in copied:
            child = dict(child) if isinstance(child, dict) else list(child)
            copied.add(id(child))
            if isinstance(node, dict):
                node[segment] = child
            else:
                node[int(segment)] = child
        node = child
    return node if isinstance(node, dict) else None


def open_sealed(body: dict[str, Any], keys: Mapping[str, bytes], spec: Fields | None) -> dict[str, Any]:
    """The body as it was before :func:`seal` (or :func:`seal_whole`); the body itself when it is
    not sealed. When its key is gone (redacted) every personal field of ``spec`` reads as null, as
    a redacted customer's email must (the rules then see no contact, C2); without a spec (a reader
    that does not know the kind) the envelope is just dropped. Raises ``ValueError`` for a damaged
    envelope."""
    sealed = body.get(SEALED_FIELD)
    if not (isinstance(sealed, str) and is_envelope(sealed)):
        return body
    out = {k: v for k, v in body.items() if k != SEALED_FIELD}
    opened = decrypt(keys, SEALED_FIELD, sealed)
    if isinstance(opened, Shredded):
        if spec is None:
            return out
        out = _copy_along(out, spec)
        for _, record, fields in _walk(out, spec):
            record.update(dict.fromkeys(fields.names))
        return out
    part: dict[str, dict[str, Any]] = orjson.loads(opened)
    copied = {id(out)}
    for place, values in part.items():
        target = _place(out, place, copied)
        if target is not None:
            target.update(values)
    return out


def open_derived(
    value: dict[str, Any], keys: Mapping[str, bytes], spec: Fields | None = None
) -> dict[str, Any] | Shredded:
    """What the product derived and sealed itself (a state row, a fact, a command: G1 step 3's
    second part) opened, or :data:`SHREDDED` when its subject's key is gone. Unlike a delivery's
    body, whose erased fields read as null so the rules see no contact, a derived value whose key
    is gone is erased whole: the reader drops it (a row reads as no state, a command is not sent)
    rather than act on half of it. A value that is not sealed comes back as it is. Raises
    ``ValueError`` for a damaged envelope."""
    sealed = value.get(SEALED_FIELD)
    if not (isinstance(sealed, str) and is_envelope(sealed)):
        return value
    if envelope_key_id(sealed) not in keys:
        return SHREDDED
    return open_sealed(value, keys, spec)


# ---- the shell's keys, for the parse ----


class KeySource(Protocol):
    """What a reader's shell holds to open sealed records (``handlers.sealer.Opener``: a key ring
    on the key topic). Given to the worker by the CLI, so the worker's package needs no handler."""

    @property
    def keys(self) -> Mapping[str, bytes]:
        """Key ref -> data key, as held now."""

    async def ensure(self, raws: Iterable[bytes]) -> None:
        """Hold every key ref these records' bytes name (:func:`refs_in`), or know it is gone."""

    async def ensure_refs(self, refs: Iterable[str]) -> None:
        """Hold these key refs, or know they are gone: the ring read to the key topic's end now if
        one is not held. The worker asks for the refs of stored rows it met and did not hold (a
        row sealed by another worker moments ago, the previous owner after a rebalance), so a key
        it merely has not read yet is never taken for a shredded one."""

    async def key_for(self, shop: str, kid: str) -> tuple[str, bytes]:
        """A live key (ref, data key) of the subject ``kid`` of ``shop``, made and acknowledged on
        the key topic if there is none: what the worker seals a company's rows under (the shop's
        own subject, ``streams.shredding.shop_key_id``)."""

    async def stop(self) -> None:
        """Close the ring's Kafka clients (the worker, once its app has stopped)."""


_KEYS: ContextVar[Mapping[str, bytes] | None] = ContextVar("shopsync_sealing_keys", default=None)


@contextmanager
def opening(keys: Mapping[str, bytes]) -> Iterator[None]:
    """Within the block, parses open sealed bodies with ``keys`` (key ref -> data key: the key
    ring's ``keys``, caught up on the refs the batch names). Use it around synchronous work only
    (a batch's plan): a context variable follows the task, and the keys are read when a body is
    parsed."""
    token = _KEYS.set(keys)
    try:
        yield
    finally:
        _KEYS.reset(token)


def current_keys() -> Mapping[str, bytes] | None:
    """The keys an enclosing :func:`opening` gave, or None."""
    return _KEYS.get()


def open_body(body: dict[str, Any], topic: str | None = None) -> dict[str, Any]:
    """A delivery body opened with the current keys (the body itself when not sealed); a
    shredded subject's fields read as null when the Shopify ``topic`` says which they are, else
    as absent. Raises :class:`SealedBodyError` for a sealed body read outside any :func:`opening`."""
    if SEALED_FIELD not in body:
        return body
    keys = current_keys()
    if keys is None:
        raise SealedBodyError(
            "the body is sealed (SPEC G1) and no keys were given to open it: the reader runs "
            "without its key ring (SHOPSYNC_SEAL_PERSONAL_DATA off?)"
        )
    return open_sealed(body, keys, spec_for(topic) if topic is not None else None)


def open_tree(value: Any) -> Any:
    """Any JSON value with every sealed body inside it opened with the current keys (a body whose
    key is gone loses its envelope: nothing of it is left to read). For readers that take records
    whole without knowing their kind (``shopsync compliance report``); outside any
    :func:`opening` the value is returned as it is (still sealed: nothing is read as erased)."""
    keys = current_keys()
    if keys is None:
        return value
    return _open_tree(value, keys)


def _open_tree(value: Any, keys: Mapping[str, bytes]) -> Any:
    if isinstance(value, dict):
        opened = open_sealed(value, keys, None) if SEALED_FIELD in value else value
        return {k: _open_tree(v, keys) for k, v in opened.items()}
    if isinstance(value, list):
        return [_open_tree(v, keys) for v in value]
    return value


_REF = re.compile(rb'_shopsync_sealed\\?"\s*:\s*\\?"e1\.([A-Za-z0-9_\-]+~[A-Za-z0-9_\-]+)\.')


def refs_in(raw: bytes) -> set[str]:
    """The key refs a record's bytes name (any JSON holding sealed bodies, an envelope inside a
    JSON string included): what a reader must hold before it parses them. A byte search, not a
    parse, so the shell can ask for a whole batch's keys before it decodes any record."""
    return {match.decode() for match in _REF.findall(raw)} if b"_shopsync_sealed" in raw else set()
