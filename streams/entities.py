"""The two timer-holding entities (contacts, journeys) as data: how each reads its inputs, decides,
fires its timers and what else its outcome sends, so the faust shell handles both with one code
path (load, decide, send, store, index) instead of one copy per entity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, TypeAdapter

from schemas.commands import AnyCommand
from schemas.envelope import Delivery, HubSpotContactDeletion, Tick, encode
from streams.rules import contacts, journeys
from streams.rules.common import RuleConfig
from streams.rules.journeys import FirstPurchase

ContactInput = Delivery | Tick | HubSpotContactDeletion
JourneyInput = Delivery | Tick | FirstPurchase
Fact = tuple[str, bytes, bytes]
"""A record one entity sends another: (internal topic name, key, value)."""


@dataclass(frozen=True)
class Decided:
    """An entity rule's outcome, in the shape the shell needs."""

    state: BaseModel
    commands: list[AnyCommand]
    facts: list[Fact]


@dataclass(frozen=True)
class EntityKind:
    """One entity's rules, seen from the shell. ``decide`` takes any non-tick input."""

    name: str
    inputs: TypeAdapter[Any]
    model: type[BaseModel]
    new: Callable[[str], BaseModel]
    decide: Callable[[Any, Any, datetime, RuleConfig], Decided]
    on_tick: Callable[[Any, datetime, RuleConfig], Decided]
    next_due: Callable[[Any, RuleConfig], datetime | None]

    def due_of(self, raw: dict[str, Any], config: RuleConfig) -> datetime | None:
        """The next due time of a stored state (its raw table value)."""
        return self.next_due(self.model.model_validate(raw), config)


def instant_of(record: Delivery | Tick | HubSpotContactDeletion | FirstPurchase) -> datetime:
    """The instant an input happened at, by its own data: what it is decided at (timers due by
    then fire first), so its outcome does not depend on what else reached its partition before it.
    Both engines (the faust worker, the in-process pipeline) decide with this."""
    if isinstance(record, Tick | FirstPurchase):
        return record.at
    if isinstance(record, HubSpotContactDeletion):
        return record.occurred_at
    return record.received_at


def _contact_outcome(outcome: contacts.Outcome) -> Decided:
    facts = [("journeys", fact.journey.encode(), encode(fact)) for fact in outcome.facts]
    return Decided(outcome.state, outcome.commands, facts)


def _journey_outcome(outcome: journeys.Outcome) -> Decided:
    return Decided(outcome.state, outcome.commands, [])


def _decide_contact(
    state: contacts.ContactState, record: Delivery | HubSpotContactDeletion, now: datetime, config: RuleConfig
) -> Decided:
    if isinstance(record, HubSpotContactDeletion):
        return _contact_outcome(contacts.decide_deletion(state, record, now, config))
    return _contact_outcome(contacts.decide(state, record, now, config))


def _decide_journey(
    state: journeys.JourneyState, record: Delivery | FirstPurchase, now: datetime, config: RuleConfig
) -> Decided:
    if isinstance(record, FirstPurchase):
        return _journey_outcome(journeys.decide_first_purchase(state, record, now, config))
    return _journey_outcome(journeys.decide(state, record, now, config))


CONTACTS = EntityKind(
    name="contacts",
    inputs=TypeAdapter(ContactInput),
    model=contacts.ContactState,
    new=lambda key: contacts.ContactState(email=key),
    decide=_decide_contact,
    on_tick=lambda state, now, config: _contact_outcome(contacts.on_tick(state, now, config)),
    next_due=contacts.next_due,
)
JOURNEYS = EntityKind(
    name="journeys",
    inputs=TypeAdapter(JourneyInput),
    model=journeys.JourneyState,
    new=lambda key: journeys.JourneyState(key=key),
    decide=_decide_journey,
    on_tick=lambda state, now, config: _journey_outcome(journeys.on_tick(state, now, config)),
    next_due=journeys.next_due,
)
ENTITIES: tuple[EntityKind, ...] = (CONTACTS, JOURNEYS)
