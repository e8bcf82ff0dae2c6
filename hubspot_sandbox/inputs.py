"""Reading request bodies the way HubSpot does: batch ``inputs`` (at most 100) and property values
given as JSON scalars but stored as strings."""

from __future__ import annotations

import re
from typing import Any

from hubspot_sandbox.errors import JSON, validation

MAX_INPUTS = 100
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def inputs_of(body: JSON) -> list[JSON]:
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(item, dict) for item in inputs):
        raise validation('"inputs" must be a list of objects')
    if len(inputs) > MAX_INPUTS:
        raise validation(
            f"Too many inputs: {len(inputs)}. A batch request takes at most {MAX_INPUTS} inputs."
        )
    return inputs


def to_text(value: Any) -> str | None:
    """A property value as HubSpot stores it: a string; ``None`` and ``""`` mean "clear"."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value if value != "" else None
    raise validation(f"Property values must be strings, numbers or booleans, not {type(value).__name__}")


def object_id(raw: Any) -> int | None:
    """A record id as given in a path or an input ("123" or 123); None when it cannot be one."""
    text = str(raw).strip() if isinstance(raw, str | int) and not isinstance(raw, bool) else ""
    return int(text) if text.isdigit() else None
