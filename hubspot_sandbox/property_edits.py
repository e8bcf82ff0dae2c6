"""The property-definition routes beyond create and read: ``batch/create``, ``PATCH`` and
``DELETE`` of one definition (developers.hubspot.com, "CRM API | Properties": "Create a batch of
properties ... using the same rules as when creating an individual property"; "Update a property:
perform a partial update ... provided fields will be overwritten"; "Archive a property: move a
property ... to the recycling bin").

``batch/create`` takes every input as ``POST /crm/v3/properties/{type}`` would: a malformed input
fails the whole call (400, nothing created); a name the type has already is that input's error,
answered 207 with the others created (``OBJECT_ALREADY_EXISTS``, naming it in ``context.name``:
the category is the single create's 409, the grouping the sandbox's, as for its object batches).
"""

from __future__ import annotations

import sqlite3

from aiohttp import web

from hubspot_sandbox import properties
from hubspot_sandbox.catalog import resolve_type
from hubspot_sandbox.errors import JSON, HubSpotError, validation
from hubspot_sandbox.responses import json_response, no_content, read_body
from hubspot_sandbox.state import STATE
from hubspot_sandbox.timestamps import iso, now_ms

routes = web.RouteTableDef()
MAX_INPUTS = 100
PROPERTY = "/crm/v3/properties/{object_type}/{name}"


@routes.post("/crm/v3/properties/{object_type}/batch/create")
async def batch_create(request: web.Request) -> web.Response:
    state, body, started = request.app[STATE], await read_body(request), now_ms()
    otype = resolve_type(request.match_info["object_type"])
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs or len(inputs) > MAX_INPUTS:
        raise validation(f"inputs must be a list of 1 to {MAX_INPUTS} property definitions")

    def create_all(conn: sqlite3.Connection) -> tuple[list[JSON], list[str]]:
        created, existing = [], []
        for item in inputs:
            if not isinstance(item, dict):
                raise validation("each input must be a property definition object")
            try:
                created.append(properties.create(conn, otype.name, item, started).to_json())
            except HubSpotError as exc:
                if exc.status != 409:
                    raise
                existing.append(str(item.get("name")))
        return created, existing

    created, existing = state.store.run(create_all)
    answer: JSON = {
        "status": "COMPLETE",
        "results": created,
        "startedAt": iso(started),
        "completedAt": iso(now_ms()),
    }
    if not existing:
        return json_response(answer, 201)
    answer["numErrors"] = 1
    answer["errors"] = [
        {"status": "error", "category": "OBJECT_ALREADY_EXISTS",
         "message": f"Properties already exist: {', '.join(existing)}", "context": {"name": existing}}
    ]  # fmt: skip
    return json_response(answer, 207)


@routes.patch(PROPERTY)
async def update_property(request: web.Request) -> web.Response:
    state, body = request.app[STATE], await read_body(request)
    otype, name = resolve_type(request.match_info["object_type"]), request.match_info["name"]
    changed = state.store.run(lambda conn: properties.update(conn, otype.name, name, body))
    return json_response(changed.to_json())


@routes.delete(PROPERTY)
async def archive_property(request: web.Request) -> web.Response:
    state = request.app[STATE]
    otype, name = resolve_type(request.match_info["object_type"]), request.match_info["name"]
    state.store.run(lambda conn: properties.archive(conn, otype.name, name))
    return no_content()
