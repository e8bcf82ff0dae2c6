"""What HubSpot requires of a property definition before it creates one: a known type, a
fieldType valid for that type, and options shaped as its schema says.

Sources (RULES.md):

- The type/fieldType table: "Properties" guide, "Property type and fieldType values",
  https://developers.hubspot.com/docs/api/crm/properties (bool: booleancheckbox,
  calculation_equation; enumeration: booleancheckbox, checkbox, radio, select,
  calculation_equation; date: date; dateTime: date; string: file, text, textarea,
  calculation_equation; number: number, calculation_equation). ``html`` and ``phonenumber`` are in
  the guide's fieldType list (rich text, formatted phone number) and are taken as string fields;
  ``phone_number`` is HubSpot's phone type (the sandbox's ``phone`` built-in is string/phonenumber).
- Options: HubSpot's ``OptionInput`` schema requires ``label``, ``value`` and ``hidden``;
  ``displayOrder`` and ``description`` are optional (the generated client,
  https://github.com/HubSpot/hubspot-api-python, hubspot/crm/properties/models/option_input.py,
  raises when label, value or hidden is missing; the create-property reference shows the shape,
  https://developers.hubspot.com/docs/api-reference/latest/crm/properties/create-property).

The status (400) and category (``VALIDATION_ERROR``) are HubSpot's for invalid input; the
messages are the sandbox's.
"""

from __future__ import annotations

from typing import Any

from hubspot_sandbox.errors import JSON, validation

FIELD_TYPES_OF: dict[str, frozenset[str]] = {
    "bool": frozenset({"booleancheckbox", "calculation_equation"}),
    "enumeration": frozenset({"booleancheckbox", "checkbox", "radio", "select", "calculation_equation"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"date"}),
    "string": frozenset({"file", "text", "textarea", "calculation_equation", "html", "phonenumber"}),
    "number": frozenset({"number", "calculation_equation"}),
    "phone_number": frozenset({"phonenumber"}),
}
TYPES = frozenset(FIELD_TYPES_OF)
FIELD_TYPES = frozenset().union(*FIELD_TYPES_OF.values())
OPTION_FIELDS = frozenset({"label", "value", "hidden", "displayOrder", "description"})
WITH_OPTIONS = frozenset({"enumeration", "bool"})


def check_type(type_: str, field_type: str) -> None:
    if type_ not in TYPES:
        raise validation(f"Invalid property type '{type_}'; one of {sorted(TYPES)}")
    if field_type not in FIELD_TYPES:
        raise validation(f"Invalid fieldType '{field_type}'; one of {sorted(FIELD_TYPES)}")
    if field_type not in FIELD_TYPES_OF[type_]:
        raise validation(
            f"fieldType '{field_type}' is not valid for a property of type '{type_}';"
            f" valid: {sorted(FIELD_TYPES_OF[type_])}"
        )


def options(type_: str, raw: Any) -> tuple[JSON, ...]:
    """The options as stored, each checked: label and value strings, hidden a boolean, displayOrder
    an integer when given. Enumerations need at least one; other types take none."""
    if raw is None or raw == []:
        if type_ == "enumeration":
            raise validation("A property of type enumeration needs options")
        return ()
    if type_ not in WITH_OPTIONS:
        raise validation(f"A property of type '{type_}' takes no options")
    if not isinstance(raw, list):
        raise validation("options must be a list of {label, value, hidden, displayOrder} objects")
    checked: list[JSON] = []
    for index, option in enumerate(raw):
        where = f"options[{index}]"
        if not isinstance(option, dict):
            raise validation(f"{where} must be an object with label, value and hidden")
        unknown = sorted(set(option) - OPTION_FIELDS)
        if unknown:
            raise validation(f"{where} has unknown fields {unknown}")
        for key in ("label", "value"):
            if not isinstance(option.get(key), str):
                raise validation(f"{where}.{key} is required (a string)")
        if not isinstance(option.get("hidden"), bool):
            raise validation(f"{where}.hidden is required (true or false)")
        order = option.get("displayOrder", index)
        if isinstance(order, bool) or not isinstance(order, int):
            raise validation(f"{where}.displayOrder must be an integer")
        checked.append(
            {
                "label": option["label"],
                "value": option["value"],
                "displayOrder": order,
                "hidden": option["hidden"],
            }
        )
    values = [o["value"] for o in checked]
    if len(set(values)) != len(values):
        raise validation(f"Option values must be unique: {values}")
    return tuple(checked)
