"""A backlog of real order traffic for the writer, what HubSpot must hold after it, and the check.

The backlog is what the rules produce for a generated store (``devtools.samplestore``) run through
the in-process pipeline (``streams.inprocess``): contacts, products, deals and line items, each
upserted as often as the store's events change it, line items and deals archived when an order is
deleted or a line removed, and the associations between them. All of it goes onto
``hubspot.commands`` at once, as after an outage.

:func:`expected` folds the commands as HubSpot would apply them (per record, in order: the last
create-or-archive wins; an update that must not create leaves a missing record missing; a link
holds if its last command associates and both its ends are live at the end). :func:`check` holds
that against what the sandbox's file says, and times every item of the backlog: a record when the
sandbox created it, a link when an answer first listed it linked (or, for a link made inside a
record's create, when its later end was created).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from devtools.localrun import delivery_for, schedule
from devtools.samplestore import generate
from schemas.commands import AnyCommand, Archive, Associate, Dissociate, RecordRef, Upsert
from streams.inprocess import InProcessPipeline

Key = tuple[str, str, str]  # object type, unique property, its value in lower case (the sandbox's norm)
LinkKey = tuple[Key, Key, int]  # from, to, association type id


def order_backlog(customers: int, seed: int = 16) -> list[AnyCommand]:
    """Every command the rules produce for a store of ``customers`` buyers, ticked hourly and for
    ten days after the last event (so every timer has fired), in the order they were produced."""
    store = generate(customers=customers, seed=seed)
    pipeline = InProcessPipeline()
    for batch, tick_at in schedule(store.events, timedelta(hours=1), timedelta(days=10)):
        for event in batch:
            pipeline.deliver(delivery_for(event))
        pipeline.tick(tick_at)
    return pipeline.commands


def key_of(ref: RecordRef) -> Key:
    return (ref.object_type, ref.id_property, ref.id_value.lower())


@dataclass(frozen=True)
class Expected:
    """What HubSpot must hold once the backlog is applied."""

    live: frozenset[Key]  # must exist, not archived
    archived: frozenset[Key]  # were created, then archived last: must not be live
    links: frozenset[LinkKey]  # must exist
    commands: int

    @property
    def items(self) -> int:
        """The backlog's inputs the rate counts: every record it creates, every link it leaves."""
        return len(self.live) + len(self.archived) + len(self.links)


def expected(commands: Iterable[AnyCommand]) -> Expected:
    states: dict[Key, bool] = {}  # True: live; False: archived (only records that were created)
    links: dict[LinkKey, bool] = {}
    count = 0
    for command in commands:
        count += 1
        key = key_of(command.record)
        if isinstance(command, Upsert):
            if command.create_if_missing or states.get(key):
                states[key] = True
        elif isinstance(command, Archive):
            if key in states:
                states[key] = False
        elif isinstance(command, Associate | Dissociate):
            links[(key, key_of(command.to), command.association_type_id)] = isinstance(command, Associate)
    live = frozenset(k for k, alive in states.items() if alive)
    held = frozenset(link for link, on in links.items() if on and link[0] in live and link[1] in live)
    return Expected(live, frozenset(k for k, alive in states.items() if not alive), held, count)


@dataclass(frozen=True)
class SandboxRecord:
    id: int
    created_ms: int
    archived: bool


@dataclass(frozen=True)
class Checked:
    """The sandbox against the expectation: what is missing or wrong, and each landed item's time."""

    missing_records: int
    not_archived: int
    missing_links: int
    times_ms: list[int]  # one per landed item of the backlog: records and links
    links_timed_by_create: int  # links no association answer listed (made inside a create)
    never_created: int  # records created and archived by the backlog that the writer skipped

    @property
    def complete(self) -> bool:
        return self.missing_records == 0 and self.not_archived == 0 and self.missing_links == 0

    def describe(self) -> str:
        if self.complete:
            return "every record and link of the backlog is in the sandbox"
        return (
            f"INCOMPLETE: {self.missing_records:,} records missing, {self.not_archived:,} not archived, "
            f"{self.missing_links:,} links missing"
        )


def check(
    want: Expected,
    records: Mapping[Key, list[SandboxRecord]],
    links: set[tuple[int, int, int]],
    first_linked_ms: Mapping[frozenset[int], int],
) -> Checked:
    """``records``: the sandbox's objects by unique value (archived ones too); ``links``: its
    (from id, to id, type id) rows; ``first_linked_ms``: from the call log."""

    def live(key: Key) -> SandboxRecord | None:
        return next((r for r in records.get(key, []) if not r.archived), None)

    times: list[int] = []
    missing = 0
    for key in want.live:
        found = live(key)
        if found is None:
            missing += 1
        else:
            times.append(found.created_ms)
    not_archived = never_created = 0
    for key in want.archived:
        if live(key) is not None:
            not_archived += 1
        elif records.get(key):
            times.append(min(r.created_ms for r in records[key]))
        else:  # a writer that coalesced the create and the archive never created it: fine
            never_created += 1
    missing_links = by_create = 0
    for from_key, to_key, type_id in want.links:
        a, b = live(from_key), live(to_key)
        if a is None or b is None or (a.id, b.id, type_id) not in links:
            missing_links += 1
            continue
        at = first_linked_ms.get(frozenset((a.id, b.id)))
        if at is None:
            by_create += 1
            at = max(a.created_ms, b.created_ms)
        times.append(at)
    return Checked(missing, not_archived, missing_links, times, by_create, never_created)
