"""Associations v4: links between records, stored in both directions as HubSpot does, so a deal's
contacts and a contact's deals are each one indexed read."""

from __future__ import annotations

import sqlite3
from typing import Any

from hubspot_sandbox.catalog import ASSOCIATION_TYPES, AssociationType, ObjectType
from hubspot_sandbox.errors import JSON, InputError, validation
from hubspot_sandbox.inputs import inputs_of
from hubspot_sandbox.records import load


def pair(from_type: ObjectType, to_type: ObjectType) -> AssociationType:
    found = ASSOCIATION_TYPES.get((from_type.name, to_type.name))
    if found is None:
        raise validation(
            f"No association type is defined from {from_type.name} to {to_type.name} in the sandbox"
        )
    return found


def check_types(kind: AssociationType, types: Any) -> None:
    """Each requested type must be the HubSpot-defined id of this pair (3 deal->contact, ...)."""
    if not isinstance(types, list) or not types:
        raise validation("types must list at least one {associationCategory, associationTypeId}")
    for spec in types:
        if not isinstance(spec, dict):
            raise validation("types must list {associationCategory, associationTypeId} objects")
        category = spec.get("associationCategory", "HUBSPOT_DEFINED")
        type_id = spec.get("associationTypeId")
        if category != "HUBSPOT_DEFINED" or type_id != kind.type_id:
            raise validation(
                f"associationTypeId {type_id} ({category}) is not valid from {kind.from_type}"
                f" to {kind.to_type}; use HUBSPOT_DEFINED {kind.type_id}"
            )


def _id(raw: Any) -> int | None:
    text = str(raw.get("id", "")) if isinstance(raw, dict) else ""
    return int(text) if text.isdigit() else None


def link(conn: sqlite3.Connection, kind: AssociationType, from_id: int, to_id: int) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO associations (from_id, to_id, type_id, from_type, to_type)"
        " VALUES (?, ?, ?, ?, ?)",
        [
            (from_id, to_id, kind.type_id, kind.from_type, kind.to_type),
            (to_id, from_id, kind.inverse_id, kind.to_type, kind.from_type),
        ],
    )


def create(
    conn: sqlite3.Connection, from_type: ObjectType, to_type: ObjectType, body: JSON
) -> tuple[list[JSON], list[InputError]]:
    """``batch/create``: an input naming a missing or archived record fails alone (207)."""
    kind = pair(from_type, to_type)
    inputs = inputs_of(body)
    wanted: list[tuple[int | None, int | None, Any]] = []
    for item in inputs:
        check_types(kind, item.get("types"))
        wanted.append((_id(item.get("from")), _id(item.get("to")), item))
    present_from = load(conn, from_type.name, [f for f, _, _ in wanted if f is not None], archived=False)
    present_to = load(conn, to_type.name, [t for _, t, _ in wanted if t is not None], archived=False)
    results: list[JSON] = []
    errors: list[InputError] = []
    for from_id, to_id, item in wanted:
        if from_id is None or from_id not in present_from:
            errors.append(_missing(from_type, item.get("from")))
            continue
        if to_id is None or to_id not in present_to:
            errors.append(_missing(to_type, item.get("to")))
            continue
        link(conn, kind, from_id, to_id)
        results.append(
            {
                "fromObjectTypeId": from_type.type_id,
                "fromObjectId": from_id,
                "toObjectTypeId": to_type.type_id,
                "toObjectId": to_id,
                "labels": [],
            }
        )
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
        {
            "toObjectId": to_id,
            "associationTypes": [
                {"category": "HUBSPOT_DEFINED", "typeId": t, "label": None} for t in type_ids
            ],
        }
        for to_id, type_ids in grouped.items()
    ]
    page = items[after : after + limit]
    body: JSON = {"results": page}
    if after + limit < len(items):
        body["paging"] = {"next": {"after": str(after + limit)}}
    return body


def all_rows(conn: sqlite3.Connection) -> list[JSON]:
    rows = conn.execute(
        "SELECT from_type, from_id, to_type, to_id, type_id FROM associations"
        " ORDER BY from_type, from_id, to_type, to_id, type_id"
    )
    return [
        {"from_type": r[0], "from_id": str(r[1]), "to_type": r[2], "to_id": str(r[3]), "type_id": r[4]}
        for r in rows
    ]
