"""What HubSpot should hold for one journey's object (a deal, an order or a cart), and the
commands that take HubSpot from one such view to the next.

Every commerce object of a journey has the same shape in HubSpot: a record upserted by its natural
key, its own line items (a HubSpot line item belongs to one record, so a deal and an order of one
journey never share one), its contact, and, for a cart, the order it was recovered into. So one
diff serves them all (:func:`diff_object`), and the deal's commands are exactly what they were
before orders and carts existed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from config.rules import RuleConfig
from schemas.commands import AnyCommand, Archive, Associate, Dissociate, PropertyValue, RecordRef
from streams.rules.common import upsert_if_changed
from streams.rules.contact_keys import contact_record

DEFAULT_CONFIG = RuleConfig()


@dataclass(frozen=True, slots=True)
class ObjectView:
    """What HubSpot should hold for one object of a journey: the record, its line items, its
    contact, and (a cart) the journey whose order it was recovered into."""

    exists: bool = False
    properties: dict[str, PropertyValue] = field(default_factory=dict)
    lines: dict[str, dict[str, PropertyValue]] = field(default_factory=dict)
    contact: str | None = None
    linked: str | None = None


@dataclass(frozen=True)
class ObjectKind:
    """How one object type of a journey is named and associated in HubSpot."""

    record: Callable[[str], RecordRef]
    """The record's ref from the journey key."""
    line: Callable[[str, str], RecordRef]
    """A line item's ref from the journey key and the line's key."""
    line_to_record: int
    record_to_contact: int
    link: Callable[[str], RecordRef] | None = None
    """The ref ``linked`` names (a cart's order), if the type has such a link."""
    record_to_link: int = 0


def diff_object(
    kind: ObjectKind, key: str, before: ObjectView, after: ObjectView, config: RuleConfig | None = None
) -> list[AnyCommand]:
    """The commands that take one object of journey ``key`` from ``before`` to ``after``. The
    views name their contact by email; ``config`` says how its ref is keyed (G1: by pseudonym)."""
    rules = config or DEFAULT_CONFIG
    if before == after:  # the usual tick or repeat: nothing to say (and no refs to build)
        return []
    record = kind.record(key)
    commands: list[AnyCommand] = []
    if not after.exists:
        if before.exists:
            commands += [Archive(record=kind.line(key, k)) for k in sorted(before.lines)]
            commands.append(Archive(record=record))
        return commands
    emitted_props = before.properties if before.exists else None
    commands += upsert_if_changed(record, after.properties, emitted_props)
    for line_key, props in sorted(after.lines.items()):
        previous = before.lines.get(line_key) if before.exists else None
        if previous == props:  # sent as it is: no upsert, no association (and no ref to build)
            continue
        ref = kind.line(key, line_key)
        commands += upsert_if_changed(ref, props, previous)
        if previous is None:
            commands.append(Associate(record=ref, to=record, association_type_id=kind.line_to_record))
    if before.exists:  # P4: a line no longer in the cart/checkout/order is removed
        commands += [Archive(record=kind.line(key, k)) for k in sorted(set(before.lines) - set(after.lines))]
    previous_contact = before.contact if before.exists else None
    if after.contact != previous_contact:
        if previous_contact:
            commands.append(
                Dissociate(
                    record=record,
                    to=contact_record(previous_contact, rules),
                    association_type_id=kind.record_to_contact,
                )
            )
        if after.contact:
            commands.append(
                Associate(
                    record=record,
                    to=contact_record(after.contact, rules),
                    association_type_id=kind.record_to_contact,
                )
            )
    previous_link = before.linked if before.exists else None
    if kind.link is not None and after.linked != previous_link:
        if previous_link:
            commands.append(
                Dissociate(
                    record=record, to=kind.link(previous_link), association_type_id=kind.record_to_link
                )
            )
        if after.linked:
            commands.append(
                Associate(record=record, to=kind.link(after.linked), association_type_id=kind.record_to_link)
            )
    return commands
