"""The writer's dead letters: what one says, how it fits one Kafka record, and the port that sends
a round's letters (``hubspot.commands.dlq`` in production, a list in tests).

A command HubSpot refused for good goes to the dead-letter topic with HubSpot's answer and the
command itself (SPEC R5, R7). Letters are queued while a round runs and sent only when it
completes; the port reports what Kafka did not acknowledge, and the round is then undone.

G1 (``SHOPSYNC_SEAL_PERSONAL_DATA``): the letter of a command that was read sealed keeps the
command as it was read (sealed, not the opened command encoded again), and the parts of the letter
that can quote a personal value are sealed under the command's key ref (:data:`LETTER`): HubSpot's
``message`` and ``errors`` (HubSpot echoes the value it refused, an email say) and, for a record
that is not a command, the decoding error's text (pydantic quotes the input). What says why stays
readable: ``reason`` (the writer's own words, value-free), ``status``, ``category``, the command's
op, natural keys and association types, the source offset. ``schemas.sealing.open_tree`` opens a
letter whole (``shopsync compliance report`` does), to the letter the writer writes with the
setting off. An unsealed command (a plain one in a mixed log) gets the letter it always got.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import orjson
from aiokafka.errors import KafkaError

from handlers import writer_metrics
from handlers.id_map import RecordSender, delivery_failure
from handlers.writer_plan import Position
from schemas.commands import AnyCommand, encode_command
from schemas.reasons import reason_kind
from schemas.sealing import SEALED_FIELD, Fields, seal

LETTER: Final = Fields(("message", "errors", "detail"))
"""What of a writer dead letter is sealed when its command was read sealed (G1): HubSpot's message
and errors, and a decoding error's full text (``detail``)."""

REDACTED_WITHHELD: Final = "its data subject was redacted (G1): HubSpot's answer is not kept"
"""Said instead of HubSpot's answer in the letter of a sealed command whose key was shredded before
the letter was written (it cannot be sealed under a key that is gone, nor kept in the clear)."""

Nonces = Callable[[], bytes]
"""Fresh random nonces for the letters' seals (``os.urandom(12)`` in the writer)."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeadLetter:
    """One letter: its bytes, its Kafka key (the command's record key, None for a record that is
    not a command), and a value-free line saying what it is, for the log."""

    value: bytes
    key: bytes | None
    what: str


class DeadLetterPort(Protocol):
    """Where a completed round's dead letters go."""

    async def deliver(self, letters: list[DeadLetter], timeout_s: float) -> list[BaseException]:
        """Send them; wait (at most ``timeout_s``) until each is acknowledged; return the failures."""
        ...


class KafkaDeadLetters:
    """The production port: ``hubspot.commands.dlq`` through the writer's producer."""

    def __init__(self, producer: RecordSender, topic: str) -> None:
        self.producer = producer  # replaced by the writer after a failed delivery
        self.topic = topic

    async def deliver(self, letters: list[DeadLetter], timeout_s: float) -> list[BaseException]:
        sent: list[asyncio.Future[Any]] = []
        failures: list[BaseException] = []
        for letter in letters:
            log.warning("dead-lettering %s", letter.what)
            try:
                sent.append(await self.producer.send(self.topic, letter.value, key=letter.key))
            except KafkaError as exc:  # not even queued (no metadata, too large, ...)
                failures.append(exc)
        if sent:  # asyncio.wait, not wait_for: the producer's futures must not be cancelled
            await asyncio.wait(sent, timeout=timeout_s)
        failures += [e for f in sent if (e := delivery_failure(f, timeout_s)) is not None]
        if not failures:  # else the round is undone and its letters sent again
            writer_metrics.dead_letters_sent(letter.value for letter in letters)
        return failures


def command_letter(
    command: AnyCommand,
    position: Position,
    reason: str,
    answer: dict[str, Any],
    status: int | None,
    limit_bytes: int,
    keys: Mapping[str, bytes] | None = None,
    nonces: Nonces | None = None,
) -> DeadLetter:
    """The letter for one command HubSpot refused: HubSpot's answer, the command, where it was read.
    A command read sealed (``position.received``) is kept as read, and HubSpot's answer sealed
    under its key ref (``keys``, each seal with a fresh nonce from ``nonces``)."""
    received = orjson.loads(position.received) if position.received is not None else None
    letter = {
        "reason": reason,
        "status": status,
        "category": answer.get("category"),
        "message": answer.get("message"),
        "errors": answer.get("errors"),
        "command": received if received is not None else orjson.loads(encode_command(command)),
        "source": {"partition": position.partition, "offset": position.offset},
    }
    # No record key (a contact's is its email) and no HubSpot message (it quotes values) in the
    # log line: the dead letter holds both, for operators with access to the data.
    what = (
        f"a {command.record.object_type} command from {position.partition}@{position.offset}: "
        f"{reason_kind(reason)} ({answer.get('category') or status})"
    )
    close = _closer(position, keys, nonces)
    return DeadLetter(fitted(letter, limit_bytes, close), command.record.key.encode(), what)


def raw_letter(
    raw: bytes,
    reason: str,
    position: Position,
    keys: Mapping[str, bytes] | None = None,
    nonces: Nonces | None = None,
) -> DeadLetter:
    """The letter for a record of the commands topic that is not a command at all. For a record
    read sealed (``position.ref``), the reason is its value-free kind and its full text (which
    may quote what was opened) is sealed under the record's key ref."""
    source = {"partition": position.partition, "offset": position.offset}
    original = raw.decode("utf-8", "replace")
    if position.ref is None:
        letter = {"reason": f"not a command: {reason}", "original": original, "source": source}
        return DeadLetter(orjson.dumps(letter), None, "a record that is not a command")
    letter = {"reason": f"not a command: {reason_kind(reason)}", "detail": reason, "original": original,
              "source": source}  # fmt: skip
    close = _closer(position, keys, nonces)
    return DeadLetter(orjson.dumps(close(letter)), None, "a sealed record that is not a command")


def _closer(
    position: Position, keys: Mapping[str, bytes] | None, nonces: Nonces | None
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """How a letter is finished: as it is for a command read unsealed; sealed (:data:`LETTER`)
    under the command's key ref for one read sealed; without HubSpot's text when that key is
    gone (the subject was redacted since the command was read)."""
    ref = position.ref
    if ref is None:
        return lambda letter: letter
    data_key = (keys or {}).get(ref)
    if data_key is None or nonces is None:
        return lambda letter: {
            **{k: v for k, v in letter.items() if k not in LETTER.names},
            "withheld": REDACTED_WITHHELD,
        }
    return lambda letter: seal(letter, LETTER, ref, data_key, nonces())


def fitted(
    letter: dict[str, Any],
    limit_bytes: int,
    close: Callable[[dict[str, Any]], dict[str, Any]] = lambda letter: letter,
) -> bytes:
    """The letter as bytes that fit one record (R6): HubSpot's answer is cut first, then the
    command's properties (or, for a command read sealed, its sealed part); the command itself
    stays readable at its source offset. A letter Kafka refuses for its size would otherwise undo
    the round again and again. ``close`` finishes each try (seals it, G1), with a fresh nonce."""
    value = orjson.dumps(close(letter))
    if len(value) <= limit_bytes:
        return value
    letter = {**letter, "errors": None, "message": str(letter.get("message") or "")[:2000]}
    value = orjson.dumps(close(letter))
    if len(value) <= limit_bytes:
        return value
    command = dict(letter["command"])
    part = SEALED_FIELD if SEALED_FIELD in command else "properties"  # sealed (G1), or as it is
    omitted = len(orjson.dumps(command.pop(part, None)))
    name = "sealed_omitted" if part == SEALED_FIELD else "properties_omitted"
    letter["command"] = {**command, name: f"{omitted} bytes: read it at its source offset"}
    return orjson.dumps(close(letter))
