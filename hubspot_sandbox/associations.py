"""Associations v4: links between records, stored in both directions as HubSpot does, so a deal's
contacts and a contact's deals are each one indexed read."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from hubspot_sandbox import association_labels
from hubspot_sandbox.catalog import (
    ASSOCIATION_TYPES,
    HUBSPOT_LABELLED,
    PARENT_TYPES,
    AssociationType,
    ObjectType,
)
from hubspot_sandbox.errors import JSON, InputError, validation
from hubspot_sandbox.inputs import inputs_of
from hubspot_sandbox.records import live_ids


def pair(from_type: ObjectType, to_type: ObjectType) -> AssociationType:
    """HubSpot's unlabelled default type from ``from_type`` to ``to_type``."""
    found = ASSOCIATION_TYPES.get((from_type.name, to_type.name))
    if found is None:
        raise validation(
            f"No association type is defined from {from_type.name} to {to_type.name} in the sandbox"
        )
    return found


def check_types(
    conn: sqlite3.Connection,
    from_type: ObjectType,
    to_type: ObjectType,
    types: Any,
    labels_seen: dict[int, AssociationType | None] | None = None,
) -> list[AssociationType]:
    """The requested types: the pair's ``HUBSPOT_DEFINED`` default (3 deal->contact, ...) or a
    ``USER_DEFINED`` label made for this pair. A labelled link also carries the unlabelled default,
    as HubSpot's are listed (the sandbox's reading of the v4 guide). ``labels_seen`` keeps the
    labels read across the inputs of one batch."""
    default = pair(from_type, to_type)
    builtin = {k.type_id: k for k in HUBSPOT_LABELLED.get((from_type.name, to_type.name), ())}
    if not isinstance(types, list) or not types:
        raise validation("types must list at least one {associationCategory, associationTypeId}")
    kinds: list[AssociationType] = []
    for spec in types:
        if not isinstance(spec, dict):
            raise validation("types must list {associationCategory, associationTypeId} objects")
        category = spec.get("associationCategory", "HUBSPOT_DEFINED")
        type_id = spec.get("associationTypeId")
        label = None
        if isinstance(type_id, int) and type_id != default.type_id and type_id not in builtin:
            seen = {} if labels_seen is None else labels_seen
            if type_id not in seen:
                seen[type_id] = association_labels.by_id(conn, type_id)
            label = seen[type_id]
        if category == "HUBSPOT_DEFINED" and type_id == default.type_id:
            kinds.append(default)
        elif category == "HUBSPOT_DEFINED" and isinstance(type_id, int) and type_id in builtin:
            kinds.extend((builtin[type_id], default))
        elif (
            category == "USER_DEFINED"
            and label
            and (label.from_type, label.to_type)
            == (
                from_type.name,
                to_type.name,
            )
        ):
            kinds.extend((label, default))
        else:
            raise validation(
                f"associationTypeId {type_id} ({category}) is not valid from {from_type.name} to"
                f" {to_type.name}; use HUBSPOT_DEFINED {default.type_id} or a USER_DEFINED label of"
                f" GET /crm/v4/associations/{from_type.name}/{to_type.name}/labels"
            )
    return list(dict.fromkeys(kinds))


def _id(raw: Any) -> int | None:
    text = str(raw.get("id", "")) if isinstance(raw, dict) else ""
    return int(text) if text.isdigit() else None


def link(conn: sqlite3.Connection, kind: AssociationType, from_id: int, to_id: int) -> None:
    link_many(conn, kind, [(from_id, to_id)])


def link_many(conn: sqlite3.Connection, kind: AssociationType, pairs: Iterable[tuple[int, int]]) -> None:
    """Link each (from id, to id) with ``kind``, both directions, in one statement."""
    conn.executemany(
        "INSERT OR IGNORE INTO associations (from_id, to_id, type_id, from_type, to_type)"
        " VALUES (?, ?, ?, ?, ?)",
        [
            row
            for from_id, to_id in pairs
            for row in (
                (from_id, to_id, kind.type_id, kind.from_type, kind.to_type),
                (to_id, from_id, kind.inverse_id, kind.to_type, kind.from_type),
            )
        ],
    )


def parent_of_line_item(from_type: str, to_type: str) -> str | None:
    """The parent type (deals, orders, carts) when the pair links line items to one, else None."""
    if from_type == "line_items" and to_type in PARENT_TYPES:
        return to_type
    if to_type == "line_items" and from_type in PARENT_TYPES:
        return from_type
    return None


def other_parent(
    conn: sqlite3.Connection, from_type: str, to_type: str, from_id: int, to_id: int
) -> str | None:
    """Why linking would give a line item a second parent (deal, order or cart), or None. "Line
    items belong to one single parent object" (line items guide,
    https://developers.hubspot.com/docs/api/crm/line-items: one set of line items per object); the
    refusal's wording is the sandbox's."""
    parent_type = parent_of_line_item(from_type, to_type)
    if parent_type is None:
        return None
    item, parent = (from_id, to_id) if from_type == "line_items" else (to_id, from_id)
    marks = ",".join("?" * len(PARENT_TYPES))
    row = conn.execute(
        f"SELECT to_type, to_id FROM associations WHERE from_id = ? AND to_type IN ({marks})"
        " AND NOT (to_type = ? AND to_id = ?) LIMIT 1",
        (item, *sorted(PARENT_TYPES), parent_type, parent),
    ).fetchone()
    if row is None:
        return None
    return (
        f"Line items belong to one single parent object: line item {item} is already associated with"
        f" {row[0]} {row[1]}, so it cannot be associated with {parent_type} {parent}"
    )


Pair = tuple[int, int, int]  # input index, from id, to id


def _present(
    conn: sqlite3.Connection, from_type: ObjectType, to_type: ObjectType, inputs: list[JSON]
) -> tuple[list[Pair], list[InputError]]:
    """The inputs whose both ends exist, live; the others as per-input failures."""
    wanted = [(_id(item.get("from")), _id(item.get("to")), item) for item in inputs]
    present_from = live_ids(conn, from_type.name, [f for f, _, _ in wanted if f is not None])
    present_to = live_ids(conn, to_type.name, [t for _, t, _ in wanted if t is not None])
    found: list[Pair] = []
    errors: list[InputError] = []
    for index, (from_id, to_id, item) in enumerate(wanted):
        if from_id is None or from_id not in present_from:
            errors.append(_missing(from_type, item.get("from")))
        elif to_id is None or to_id not in present_to:
            errors.append(_missing(to_type, item.get("to")))
        else:
            found.append((index, from_id, to_id))
    return found, errors


Pending = dict[AssociationType, list[tuple[int, int]]]


def _link_all(
    conn: sqlite3.Connection,
    kinds: list[AssociationType],
    from_id: int,
    to_id: int,
    errors: list[InputError],
    pending: Pending,
) -> bool:
    """Link one pair with every kind, unless a line item would get a second deal (a failed input).
    Links the one-deal rule does not watch wait in ``pending`` to be written together (``_flush``);
    the others are written at once, so the batch's next inputs see them."""
    first = kinds[0]
    if parent_of_line_item(first.from_type, first.to_type) is None:
        for kind in kinds:
            pending.setdefault(kind, []).append((from_id, to_id))
        return True
    refusal = other_parent(conn, first.from_type, first.to_type, from_id, to_id)
    if refusal is not None:
        errors.append(InputError("VALIDATION_ERROR", refusal, str(from_id)))
        return False
    for kind in kinds:
        link(conn, kind, from_id, to_id)
    return True


def _flush(conn: sqlite3.Connection, pending: Pending) -> None:
    for kind, pairs in pending.items():
        link_many(conn, kind, pairs)


def create(
    conn: sqlite3.Connection, from_type: ObjectType, to_type: ObjectType, body: JSON
) -> tuple[list[JSON], list[InputError]]:
    """``batch/create``: an input naming a missing or archived record, or giving a line item a
    second deal, fails alone (207)."""
    inputs = inputs_of(body)
    labels_seen: dict[int, AssociationType | None] = {}
    kinds = [check_types(conn, from_type, to_type, item.get("types"), labels_seen) for item in inputs]
    found, errors = _present(conn, from_type, to_type, inputs)
    results: list[JSON] = []
    pending: Pending = {}
    for index, from_id, to_id in found:
        item_kinds = kinds[index]
        if _link_all(conn, item_kinds, from_id, to_id, errors, pending):
            results.append(
                {
                    "fromObjectTypeId": from_type.type_id,
                    "fromObjectId": from_id,
                    "toObjectTypeId": to_type.type_id,
                    "toObjectId": to_id,
                    "labels": [k.label for k in item_kinds if k.label],
                }
            )
    _flush(conn, pending)
    return results, errors


def associate_default(
    conn: sqlite3.Connection, from_type: ObjectType, to_type: ObjectType, body: JSON
) -> tuple[list[JSON], list[InputError]]:
    """``batch/associate/default``: the pair's unlabelled default type between each from and to
    ("Associate records (default)", https://developers.hubspot.com/docs/api-reference/latest/crm/associations/associate-records/batch/create-associations)."""
    default = pair(from_type, to_type)
    found, errors = _present(conn, from_type, to_type, inputs_of(body))
    results: list[JSON] = []
    pending: Pending = {}
    for _, from_id, to_id in found:
        if _link_all(conn, [default], from_id, to_id, errors, pending):
            results.append(
                {
                    "from": {"id": str(from_id)},
                    "to": {"id": str(to_id)},
                    "associationSpec": {
                        "associationCategory": default.category,
                        "associationTypeId": default.type_id,
                    },
                }
            )
    _flush(conn, pending)
    return results, errors


def _missing(object_type: ObjectType, raw: Any) -> InputError:
    shown = str(raw.get("id")) if isinstance(raw, dict) else str(raw)
    return InputError(
        "OBJECT_NOT_FOUND",
        f"Could not find some {object_type.upper} objects to associate; they may be archived or not exist.",
        shown,
    )


def archive(conn: sqlite3.Connection, from_type: ObjectType, to_type: ObjectType, body: JSON) -> None:
    """``batch/archive``: removes every type between each pair, both directions; idempotent."""
    pair(from_type, to_type)
    for item in inputs_of(body):
        from_id = _id(item.get("from"))
        targets = item.get("to")
        if from_id is None or not isinstance(targets, list):
            raise validation('each input needs "from": {"id"} and "to": [{"id"}]')
        for target in targets:
            to_id = _id(target)
            if to_id is None:
                raise validation('each "to" needs an "id"')
            conn.execute(
                "DELETE FROM associations WHERE (from_id = ? AND to_id = ?) OR (from_id = ? AND to_id = ?)",
                (from_id, to_id, to_id, from_id),
            )


def remove_all_for(conn: sqlite3.Connection, object_id: int) -> None:
    """An archived or deleted record keeps no associations, in HubSpot and here."""
    conn.execute("DELETE FROM associations WHERE from_id = ? OR to_id = ?", (object_id, object_id))


def list_for(
    conn: sqlite3.Connection, from_type: ObjectType, from_id: int, to_type: ObjectType, limit: int, after: int
) -> JSON:
    """``GET /crm/v4/objects/{from}/{id}/associations/{to}``, paged by ``after`` (an offset)."""
    rows = conn.execute(
        "SELECT to_id, type_id FROM associations WHERE from_id = ? AND from_type = ? AND to_type = ?"
        " ORDER BY to_id, type_id",
        (from_id, from_type.name, to_type.name),
    ).fetchall()
    grouped: dict[int, list[int]] = {}
    for to_id, type_id in rows:
        grouped.setdefault(to_id, []).append(type_id)
    items = [
        {"toObjectId": to_id, "associationTypes": [_type_shown(conn, t) for t in type_ids]}
        for to_id, type_ids in grouped.items()
    ]
    page = items[after : after + limit]
    body: JSON = {"results": page}
    if after + limit < len(items):
        body["paging"] = {"next": {"after": str(after + limit)}}
    return body


_BUILTIN_LABELS = {k.type_id: k.label for kinds in HUBSPOT_LABELLED.values() for k in kinds}


def _type_shown(conn: sqlite3.Connection, type_id: int) -> JSON:
    if type_id in _BUILTIN_LABELS:
        return {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": _BUILTIN_LABELS[type_id]}
    label = association_labels.by_id(conn, type_id)
    if label is not None:
        return {"category": label.category, "typeId": type_id, "label": label.label}
    return {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}


def all_rows(conn: sqlite3.Connection) -> list[JSON]:
    rows = conn.execute(
        "SELECT from_type, from_id, to_type, to_id, type_id FROM associations"
        " ORDER BY from_type, from_id, to_type, to_id, type_id"
    )
    return [
        {"from_type": r[0], "from_id": str(r[1]), "to_type": r[2], "to_id": str(r[3]), "type_id": r[4]}
        for r in rows
    ]
