"""Whether HubSpot refused a write because the account changed under the writer (pure, no I/O).

The writer sets the account up once and remembers it (``handlers.setup_once``); if someone then
deletes one of its properties or a stage of its pipeline in HubSpot, the next write naming it
fails for every record of the batch. HubSpot answers such a write 400 ``VALIDATION_ERROR``
"Property values were not valid", each problem with its ``error`` (or ``code``) and the property's
``name`` (or ``context.propertyName``): ``PROPERTY_DOESNT_EXIST`` for a property the account does
not have, ``INVALID_OPTION`` for a value outside a property's options, as a deal's ``dealstage`` or
``pipeline`` id of a stage or pipeline that is gone (HubSpot's legacy problem list is in the
message as JSON; the sandbox also sends it as structured ``errors[]``, ``hubspot_sandbox.errors``).
Those records are not at fault: the set-up can repair the account and the batch be sent again.
A problem naming a property the set-up does not manage is a mapping error, not drift.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

import orjson

MISSING_PROPERTY = "PROPERTY_DOESNT_EXIST"
INVALID_OPTION = "INVALID_OPTION"
PIPELINE_PROPERTIES = frozenset({"pipeline", "dealstage"})
"""The deal properties whose allowed values are the set-up's pipeline and its stages."""
_LEGACY_PREFIX = "Property values were not valid: "


def _names(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, str) and v]


def _problems(body: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(code, property name) of each problem the answer names, from either of its forms."""
    for item in body.get("errors") or []:
        if not isinstance(item, dict):
            continue
        code = item.get("code") or item.get("error")
        context = item.get("context")
        names = _names(context.get("propertyName")) if isinstance(context, dict) else []
        for name in names or _names(item.get("name")):
            if isinstance(code, str):
                yield code, name
    message = body.get("message")
    if isinstance(message, str) and message.startswith(_LEGACY_PREFIX):
        try:
            legacy = orjson.loads(message[len(_LEGACY_PREFIX) :])
        except orjson.JSONDecodeError:
            return
        for item in legacy if isinstance(legacy, list) else []:
            if isinstance(item, dict) and isinstance(item.get("error"), str):
                for name in _names(item.get("name")):
                    yield item["error"], name


def drifted(body: Mapping[str, Any], managed: Collection[str]) -> list[str]:
    """The properties whose definition in the account is no longer what the set-up made, as this
    refusal says: a ``managed`` property missing, or a pipeline or stage value refused. Empty when
    the refusal is about something else (a record's own values)."""
    found = {
        name
        for code, name in _problems(body)
        if (code == MISSING_PROPERTY and name in managed)
        or (code == INVALID_OPTION and name in PIPELINE_PROPERTIES)
    }
    return sorted(found)
