"""Property definitions (``/crm/v3/properties``) and the checks a value must pass to be written.

HubSpot rejects a write that names an unknown property or gives a value its type cannot hold;
the sandbox does the same so a writer's mapping mistakes fail here, not in production.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation

from hubspot_sandbox import property_groups, property_rules
from hubspot_sandbox.catalog import OBJECT_TYPES, built_ins
from hubspot_sandbox.errors import JSON, HubSpotError, PropertyProblem, not_found, validation
from hubspot_sandbox.timestamps import iso, parse_instant

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
MAX_STRING = 65_536


@dataclass(frozen=True)
class PropertyDef:
    object_type: str
    name: str
    label: str
    type: str
    field_type: str
    group_name: str
    created_ms: int
    description: str = ""
    options: tuple[JSON, ...] = field(default_factory=tuple)
    has_unique_value: bool = False
    hubspot_defined: bool = False
    read_only: bool = False  # HubSpot sets the value (record stamps, calculated properties)
    calculated: bool = False

    def to_json(self) -> JSON:
        """HubSpot's property shape (the fields a client reads; display-only ones are constant)."""
        body: JSON = {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": list(self.options),
            "displayOrder": -1,
            "calculated": self.calculated,
            "externalOptions": False,
            "hasUniqueValue": self.has_unique_value,
            "hidden": False,
            "modificationMetadata": {
                "archivable": not self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only,
            },
            "formField": not self.read_only,
            "createdAt": iso(self.created_ms),
            "updatedAt": iso(self.created_ms),
            "archived": False,
        }
        if self.hubspot_defined:
            body["hubspotDefined"] = True
        return body

    @classmethod
    def from_json(cls, object_type: str, data: JSON, created_ms: int) -> PropertyDef:
        return cls(
            object_type=object_type,
            name=data["name"],
            label=data["label"],
            type=data["type"],
            field_type=data["fieldType"],
            group_name=data["groupName"],
            created_ms=created_ms,
            description=data.get("description") or "",
            options=tuple(data.get("options") or ()),
            has_unique_value=bool(data.get("hasUniqueValue", False)),
            hubspot_defined=bool(data.get("hubspotDefined", False)),
            read_only=bool(data.get("modificationMetadata", {}).get("readOnlyValue", False)),
            calculated=bool(data.get("calculated", False)),
        )


def seed(conn: sqlite3.Connection, now: int) -> None:
    """Write the built-in definitions of every type (idempotent)."""
    for object_type in OBJECT_TYPES:
        for b in built_ins(object_type):
            options = tuple(
                {"label": o, "value": o, "displayOrder": i, "hidden": False} for i, o in enumerate(b.options)
            )
            definition = PropertyDef(
                object_type,
                b.name,
                b.label,
                b.type,
                b.field_type,
                b.group,
                now,
                options=options,
                hubspot_defined=True,
                read_only=b.read_only,
                calculated=b.calculated,
            )
            _insert(conn, definition)


def _insert(conn: sqlite3.Connection, definition: PropertyDef) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO property_defs (object_type, name, definition) VALUES (?, ?, ?)",
        (
            definition.object_type,
            definition.name,
            json.dumps({**definition.to_json(), "_created_ms": definition.created_ms}),
        ),
    )


def load(conn: sqlite3.Connection, object_type: str) -> dict[str, PropertyDef]:
    rows = conn.execute(
        "SELECT definition FROM property_defs WHERE object_type = ? ORDER BY name", (object_type,)
    )
    out: dict[str, PropertyDef] = {}
    for row in rows:
        data = json.loads(row["definition"])
        out[data["name"]] = PropertyDef.from_json(object_type, data, int(data["_created_ms"]))
    return out


def create(conn: sqlite3.Connection, object_type: str, body: JSON, now: int) -> PropertyDef:
    """``POST /crm/v3/properties/{type}``: 409 if the name is taken, 400 if a field is missing or
    wrong, the type/fieldType pair is not one HubSpot allows, the group does not exist, or an
    option lacks what HubSpot's schema requires (property_rules.py, property_groups.py)."""
    problems: list[JSON] = []
    for key in ("name", "label", "type", "fieldType", "groupName"):
        if not isinstance(body.get(key), str) or not body[key]:
            problems.append({"message": f"{key} is required", "code": "REQUIRED_FIELD", "in": key})
    if problems:
        raise validation("Invalid input: " + ", ".join(p["message"] for p in problems), errors=problems)
    name = body["name"]
    if not _NAME.match(name):
        raise validation(f"Property name '{name}' must start with a letter and hold only a-z, 0-9 and _")
    property_rules.check_type(body["type"], body["fieldType"])
    property_groups.require(conn, object_type, body["groupName"])
    options = property_rules.options(body["type"], body.get("options"))
    unique = body.get("hasUniqueValue", False)
    if not isinstance(unique, bool):
        raise validation("hasUniqueValue must be a boolean")
    if name in load(conn, object_type):
        raise HubSpotError(409, "OBJECT_ALREADY_EXISTS", f"Property named '{name}' already exists.")
    definition = PropertyDef(
        object_type=object_type,
        name=name,
        label=body["label"],
        type=body["type"],
        field_type=body["fieldType"],
        group_name=body["groupName"],
        created_ms=now,
        description=str(body.get("description") or ""),
        options=options,
        has_unique_value=unique,
    )
    _insert(conn, definition)
    if unique:
        _index_values(conn, object_type, name)
    return definition


def _index_values(conn: sqlite3.Connection, object_type: str, name: str) -> None:
    """Put the values records already hold under ``name`` in the unique-value index (``uniq``,
    see ``db``): values stay stored when a property is archived, so a unique property made again
    under an old name finds them. On a new name there are none; the cost is one indexed probe
    per record of the type, once."""
    conn.execute(
        "UPDATE prop_values SET uniq = 1 WHERE name = ? AND uniq = 0"
        " AND object_id IN (SELECT id FROM objects WHERE type = ?)",
        (name, object_type),
    )


def check_value(definition: PropertyDef, value: str) -> PropertyProblem | None:
    """Whether HubSpot would store ``value`` in this property; None when it would."""
    name, kind = definition.name, definition.type
    if kind == "number":
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = Decimal("NaN")
        if not number.is_finite():
            return PropertyProblem(name, "INVALID_DECIMAL", f"{value} was not a valid number.")
    elif kind == "bool":
        if value.lower() not in ("true", "false"):
            return PropertyProblem(
                name, "INVALID_BOOLEAN", f"{value} was not a valid boolean (true or false)."
            )
    elif kind in ("date", "datetime"):
        instant = parse_instant(value)
        if instant is None:
            return PropertyProblem(name, "INVALID_DATE", f"{value} was not a valid date or ISO 8601 instant.")
        if kind == "date" and (instant.hour, instant.minute, instant.second, instant.microsecond) != (
            0,
            0,
            0,
            0,
        ):
            return PropertyProblem(
                name, "INVALID_DATE", f"{value} is not at midnight UTC, as a date must be."
            )
    elif kind == "enumeration" and definition.options:
        allowed = [str(o["value"]) for o in definition.options]
        chosen = value.split(";") if definition.field_type == "checkbox" else [value]
        if any(c not in allowed for c in chosen):
            return PropertyProblem(
                name, "INVALID_OPTION", f"{value} was not one of the allowed options: {allowed}"
            )
    if len(value) > MAX_STRING:
        return PropertyProblem(
            name, "INVALID_STRING", f"Value of {name} is longer than {MAX_STRING} characters."
        )
    return None


UPDATABLE = frozenset({"label", "description", "groupName", "options", "displayOrder", "hidden", "formField"})
"""The fields of ``PATCH /crm/v3/properties/{type}/{name}`` the sandbox applies (its type and
fieldType stay: the sandbox does not convert stored values)."""


def update(conn: sqlite3.Connection, object_type: str, name: str, body: JSON) -> PropertyDef:
    """``PATCH``: a partial update ("provided fields will be overwritten", HubSpot's properties
    reference); 404 for a name the type lacks, 400 for a HubSpot-defined definition (its
    ``readOnlyDefinition``), an unknown group or malformed options."""
    current = load(conn, object_type).get(name)
    if current is None:
        raise not_found(f"Unable to find property named '{name}' for object type {object_type}")
    if current.hubspot_defined:
        raise validation(f"Property '{name}' is defined by HubSpot; its definition cannot be changed")
    unknown = sorted(set(body) - UPDATABLE - {"type", "fieldType"})
    if unknown:
        raise validation(f"Unknown fields {unknown} in a property update")
    if body.get("type", current.type) != current.type or body.get("fieldType", current.field_type) != (
        current.field_type
    ):
        raise validation("The sandbox does not change a property's type or fieldType")
    changed = current
    if "label" in body:
        if not isinstance(body["label"], str) or not body["label"]:
            raise validation("label must be a non-empty string")
        changed = replace(changed, label=body["label"])
    if "description" in body:
        changed = replace(changed, description=str(body["description"] or ""))
    if "groupName" in body:
        property_groups.require(conn, object_type, str(body["groupName"]))
        changed = replace(changed, group_name=str(body["groupName"]))
    if "options" in body:
        changed = replace(changed, options=property_rules.options(current.type, body["options"]))
    conn.execute("DELETE FROM property_defs WHERE object_type = ? AND name = ?", (object_type, name))
    _insert(conn, changed)
    return changed


def archive(conn: sqlite3.Connection, object_type: str, name: str) -> None:
    """``DELETE``: the definition is gone from every read and write (HubSpot moves it to its
    recycling bin; the sandbox keeps no bin, and a property of the same name can be created again).
    404 for a name the type lacks, 400 for a HubSpot-defined one (not ``archivable``). Values
    records hold in it stay stored, unseen (the sandbox simplifies HubSpot here)."""
    current = load(conn, object_type).get(name)
    if current is None:
        raise not_found(f"Unable to find property named '{name}' for object type {object_type}")
    if current.hubspot_defined:
        raise validation(f"Property '{name}' is defined by HubSpot and cannot be archived")
    conn.execute("DELETE FROM property_defs WHERE object_type = ? AND name = ?", (object_type, name))
