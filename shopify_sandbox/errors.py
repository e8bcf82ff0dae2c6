"""Shopify's error shapes: the REST-style 401 body, and GraphQL ``errors`` entries with the
wording and ``extensions.code`` of Shopify's GraphQL server (graphql-ruby), translated from
graphql-core's."""

from __future__ import annotations

import re
from typing import Any

from graphql import GraphQLError

UNAUTHORIZED = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
RATE_LIMITS_DOC = "https://shopify.dev/api/usage/rate-limits"

_UNDEFINED_FIELD = re.compile(r"Cannot query field '(?P<field>\w+)' on type '(?P<type>\w+)'\.")


def shopify_message(error: GraphQLError) -> str:
    found = _UNDEFINED_FIELD.match(error.message)
    if found:
        return f"Field '{found['field']}' doesn't exist on type '{found['type']}'"
    return error.message


def graphql_error(error: GraphQLError) -> dict[str, Any]:
    entry: dict[str, Any] = {"message": shopify_message(error)}
    if error.locations:
        entry["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        entry["path"] = list(error.path)
    found = _UNDEFINED_FIELD.match(error.message)
    if found:
        entry["extensions"] = {
            "code": "undefinedField",
            "typeName": found["type"],
            "fieldName": found["field"],
        }
    return entry


def coded(message: str, code: str, **extensions: Any) -> dict[str, Any]:
    return {"message": message, "extensions": {"code": code, **extensions}}


def throttled() -> dict[str, Any]:
    return coded("Throttled", "THROTTLED", documentation=RATE_LIMITS_DOC)
