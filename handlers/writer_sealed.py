"""The writer's side of sealed commands (SPEC G1, crypto-shredding, step 3's second part): reading
a round's records of ``hubspot.commands``, opened with the key ring's keys (pure, no I/O).

With ``SHOPSYNC_SEAL_PERSONAL_DATA`` on the worker writes each command sealed
(``schemas.sealing.seal(..., COMMAND, ...)``: its properties, legal-basis text and contact
addresses in one envelope under its subject's key), and the writer opens it just before it
decodes it. The consume loop (``handlers.writer``) has its ``Opener`` catch up on the key refs of
the round's records first (``Opener.ensure``: one catch-up for the round), then
:func:`read_commands` sorts every record into one of three ends:

- **a command** to apply (opened; a plain command, as in a log written partly before the setting
  was turned on, is taken as it is). One read sealed carries its record as read and its key ref
  on its ``Position``, for its dead letter (``handlers.writer_letters``) and for
  :func:`shredded`;
- **a dead letter** for a record that is not a command (or whose envelope does not open with its
  key: damaged, or moved from another record);
- **redacted**: its key is gone (the redactor shredded it: its customer was redacted). It is
  never sent to HubSpot. It is counted (``WriterStats.skipped_redacted``, the metric
  ``shopsync_writer_outcomes{outcome="skipped_redacted"}``) and done: its offset is committed like
  a written one. Not a dead letter: nothing is wrong and nobody can act on it (it holds nothing
  readable, and the customer asked to be forgotten); a redact of a customer with many pending
  commands would otherwise flood the dead letters operators are alerted on. The writer's C4 skip
  (a contact deleted in HubSpot, ``skipped_deleted``) is the same kind of end.

Off (no keys), every record is decoded as it always was: the same commands, the same letters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import orjson
from pydantic import ValidationError

from handlers.writer_letters import DeadLetter, Nonces, raw_letter
from handlers.writer_plan import Position
from schemas.commands import AnyCommand, decode_command
from schemas.sealing import COMMAND, SEALED_FIELD, SHREDDED, open_derived, sealed_ref

Source = tuple[AnyCommand, Position]


@dataclass
class Read:
    """A round's records of the commands topic, each at one end."""

    items: list[Source] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)
    redacted: list[Position] = field(default_factory=list)


def read_commands(
    records: Iterable[tuple[bytes, Position]],
    keys: Mapping[str, bytes] | None,
    nonces: Nonces | None = None,
) -> Read:
    """The records sorted into commands, dead letters and redacted ones. ``keys`` are the key
    ring's (caught up on the records' refs), None with sealing off: then a sealed record is not a
    command (its dead letter says why), as before the setting existed."""
    read = Read()
    for raw, position in records:
        ref = _sealed_ref(raw) if keys is not None else None
        if ref is None:
            try:
                read.items.append((decode_command(raw), position))
            except (ValidationError, ValueError) as exc:
                read.letters.append(raw_letter(raw, str(exc), position))
            continue
        assert keys is not None
        at = replace(position, received=raw, ref=ref)
        try:
            opened = open_derived(orjson.loads(raw), keys, COMMAND)
            if opened is SHREDDED:
                read.redacted.append(at)
                continue
            assert isinstance(opened, dict)
            read.items.append((decode_command(orjson.dumps(opened)), at))
        except (ValidationError, ValueError) as exc:
            read.letters.append(raw_letter(raw, str(exc), at, keys, nonces))
    return read


def _sealed_ref(raw: bytes) -> str | None:
    """The key ref a record of the commands topic is sealed under, or None (not sealed, or not a
    JSON object at all: decoded as it always was)."""
    if SEALED_FIELD.encode() not in raw:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return sealed_ref(value) if isinstance(value, dict) else None


def shredded(sources: Iterable[Source], keys: Mapping[str, bytes] | None) -> bool:
    """Whether any of these commands was read sealed under a key that is gone now: a command held
    for a retry (or a link waiting for its ends) whose customer was redacted since it was read is
    dropped, not sent."""
    if keys is None:
        return False
    return any(position.ref is not None and position.ref not in keys for _, position in sources)
