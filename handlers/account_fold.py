"""What a HubSpot account holds after a sequence of commands, as plain dicts.

Upserts create or merge, archives remove, associations are a set: the meaning the writer gives
commands. Replay folds the rules' commands into the account HubSpot should hold; tests assert on
"what HubSpot ends up holding" rather than on the exact command stream (``devtools.account``
compares two accounts).

Records are keyed by the unique property's value as HubSpot holds it (``RecordRef.hubspot_value``):
a contact by its email even when its commands name it by the email's pseudonym (G1,
``SHOPSYNC_REDACTABLE``), so an account folded with the setting equals one folded without it, and
compares with HubSpot's own read (``replay --dry-run``). A B2B company's link names its member
contact by the pseudonym alone (``RecordRef.by_pseudonym_only``: the company's commands are
sealed under the shop's key, so they hold no member's address); the fold finds the address in the
contact's own commands, as the writer finds the contact's id in its id map, whichever comes first.
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
    RecordRef,
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
    _addresses: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    """G1: each contact pseudonym's address, learned from the refs that carry both."""

    def _link(self, link: tuple[Key, Key, int]) -> None:
        self.associations.add(link)
        for end in link[:2]:
            self._ends.setdefault(end, set()).add(link)

    def _unlink(self, link: tuple[Key, Key, int]) -> None:
        self.associations.discard(link)
        for end in link[:2]:
            self._ends.get(end, set()).discard(link)

    def _end(self, ref: RecordRef) -> Key:
        """A record's key here: its HubSpot value; a pseudonym-only contact's address once known."""
        if ref.by_pseudonym_only:
            return (ref.object_type, self._addresses.get(ref.id_value, ref.id_value))
        if ref.address is not None and self._addresses.get(ref.id_value) != ref.address:
            self._learn(ref.id_value, ref.address)
        return (ref.object_type, ref.hubspot_value)

    def _learn(self, pseudonym: str, address: str) -> None:
        """Re-key the links made before the pseudonym's address was known."""
        self._addresses[pseudonym] = address
        for link in list(self._ends.pop(("contacts", pseudonym), ())):
            self._unlink(link)
            was: Key = ("contacts", pseudonym)
            now: Key = ("contacts", address)
            start, end, type_id = link
            self._link((now if start == was else start, now if end == was else end, type_id))

    def apply(self, command: AnyCommand) -> None:
        ref = self._end(command.record)
        if isinstance(command, Upsert):
            self.records.setdefault(ref, {}).update(command.properties)
            self.archived.discard(ref)
        elif isinstance(command, Archive):
            self.records.pop(ref, None)
            self.archived.add(ref)
            for link in list(self._ends.pop(ref, ())):
                self._unlink(link)
        elif isinstance(command, Associate):
            self._link((ref, self._end(command.to), command.association_type_id))
        elif isinstance(command, Dissociate):
            self._unlink((ref, self._end(command.to), command.association_type_id))
        elif isinstance(command, SetSubscription):
            self.subscriptions[(command.record.hubspot_value, command.subscription)] = command.state

    def of(self, object_type: str) -> dict[str, dict[str, PropertyValue]]:
        return {key: props for (kind, key), props in self.records.items() if kind == object_type}


def fold(commands: Iterable[AnyCommand]) -> Account:
    account = Account()
    for command in commands:
        account.apply(command)
    return account
