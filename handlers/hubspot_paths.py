"""Every HubSpot API path the project calls, built here and nowhere else.

HubSpot is moving its CRM APIs from ``/crm/v3/...`` and ``/crm/v4/...`` to date-based versions
(``/crm/objects/2026-03/line_items``, ``/crm/properties/2026-03/{objectType}``: developers.hubspot.com,
"CRM API | Line items" and "Create a property", 2026-03 reference). With every path built by the
functions below (the writer, the account set-up, replay, the devtools), that move is a change of
this module alone. The sandbox serves the same paths (``hubspot_sandbox/api.py``).
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

BatchOperation = Literal["create", "update", "upsert", "read", "archive"]
AssociationOperation = Literal["create", "archive"]

OBJECTS = "/crm/v3/objects"
PROPERTIES = "/crm/v3/properties"
PIPELINES = "/crm/v3/pipelines"
ASSOCIATIONS = "/crm/v4/associations"
OBJECT_ASSOCIATIONS = "/crm/v4/objects"
COMMUNICATION_PREFERENCES = "/communication-preferences/2026-03"
"""X4's subscription statuses, in HubSpot's current (date-based) version of the communication
preferences API; v3's ``subscribe``/``unsubscribe`` are legacy. Only batch endpoints are used, so
no email address is ever part of a path (nor of a metric or a log line built from one)."""
ACCOUNT_DETAILS = "/account-info/v3/details"
"""``GET``: the account's settings (its time zone: when the daily limit resets)."""


def _segment(value: str) -> str:
    """One path segment: ids and names are quoted, so a value never adds a segment of its own."""
    return quote(value, safe="")


def objects(object_type: str) -> str:
    """``POST`` creates one record, ``GET`` lists a page of them."""
    return f"{OBJECTS}/{_segment(object_type)}"


def record(object_type: str, record_id: str) -> str:
    """``GET``, ``PATCH`` or ``DELETE`` one record by its HubSpot id."""
    return f"{objects(object_type)}/{_segment(record_id)}"


def batch(object_type: str, operation: BatchOperation) -> str:
    """The batch endpoints: at most 100 inputs a call."""
    return f"{objects(object_type)}/batch/{operation}"


def search(object_type: str) -> str:
    return f"{objects(object_type)}/search"


def properties(object_type: str) -> str:
    """``GET`` lists an object type's property definitions, ``POST`` creates one."""
    return f"{PROPERTIES}/{_segment(object_type)}"


def property_batch(object_type: str, operation: Literal["create", "read", "archive"]) -> str:
    """``POST``: up to 100 property definitions of one type at once (``{"inputs": [...]}``)."""
    return f"{properties(object_type)}/batch/{operation}"


def property_named(object_type: str, name: str) -> str:
    """``GET`` one definition, ``PATCH`` it (only the fields sent change), ``DELETE`` archives it."""
    return f"{properties(object_type)}/{_segment(name)}"


def pipelines(object_type: str = "deals") -> str:
    """``GET`` lists the pipelines with their stages, ``POST`` creates one (Starter and above)."""
    return f"{PIPELINES}/{_segment(object_type)}"


def pipeline(pipeline_id: str, object_type: str = "deals") -> str:
    return f"{pipelines(object_type)}/{_segment(pipeline_id)}"


def pipeline_stages(pipeline_id: str, object_type: str = "deals") -> str:
    """``POST`` adds a stage to an existing pipeline (every tier may edit its pipelines' stages)."""
    return f"{pipeline(pipeline_id, object_type)}/stages"


def association_batch(from_type: str, to_type: str, operation: AssociationOperation) -> str:
    """The v4 association batches (``create`` with typed links, ``archive`` of every link)."""
    return f"{ASSOCIATIONS}/{_segment(from_type)}/{_segment(to_type)}/batch/{operation}"


def association_labels(from_type: str, to_type: str) -> str:
    """``GET``: the association types of a pair of object types (HubSpot's own and the account's)."""
    return f"{ASSOCIATIONS}/{_segment(from_type)}/{_segment(to_type)}/labels"


def record_associations(from_type: str, record_id: str, to_type: str) -> str:
    """``GET``: one record's links to records of another type."""
    return (
        f"{OBJECT_ASSOCIATIONS}/{_segment(from_type)}/{_segment(record_id)}/associations/{_segment(to_type)}"
    )


def subscription_definitions() -> str:
    """``GET``: the account's subscription types (id, name, ...)."""
    return f"{COMMUNICATION_PREFERENCES}/definitions"


def subscription_statuses(operation: Literal["read", "write"]) -> str:
    """``POST``: up to 100 addresses' statuses read (``?channel=EMAIL``), or status changes written."""
    query = "?channel=EMAIL" if operation == "read" else ""
    return f"{COMMUNICATION_PREFERENCES}/statuses/batch/{operation}{query}"


def opt_outs_of_all() -> str:
    """``POST``: whether each of up to 100 addresses opted out of all email (``wideStatuses``)."""
    return f"{COMMUNICATION_PREFERENCES}/statuses/batch/unsubscribe-all/read?channel=EMAIL"
