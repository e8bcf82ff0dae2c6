"""What a HubSpot account holds after a sequence of commands, as plain dicts.

Upserts create or merge, archives remove, associations are a set: the meaning the writer gives
commands. Replay folds the rules' commands into the account HubSpot should hold; tests assert on
"what HubSpot ends up holding" rather than on the exact command stream (``devtools.account``
compares two accounts).

Records are keyed by the unique property's value as HubSpot holds it (``RecordRef.hubspot_value``):
a contact by its email even when its commands name it by the email's pseudonym (G1,
``SHOPSYNC_REDACTABLE``), so an account folded with the setting equals one folded without it, and
compares with HubSpot's own read (``replay --dry-run``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from schemas.commands import (
    AnyCommand,
    Archive,
    Associate,
    Dissociate,
    PropertyValue,
    SetSubscription,
    Upsert,
)

Key = tuple[str, str]  # (object type, natural key value)


@dataclass
class Account:
    records: dict[Key, dict[str, PropertyValue]] = field(default_factory=dict)
    archived: set[Key] = field(default_factory=set)
    associations: set[tuple[Key, Key, int]] = field(default_factory=set)
    subscriptions: dict[tuple[str, str], str] = field(default_factory=dict)
    """X4 (opt-in): (address, subscription type setting) -> the status last asked for."""
    _ends: dict[Key, set[tuple[Key, Key, int]]] = field(default_factory=dict, repr=False, compare=False)
    """Each record's associations, so archiving one drops its links without a pass over all of
    them (that pass made replay quadratic: minutes for 200,000 deliveries)."""

    def _link(self, link: tuple[Key, Key, int]) -> None:
        self.associations.add(link)
        for end in link[:2]:
            self._ends.setdefault(end, set()).add(link)

    def _unlink(self, link: tuple[Key, Key, int]) -> None:
        self.associations.discard(link)
        for end in link[:2]:
            self._ends.get(end, set()).discard(link)

    def apply(self, command: AnyCommand) -> None:
        ref = (command.record.object_type, command.record.hubspot_value)
        if isinstance(command, Upsert):
            self.records.setdefault(ref, {}).update(command.properties)
            self.archived.discard(ref)
        elif isinstance(command, Archive):
            self.records.pop(ref, None)
            self.archived.add(ref)
            for link in list(self._ends.pop(ref, ())):
                self._unlink(link)
        elif isinstance(command, Associate):
            self._link((ref, (command.to.object_type, command.to.hubspot_value), command.association_type_id))
        elif isinstance(command, Dissociate):
            self._unlink(
                (ref, (command.to.object_type, command.to.hubspot_value), command.association_type_id)
            )
        elif isinstance(command, SetSubscription):
            self.subscriptions[(command.record.hubspot_value, command.subscription)] = command.state

    def of(self, object_type: str) -> dict[str, dict[str, PropertyValue]]:
        return {key: props for (kind, key), props in self.records.items() if kind == object_type}


def fold(commands: Iterable[AnyCommand]) -> Account:
    account = Account()
    for command in commands:
        account.apply(command)
    return account
