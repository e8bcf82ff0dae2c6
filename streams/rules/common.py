"""What every entity's rules share: record versions, duplicate memory, outcomes.

The rules follow one pattern, which is what makes them idempotent and convergent:

1. ``decide(state, input, now)`` first fires the entity's timers that are due at ``now``, then
   folds the input into the state, keeping only the newest version of each Shopify record
   (``updated_at``, ties broken by a hash of the body, so every order of arrival agrees);
2. ``render(state)`` computes what HubSpot should hold for the entity, from the state alone;
3. the commands are the difference between that view and the view last emitted (kept in the
   state). A duplicate or stale input leaves the view as it was, so it emits nothing; replaying
   all inputs from scratch ends in the same view, so it emits the same final commands.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel

from schemas.commands import AnyCommand, PropertyValue, RecordRef, Upsert
from schemas.sealing import open_body

M = TypeVar("M", bound=BaseModel)
_set = object.__setattr__


def evolve(model: M, update: dict[str, Any]) -> M:
    """``model.model_copy(update=update)``, the same copy made without pydantic's generic path
    (every event copies its state a few times). Like ``model_copy``, nothing is validated: the
    rules only put values of the fields' own types."""
    cls = type(model)
    new = cls.__new__(cls)
    extra, private = model.__pydantic_extra__, model.__pydantic_private__
    _set(new, "__dict__", {**model.__dict__, **update})
    _set(new, "__pydantic_extra__", None if extra is None else dict(extra))
    _set(new, "__pydantic_fields_set__", model.__pydantic_fields_set__ | update.keys())
    _set(new, "__pydantic_private__", None if private is None else dict(private))
    return new


@dataclass(frozen=True, slots=True)
class Version:
    """Which version of a Shopify record is newer: ``updated_at``, then a hash of the body.

    A plain frozen dataclass, like every value nested in the states: states hold thousands of them
    (one per property a contact carries), so they must be cheap to make and to keep; pydantic
    still reads and writes them inside a state's row (``model_validate`` / ``model_dump``)."""

    updated_at: datetime
    digest: str

    def newer_than(self, other: Version | None) -> bool:
        if other is None:
            return True
        return (self.updated_at, self.digest) > (other.updated_at, other.digest)


def body_digest(body: dict[str, Any]) -> str:
    """A stable hash of a JSON body (key order does not matter).

    Each rule a delivery reaches dates its record by it, so the last few are remembered by the
    body's identity (bodies are never changed in place) rather than hashed once per rule."""
    known = _DIGESTS.get(id(body))
    if known is not None and known[0] is body:
        return known[1]
    # A sealed body (G1) is hashed opened: the same record sealed twice (a fresh nonce each time)
    # is one version, and versions order as they do unsealed.
    opened = open_body(body)
    digest = hashlib.sha256(orjson.dumps(opened, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
    _DIGESTS[id(body)] = (body, digest)
    if len(_DIGESTS) > 256:
        _DIGESTS.popitem(last=False)
    return digest


_DIGESTS: OrderedDict[int, tuple[dict[str, Any], str]] = OrderedDict()
"""The last bodies hashed, by ``id``; each entry holds its body, so the id is not reused meanwhile."""


def version_of(updated_at: datetime | None, body: dict[str, Any], fallback: datetime) -> Version:
    """The version of a record; a record without ``updated_at`` is dated by its event time."""
    return Version(updated_at=updated_at or fallback, digest=body_digest(body))


def remember(
    seen: dict[str, datetime], event_id: str, at: datetime, ttl: timedelta
) -> dict[str, datetime] | None:
    """The duplicate memory with ``event_id`` added and entries older than ``ttl`` dropped.

    None when ``event_id`` was already seen: the input is a duplicate and must change nothing.
    """
    if event_id in seen:
        return None
    horizon = at - ttl
    kept = {k: t for k, t in seen.items() if t >= horizon}
    kept[event_id] = at
    return kept


def property_changes(
    desired: dict[str, PropertyValue], emitted: dict[str, PropertyValue]
) -> dict[str, PropertyValue]:
    """The properties whose desired value differs from what was last sent."""
    return {k: v for k, v in desired.items() if k not in emitted or emitted[k] != v}


def upsert_if_changed(
    ref: RecordRef,
    desired: dict[str, PropertyValue],
    emitted: dict[str, PropertyValue] | None,
    create_if_missing: bool = True,
) -> list[AnyCommand]:
    """One upsert with the changed properties (all of them for a record never sent), or nothing.

    The unique property is always included, so the upsert can create the record.
    """
    changes = dict(desired) if emitted is None else property_changes(desired, emitted)
    if not changes:
        return []
    changes[ref.id_property] = ref.hubspot_value  # a contact's email, even under a pseudonym key (G1)
    return [Upsert(record=ref, properties=dict(sorted(changes.items())), create_if_missing=create_if_missing)]
