"""What the sandbox accepts, declared for a contract test: its HubSpot endpoints, the body fields
each takes (HubSpot's request schemas for them), and the properties of each object type in an
account. ``check_request`` tells whether one recorded request stays inside that: a known endpoint,
known fields, known and writable properties. A writer whose every request passes relies on no
leniency of the sandbox.

The declaration is served by ``GET /_sandbox/rules`` (with the live account's properties, custom
ones included) and a test keeps ``BODIES`` in step with the routes the sandbox implements.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from aiohttp.web import RouteDef

from hubspot_sandbox import api, properties, property_edits, rules, subscriptions
from hubspot_sandbox.catalog import OBJECT_TYPES, resolve_type
from hubspot_sandbox.errors import JSON, HubSpotError


@dataclass(frozen=True)
class Body:
    """The fields a request body may hold; ``each`` those of every element of the list fields
    (``inputs``, ``stages``, ...), by list name."""

    fields: frozenset[str] = frozenset()
    each: dict[str, frozenset[str]] = field(default_factory=dict)


def _body(fields: str = "", **each: str) -> Body:
    return Body(frozenset(fields.split()), {k: frozenset(v.split()) for k, v in each.items()})


_TRACE = "objectWriteTraceId"
OBJECTS = "/crm/v3/objects/{object_type}"
_PROPERTY_FIELDS = (
    "name label type fieldType groupName description options displayOrder hasUniqueValue hidden"
    " formField calculationFormula externalOptions referencedObjectType dataSensitivity"
)
_PREFERENCES = subscriptions.BASE
_STATUS = "channel statusState subscriptionId legalBasis legalBasisExplanation"
BODIES: dict[tuple[str, str], Body] = {
    ("POST", OBJECTS + "/batch/create"): _body("inputs", inputs=f"properties associations {_TRACE}"),
    ("POST", OBJECTS + "/batch/update"): _body("inputs", inputs=f"id idProperty properties {_TRACE}"),
    ("POST", OBJECTS + "/batch/upsert"): _body("inputs", inputs=f"id idProperty properties {_TRACE}"),
    ("POST", OBJECTS + "/batch/read"): _body(
        "inputs properties propertiesWithHistory idProperty archived", inputs="id"
    ),
    ("POST", OBJECTS + "/batch/archive"): _body("inputs", inputs="id"),
    ("POST", OBJECTS + "/search"): _body("filterGroups sorts query properties limit after"),
    ("POST", OBJECTS): _body("properties associations"),
    ("PATCH", OBJECTS + "/{object_id}"): _body(f"properties {_TRACE}"),
    ("POST", "/crm/v3/objects/contacts/gdpr-delete"): _body("objectId idProperty"),
    ("POST", "/crm/v3/properties/{object_type}"): _body(
        _PROPERTY_FIELDS, options="label value hidden displayOrder description"
    ),
    ("POST", "/crm/v3/properties/{object_type}/batch/create"): _body("inputs", inputs=_PROPERTY_FIELDS),
    ("PATCH", "/crm/v3/properties/{object_type}/{name}"): _body(
        "label description groupName options displayOrder hidden formField type fieldType",
        options="label value hidden displayOrder description",
    ),
    ("POST", "/crm/v3/properties/{object_type}/groups"): _body("name label displayOrder"),
    ("POST", "/crm/v3/pipelines/{object_type}"): _body(
        "label displayOrder stages", stages="label displayOrder metadata"
    ),
    ("POST", "/crm/v3/pipelines/{object_type}/{pipeline_id}/stages"): _body("label displayOrder metadata"),
    ("POST", "/crm/v4/associations/{from_type}/{to_type}/batch/create"): _body(
        "inputs", inputs="from to types"
    ),
    ("POST", "/crm/v4/associations/{from_type}/{to_type}/batch/associate/default"): _body(
        "inputs", inputs="from to"
    ),
    ("POST", "/crm/v4/associations/{from_type}/{to_type}/batch/archive"): _body("inputs", inputs="from to"),
    ("POST", "/crm/v4/associations/{from_type}/{to_type}/labels"): _body("label name inverseLabel"),
    ("POST", _PREFERENCES + "/statuses/batch/read"): _body("inputs"),
    ("POST", _PREFERENCES + "/statuses/batch/unsubscribe-all/read"): _body("inputs"),
    ("POST", _PREFERENCES + "/statuses/batch/write"): _body("inputs", inputs="subscriberIdString " + _STATUS),
    ("POST", _PREFERENCES + "/statuses/{subscriber}"): _body(_STATUS),
    ("POST", _PREFERENCES + "/statuses/{subscriber}/unsubscribe-all"): _body(),
}
"""Body fields per endpoint; GET and DELETE endpoints take none (they are listed by ``endpoints``)."""

_BATCH_WRITES = {OBJECTS + "/batch/create", OBJECTS + "/batch/update", OBJECTS + "/batch/upsert"}
_SINGLE_WRITES = {OBJECTS, OBJECTS + "/{object_id}"}  # POST one, PATCH one: {"properties": ...}
_TYPE_PARAMETERS = ("object_type", "from_type", "to_type")


def endpoints() -> list[JSON]:
    """Every HubSpot endpoint the sandbox implements, as (method, path template)."""
    found = {
        (route.method, route.path)
        for route in [*api.routes, *property_edits.routes, *subscriptions.routes]
        if isinstance(route, RouteDef)
    }
    return [{"method": m, "path": p} for m, p in sorted(found, key=lambda mp: (mp[1], mp[0]))]


def describe(conn: sqlite3.Connection) -> JSON:
    """The declaration for an account: endpoints, body fields, each object's properties, and rules."""
    objects: JSON = {}
    for name in OBJECT_TYPES:
        defs = properties.load(conn, name)
        objects[name] = {
            "properties": {
                d.name: {
                    "type": d.type,
                    "fieldType": d.field_type,
                    "readOnlyValue": d.read_only,
                    "calculated": d.calculated,
                    "hubspotDefined": d.hubspot_defined,
                }
                for d in defs.values()
            }
        }
    bodies = [
        {
            "method": method,
            "path": path,
            "fields": sorted(body.fields),
            "each": {k: sorted(v) for k, v in body.each.items()},
        }
        for (method, path), body in BODIES.items()
    ]
    return {"endpoints": endpoints(), "bodies": bodies, "objects": objects, "rules": rules.as_json()}


def _template(path: str) -> re.Pattern[str]:
    """``/crm/v3/objects/{object_type}`` as a pattern naming each path parameter."""
    return re.compile("^" + re.sub(r"\\\{([a-z_]+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$")


def match(description: JSON, method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """The endpoint template a concrete request path is of, with its path parameters; the most
    specific one (fewest parameters) when several match, as ``.../batch/create`` before ``.../{id}``."""
    candidates = []
    for endpoint in description["endpoints"]:
        if endpoint["method"] != method.upper():
            continue
        found = _template(endpoint["path"]).match(path.split("?", 1)[0])
        if found:
            candidates.append((endpoint["path"].count("{"), endpoint["path"], found.groupdict()))
    if not candidates:
        return None
    _, template, params = min(candidates)
    return template, params


def check_request(description: JSON, method: str, path: str, body: Any = None) -> list[str]:
    """What in one request HubSpot's (and the sandbox's) contract does not take; empty when all is
    declared: the endpoint, every body field, and every property a write names (known, writable)."""
    matched = match(description, method, path)
    if matched is None:
        return [f"{method} {path}: no such endpoint in the sandbox"]
    template, params = matched
    unknown_types = [p for k, p in params.items() if k in _TYPE_PARAMETERS and not _known_type(p)]
    if unknown_types:
        return [f"{method} {path}: the sandbox keeps no object type {unknown_types}"]
    declared = {(b["method"], b["path"]): b for b in description["bodies"]}.get((method.upper(), template))
    if declared is None:
        return [] if not body else [f"{method} {template}: takes no body"]
    problems = _unknown_fields(template, declared, body if isinstance(body, dict) else {})
    if template in _BATCH_WRITES | _SINGLE_WRITES and isinstance(body, dict):
        problems += _property_problems(description, template, params, body)
    return problems


def _known_type(name: str) -> bool:
    try:
        resolve_type(name)
    except HubSpotError:
        return False
    return True


def _unknown_fields(template: str, declared: JSON, body: JSON) -> list[str]:
    problems = [f"{template}: unknown field {k!r}" for k in sorted(set(body) - set(declared["fields"]))]
    for list_name, allowed in declared["each"].items():
        for index, item in enumerate(body.get(list_name) or []):
            extra = sorted(set(item) - set(allowed)) if isinstance(item, dict) else []
            problems += [f"{template}: unknown field {list_name}[{index}].{k}" for k in extra]
    return problems


def _property_problems(description: JSON, template: str, params: dict[str, str], body: JSON) -> list[str]:
    object_type = resolve_type(params["object_type"]).name
    known = description["objects"][object_type]["properties"]
    items = body.get("inputs") if template in _BATCH_WRITES else [body]
    problems: list[str] = []
    for item in items or []:
        for name in (item.get("properties") or {}) if isinstance(item, dict) else {}:
            if name not in known:
                problems.append(f"{template}: {object_type} has no property {name!r}")
            elif known[name]["readOnlyValue"]:
                problems.append(f"{template}: {object_type}.{name} is read-only (HubSpot calculates it)")
    return problems
