"""HubSpot's error answers, raised from anywhere in the sandbox and rendered in one place.

A writer is tested against these bodies (``category``, ``errors[].code``, "Existing ID: N" in a
409's message), so they follow HubSpot's shapes rather than aiohttp's defaults.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]


class HubSpotError(Exception):
    """An error answer: HTTP status plus HubSpot's ``{status, message, category, ...}`` body."""

    def __init__(
        self,
        status: int,
        category: str,
        message: str,
        *,
        errors: list[JSON] | None = None,
        context: JSON | None = None,
        extra: JSON | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.errors = errors
        self.context = context
        self.extra = extra or {}

    def body(self, correlation_id: str) -> JSON:
        body: JSON = {"status": "error", "message": self.message, "correlationId": correlation_id}
        if self.category:
            body["category"] = self.category
        if self.context is not None:
            body["context"] = self.context
        if self.errors is not None:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


def validation(message: str, *, errors: list[JSON] | None = None) -> HubSpotError:
    return HubSpotError(400, "VALIDATION_ERROR", message, errors=errors)


def not_found(message: str, *, context: JSON | None = None) -> HubSpotError:
    return HubSpotError(404, "OBJECT_NOT_FOUND", message, context=context)


def conflict(message: str) -> HubSpotError:
    return HubSpotError(409, "CONFLICT", message)


@dataclass(frozen=True)
class PropertyProblem:
    """One invalid property value; many are gathered so one 400 names them all, as HubSpot does."""

    name: str
    code: str
    message: str


def invalid_properties(problems: Iterable[PropertyProblem]) -> HubSpotError:
    """HubSpot's "Property values were not valid" 400: the legacy list in the message, and the
    same problems as structured ``errors[]`` with ``context.propertyName``."""
    items = list(problems)
    legacy = [
        {
            "isValid": False,
            "message": p.message,
            "error": p.code,
            "name": p.name,
            "localizedErrorMessage": p.message,
        }
        for p in items
    ]
    structured: list[JSON] = [
        {"message": p.message, "code": p.code, "context": {"propertyName": [p.name]}} for p in items
    ]
    return validation("Property values were not valid: " + json.dumps(legacy), errors=structured)


@dataclass(frozen=True)
class InputError:
    """A failure of one input of a batch, answered as part of a 207 instead of failing the call."""

    category: str
    message: str
    object_id: str


def group_input_errors(problems: Iterable[InputError]) -> list[JSON]:
    """HubSpot groups a batch's failures by kind, listing the offending ids in ``context.ids``."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for problem in problems:
        grouped.setdefault((problem.category, problem.message), []).append(problem.object_id)
    return [
        {"status": "error", "category": category, "message": message, "context": {"ids": ids}}
        for (category, message), ids in grouped.items()
    ]
