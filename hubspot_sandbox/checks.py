"""The rules a write must pass before anything is stored: known, writable and well-typed
properties; deal pipeline and stage; a line item's product; unique values; ids that resolve.

Every problem of a batch is gathered first and the batch fails as a whole (400/409), as
HubSpot's batch writes do; only missing records fail input by input (207).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from hubspot_sandbox import pipelines, records
from hubspot_sandbox.catalog import PIPELINE_FIELDS, ObjectType
from hubspot_sandbox.errors import PropertyProblem, conflict, invalid_properties, validation
from hubspot_sandbox.inputs import EMAIL, object_id, to_text
from hubspot_sandbox.properties import PropertyDef, check_value
from hubspot_sandbox.records import Record


def doesnt_exist(name: str) -> PropertyProblem:
    return PropertyProblem(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')


def clean_value(otype: ObjectType, definition: PropertyDef, value: str) -> tuple[str, PropertyProblem | None]:
    """Contacts' email is kept trimmed and lower case (HubSpot compares it case-insensitively).
    A line item's price "cannot be negative" (HubSpot's line items guide, "Create a line item",
    https://developers.hubspot.com/docs/api/crm/line-items; the code and wording are the sandbox's)."""
    if otype.name == "contacts" and definition.name == "email":
        value = value.strip().lower()
        if not EMAIL.match(value):
            return value, PropertyProblem("email", "INVALID_EMAIL", f"Email address {value} is invalid")
    problem = check_value(definition, value)
    if problem is None and otype.name == "line_items" and definition.name == "price" and Decimal(value) < 0:
        problem = PropertyProblem(
            "price", "INVALID_DECIMAL", f"{value} is negative; a line item's price cannot be."
        )
    return value, problem


def parse_properties(
    otype: ObjectType, defs: dict[str, PropertyDef], raw: Any, problems: list[PropertyProblem]
) -> dict[str, str | None]:
    """The changes a write asks for, or problems appended for each bad property."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise validation('"properties" must be an object')
    changes: dict[str, str | None] = {}
    for name, value in raw.items():
        definition = defs.get(name)
        if definition is None:
            problems.append(doesnt_exist(name))
            continue
        if definition.read_only:
            message = f'"{name}" is a calculated property; its value cannot be set.'
            problems.append(PropertyProblem(name, "READ_ONLY_VALUE", message))
            continue
        text = to_text(value)
        if text is not None:
            text, problem = clean_value(otype, definition, text)
            if problem is not None:
                problems.append(problem)
                continue
        changes[name] = text
    return changes


def check_links(
    conn: sqlite3.Connection,
    otype: ObjectType,
    current: dict[str, str],
    changes: dict[str, str | None],
    problems: list[PropertyProblem],
    stages_seen: dict[str, set[str] | None] | None = None,
) -> None:
    """A deal's or order's stage must belong to its pipeline (the object's default one when only a
    stage is given); a line item's product must exist. ``changes`` may gain the pipeline.
    ``stages_seen`` keeps each pipeline's stages across the inputs of one batch (read once, not
    once per input)."""
    fields = PIPELINE_FIELDS.get(otype.name)
    if fields is not None and (fields.pipeline in changes or fields.stage in changes):
        pipeline = changes[fields.pipeline] if fields.pipeline in changes else current.get(fields.pipeline)
        stage = changes[fields.stage] if fields.stage in changes else current.get(fields.stage)
        if stage is not None and pipeline is None:
            pipeline = changes[fields.pipeline] = fields.default_pipeline
        if pipeline is not None:
            seen = {} if stages_seen is None else stages_seen
            if pipeline not in seen:
                seen[pipeline] = pipelines.stage_ids(conn, otype.name, pipeline)
            stages = seen[pipeline]
            if stages is None:
                known = [p["id"] for p in pipelines.list_all(conn, otype.name)]
                problems.append(
                    PropertyProblem(
                        fields.pipeline,
                        "INVALID_OPTION",
                        f"{pipeline} was not one of the allowed options: {known}",
                    )
                )
            elif stage is not None and stage not in stages:
                problems.append(
                    PropertyProblem(
                        fields.stage,
                        "INVALID_OPTION",
                        f"{stage} was not one of the allowed options: {sorted(stages)}"
                        f" (the stages of pipeline {pipeline})",
                    )
                )
    if otype.name == "line_items" and changes.get("hs_product_id") is not None:
        product = product_of(conn, changes)
        if product is None:
            value = changes["hs_product_id"]
            problems.append(
                PropertyProblem(
                    "hs_product_id", "OBJECT_NOT_FOUND", f"Product with id {value} does not exist"
                )
            )


def product_of(conn: sqlite3.Connection, changes: dict[str, str | None]) -> Record | None:
    product_id = object_id(changes.get("hs_product_id") or "")
    if product_id is None:
        return None
    return records.load_one(conn, "products", product_id, archived=False)


def unique_names(otype: ObjectType, defs: dict[str, PropertyDef]) -> set[str]:
    names = {name for name, d in defs.items() if d.has_unique_value}
    if otype.name == "contacts":
        names.add("email")
    return names


class UniqueValues:
    """The unique values a batch writes and the live records already holding them, fetched
    before any input is checked (one indexed query per unique property, not one per input);
    nothing is written until every input passed, so the answers hold for the whole batch."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        otype: ObjectType,
        unique: set[str],
        planned: Iterable[dict[str, str | None]],
    ) -> None:
        self._otype = otype
        self._unique = unique
        wanted: dict[str, set[str]] = {}
        for changes in planned:
            for name in unique & changes.keys():
                value = changes[name]
                if value is not None:
                    wanted.setdefault(name, set()).add(value)
        self._holders = {
            name: records.find_many(conn, otype.name, name, values, archived=False)
            for name, values in wanted.items()
        }
        self._claims: dict[tuple[str, str], str] = {}

    def check(self, own_id: int | None, owner: str, changes: dict[str, str | None]) -> None:
        """409 with "Existing ID: N" when another live record holds a unique value; 400 when two
        inputs of the same batch claim one."""
        for name in sorted(self._unique & changes.keys()):
            value = changes[name]
            if value is None:
                continue
            key = (name, records.norm(value))
            if self._claims.setdefault(key, owner) != owner:
                raise validation(f"Duplicate value for unique property {name} in batch input: {value}")
            others = [i for i in self._holders[name].get(key[1], []) if i != own_id]
            if others:
                if name == "email":
                    raise conflict(f"Contact already exists. Existing ID: {others[0]}")
                raise conflict(
                    f'A {self._otype.upper.lower()} with the unique value "{value}" for property'
                    f' "{name}" already exists. Existing ID: {others[0]}'
                )


def id_property(otype: ObjectType, defs: dict[str, PropertyDef], name: Any) -> str | None:
    """None for record ids; else a unique property name (email, or one with hasUniqueValue)."""
    if name is None or name == "hs_object_id":
        return None
    if not isinstance(name, str) or name not in defs:
        raise invalid_properties([doesnt_exist(str(name))])
    if name not in unique_names(otype, defs):
        raise validation(f"{name} is not a unique property of {otype.name}; it cannot be used as idProperty")
    return name


def resolve(
    conn: sqlite3.Connection,
    otype: ObjectType,
    defs: dict[str, PropertyDef],
    raw_id: Any,
    prop: str | None,
    *,
    archived: bool | None,
) -> Record | None:
    """The record an input names, by id or by a unique property's value (newest if several)."""
    return resolve_many(conn, otype, defs, [(raw_id, prop)], archived=archived)[0]


def resolve_many(
    conn: sqlite3.Connection,
    otype: ObjectType,
    defs: dict[str, PropertyDef],
    wanted: Sequence[tuple[Any, str | None]],
    *,
    archived: bool | None,
) -> list[Record | None]:
    """``resolve`` for each (id, idProperty) of a batch, in a few indexed queries for the whole
    batch: one per unique property named, then the records and their values."""
    ids: list[int | None] = []
    keys: list[tuple[str, str] | None] = []
    by_prop: dict[str, set[str]] = {}
    for raw_id, prop in wanted:
        text = to_text(raw_id) if prop is not None else None
        if prop is None or text is None:
            ids.append(object_id(raw_id) if prop is None else None)
            keys.append(None)
            continue
        text, _ = clean_value(otype, defs[prop], text)
        by_prop.setdefault(prop, set()).add(text)
        ids.append(None)
        keys.append((prop, records.norm(text)))
    found = {
        prop: records.find_many(conn, otype.name, prop, values, archived=archived)
        for prop, values in by_prop.items()
    }
    for index, key in enumerate(keys):
        if key is not None:
            hits = found[key[0]].get(key[1])
            ids[index] = hits[0] if hits else None
    loaded = records.load(conn, otype.name, [i for i in ids if i is not None], archived=archived)
    return [None if i is None else loaded.get(i) for i in ids]


def always_shown(otype: ObjectType) -> set[str]:
    """Properties HubSpot returns on every record whatever was asked for."""
    return {"hs_object_id", otype.created_property, otype.modified_property}


def shown(otype: ObjectType, defs: dict[str, PropertyDef], requested: Any) -> set[str]:
    """The properties a read returns: those asked for (if they exist), else the type's defaults."""
    if isinstance(requested, str):
        requested = [p for p in requested.split(",") if p]
    if not requested:
        return set(otype.defaults)
    if not isinstance(requested, list):
        raise validation('"properties" must be a list of property names')
    return {str(p) for p in requested if p in defs} | always_shown(otype)


def missing_message(otype: ObjectType) -> str:
    return (
        f"Could not get some {otype.upper} objects, they may be deleted or not exist."
        " Check that ids are valid."
    )
