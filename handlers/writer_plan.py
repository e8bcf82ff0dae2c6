"""Coalescing a window of commands into as few HubSpot calls as possible (pure, no I/O).

Commands arrive in log order. For one record, later commands win: upserts merge their properties
(newest value per property), an archive cancels the upserts before it, and an upsert after an
archive re-creates the record. Association changes are kept last-wins per (from, to, type), and
subscription status changes (X4) per (address, subscription type). The plan is then executed in a
fixed order: archives, upserts, association changes, subscription statuses, so an association
always finds both ends written in the same window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.commands import (
    AnyCommand,
    Archive,
    Associate,
    Dissociate,
    PropertyValue,
    RecordRef,
    SetSubscription,
    Upsert,
)


@dataclass(frozen=True)
class Position:
    """Where a command came from in the commands topic.

    G1 (``SHOPSYNC_SEAL_PERSONAL_DATA``): a command read sealed carries its record as read
    (``received``) and the key ref it is sealed under (``ref``), neither compared nor hashed: its
    dead letter keeps the sealed record rather than the opened command, and a command held for a
    retry whose key was shredded since is dropped unsent (``handlers.writer_sealed``)."""

    partition: int
    offset: int
    received: bytes | None = field(default=None, compare=False, repr=False)
    ref: str | None = field(default=None, compare=False, repr=False)


@dataclass
class RecordPlan:
    """The net effect on one record of all the window's commands for it."""

    ref: RecordRef
    archive: bool = False
    upsert: dict[str, PropertyValue] | None = None
    create_if_missing: bool = False
    sources: list[tuple[AnyCommand, Position]] = field(default_factory=list)


@dataclass
class LinkPlan:
    command: Associate | Dissociate
    sources: list[tuple[AnyCommand, Position]] = field(default_factory=list)


@dataclass
class SubscriptionPlan:
    """X4: the last status the window asks for one address and subscription type."""

    command: SetSubscription
    sources: list[tuple[AnyCommand, Position]] = field(default_factory=list)


@dataclass
class Plan:
    records: dict[str, RecordPlan] = field(default_factory=dict)
    links: dict[tuple[str, str, int], LinkPlan] = field(default_factory=dict)
    subscriptions: dict[tuple[str, str], SubscriptionPlan] = field(default_factory=dict)

    def archives(self) -> list[RecordPlan]:
        return [r for r in self.records.values() if r.archive]

    def upserts(self) -> list[RecordPlan]:
        return [r for r in self.records.values() if r.upsert is not None]


def coalesce(items: list[tuple[AnyCommand, Position]]) -> Plan:
    """The window's commands, reduced to one plan per record and one per association."""
    plan = Plan()
    for command, position in items:
        if isinstance(command, Associate | Dissociate):
            key = (command.record.key, command.to.key, command.association_type_id)
            previous = plan.links.get(key)
            sources = (previous.sources if previous else []) + [(command, position)]
            plan.links[key] = LinkPlan(command=command, sources=sources)
            continue
        if isinstance(command, SetSubscription):  # last wins per address and subscription type
            at = (command.record.key, command.subscription)
            known = plan.subscriptions.get(at)
            plan.subscriptions[at] = SubscriptionPlan(
                command, (known.sources if known else []) + [(command, position)]
            )
            continue
        record = plan.records.setdefault(command.record.key, RecordPlan(ref=command.record))
        record.sources.append((command, position))
        if isinstance(command, Archive):
            record.archive, record.upsert, record.create_if_missing = True, None, False
            # Associations of a record archived later in the window are moot (HubSpot drops them
            # with the record); keep their sources so their offsets still count as done.
            for key in [k for k in plan.links if command.record.key in (k[0], k[1])]:
                record.sources.extend(plan.links.pop(key).sources)
        elif isinstance(command, Upsert):
            record.upsert = {**(record.upsert or {}), **command.properties}
            record.create_if_missing = record.create_if_missing or command.create_if_missing
    return plan
