"""What the account set-up has to write so an account's property definitions hold what the
writer needs: the definitions that are missing, and the changes to those that differ (pure, no I/O).

The writer owns the *internal names* it writes and the *option values* of its enumerations and
checkboxes; a write naming a missing property or an unknown option fails (HubSpot answers 400
``PROPERTY_DOESNT_EXIST`` or ``INVALID_OPTION``). So a missing definition is created, and an
existing one is changed only where the writer's values would fail or where the project changed
its own definition: an option it wants that is missing, or one of its options whose label differs.
An administrator's own extra options are kept (``PATCH`` replaces the whole option list, so the
account's list is sent back with ours merged in). A property's label, group and type are left
as the account has them: relabelling or regrouping is an administrator's choice, and changing
the type of a property that holds values is not an integration's to make (a type that differs is
reported by :func:`type_differences`, for a warning).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Definition = Mapping[str, Any]


@dataclass(frozen=True)
class PropertyPlan:
    """One object type's writes: ``create`` the bodies of missing definitions (in the order wanted),
    ``update`` the ``PATCH`` bodies of differing ones, by property name."""

    create: list[dict[str, Any]] = field(default_factory=list)
    update: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.create and not self.update


def _options(definition: Definition) -> list[dict[str, Any]]:
    return [o for o in definition.get("options") or [] if isinstance(o, dict) and "value" in o]


def option_changes(wanted: Definition, existing: Definition) -> list[dict[str, Any]] | None:
    """The option list to ``PATCH``, or None when the account's options already hold ours: each
    wanted value present with the wanted label. The account's options come first, in their order
    (ours relabelled where they differ), then the wanted ones it lacks."""
    wanted_options = _options(wanted)
    if not wanted_options:
        return None
    have = {str(o["value"]): o for o in _options(existing)}
    labels = {str(o["value"]): o.get("label") for o in wanted_options}
    if all(v in have and have[v].get("label") == label for v, label in labels.items()):
        return None
    merged: list[dict[str, Any]] = []
    for option in _options(existing):
        value = str(option["value"])
        merged.append({**option, "label": labels[value]} if value in labels else dict(option))
    for option in wanted_options:
        if str(option["value"]) not in have:
            merged.append({**option, "displayOrder": len(merged)})
    return merged


def plan_properties(wanted: Sequence[Definition], existing: Mapping[str, Definition]) -> PropertyPlan:
    """What to create and what to update so ``existing`` (the account's definitions of one type,
    by name) holds every ``wanted`` definition (the create bodies the writer would send)."""
    plan = PropertyPlan()
    for definition in wanted:
        name = str(definition["name"])
        current = existing.get(name)
        if current is None:
            plan.create.append(dict(definition))
            continue
        options = option_changes(definition, current)
        if options is not None:
            plan.update[name] = {"options": options}
    return plan


def type_differences(wanted: Sequence[Definition], existing: Mapping[str, Definition]) -> list[str]:
    """The names of wanted properties the account holds with another ``type`` (left as they are)."""
    return [
        str(d["name"])
        for d in wanted
        if (current := existing.get(str(d["name"]))) is not None and current.get("type") != d.get("type")
    ]
