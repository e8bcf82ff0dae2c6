"""Writes to CRM records: batch create, update, upsert and archive, and GDPR deletion.

Each function runs inside the caller's transaction, checks the whole batch before storing
anything, and returns HubSpot's results plus the inputs that failed on their own (for a 207).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from hubspot_sandbox import associations, properties, records
from hubspot_sandbox.calculated_values import line_item_amounts
from hubspot_sandbox.catalog import (
    ASSOCIATION_TYPES,
    HUBSPOT_LABELLED,
    PARENT_TYPES,
    AssociationType,
    ObjectType,
)
from hubspot_sandbox.checks import (
    UniqueValues,
    check_links,
    clean_value,
    id_property,
    missing_message,
    parse_properties,
    product_of,
    resolve,
    resolve_many,
    unique_names,
)
from hubspot_sandbox.errors import (
    JSON,
    InputError,
    PropertyProblem,
    invalid_properties,
    not_found,
    validation,
)
from hubspot_sandbox.inputs import inputs_of, object_id, to_text
from hubspot_sandbox.records import Record

_COPIED_FROM_PRODUCT = ("name", "price", "hs_sku")


@dataclass
class Outcome:
    """What a batch did: rendered results, per-input failures, and records newly archived or
    deleted (the API turns deleted contacts into webhooks)."""

    results: list[JSON] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)


def _shown_after_write(otype: ObjectType, changes: dict[str, str | None]) -> set[str]:
    return set(otype.defaults) | changes.keys()


Changes = dict[str, str | None]


def _new_values(conn: sqlite3.Connection, otype: ObjectType, changes: Changes) -> dict[str, str]:
    """A line item made from a product takes its name, price and SKU unless given, as in HubSpot."""
    values = {k: v for k, v in changes.items() if v is not None}
    if otype.name == "line_items":
        product = product_of(conn, changes)
        if product is not None:
            for name in _COPIED_FROM_PRODUCT:
                if name not in changes and name in product.values:
                    values[name] = product.values[name]
        calculated = line_item_amounts({}, dict(values))
        values.update({k: v for k, v in calculated.items() if v is not None})
    return values


def _new_records(
    conn: sqlite3.Connection, otype: ObjectType, planned: list[Changes], now: int, unique: set[str]
) -> list[Record]:
    values = [_new_values(conn, otype, changes) for changes in planned]
    return records.insert_many(conn, otype.name, values, now, unique)


def _update(
    conn: sqlite3.Connection,
    otype: ObjectType,
    record: Record,
    changes: dict[str, str | None],
    now: int,
    unique: set[str],
) -> None:
    """Write ``changes``, with a line item's calculated amounts following their inputs."""
    if otype.name == "line_items":
        changes = {**changes, **line_item_amounts(record.values, changes)}
    records.write(conn, record, changes, now, unique)


Link = tuple[AssociationType, int]


_KNOWN_TYPES = (*ASSOCIATION_TYPES.values(), *(k for kinds in HUBSPOT_LABELLED.values() for k in kinds))


def _inline_associations(conn: sqlite3.Connection, otype: ObjectType, item: JSON) -> list[Link]:
    """``associations`` on a create input: each target must exist, else the batch fails (400)."""
    raw = item.get("associations") or []
    if not isinstance(raw, list):
        raise validation('"associations" must be a list')
    links: list[Link] = []
    for given in raw:
        spec: JSON = given if isinstance(given, dict) else {}
        target, types = spec.get("to"), spec.get("types")
        to_id = object_id(target.get("id")) if isinstance(target, dict) else None
        for type_spec in types if isinstance(types, list) else [None]:
            type_id = type_spec.get("associationTypeId") if isinstance(type_spec, dict) else None
            kind = next((a for a in _KNOWN_TYPES if a.from_type == otype.name and a.type_id == type_id), None)
            if kind is None or to_id is None:
                raise validation(f"Invalid association from {otype.name}: {spec}")
            if records.load_one(conn, kind.to_type, to_id, archived=False) is None:
                raise validation(f"Association target {kind.to_type} {to_id} does not exist")
            taken = associations.other_parent(conn, kind.from_type, kind.to_type, 0, to_id)
            if otype.name in PARENT_TYPES and taken is not None:  # the line item has a parent already
                raise validation(taken)
            links.append((kind, to_id))
            if kind.label is not None:  # HubSpot's Primary carries the unlabelled default too
                links.append((ASSOCIATION_TYPES[(kind.from_type, kind.to_type)], to_id))
    parents = {
        (kind.to_type, to_id)
        for kind, to_id in links
        if kind.to_type in PARENT_TYPES and otype.name == "line_items"
    }
    if len(parents) > 1:
        raise validation(
            "Line items belong to one single parent object: a line item cannot be created on"
            f" {', '.join(f'{t} {i}' for t, i in sorted(parents))}"
        )
    return links


def batch_create(conn: sqlite3.Connection, otype: ObjectType, body: JSON, now: int) -> Outcome:
    inputs = inputs_of(body)
    defs = properties.load(conn, otype.name)
    problems: list[PropertyProblem] = []
    planned = [parse_properties(otype, defs, item.get("properties"), problems) for item in inputs]
    stages_seen: dict[str, set[str] | None] = {}
    for changes in planned:
        check_links(conn, otype, {}, changes, problems, stages_seen)
    if problems:
        raise invalid_properties(problems)
    unique = unique_names(otype, defs)
    held = UniqueValues(conn, otype, unique, planned)
    for index, changes in enumerate(planned):
        held.check(None, f"new:{index}", changes)
    links = [_inline_associations(conn, otype, item) for item in inputs]
    outcome = Outcome()
    created = _new_records(conn, otype, planned, now, unique)
    for record, changes, item_links in zip(created, planned, links, strict=True):
        for kind, to_id in item_links:
            associations.link(conn, kind, record.id, to_id)
        outcome.results.append(records.render(record, _shown_after_write(otype, changes)))
    return outcome


def batch_update(conn: sqlite3.Connection, otype: ObjectType, body: JSON, now: int) -> Outcome:
    inputs = inputs_of(body)
    defs = properties.load(conn, otype.name)
    outcome = Outcome()
    wanted = [(item.get("id"), id_property(otype, defs, item.get("idProperty"))) for item in inputs]
    targets: list[tuple[Record, JSON]] = []
    for item, record in zip(inputs, resolve_many(conn, otype, defs, wanted, archived=False), strict=True):
        if record is None:
            outcome.errors.append(InputError("OBJECT_NOT_FOUND", missing_message(otype), str(item.get("id"))))
        else:
            targets.append((record, item))
    ids = [record.id for record, _ in targets]
    if len(set(ids)) != len(ids):
        raise validation(
            f"Duplicate IDs found in batch input: {sorted({i for i in ids if ids.count(i) > 1})}"
        )
    problems: list[PropertyProblem] = []
    planned = [parse_properties(otype, defs, item.get("properties"), problems) for _, item in targets]
    stages_seen: dict[str, set[str] | None] = {}
    for (record, _), changes in zip(targets, planned, strict=True):
        check_links(conn, otype, record.values, changes, problems, stages_seen)
    if problems:
        raise invalid_properties(problems)
    unique = unique_names(otype, defs)
    held = UniqueValues(conn, otype, unique, planned)
    for (record, _), changes in zip(targets, planned, strict=True):
        held.check(record.id, f"id:{record.id}", changes)
    for (record, _), changes in zip(targets, planned, strict=True):
        _update(conn, otype, record, changes, now, unique)
        outcome.results.append(records.render(record, _shown_after_write(otype, changes)))
    return outcome


def batch_upsert(conn: sqlite3.Connection, otype: ObjectType, body: JSON, now: int) -> Outcome:
    """Create or update by a unique property (``email`` for contacts); results carry ``new``.

    The inputs' records are looked up together (``resolve_many``), the new ones inserted together
    (``insert_many``): a batch costs a few statements per input, not a few queries per input."""
    inputs = inputs_of(body)
    defs = properties.load(conn, otype.name)
    problems: list[PropertyProblem] = []
    seen: set[tuple[str, str]] = set()
    keyed: list[tuple[str, str, dict[str, str | None]]] = []
    for item in inputs:
        prop = id_property(otype, defs, item.get("idProperty"))
        if prop is None:
            raise validation(
                "batch/upsert needs idProperty: the name of a unique property (email for contacts)"
            )
        value = to_text(item.get("id"))
        if value is None:
            raise validation("batch/upsert needs an id (the idProperty's value) on every input")
        value, problem = clean_value(otype, defs[prop], value)
        if problem is not None:
            problems.append(problem)
        key = (prop, records.norm(value))
        if key in seen:
            raise validation(f"Duplicate IDs found in batch input: [{value}]")
        seen.add(key)
        changes = parse_properties(otype, defs, item.get("properties"), problems)
        changes[prop] = value
        keyed.append((prop, value, changes))
    found = resolve_many(conn, otype, defs, [(value, prop) for prop, value, _ in keyed], archived=False)
    planned = [(existing, changes) for existing, (_, _, changes) in zip(found, keyed, strict=True)]
    stages_seen: dict[str, set[str] | None] = {}
    for existing, changes in planned:
        check_links(conn, otype, existing.values if existing else {}, changes, problems, stages_seen)
    if problems:
        raise invalid_properties(problems)
    unique = unique_names(otype, defs)
    held = UniqueValues(conn, otype, unique, [changes for _, changes in planned])
    for index, (existing, changes) in enumerate(planned):
        owner = f"id:{existing.id}" if existing else f"new:{index}"
        held.check(existing.id if existing else None, owner, changes)
    created = iter(_new_records(conn, otype, [c for e, c in planned if e is None], now, unique))
    outcome = Outcome()
    for existing, changes in planned:
        if existing is None:
            record = next(created)
        else:
            record = existing
            _update(conn, otype, record, changes, now, unique)
        outcome.results.append(
            {**records.render(record, _shown_after_write(otype, changes)), "new": existing is None}
        )
    return outcome


def batch_archive(conn: sqlite3.Connection, otype: ObjectType, body: JSON, now: int) -> Outcome:
    """Archive (restorable in HubSpot): the record stays readable with ``archived=true``, loses
    its associations, and frees its unique values. Archiving twice, or an id that names nothing,
    is harmless: HubSpot answers 204 either way ("Archive a batch of objects by ID": "This
    response has no body data", https://developers.hubspot.com/docs/api-reference/latest/crm/objects/custom-objects/batch/delete-custom-objects)."""
    outcome = Outcome()
    wanted = [object_id(item.get("id")) for item in inputs_of(body)]
    loaded = records.load(conn, otype.name, [i for i in wanted if i is not None], archived=None)
    for found_id in wanted:
        record = None if found_id is None else loaded.get(found_id)
        if record is not None and not record.archived:
            records.archive(conn, record, now)
            associations.remove_all_for(conn, record.id)
            outcome.removed.append(record.id)
    return outcome


def gdpr_delete(conn: sqlite3.Connection, otype: ObjectType, body: JSON) -> int:
    """Permanent deletion of a contact, by id or by email (live first, else the newest archived)."""
    defs = properties.load(conn, otype.name)
    prop = id_property(otype, defs, body.get("idProperty"))
    record = resolve(conn, otype, defs, body.get("objectId"), prop, archived=False) or resolve(
        conn, otype, defs, body.get("objectId"), prop, archived=True
    )
    if record is None:
        raise not_found(
            f"Unable to find a contact for {body.get('objectId')}",
            context={"id": [str(body.get("objectId"))]},
        )
    associations.remove_all_for(conn, record.id)
    records.delete(conn, record.id)
    return record.id
