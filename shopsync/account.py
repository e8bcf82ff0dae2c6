"""What a HubSpot account holds after a sequence of commands, as plain dicts.

Upserts create or merge, archives remove, associations are a set: the meaning the writer gives
commands. Tests assert on "what HubSpot ends up holding" rather than on the exact command stream,
and the demo summarises it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from schemas.commands import AnyCommand, Archive, Associate, Dissociate, PropertyValue, Upsert

Key = tuple[str, str]  # (object type, natural key value)


@dataclass
class Account:
    records: dict[Key, dict[str, PropertyValue]] = field(default_factory=dict)
    archived: set[Key] = field(default_factory=set)
    associations: set[tuple[Key, Key, int]] = field(default_factory=set)

    def apply(self, command: AnyCommand) -> None:
        ref = (command.record.object_type, command.record.id_value)
        if isinstance(command, Upsert):
            self.records.setdefault(ref, {}).update(command.properties)
            self.archived.discard(ref)
        elif isinstance(command, Archive):
            self.records.pop(ref, None)
            self.archived.add(ref)
            self.associations = {a for a in self.associations if ref not in (a[0], a[1])}
        elif isinstance(command, Associate):
            self.associations.add(
                (ref, (command.to.object_type, command.to.id_value), command.association_type_id)
            )
        elif isinstance(command, Dissociate):
            self.associations.discard(
                (ref, (command.to.object_type, command.to.id_value), command.association_type_id)
            )

    def of(self, object_type: str) -> dict[str, dict[str, PropertyValue]]:
        return {key: props for (kind, key), props in self.records.items() if kind == object_type}


def fold(commands: Iterable[AnyCommand]) -> Account:
    account = Account()
    for command in commands:
        account.apply(command)
    return account


def differences(expected: Account, actual: Account, limit: int = 10) -> list[str]:
    """Readable differences between two accounts (for test failures and operators)."""
    out = []
    for key in sorted(set(expected.records) | set(actual.records)):
        want, have = expected.records.get(key), actual.records.get(key)
        if want != have:
            if want is None or have is None:
                out.append(f"{key}: {'missing' if have is None else 'unexpected'}")
            else:
                changed = {
                    p: (want.get(p), have.get(p)) for p in set(want) | set(have) if want.get(p) != have.get(p)
                }
                out.append(f"{key}: {changed}")
    for link in sorted(expected.associations ^ actual.associations):
        out.append(f"association {link}: {'missing' if link in expected.associations else 'unexpected'}")
    if expected.archived != actual.archived:
        out.append(f"archived: missing {sorted(expected.archived - actual.archived)[:3]}, "
                   f"unexpected {sorted(actual.archived - expected.archived)[:3]}")  # fmt: skip
    return out[:limit]
