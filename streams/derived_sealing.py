"""Sealing what the worker derives itself (SPEC G1, step 3's second part), the pure part: its
table rows, its HubSpot commands, the facts its rules forward, and its dead letters' reasons.

The bridge and the importers seal a delivery's personal values before it is appended; the worker
opens them where it parses a body, and the rules run on the opened values. Everything the worker
then writes from them (a contact's state row with its email and names, a deal's upsert, a company
member's fact) would hold them in the clear: so, with ``SHOPSYNC_SEAL_PERSONAL_DATA`` on, the
shell (``streams.app``) seals each of them under the key of the data subject it came from before
it writes it, and opens them where it reads them back. The rules stay pure and unchanged.

The formats are ``schemas.sealing``'s: a row or a fact is sealed whole (``seal_whole``), with the
few fields the shell itself reads without a key left beside the envelope (:data:`READABLE_ROW_FIELDS`);
a command keeps its op, natural keys and association types readable (``COMMAND``); a dead letter
keeps its reason's kind (``schemas.reasons.reason_kind``: emails and quoted values blanked)
readable and its full reason sealed. Here, not in the shell, so each is property-tested without a
broker; the nonce is a parameter (the shell passes ``os.urandom``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from schemas.reasons import reason_kind
from schemas.sealing import (
    COMMAND,
    SEALED_FIELD,
    Fields,
    Shredded,
    open_derived,
    personal_part,
    seal,
    seal_whole,
    sealed_ref,
)
from streams.partition_time import AS_OF, DUE_AT

SHOP_FIELD: Final = "_shopsync_shop"
"""The shop a sealed row or fact belongs to, readable beside its envelope: the companies stage
seals its rows under the shop's own subject (a company holds several customers' emails), and a
company-member fact tells it which shop it is for. A shop's domain names no person."""

READABLE_ROW_FIELDS: Final = ("partition", AS_OF, DUE_AT, SHOP_FIELD)
"""What the shell reads of a row without opening it: the partition, stream time and next due
time a timer index is rebuilt from (``streams.partition_time``: instants, no person's values),
and the shop. Sealed inside the envelope too,
so the row opens to exactly what was written."""

_FACT_PREFIX: Final = b'{"' + SEALED_FIELD.encode() + b'":'
LETTER: Final = Fields(("reason",))
"""A dead letter's personal part: its reason, which may quote the input (a pydantic message
shows an invalid email as it came)."""


def seal_row(row: dict[str, Any], ref: str, data_key: bytes, nonce: bytes) -> dict[str, Any]:
    """A table row sealed whole under ``ref``, its :data:`READABLE_ROW_FIELDS` beside."""
    sealed = seal_whole(row, ref, data_key, nonce)
    return {**sealed, **{name: row[name] for name in READABLE_ROW_FIELDS if name in row}}


def open_row(raw: dict[str, Any], keys: Mapping[str, bytes]) -> dict[str, Any] | Shredded:
    """A stored row as it was written, or :data:`SHREDDED` when its subject's key is gone (the
    state then reads as absent: the subject was redacted). A row that is not sealed is itself."""
    return open_derived(raw, keys)


def row_ref(raw: object) -> str | None:
    """The key ref a stored row is sealed under (None: not sealed)."""
    return sealed_ref(raw) if isinstance(raw, dict) else None


def seal_command(encoded: bytes, ref: str, data_key: bytes, nonce: bytes) -> bytes:
    """A command's bytes (``schemas.commands.encode_command``) with its personal part sealed; the
    same bytes when it has none (an archive, an association between two deals' objects)."""
    value = orjson.loads(encoded)
    if not personal_part(value, COMMAND):
        return encoded
    return orjson.dumps(seal(value, COMMAND, ref, data_key, nonce))


def command_is_personal(encoded: bytes) -> bool:
    """Whether a command carries personal values (what a shredded subject's unit may not send)."""
    return bool(personal_part(orjson.loads(encoded), COMMAND))


def seal_fact(raw: bytes, ref: str, data_key: bytes, nonce: bytes, shop: str | None = None) -> bytes:
    """A rule-built forward's bytes (a JSON object) sealed whole, with the shop beside it."""
    sealed = seal_whole(orjson.loads(raw), ref, data_key, nonce)
    return orjson.dumps({**sealed, SHOP_FIELD: shop} if shop is not None else sealed)


def is_sealed_fact(raw: bytes) -> bool:
    """Whether a forward's bytes are a fact sealed by :func:`seal_fact` (a byte check: a delivery
    forwarded as it came starts with its ``kind``, its sealed fields inside its body)."""
    return raw.startswith(_FACT_PREFIX)


def fact_shop(raw: bytes) -> str | None:
    """The shop a sealed fact says it is for; None when it says none or is no JSON object (a
    malformed record is the decode's to dead-letter, with its reason)."""
    if not is_sealed_fact(raw):
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    shop = value.get(SHOP_FIELD) if isinstance(value, dict) else None
    return shop if isinstance(shop, str) else None


def open_fact(raw: bytes, keys: Mapping[str, bytes]) -> tuple[bytes, str | None, str | None] | None:
    """A sealed fact's original bytes, the ref it was sealed under and its shop; None when its
    subject's key is gone (the fact is dropped: nothing of it is left to act on)."""
    value = orjson.loads(raw)
    shop = value.pop(SHOP_FIELD, None)
    ref = sealed_ref(value)
    opened = open_derived(value, keys)
    if isinstance(opened, Shredded):
        return None
    return orjson.dumps(opened), ref, shop if isinstance(shop, str) else None


def seal_letter(
    letter: dict[str, Any], sealing: tuple[str, bytes] | Shredded | None, nonce: bytes
) -> dict[str, Any]:
    """A dead letter whose input was sealed: its reason's kind stays readable, the full reason is
    sealed under the input's subject (``sealing`` its (ref, data key)); when that key is gone,
    only the kind is kept. An input that was not sealed (``sealing`` None) keeps its reason."""
    if sealing is None:
        return letter
    reason = str(letter.get("reason", ""))
    if isinstance(sealing, Shredded):
        return {**letter, "reason": reason_kind(reason)}
    ref, data_key = sealing
    sealed = seal(letter, LETTER, ref, data_key, nonce)
    return {**sealed, "reason": reason_kind(reason)}


def open_letter(letter: dict[str, Any], keys: Mapping[str, bytes]) -> dict[str, Any]:
    """A dead letter with its full reason, when it was sealed and its key is held."""
    opened = open_derived(letter, keys, LETTER)
    return letter if isinstance(opened, Shredded) else opened
