"""Property groups (``/crm/v3/properties/{objectType}/groups``): a property names its group, and
the group must exist. Every account starts with each object's information group (the one its
built-in properties are in); an integration that wants its own group creates it first.

Source: the properties guide, "Property groups" ("Property groups are used to group related
properties ... a custom property group will make it easy to identify that data") and ``groupName``
("The name of the property group the property belongs to"),
https://developers.hubspot.com/docs/api/crm/properties. HubSpot has more default groups per object
(e.g. contacts' ``emailinformation``) than the sandbox seeds: a writer should name the information
group or its own. The 400's wording is the sandbox's.
"""

from __future__ import annotations

import re
import sqlite3

from hubspot_sandbox.catalog import DEFAULT_GROUPS
from hubspot_sandbox.errors import JSON, HubSpotError, validation

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
_LABELS = {
    "contactinformation": "Contact information",
    "dealinformation": "Deal information",
    "productinformation": "Product information",
    "lineiteminformation": "Line item information",
    "companyinformation": "Company information",
    "orderinformation": "Order information",
    "cartinformation": "Cart information",
}


def seed(conn: sqlite3.Connection) -> None:
    for object_type, name in DEFAULT_GROUPS.items():
        conn.execute(
            "INSERT OR IGNORE INTO property_groups (object_type, name, label, display_order)"
            " VALUES (?, ?, ?, -1)",
            (object_type, name, _LABELS[name]),
        )


def _json(row: sqlite3.Row) -> JSON:
    return {
        "name": row["name"],
        "label": row["label"],
        "displayOrder": row["display_order"],
        "archived": False,
    }


def list_all(conn: sqlite3.Connection, object_type: str) -> list[JSON]:
    rows = conn.execute(
        "SELECT * FROM property_groups WHERE object_type = ? ORDER BY name", (object_type,)
    ).fetchall()
    return [_json(row) for row in rows]


def require(conn: sqlite3.Connection, object_type: str, name: str) -> None:
    known = conn.execute(
        "SELECT 1 FROM property_groups WHERE object_type = ? AND name = ?", (object_type, name)
    ).fetchone()
    if known is None:
        groups = [g["name"] for g in list_all(conn, object_type)]
        raise validation(
            f"Property group '{name}' does not exist for object type {object_type}; create it first"
            f" (POST /crm/v3/properties/{object_type}/groups) or use one of {groups}"
        )


def create(conn: sqlite3.Connection, object_type: str, body: JSON) -> JSON:
    """``POST /crm/v3/properties/{type}/groups``: name and label required; 409 when it exists."""
    name, label = body.get("name"), body.get("label")
    if not isinstance(name, str) or not _NAME.match(name):
        raise validation("name is required: a-z, 0-9 and _, starting with a letter")
    if not isinstance(label, str) or not label.strip():
        raise validation("label is required")
    order = body.get("displayOrder", -1)
    if isinstance(order, bool) or not isinstance(order, int):
        raise validation("displayOrder must be an integer")
    exists = conn.execute(
        "SELECT 1 FROM property_groups WHERE object_type = ? AND name = ?", (object_type, name)
    ).fetchone()
    if exists:
        raise HubSpotError(409, "OBJECT_ALREADY_EXISTS", f"A property group named '{name}' already exists.")
    conn.execute(
        "INSERT INTO property_groups (object_type, name, label, display_order) VALUES (?, ?, ?, ?)",
        (object_type, name, label, order),
    )
    return {"name": name, "label": label, "displayOrder": order, "archived": False}
