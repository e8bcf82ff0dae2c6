"""Reads of CRM records: batch read, one record, a page of records, and search.

Search answers at once (HubSpot's index lags a few seconds behind writes); a writer that needs
read-your-writes should not rely on search for it in production.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from hubspot_sandbox import properties, records
from hubspot_sandbox.catalog import ObjectType
from hubspot_sandbox.checks import (
    doesnt_exist,
    id_property,
    missing_message,
    resolve,
    resolve_many,
    shown,
    unique_names,
)
from hubspot_sandbox.errors import JSON, InputError, invalid_properties, not_found, validation
from hubspot_sandbox.inputs import inputs_of, to_text
from hubspot_sandbox.writes import Outcome

MAX_SEARCH_LIMIT = 200
MAX_FILTER_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS = 18


def batch_read(conn: sqlite3.Connection, otype: ObjectType, body: JSON, *, archived: bool) -> Outcome:
    defs = properties.load(conn, otype.name)
    prop = id_property(otype, defs, body.get("idProperty"))
    names = shown(otype, defs, body.get("properties"))
    outcome = Outcome()
    seen: set[int] = set()
    inputs = inputs_of(body)
    found = resolve_many(conn, otype, defs, [(item.get("id"), prop) for item in inputs], archived=archived)
    for item, record in zip(inputs, found, strict=True):
        if record is None:
            outcome.errors.append(InputError("OBJECT_NOT_FOUND", missing_message(otype), str(item.get("id"))))
        elif record.id not in seen:
            seen.add(record.id)
            outcome.results.append(records.render(record, names))
    return outcome


def get_one(
    conn: sqlite3.Connection,
    otype: ObjectType,
    raw_id: str,
    *,
    prop: str | None,
    requested: str,
    archived: bool,
) -> JSON:
    """``GET .../{id}``; with ``archived=true`` only an archived record answers, as in HubSpot."""
    defs = properties.load(conn, otype.name)
    record = resolve(conn, otype, defs, raw_id, id_property(otype, defs, prop), archived=archived)
    if record is None:
        raise not_found("Object not found.  objectId are usually numeric.", context={"id": [raw_id]})
    return records.render(record, shown(otype, defs, requested))


def list_page(
    conn: sqlite3.Connection, otype: ObjectType, *, limit: int, after: int, requested: str, archived: bool
) -> JSON:
    defs = properties.load(conn, otype.name)
    state = "IS NOT NULL" if archived else "IS NULL"
    ids = [
        row[0]
        for row in conn.execute(
            f"SELECT id FROM objects WHERE type = ? AND archived_ms {state} AND id > ? ORDER BY id LIMIT ?",
            (otype.name, after, limit + 1),
        )
    ]
    page = ids[:limit]
    loaded = records.load(conn, otype.name, page, archived=archived)
    body: JSON = {"results": [records.render(loaded[i], shown(otype, defs, requested)) for i in page]}
    if len(ids) > limit:
        body["paging"] = {"next": {"after": str(page[-1])}}
    return body


def _filter_clause(
    defs: dict[str, properties.PropertyDef], unique: set[str], spec: Any, params: list[Any]
) -> str:
    """One filter as SQL. EQ and IN on a unique property read the unique-value index (a search by
    email costs one lookup at any size); the others test each record of the type."""
    if not isinstance(spec, dict) or not isinstance(spec.get("propertyName"), str):
        raise validation("each filter needs propertyName and operator")
    name, operator = spec["propertyName"], spec.get("operator", "EQ")
    if name not in defs:
        raise invalid_properties([doesnt_exist(name)])
    has = "EXISTS (SELECT 1 FROM prop_values p WHERE p.object_id = o.id AND p.name = ?"
    if name in unique and operator in ("EQ", "IN"):
        has = "o.id IN (SELECT p.object_id FROM prop_values p WHERE p.name = ? AND p.uniq = 1"
    if operator in ("EQ", "NEQ"):
        value = to_text(spec.get("value"))
        params.extend([name, records.norm(value or "")])
        return ("" if operator == "EQ" else "NOT ") + has + " AND p.norm = ?)"
    if operator in ("IN", "NOT_IN"):
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise validation(f"{operator} needs a non-empty values list")
        params.extend([name, *(records.norm(to_text(v) or "") for v in values)])
        marks = ",".join("?" * len(values))
        return ("" if operator == "IN" else "NOT ") + has + f" AND p.norm IN ({marks}))"
    if operator in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
        params.append(name)
        return ("" if operator == "HAS_PROPERTY" else "NOT ") + has + ")"
    raise validation(
        f"Operator {operator} is not supported by the sandbox (EQ, NEQ, IN, NOT_IN, HAS_PROPERTY)"
    )


def _order(defs: dict[str, properties.PropertyDef], sorts: Any, params: list[Any]) -> str:
    """One sort, by property, else by id; HubSpot's search takes a single sort too."""
    if not sorts:
        return "o.id"
    if not isinstance(sorts, list) or len(sorts) > 1:
        raise validation("sorts takes one sort")
    spec = sorts[0]
    if isinstance(spec, str):
        spec = {
            "propertyName": spec.lstrip("-"),
            "direction": "DESCENDING" if spec.startswith("-") else "ASCENDING",
        }
    name, direction = spec.get("propertyName"), "DESC" if spec.get("direction") == "DESCENDING" else "ASC"
    if name in ("hs_object_id", "createdate", "hs_createdate"):
        return f"o.id {direction}"
    if name not in defs:
        raise invalid_properties([doesnt_exist(str(name))])
    value = "(SELECT p.value FROM prop_values p WHERE p.object_id = o.id AND p.name = ?)"
    params.append(name)
    if defs[name].type == "number":
        value = f"CAST({value} AS REAL)"
    return f"{value} {direction}, o.id"


def search(conn: sqlite3.Connection, otype: ObjectType, body: JSON) -> JSON:
    """``POST .../search``: filter groups are ORed, their filters ANDed; values compare
    case-insensitively; paging by ``after`` (an offset, as HubSpot's is)."""
    defs = properties.load(conn, otype.name)
    if body.get("query"):
        raise validation("Full-text query is not supported by the sandbox; use filterGroups")
    groups = body.get("filterGroups") or []
    if not isinstance(groups, list) or len(groups) > MAX_FILTER_GROUPS:
        raise validation(f"filterGroups must be a list of at most {MAX_FILTER_GROUPS} groups")
    params: list[Any] = [otype.name]
    unique = unique_names(otype, defs)
    clauses: list[str] = []
    total_filters = 0
    for group in groups:
        filters = group.get("filters") if isinstance(group, dict) else None
        if not isinstance(filters, list) or len(filters) > MAX_FILTERS_PER_GROUP:
            raise validation(f"each filter group needs a list of at most {MAX_FILTERS_PER_GROUP} filters")
        total_filters += len(filters)
        parts = [_filter_clause(defs, unique, f, params) for f in filters]
        clauses.append("(" + (" AND ".join(parts) or "1") + ")")
    if total_filters > MAX_FILTERS:
        raise validation(f"A search takes at most {MAX_FILTERS} filters in all")
    limit, after = _paging(body.get("limit", 10), body.get("after", 0))
    where = " OR ".join(clauses) or "1"
    order_params: list[Any] = []
    order = _order(defs, body.get("sorts"), order_params)
    sql = (
        "SELECT o.id FROM objects o WHERE o.type = ? AND o.archived_ms IS NULL"
        f" AND ({where}) ORDER BY {order}"
    )
    ids = [row[0] for row in conn.execute(sql, (*params, *order_params))]
    page = ids[after : after + limit]
    loaded = records.load(conn, otype.name, page, archived=False)
    names = shown(otype, defs, body.get("properties"))
    answer: JSON = {"total": len(ids), "results": [records.render(loaded[i], names) for i in page]}
    if after + limit < len(ids):
        answer["paging"] = {"next": {"after": str(after + limit)}}
    return answer


def _paging(raw_limit: Any, raw_after: Any) -> tuple[int, int]:
    try:
        limit, after = int(raw_limit), int(raw_after or 0)
    except (TypeError, ValueError):
        raise validation("limit and after must be integers") from None
    if not 1 <= limit <= MAX_SEARCH_LIMIT or after < 0:
        raise validation(f"limit must be between 1 and {MAX_SEARCH_LIMIT}, after at least 0")
    return limit, after
