"""Deal and order pipelines and their stages (``/crm/v3/pipelines/deals``, ``.../orders``).

Stage ids are numeric strings, as those made in HubSpot's UI are, so a writer that hard-codes
stage names instead of looking ids up by label fails against the sandbox too.

HubSpot's rules, as documented (sources in RULES.md):

- Only Starter, Professional and Enterprise accounts create pipelines; a Free account has the
  default "Sales Pipeline" only ("Create a pipeline", https://developers.hubspot.com/docs/api/crm/pipelines).
- A deal stage needs ``metadata.probability``, "between 0.0 and 1.0 in increments of 0.1"
  (``POST /crm/v3/pipelines/{objectType}/{pipelineId}/stages``, request body,
  https://developers.hubspot.com/docs/api-reference/crm-pipelines-v3/pipeline-stages/post-crm-v3-pipelines-objectType-pipelineId-stages);
  "0.0 being Closed Lost and 1.0 being Closed Won" (pipelines guide), so a stage is closed
  exactly when its probability is 0.0 or 1.0, and an ``isClosed`` that says otherwise is refused.
- A stage's label "must be unique for each stage" (pipelines guide).
- Stage ``metadata`` is "optional for all objects except deals" (pipelines guide): an order stage
  takes none. Every account has HubSpot's "Order Pipeline" (catalog.py has its ids).
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal, InvalidOperation
from typing import Any

from hubspot_sandbox.catalog import (
    DEFAULT_PIPELINE_ID,
    DEFAULT_PIPELINE_LABEL,
    DEFAULT_STAGES,
    ORDER_PIPELINE_ID,
    ORDER_PIPELINE_LABEL,
    ORDER_STAGES,
)
from hubspot_sandbox.db import take
from hubspot_sandbox.errors import JSON, HubSpotError, not_found, validation
from hubspot_sandbox.tiers import TIER_LIMITS, Tier
from hubspot_sandbox.timestamps import iso

_TENTH = Decimal("0.1")


def seed(conn: sqlite3.Connection, now: int) -> None:
    """Every HubSpot account starts with the "Sales Pipeline" (id ``default``) for deals and the
    "Order Pipeline" for orders; each is added to an older file that lacks it."""
    if not conn.execute("SELECT 1 FROM pipelines WHERE id = ?", (DEFAULT_PIPELINE_ID,)).fetchone():
        _insert_pipeline(conn, DEFAULT_PIPELINE_ID, "deals", DEFAULT_PIPELINE_LABEL, 0, now)
        for order, stage in enumerate(DEFAULT_STAGES):
            metadata = {"isClosed": "true" if stage.closed else "false", "probability": stage.probability}
            _insert_stage(conn, stage.id, DEFAULT_PIPELINE_ID, stage.label, order, metadata, now)
    if not conn.execute("SELECT 1 FROM pipelines WHERE id = ?", (ORDER_PIPELINE_ID,)).fetchone():
        _insert_pipeline(conn, ORDER_PIPELINE_ID, "orders", ORDER_PIPELINE_LABEL, 0, now)
        for order, (stage_id, label) in enumerate(ORDER_STAGES):
            _insert_stage(conn, stage_id, ORDER_PIPELINE_ID, label, order, {}, now)


def _insert_pipeline(
    conn: sqlite3.Connection, pipeline_id: str, object_type: str, label: str, order: int, now: int
) -> None:
    conn.execute(
        "INSERT INTO pipelines (id, object_type, label, display_order, created_ms, updated_ms)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (pipeline_id, object_type, label, order, now, now),
    )


def _insert_stage(
    conn: sqlite3.Connection,
    stage_id: str,
    pipeline_id: str,
    label: str,
    order: int,
    metadata: JSON,
    now: int,
) -> None:
    conn.execute(
        "INSERT INTO stages (id, pipeline_id, label, display_order, metadata, created_ms, updated_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (stage_id, pipeline_id, label, order, json.dumps(metadata), now, now),
    )


def check_tier_allows_creation(tier: Tier) -> None:
    """A Free account keeps its one default pipeline (status and category: the sandbox's reading,
    as HubSpot documents the rule but not the answer)."""
    if not TIER_LIMITS[tier].creates_pipelines:
        raise validation(
            "Your HubSpot subscription (free) does not include additional deal pipelines; only Starter,"
            " Professional and Enterprise accounts can create them. Use the default pipeline."
        )


def create(conn: sqlite3.Connection, object_type: str, body: JSON, now: int) -> JSON:
    """``POST /crm/v3/pipelines/{deals|orders}``: validates the whole pipeline first, then assigns
    the ids."""
    label = body.get("label")
    if not isinstance(label, str) or not label.strip():
        raise validation("label is required")
    stages = body.get("stages")
    if not isinstance(stages, list) or not stages:
        raise validation("A pipeline needs at least one stage")
    seen: set[str] = set()
    parsed: list[tuple[str, int, JSON]] = []
    for index, stage in enumerate(stages):
        if (
            not isinstance(stage, dict)
            or not isinstance(stage.get("label"), str)
            or not stage["label"].strip()
        ):
            raise validation(f"stages[{index}].label is required")
        if stage["label"] in seen:
            raise validation(f"Stage label '{stage['label']}' appears twice in the pipeline")
        seen.add(stage["label"])
        metadata = _metadata(object_type, stage, index)
        parsed.append((stage["label"], _order(stage.get("displayOrder"), index), metadata))
    taken = "SELECT 1 FROM pipelines WHERE object_type = ? AND label = ?"
    if conn.execute(taken, (object_type, label)).fetchone():
        raise HubSpotError(409, "CONFLICT", f"A pipeline with label '{label}' already exists")
    pipeline_id = str(take(conn))
    _insert_pipeline(conn, pipeline_id, object_type, label, _order(body.get("displayOrder"), 0), now)
    first = take(conn, count=len(parsed))
    for offset, (stage_label, order, metadata) in enumerate(parsed):
        _insert_stage(conn, str(first + offset), pipeline_id, stage_label, order, metadata, now)
    return require(conn, object_type, pipeline_id)


def add_stage(conn: sqlite3.Connection, object_type: str, pipeline_id: str, body: JSON, now: int) -> JSON:
    """``POST /crm/v3/pipelines/deals/{pipelineId}/stages``: one more stage in an existing pipeline.
    Every tier may edit its pipelines' stages ("Set up and customize your deal pipelines and deal
    stages", knowledge.hubspot.com: all products and plans; only *additional pipelines* need
    Starter or above), so a Free account adds the stages it needs to its default pipeline."""
    require(conn, object_type, pipeline_id)
    label = body.get("label")
    if not isinstance(label, str) or not label.strip():
        raise validation("label is required")
    taken = conn.execute("SELECT 1 FROM stages WHERE pipeline_id = ? AND label = ?", (pipeline_id, label))
    if taken.fetchone():
        raise validation(f"Stage label '{label}' already exists in pipeline {pipeline_id}")
    last = conn.execute(
        "SELECT COALESCE(MAX(display_order), -1) FROM stages WHERE pipeline_id = ?", (pipeline_id,)
    )
    order = _order(body.get("displayOrder"), int(last.fetchone()[0]) + 1)
    stage_id = str(take(conn))
    _insert_stage(conn, stage_id, pipeline_id, label, order, _metadata(object_type, body, 0), now)
    conn.execute("UPDATE pipelines SET updated_ms = ? WHERE id = ?", (now, pipeline_id))
    row = conn.execute(
        "SELECT * FROM stages WHERE id = ? AND pipeline_id = ?", (stage_id, pipeline_id)
    ).fetchone()
    return _stage_json(row)


def _order(raw: Any, default: int) -> int:
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise validation("displayOrder must be an integer")
    return raw


def _metadata(object_type: str, stage: JSON, index: int) -> JSON:
    """Deal stages need a probability from 0.0 to 1.0 in steps of 0.1; 0.0 and 1.0 are the closed
    stages (lost, won). HubSpot answers both back as strings. Other objects' stages keep what
    they are given (an object of strings)."""
    raw = stage.get("metadata") or {}
    if object_type != "deals":
        if not isinstance(raw, dict):
            raise validation(f"stages[{index}].metadata must be an object")
        return {str(k): str(v) for k, v in raw.items()}
    if not isinstance(raw, dict) or "probability" not in raw:
        raise validation(f"stages[{index}].metadata.probability is required for deal stages")
    try:
        probability = Decimal(str(raw["probability"]))
    except InvalidOperation:
        probability = Decimal(-1)
    if (
        not probability.is_finite()
        or not Decimal(0) <= probability <= Decimal(1)
        or probability % _TENTH != 0
    ):
        raise validation(
            f"stages[{index}].metadata.probability must be between 0.0 and 1.0 in increments of 0.1,"
            f" not {raw['probability']}"
        )
    closed = probability in (Decimal(0), Decimal(1))
    given = raw.get("isClosed")
    if given is not None and str(given).lower() != str(closed).lower():
        raise validation(
            f"stages[{index}].metadata.isClosed is {given} but a probability of {raw['probability']} makes"
            f" the stage {'closed' if closed else 'open'} (0.0 is Closed Lost, 1.0 is Closed Won)"
        )
    return {"isClosed": "true" if closed else "false", "probability": str(raw["probability"])}


def _stage_json(row: sqlite3.Row) -> JSON:
    return {
        "id": row["id"],
        "label": row["label"],
        "displayOrder": row["display_order"],
        "metadata": json.loads(row["metadata"]),
        "createdAt": iso(row["created_ms"]),
        "updatedAt": iso(row["updated_ms"]),
        "archived": False,
        "writePermissions": "CRUD_PERMITTED",
    }


def _pipeline_json(conn: sqlite3.Connection, row: sqlite3.Row) -> JSON:
    stages = conn.execute(
        "SELECT * FROM stages WHERE pipeline_id = ? ORDER BY display_order, CAST(id AS INTEGER), id",
        (row["id"],),
    )
    return {
        "id": row["id"],
        "label": row["label"],
        "displayOrder": row["display_order"],
        "stages": [_stage_json(s) for s in stages],
        "createdAt": iso(row["created_ms"]),
        "updatedAt": iso(row["updated_ms"]),
        "archived": False,
    }


def list_all(conn: sqlite3.Connection, object_type: str = "deals") -> list[JSON]:
    rows = conn.execute(
        "SELECT * FROM pipelines WHERE object_type = ? ORDER BY display_order, id", (object_type,)
    ).fetchall()
    return [_pipeline_json(conn, row) for row in rows]


def get(conn: sqlite3.Connection, object_type: str, pipeline_id: str) -> JSON | None:
    row = conn.execute(
        "SELECT * FROM pipelines WHERE id = ? AND object_type = ?", (pipeline_id, object_type)
    ).fetchone()
    return None if row is None else _pipeline_json(conn, row)


def require(conn: sqlite3.Connection, object_type: str, pipeline_id: str) -> JSON:
    found = get(conn, object_type, pipeline_id)
    if found is None:
        raise not_found(f"Unable to find pipeline {pipeline_id}")
    return found


def stage_ids(conn: sqlite3.Connection, object_type: str, pipeline_id: str) -> set[str] | None:
    """The stage ids of one of the object's pipelines, or None when it has no such pipeline."""
    found = conn.execute(
        "SELECT 1 FROM pipelines WHERE id = ? AND object_type = ?", (pipeline_id, object_type)
    )
    if not found.fetchone():
        return None
    return {row[0] for row in conn.execute("SELECT id FROM stages WHERE pipeline_id = ?", (pipeline_id,))}


def labels(conn: sqlite3.Connection) -> tuple[dict[str, str], dict[str, str]]:
    """(pipeline id -> label, stage id -> label), for the dump's readable deals and orders."""
    pipeline_labels = {row[0]: row[1] for row in conn.execute("SELECT id, label FROM pipelines")}
    stage_labels = {row[0]: row[1] for row in conn.execute("SELECT id, label FROM stages")}
    return pipeline_labels, stage_labels
