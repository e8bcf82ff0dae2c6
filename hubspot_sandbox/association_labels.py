"""Association labels (``/crm/v4/associations/{from}/{to}/labels``): the ``USER_DEFINED`` types an
account adds to a pair of objects, each with its inverse, so associations can say what a link is.

Source: "Create association label" (``label`` and ``name`` required, ``inverseLabel`` optional;
the answer lists the new type ids with their category and label),
https://developers.hubspot.com/docs/api-reference/crm-associations-schema-v4/definitions/post-crm-associations-v4-fromObjectType-toObjectType-labels.
Both directions get a type id; without an ``inverseLabel`` the inverse carries the same label.
"""

from __future__ import annotations

import sqlite3

from hubspot_sandbox.catalog import ASSOCIATION_TYPES, HUBSPOT_LABELLED, AssociationType, ObjectType
from hubspot_sandbox.db import take
from hubspot_sandbox.errors import JSON, HubSpotError, validation


def _type_json(kind: AssociationType) -> JSON:
    return {"category": kind.category, "typeId": kind.type_id, "label": kind.label}


def _from_row(row: sqlite3.Row) -> AssociationType:
    return AssociationType(
        row["from_type"], row["to_type"], row["type_id"], row["inverse_id"], "USER_DEFINED", row["label"]
    )


def defined(conn: sqlite3.Connection, from_type: str, to_type: str) -> list[AssociationType]:
    rows = conn.execute(
        "SELECT * FROM association_labels WHERE from_type = ? AND to_type = ? ORDER BY type_id",
        (from_type, to_type),
    )
    return [_from_row(row) for row in rows]


def by_id(conn: sqlite3.Connection, type_id: int) -> AssociationType | None:
    row = conn.execute("SELECT * FROM association_labels WHERE type_id = ?", (type_id,)).fetchone()
    return None if row is None else _from_row(row)


def list_for(conn: sqlite3.Connection, from_type: ObjectType, to_type: ObjectType) -> JSON:
    """The pair's types: HubSpot's unlabelled default first, then HubSpot's own labels (Primary),
    then the account's; a pair HubSpot defines no type for is refused (400)."""
    found = ASSOCIATION_TYPES.get((from_type.name, to_type.name))
    if found is None:
        raise validation(f"No association type is defined from {from_type.name} to {to_type.name}")
    kinds = [
        found,
        *HUBSPOT_LABELLED.get((from_type.name, to_type.name), ()),
        *defined(conn, from_type.name, to_type.name),
    ]
    return {"results": [_type_json(k) for k in kinds]}


def create(conn: sqlite3.Connection, from_type: ObjectType, to_type: ObjectType, body: JSON) -> JSON:
    label, name, inverse = body.get("label"), body.get("name"), body.get("inverseLabel")
    if not isinstance(label, str) or not label.strip() or not isinstance(name, str) or not name.strip():
        raise validation("label and name are required")
    if inverse is not None and (not isinstance(inverse, str) or not inverse.strip()):
        raise validation("inverseLabel must be a non-empty string when given")
    taken = conn.execute(
        "SELECT 1 FROM association_labels WHERE from_type = ? AND to_type = ? AND name = ?",
        (from_type.name, to_type.name, name),
    ).fetchone()
    if taken:
        raise HubSpotError(
            409, "CONFLICT", f"An association label named '{name}' already exists for this pair"
        )
    forward = take(conn, count=2)
    backward = forward + 1
    rows = [
        (forward, from_type.name, to_type.name, label, name, backward),
        (backward, to_type.name, from_type.name, inverse or label, name, forward),
    ]
    conn.executemany(
        "INSERT INTO association_labels (type_id, from_type, to_type, label, name, inverse_id)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )
    created = [AssociationType(r[1], r[2], r[0], r[5], "USER_DEFINED", r[3]) for r in rows]
    return {"results": [_type_json(k) for k in created]}
