"""The ``/crm/*`` routes: HubSpot's paths, bodies and status codes over the store.

Each handler parses, runs one transaction in the store, and answers; deleting contacts also
schedules the ``contact.deletion`` webhook after the commit, never delaying the answer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import timedelta
from zoneinfo import ZoneInfo

from aiohttp import web

from hubspot_sandbox import (
    association_labels,
    associations,
    pipelines,
    properties,
    property_groups,
    reads,
    writes,
)
from hubspot_sandbox.catalog import PIPELINE_FIELDS, ObjectType, resolve_type
from hubspot_sandbox.errors import JSON, HubSpotError, InputError, not_found, validation
from hubspot_sandbox.inputs import object_id
from hubspot_sandbox.responses import batch_response, flag, int_query, json_response, no_content, read_body
from hubspot_sandbox.state import STATE, SandboxState
from hubspot_sandbox.timestamps import now_ms
from hubspot_sandbox.writes import Outcome

routes = web.RouteTableDef()
OBJECTS = "/crm/v3/objects/{object_type}"

BatchWrite = Callable[[sqlite3.Connection, ObjectType, JSON, int], Outcome]
BatchWork = Callable[[sqlite3.Connection, JSON], Outcome]


def _state(request: web.Request) -> SandboxState:
    return request.app[STATE]


def _type(request: web.Request, key: str = "object_type") -> ObjectType:
    return resolve_type(request.match_info[key])


def _removed(state: SandboxState, otype: ObjectType, ids: list[int]) -> None:
    if otype.name == "contacts":
        state.webhooks.contacts_deleted(ids)


def _object_id_shown(item: JSON) -> str:
    return str(item.get("id"))


def _from_id_shown(item: JSON) -> str:
    given = item.get("from")
    return str(given.get("id")) if isinstance(given, dict) else str(given)


def _with_input_faults(
    state: SandboxState, body: JSON, work: BatchWork, shown: Callable[[JSON], str] = _object_id_shown
) -> Callable[[sqlite3.Connection], Outcome]:
    """The batch's work, with the inputs ``batch_error_rate`` picks failing on their own (207).

    The whole batch is first checked as HubSpot would (a dry run, rolled back), so a batch
    HubSpot refuses (400, 409) is still refused whole: the fault only ever fails inputs of a
    batch that would have been applied, and the failed inputs change nothing.
    """
    inputs = body.get("inputs")
    failing = state.faults.failing_inputs(len(inputs)) if isinstance(inputs, list) else set()
    if not failing or not isinstance(inputs, list):
        return lambda conn: work(conn, body)

    def run(conn: sqlite3.Connection) -> Outcome:
        conn.execute("SAVEPOINT whole_batch")
        try:
            work(conn, body)
        finally:
            conn.execute("ROLLBACK TO whole_batch")
            conn.execute("RELEASE whole_batch")
        kept = [item for i, item in enumerate(inputs) if i not in failing]
        outcome = work(conn, {**body, "inputs": kept}) if kept else Outcome()
        outcome.errors.extend(state.faults.input_error(shown(inputs[i])) for i in sorted(failing))
        return outcome

    return run


async def _batch_write(request: web.Request, write: BatchWrite, ok_status: int = 200) -> web.Response:
    state, otype, body, started = _state(request), _type(request), await read_body(request), now_ms()
    outcome = state.store.run(
        _with_input_faults(state, body, lambda conn, given: write(conn, otype, given, started))
    )
    return batch_response(outcome, started, ok_status)


@routes.post("/crm/v3/objects/contacts/gdpr-delete")
async def gdpr_delete(request: web.Request) -> web.Response:
    state, otype, body = _state(request), resolve_type("contacts"), await read_body(request)
    deleted = state.store.run(lambda conn: writes.gdpr_delete(conn, otype, body))
    _removed(state, otype, [deleted])
    return no_content()


@routes.post(OBJECTS + "/batch/create")
async def batch_create(request: web.Request) -> web.Response:
    return await _batch_write(request, writes.batch_create, 201)


@routes.post(OBJECTS + "/batch/update")
async def batch_update(request: web.Request) -> web.Response:
    return await _batch_write(request, writes.batch_update)


@routes.post(OBJECTS + "/batch/upsert")
async def batch_upsert(request: web.Request) -> web.Response:
    return await _batch_write(request, writes.batch_upsert)


@routes.post(OBJECTS + "/batch/read")
async def batch_read(request: web.Request) -> web.Response:
    state, otype, body, started = _state(request), _type(request), await read_body(request), now_ms()
    archived = flag(request, "archived") or body.get("archived") is True
    outcome = state.store.run(
        _with_input_faults(
            state, body, lambda conn, given: reads.batch_read(conn, otype, given, archived=archived)
        )
    )
    return batch_response(outcome, started)


@routes.post(OBJECTS + "/batch/archive")
async def batch_archive(request: web.Request) -> web.Response:
    state, otype, body, started = _state(request), _type(request), await read_body(request), now_ms()
    outcome = state.store.run(
        _with_input_faults(state, body, lambda conn, given: writes.batch_archive(conn, otype, given, started))
    )
    _removed(state, otype, outcome.removed)
    return batch_response(outcome, started) if outcome.errors else no_content()


@routes.post(OBJECTS + "/search")
async def search(request: web.Request) -> web.Response:
    state, otype, body = _state(request), _type(request), await read_body(request)
    return json_response(state.store.run(lambda conn: reads.search(conn, otype, body)))


@routes.post(OBJECTS)
async def create_one(request: web.Request) -> web.Response:
    state, otype, body, started = _state(request), _type(request), await read_body(request), now_ms()
    single = {"inputs": [body]}
    outcome = state.store.run(lambda conn: writes.batch_create(conn, otype, single, started))
    return json_response(outcome.results[0], 201)


@routes.get(OBJECTS)
async def list_objects(request: web.Request) -> web.Response:
    state, otype = _state(request), _type(request)
    limit = int_query(request, "limit", 10, 100) or 10
    after = int_query(request, "after", 0, 2**62)
    requested, archived = request.query.get("properties", ""), flag(request, "archived")
    page = state.store.run(
        lambda conn: reads.list_page(
            conn, otype, limit=limit, after=after, requested=requested, archived=archived
        )
    )
    return json_response(page)


@routes.get(OBJECTS + "/{object_id}")
async def get_one(request: web.Request) -> web.Response:
    state, otype, raw_id = _state(request), _type(request), request.match_info["object_id"]
    prop, requested = request.query.get("idProperty"), request.query.get("properties", "")
    archived = flag(request, "archived")
    found = state.store.run(
        lambda conn: reads.get_one(conn, otype, raw_id, prop=prop, requested=requested, archived=archived)
    )
    return json_response(found)


@routes.patch(OBJECTS + "/{object_id}")
async def update_one(request: web.Request) -> web.Response:
    state, otype, body, started = _state(request), _type(request), await read_body(request), now_ms()
    single = {
        "inputs": [
            {**body, "id": request.match_info["object_id"], "idProperty": request.query.get("idProperty")}
        ]
    }
    outcome = state.store.run(lambda conn: writes.batch_update(conn, otype, single, started))
    if outcome.errors:
        raise not_found(
            "Object not found.  objectId are usually numeric.", context={"id": [single["inputs"][0]["id"]]}
        )
    return json_response(outcome.results[0])


@routes.delete(OBJECTS + "/{object_id}")
async def archive_one(request: web.Request) -> web.Response:
    state, otype, started = _state(request), _type(request), now_ms()
    single = {"inputs": [{"id": request.match_info["object_id"]}]}
    outcome = state.store.run(lambda conn: writes.batch_archive(conn, otype, single, started))
    _removed(state, otype, outcome.removed)
    return no_content()  # a missing id too, as HubSpot answers


@routes.post("/crm/v3/properties/{object_type}")
async def create_property(request: web.Request) -> web.Response:
    state, otype, body, started = _state(request), _type(request), await read_body(request), now_ms()
    created = state.store.run(lambda conn: properties.create(conn, otype.name, body, started))
    return json_response(created.to_json(), 201)


@routes.get("/crm/v3/properties/{object_type}")
async def list_properties(request: web.Request) -> web.Response:
    state, otype = _state(request), _type(request)
    defs = state.store.run(lambda conn: properties.load(conn, otype.name))
    return json_response({"results": [d.to_json() for d in defs.values()]})


@routes.post("/crm/v3/properties/{object_type}/groups")
async def create_property_group(request: web.Request) -> web.Response:
    state, otype, body = _state(request), _type(request), await read_body(request)
    return json_response(state.store.run(lambda conn: property_groups.create(conn, otype.name, body)), 201)


@routes.get("/crm/v3/properties/{object_type}/groups")
async def list_property_groups(request: web.Request) -> web.Response:
    state, otype = _state(request), _type(request)
    return json_response(
        {"results": state.store.run(lambda conn: property_groups.list_all(conn, otype.name))}
    )


@routes.get("/crm/v3/properties/{object_type}/{name}")
async def get_property(request: web.Request) -> web.Response:
    state, otype, name = _state(request), _type(request), request.match_info["name"]
    found = state.store.run(lambda conn: properties.load(conn, otype.name)).get(name)
    if found is None:
        raise not_found(f"Unable to find property named '{name}' for object type {otype.name}")
    return json_response(found.to_json())


def _with_pipelines(request: web.Request) -> str:
    """The object a pipelines path names, if it has pipelines (deals, orders); carts, contacts and
    the others have none (the answer is the sandbox's reading)."""
    name = _type(request).name
    if name not in PIPELINE_FIELDS:
        raise HubSpotError(400, "VALIDATION_ERROR", f"Pipelines are not supported for object type {name}")
    return name


@routes.post("/crm/v3/pipelines/{object_type}")
async def create_pipeline(request: web.Request) -> web.Response:
    object_type = _with_pipelines(request)
    state, body, started = _state(request), await read_body(request), now_ms()
    pipelines.check_tier_allows_creation(state.config.tier)
    created = state.store.run(lambda conn: pipelines.create(conn, object_type, body, started))
    return json_response(created, 201)


@routes.post("/crm/v3/pipelines/{object_type}/{pipeline_id}/stages")
async def add_stage(request: web.Request) -> web.Response:
    object_type = _with_pipelines(request)
    state, body, started = _state(request), await read_body(request), now_ms()
    pipeline_id = request.match_info["pipeline_id"]
    return json_response(
        state.store.run(lambda conn: pipelines.add_stage(conn, object_type, pipeline_id, body, started)), 201
    )


@routes.get("/crm/v3/pipelines/{object_type}")
async def list_pipelines(request: web.Request) -> web.Response:
    object_type = _with_pipelines(request)
    found = _state(request).store.run(lambda conn: pipelines.list_all(conn, object_type))
    return json_response({"results": found})


@routes.get("/crm/v3/pipelines/{object_type}/{pipeline_id}")
async def get_pipeline(request: web.Request) -> web.Response:
    object_type, pipeline_id = _with_pipelines(request), request.match_info["pipeline_id"]
    found = _state(request).store.run(lambda conn: pipelines.require(conn, object_type, pipeline_id))
    return json_response(found)


AssociationBatch = Callable[
    [sqlite3.Connection, ObjectType, ObjectType, JSON], tuple[list[JSON], list[InputError]]
]


async def _association_batch(request: web.Request, batch: AssociationBatch, ok_status: int) -> web.Response:
    state, body, started = _state(request), await read_body(request), now_ms()
    from_type, to_type = _type(request, "from_type"), _type(request, "to_type")

    def work(conn: sqlite3.Connection, given: JSON) -> Outcome:
        results, errors = batch(conn, from_type, to_type, given)
        return Outcome(results=results, errors=errors)

    outcome = state.store.run(_with_input_faults(state, body, work, _from_id_shown))
    return batch_response(outcome, started, ok_status)


@routes.post("/crm/v4/associations/{from_type}/{to_type}/batch/create")
async def associate(request: web.Request) -> web.Response:
    return await _association_batch(request, associations.create, 201)


@routes.post("/crm/v4/associations/{from_type}/{to_type}/batch/associate/default")
async def associate_default(request: web.Request) -> web.Response:
    return await _association_batch(request, associations.associate_default, 200)


@routes.post("/crm/v4/associations/{from_type}/{to_type}/labels")
async def create_association_label(request: web.Request) -> web.Response:
    state, body = _state(request), await read_body(request)
    from_type, to_type = _type(request, "from_type"), _type(request, "to_type")
    associations.pair(from_type, to_type)
    created = state.store.run(lambda conn: association_labels.create(conn, from_type, to_type, body))
    return json_response(created)


@routes.get("/crm/v4/associations/{from_type}/{to_type}/labels")
async def list_association_labels(request: web.Request) -> web.Response:
    state, from_type, to_type = _state(request), _type(request, "from_type"), _type(request, "to_type")
    associations.pair(from_type, to_type)
    return json_response(state.store.run(lambda conn: association_labels.list_for(conn, from_type, to_type)))


@routes.post("/crm/v4/associations/{from_type}/{to_type}/batch/archive")
async def dissociate(request: web.Request) -> web.Response:
    state, body, started = _state(request), await read_body(request), now_ms()
    from_type, to_type = _type(request, "from_type"), _type(request, "to_type")

    def work(conn: sqlite3.Connection, given: JSON) -> Outcome:
        associations.archive(conn, from_type, to_type, given)
        return Outcome()

    outcome = state.store.run(_with_input_faults(state, body, work, _from_id_shown))
    return batch_response(outcome, started) if outcome.errors else no_content()


@routes.get("/account-info/v3/details")
async def account_details(request: web.Request) -> web.Response:
    """The account's settings, as HubSpot's account information API gives them; the writer reads
    ``timeZone`` to know when the daily limit resets (midnight in that zone)."""
    state = _state(request)
    offset = state.now().astimezone(ZoneInfo(state.config.time_zone)).utcoffset() or timedelta(0)
    total_minutes = int(offset.total_seconds()) // 60
    sign = "-" if total_minutes < 0 else "+"
    hours, minutes = divmod(abs(total_minutes), 60)
    return json_response(
        {
            "portalId": state.config.portal_id,
            "accountType": "STANDARD",
            "timeZone": state.config.time_zone,
            "companyCurrency": "USD",
            "additionalCurrencies": [],
            "utcOffset": f"{sign}{hours:02d}:{minutes:02d}",
            "utcOffsetMilliseconds": total_minutes * 60_000,
            "uiDomain": "app.hubspot.com",
            "dataHostingLocation": "na1",
        }
    )


@routes.get("/crm/v4/objects/{from_type}/{object_id}/associations/{to_type}")
async def list_associations(request: web.Request) -> web.Response:
    state = _state(request)
    from_type, to_type = _type(request, "from_type"), _type(request, "to_type")
    from_id = object_id(request.match_info["object_id"])
    if from_id is None:
        raise validation("object id must be numeric")
    limit = int_query(request, "limit", 500, 500) or 500
    after = int_query(request, "after", 0, 2**62)
    return json_response(
        state.store.run(lambda conn: associations.list_for(conn, from_type, from_id, to_type, limit, after))
    )
