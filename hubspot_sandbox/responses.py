"""JSON answers in HubSpot's shapes: errors, batch results (200/201/207) and request bodies."""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

from hubspot_sandbox.errors import JSON, HubSpotError, group_input_errors, validation
from hubspot_sandbox.timestamps import iso, now_ms
from hubspot_sandbox.writes import Outcome


def correlation_id() -> str:
    return str(uuid.uuid4())


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def error_response(error: HubSpotError) -> web.Response:
    correlation = correlation_id()
    return json_response(error.body(correlation), error.status, {"X-HubSpot-Correlation-Id": correlation})


async def read_body(request: web.Request) -> JSON:
    """The request's JSON object; a 400 like HubSpot's when it is not one."""
    raw = await request.read()
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise validation(f"Invalid input JSON: {exc}") from None
    if not isinstance(body, dict):
        raise validation("Invalid input JSON: expected an object")
    return body


def batch_response(outcome: Outcome, started_ms: int, ok_status: int = 200) -> web.Response:
    """``{"status": "COMPLETE", "results", ...}``; 207 with ``numErrors``/``errors`` when some
    inputs failed on their own."""
    body: JSON = {
        "status": "COMPLETE",
        "results": outcome.results,
        "startedAt": iso(started_ms),
        "completedAt": iso(now_ms()),
    }
    if not outcome.errors:
        return json_response(body, ok_status)
    errors = group_input_errors(outcome.errors)
    body["numErrors"] = len(errors)
    body["errors"] = errors
    return json_response(body, 207)


def no_content() -> web.Response:
    return web.Response(status=204)


def flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "false").lower() == "true"


def int_query(request: web.Request, name: str, default: int, maximum: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 0 <= int(raw) <= maximum:
        raise validation(f"{name} must be an integer between 0 and {maximum}")
    return int(raw)
